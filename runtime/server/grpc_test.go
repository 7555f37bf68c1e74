package server

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// startGRPC runs grpc-go's interop test service on 127.0.0.1 (h2c).
func startGRPC(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, interop.NewTestServer())
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

func grpcClient(t testing.TB, addr string) testgrpc.TestServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

func grpcConfig(upstream string) string {
	return baseConfig(`
[[routes]]
name = "grpc"
timeout = "30s"
backends = [ { cluster = "grpc" } ]
[[clusters]]
name = "grpc"
protocol = "h2c"
endpoints = ["` + upstream + `"]
`)
}

func TestGRPCAllCallKinds(t *testing.T) {
	ts := startServer(t, grpcConfig(startGRPC(t)))
	c := grpcClient(t, ts.ListenerAddr("public"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("unary with metadata and trailers", func(t *testing.T) {
		ctx := metadata.AppendToOutgoingContext(ctx, "x-grpc-test-echo-initial", "hello", "x-grpc-test-echo-trailing-bin", "\x0a\x0b")
		var header, trailer metadata.MD
		resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 314, Payload: &testgrpc.Payload{Body: make([]byte, 271)}}, grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetPayload().GetBody()) != 314 {
			t.Fatalf("payload %d bytes, want 314", len(resp.GetPayload().GetBody()))
		}
		if got := header.Get("x-grpc-test-echo-initial"); len(got) != 1 || got[0] != "hello" {
			t.Fatalf("initial metadata %v", header)
		}
		if got := trailer.Get("x-grpc-test-echo-trailing-bin"); len(got) != 1 || got[0] != "\x0a\x0b" {
			t.Fatalf("trailing metadata %v", trailer)
		}
	})

	t.Run("status code and message from upstream", func(t *testing.T) {
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: 2, Message: "test status message \t\n"}})
		st, _ := status.FromError(err)
		if st.Code() != codes.Unknown || st.Message() != "test status message \t\n" {
			t.Fatalf("got %v %q", st.Code(), st.Message())
		}
	})

	t.Run("client streaming", func(t *testing.T) {
		stream, err := c.StreamingInputCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sizes := []int{27182, 8, 1828, 45904}
		total := 0
		for _, n := range sizes {
			if err := stream.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, n)}}); err != nil {
				t.Fatal(err)
			}
			total += n
		}
		resp, err := stream.CloseAndRecv()
		if err != nil {
			t.Fatal(err)
		}
		if int(resp.GetAggregatedPayloadSize()) != total {
			t.Fatalf("aggregated %d, want %d", resp.GetAggregatedPayloadSize(), total)
		}
	})

	t.Run("server streaming", func(t *testing.T) {
		sizes := []int32{31415, 9, 2653, 58979}
		var params []*testgrpc.ResponseParameters
		for _, n := range sizes {
			params = append(params, &testgrpc.ResponseParameters{Size: n})
		}
		stream, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: params})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			m, err := stream.Recv()
			if err == io.EOF {
				if i != len(sizes) {
					t.Fatalf("got %d messages, want %d", i, len(sizes))
				}
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if int32(len(m.GetPayload().GetBody())) != sizes[i] {
				t.Fatalf("message %d: %d bytes, want %d", i, len(m.GetPayload().GetBody()), sizes[i])
			}
		}
	})

	t.Run("bidi ping pong", func(t *testing.T) {
		stream, err := c.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range []int32{31415, 9, 2653, 58979} {
			if err := stream.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: n}}, Payload: &testgrpc.Payload{Body: make([]byte, 100)}}); err != nil {
				t.Fatal(err)
			}
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("ping %d: %v", i, err)
			}
			if int32(len(m.GetPayload().GetBody())) != n {
				t.Fatalf("pong %d: %d bytes, want %d", i, len(m.GetPayload().GetBody()), n)
			}
		}
		stream.CloseSend()
		if _, err := stream.Recv(); err != io.EOF {
			t.Fatalf("after close: %v, want EOF", err)
		}
	})
}

func TestGRPCDeadlineAndUnavailable(t *testing.T) {
	ts := startServer(t, grpcConfig(startGRPC(t)))
	c := grpcClient(t, ts.ListenerAddr("public"))

	// grpc-timeout is honoured by the proxy: the call to a sleeping server
	// ends with DEADLINE_EXCEEDED near the client's deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	stream, err := c.FullDuplexCall(ctx)
	if err == nil {
		stream.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1, IntervalUs: 5_000_000}}})
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("sleeping server: %v, want DeadlineExceeded", err)
	}

	// A cluster with nothing listening: the proxy answers a trailers-only
	// UNAVAILABLE that grpc-go reads as a status, not a transport error.
	dead := startServer(t, grpcConfig("127.0.0.1:1"))
	dc := grpcClient(t, dead.ListenerAddr("public"))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	_, err = dc.EmptyCall(ctx2, &testgrpc.Empty{})
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		t.Fatalf("no upstream: %v, want Unavailable", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("the call hung until the client deadline")
	}
}
