package server

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// TestMeshGRPC: a gRPC client -> A's outbound (h2c) -> HTTP/2 over mTLS ->
// B's inbound -> a gRPC app (h2c), unary, bidi streaming, status codes,
// and an authorization denial as PERMISSION_DENIED.
//
// [sidecar] has no setting for the app's protocol (the generated
// "inbound|app" cluster speaks HTTP/1.1), so B declares a second inbound
// listener (direction = "inbound": it gets the same mesh filters) routing
// to an h2c app cluster.
func TestMeshGRPC(t *testing.T) {
	pki := newMeshPKI(t, "example.org")
	app := startGRPC(t)
	bCert, bKey := pki.issue("payments", idPayments, time.Time{}, time.Hour)
	aCert, aKey := pki.issue("orders", idOrders, time.Time{}, time.Hour)
	b := startServer(t, sidecarConfig(bCert, bKey, pki.bundle(), "127.0.0.1:1", "strict", fmt.Sprintf(`
[[listeners]]
name = "inbound-grpc"
address = "127.0.0.5:0"
direction = "inbound"
protocols = ["h2"]
routes = ["grpc-app"]
tls = { cert = %q, key = %q, client_ca = %q }

[[routes]]
name = "grpc-app"
timeout = "30s"
backends = [ { cluster = "grpc-app" } ]

[[clusters]]
name = "grpc-app"
protocol = "h2c"
endpoints = [%q]

[[authorization]]
action = "DENY"
to = { paths = ["/grpc.testing.TestService/EmptyCall"] }
`, bCert, bKey, pki.bundle(), app)))
	a := startServer(t, sidecarConfig(aCert, aKey, pki.bundle(), "127.0.0.1:1", "strict", fmt.Sprintf(`
[[services]]
name = "grpc"
endpoints = [%q]
identity = %q
timeout = "30s"
`, b.ListenerAddr("inbound-grpc"), idPayments)))

	conn, err := grpc.NewClient(a.ListenerAddr("outbound"), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("grpc"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := testgrpc.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 314, Payload: &testgrpc.Payload{Body: make([]byte, 271)}})
	if err != nil || len(resp.GetPayload().GetBody()) != 314 {
		t.Fatalf("unary: %v", err)
	}
	_, err = c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: 5, Message: "nope"}})
	if st, _ := status.FromError(err); st.Code() != codes.NotFound || st.Message() != "nope" {
		t.Fatalf("status through the mesh: %v", err)
	}
	stream, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []int32{31415, 9, 2653} {
		if err := stream.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: n}}}); err != nil {
			t.Fatal(err)
		}
		m, err := stream.Recv()
		if err != nil || int32(len(m.GetPayload().GetBody())) != n {
			t.Fatalf("pong %d: %v", i, err)
		}
	}
	stream.CloseSend()
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("after close: %v", err)
	}
	_, err = c.EmptyCall(ctx, &testgrpc.Empty{})
	if st, _ := status.FromError(err); st.Code() != codes.PermissionDenied {
		t.Fatalf("denied call: %v, want PermissionDenied", err)
	}
	waitLog(t, b, func(f map[string]any) bool { return f["listener"] == "inbound-grpc" && f["protocol"] == "HTTP/2" })
}
