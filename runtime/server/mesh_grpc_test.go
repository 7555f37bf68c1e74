package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// TestMeshGRPC: a gRPC client -> A's outbound (h2c) -> HTTP/2 over mTLS ->
// B's inbound -> a gRPC app (h2c, as B's sidecar.app_protocol = "grpc"
// says), unary, bidi streaming, status codes, and an authorization denial
// as PERMISSION_DENIED.
func TestMeshGRPC(t *testing.T) {
	pki := newMeshPKI(t, "example.org")
	app := startGRPC(t)
	bCert, bKey := pki.issue("payments", idPayments, time.Time{}, time.Hour)
	aCert, aKey := pki.issue("orders", idOrders, time.Time{}, time.Hour)
	b := startServer(t, sidecarConfig(bCert, bKey, pki.bundle(), app, "strict", `app_protocol = "grpc"

[[authorization]]
action = "DENY"
to = { paths = ["/grpc.testing.TestService/EmptyCall"] }
`))
	a := startServer(t, sidecarConfig(aCert, aKey, pki.bundle(), "127.0.0.1:1", "strict", fmt.Sprintf(`
[[services]]
name = "grpc"
endpoints = [%q]
identity = %q
timeout = "30s"
`, b.ListenerAddr("inbound"), idPayments)))

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
	waitLog(t, b, func(f map[string]any) bool { return f["listener"] == "inbound" && f["protocol"] == "HTTP/2" })
}

// TestSidecarAppProtocol: the inbound side reaches the app over HTTP/1.1
// by default and over h2c with app_protocol = "h2c", whatever protocol
// the peer used.
func TestSidecarAppProtocol(t *testing.T) {
	for _, tc := range []struct{ setting, want string }{
		{"", "HTTP/1.1"},
		{`app_protocol = "h2c"`, "HTTP/2.0"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			pki := newMeshPKI(t, "example.org")
			// An app that speaks both, and says which one it heard.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			app := &http.Server{Protocols: new(http.Protocols), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(echoReply{Name: "app", Proto: r.Proto})
			})}
			app.Protocols.SetHTTP1(true)
			app.Protocols.SetUnencryptedHTTP2(true)
			go app.Serve(ln)
			t.Cleanup(func() { app.Close() })
			cert, key := pki.issue("payments", idPayments, time.Time{}, time.Hour)
			b := startServer(t, sidecarConfig(cert, key, pki.bundle(), ln.Addr().String(), "permissive", tc.setting))
			_, e := get(t, &http.Client{Timeout: 10 * time.Second}, "http://"+b.ListenerAddr("inbound")+"/x", nil)
			if e.Name != "app" || e.Proto != tc.want {
				t.Fatalf("app saw %q (%+v), want %s", e.Proto, e, tc.want)
			}
		})
	}
}
