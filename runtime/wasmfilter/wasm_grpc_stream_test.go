package wasmfilter_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/upstream"
	"github.com/sluice-proxy/sluice/runtime/wasmfilter"
)

// rawCodec passes gRPC messages through as bytes, so the server sees what
// the raw-ABI guest sent.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// startRawGRPC serves every method of any service on 127.0.0.1 (h2c):
// Chat echoes each message and ends with Aborted and a trailer, Fail
// answers trailers-only, Hold waits until the client goes away.
func startRawGRPC(t *testing.T, held chan<- struct{}) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		md, _ := metadata.FromIncomingContext(stream.Context())
		switch {
		case strings.HasSuffix(method, "/Fail"):
			return status.Error(codes.NotFound, "no such thing")
		case strings.HasSuffix(method, "/Hold"):
			if err := stream.SendHeader(metadata.Pairs("x-init", "holding")); err != nil {
				return err
			}
			<-stream.Context().Done()
			held <- struct{}{}
			return nil
		}
		if err := stream.SendHeader(metadata.Pairs("x-init", fmt.Sprintf("md=%s method=%s", md.Get("x-md"), method))); err != nil {
			return err
		}
		for {
			var b []byte
			err := stream.RecvMsg(&b)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			out := append([]byte("echo:"), b...)
			if err := stream.SendMsg(&out); err != nil {
				return err
			}
		}
		stream.SetTrailer(metadata.Pairs("x-trail", "bye"))
		return status.Error(codes.Aborted, "done")
	}))
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// TestWasmGRPCStreamEndToEnd: a raw-ABI guest streams with a grpc-go server
// through a real h2c cluster: metadata both ways, messages both ways,
// half-close, trailers and status; a trailers-only reply, an unreachable
// cluster (Unavailable), an unknown cluster (ParseFailure) and a cancel
// the server sees .
func TestWasmGRPCStreamEndToEnd(t *testing.T) {
	held := make(chan struct{}, 1)
	addr := startRawGRPC(t, held)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	m, err := upstream.NewManager([]config.Cluster{
		{Name: "grpc-up", Protocol: "h2c", Endpoints: []string{addr}},
		{Name: "grpc-down", Protocol: "h2c", Endpoints: []string{deadAddr}},
	}, stats.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	caller := &wasmfilter.WasmHTTPCaller{Lookup: wasmfilter.ClusterCallsForTest(m)}
	core, logs := observer.New(zapcore.DebugLevel)
	e, err := hostabi.NewEngine(context.Background(), hostabi.EngineConfig{
		CacheDir: filepath.Join(os.TempDir(), "sluice-wasm-cache"), Logger: zap.New(core), HTTP: caller})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	wasm, err := os.ReadFile(filepath.Join("..", "..", "hostabi", "testdata", "go", "rawabi", "rawabi.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.Load(context.Background(), hostabi.PluginConfig{Name: "grpc-stream", Wasm: wasm, Instances: 1, CallTimeout: 5 * time.Second,
		PluginConfig: []byte("configure: grpc_stream grpc-up test.Echo Chat x-md=hello | grpc_send 2 one 0 | " +
			"grpc_stream grpc-up test.Echo Fail | grpc_stream grpc-down test.Echo Chat | grpc_stream nowhere test.Echo Chat\n" +
			"grpc_initial: hdr_get 4 x-init\n" +
			"grpc_receive: buf_get 5 0 100 | grpc_send 2 two 1\n" +
			"grpc_trailing: hdr_get 5 x-trail | hdr_get 5 grpc-status\n" +
			"grpc_close: status\n")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	has := func(want string) bool { return logs.FilterMessage(want).Len() > 0 }
	deadline := time.Now().Add(10 * time.Second)
	for !(has("grpc_close id=2 code=10") && has("grpc_close id=4 code=5") && has("grpc_close id=6 code=14")) {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var all []string
	for _, e := range logs.All() {
		all = append(all, e.Message)
	}
	for _, want := range []string{
		"configure grpc_stream: status=0 id=2", "configure grpc_send: status=0",
		"configure grpc_stream: status=0 id=4", "configure grpc_stream: status=0 id=6",
		"configure grpc_stream: status=4 id=0",
		// Chat: metadata both ways, two round trips, half-close, trailers.
		"grpc_initial hdr_get: status=0 md=[hello] method=/test.Echo/Chat",
		"grpc_receive id=2 size=8", "grpc_receive buf_get: status=0 echo:one", "grpc_receive grpc_send: status=0",
		"grpc_receive buf_get: status=0 echo:two", "grpc_receive grpc_send: status=2",
		"grpc_trailing hdr_get: status=0 bye", "grpc_trailing hdr_get: status=0 10",
		"grpc_close id=2 code=10", "grpc_close status: status=0 code=10 done",
		// Fail: trailers-only.
		"grpc_initial id=4 n=0", "grpc_trailing hdr_get: status=0 5", "grpc_close id=4 code=5",
		"grpc_close status: status=0 code=5 no such thing",
		// Unreachable.
		"grpc_close id=6 code=14",
	} {
		if !has(want) {
			t.Errorf("missing log %q in:\n%s", want, strings.Join(all, "\n"))
		}
	}
	// Cancel: the guest resets a stream once the server has it; no
	// callback follows, and the server sees the stream go away.
	p2, err := e.Load(context.Background(), hostabi.PluginConfig{Name: "grpc-cancel", Wasm: wasm, Instances: 1, CallTimeout: 5 * time.Second,
		PluginConfig: []byte("configure: grpc_stream grpc-up test.Echo Hold\n" +
			"grpc_initial: hdr_get 4 x-init | grpc_cancel 2 | grpc_cancel 2\n")})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close(context.Background())
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Error("the server never saw the cancelled stream go away")
	}
	time.Sleep(50 * time.Millisecond)
	var got []string
	for _, e := range logs.FilterField(zap.String("plugin", "grpc-cancel")).All() {
		got = append(got, e.Message)
	}
	want := []string{"configure grpc_stream: status=0 id=2", "grpc_initial id=2 n=3", "grpc_initial hdr_get: status=0 holding",
		"grpc_initial grpc_cancel: status=0", "grpc_initial grpc_cancel: status=1"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("cancel logs:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
