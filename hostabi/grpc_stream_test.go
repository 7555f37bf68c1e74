package hostabi

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeGRPC is a GRPCStreamer whose streams the test drives by hand, so the
// callback order and token life cycle are checked exactly. The end-to-end
// test over a real HTTP/2 gRPC server is runtime/filter's
// TestWasmGRPCStreamEndToEnd.
type fakeGRPC struct {
	mu       sync.Mutex
	clusters map[string]chan *fakeGRPCStream
}

type fakeGRPCSend struct {
	msg string
	eos bool
}

type fakeGRPCStream struct {
	req    GRPCStreamRequest
	ev     GRPCStreamEvents
	sent   chan fakeGRPCSend
	closed chan struct{}
	reset  chan struct{}
	once   [2]sync.Once
}

func (f *fakeGRPC) addCluster(t *testing.T, name string) chan *fakeGRPCStream {
	ch := make(chan *fakeGRPCStream, 4)
	f.mu.Lock()
	f.clusters[name] = ch
	f.mu.Unlock()
	t.Cleanup(func() {
		f.mu.Lock()
		delete(f.clusters, name)
		f.mu.Unlock()
	})
	return ch
}

func (f *fakeGRPC) GRPCStream(_ context.Context, req GRPCStreamRequest, ev GRPCStreamEvents) (GRPCStream, error) {
	f.mu.Lock()
	ch, ok := f.clusters[req.Cluster]
	f.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("cluster %q: %w", req.Cluster, ErrUnknownCluster)
	}
	s := &fakeGRPCStream{req: req, ev: ev, sent: make(chan fakeGRPCSend, 16), closed: make(chan struct{}), reset: make(chan struct{})}
	ch <- s
	return s, nil
}

func (s *fakeGRPCStream) Send(msg []byte, eos bool) error {
	s.sent <- fakeGRPCSend{string(msg), eos}
	return nil
}
func (s *fakeGRPCStream) CloseSend() { s.once[0].Do(func() { close(s.closed) }) }
func (s *fakeGRPCStream) Reset()     { s.once[1].Do(func() { close(s.reset) }) }

func opened(t *testing.T, ch chan *fakeGRPCStream) *fakeGRPCStream {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no stream opened")
	}
	return nil
}

func wantSent(t *testing.T, s *fakeGRPCStream, want fakeGRPCSend) {
	t.Helper()
	select {
	case got := <-s.sent:
		if got != want {
			t.Errorf("sent %+v, want %+v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("nothing sent, want %+v", want)
	}
}

func wantClosed(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("stream not %s", what)
	}
}

// callouts counts the plugin's callouts still held by its instances.
func callouts(p *Plugin) int {
	p.vm.mu.Lock()
	insts := append([]*instance(nil), p.vm.insts...)
	p.vm.mu.Unlock()
	n := 0
	for _, in := range insts {
		in.mu.Lock()
		n += len(in.callouts)
		in.mu.Unlock()
	}
	return n
}

// TestGRPCStreamCallbacks: a stream opened from a stream context reports
// to the root context in Envoy's order, with metadata maps, the message
// buffer and the status; tokens are even, a call's (odd) token is refused
// by grpc_send, an unknown one is NotFound; once both sides closed the
// token is gone.
func TestGRPCStreamCallbacks(t *testing.T) {
	ch := testGRPC.addCluster(t, "gs-"+t.Name())
	seen := len(logsOf(t.Name())) // earlier runs (-count) log under the same name
	p, _, _ := runHeaders(t, fmt.Sprintf("request_headers: grpc_stream gs-%s pkg.Svc Chat x-md=1,x-b=2 | grpc_send 2 hello 0 | grpc_send 1 x 0 | grpc_send 88 x 0 | grpc_stream nowhere pkg.Svc Chat | grpc_stream gs-%s \\e Chat\n"+
		"grpc_initial: hdr_get 4 x-init | hdr_pairs 4\n"+
		"grpc_receive: buf_get 5 0 100 | grpc_send 2 reply 0\n"+
		"grpc_trailing: hdr_get 5 grpc-status | hdr_pairs 5\n"+
		"grpc_close: status | grpc_close 2 | grpc_send 2 late 0\n", t.Name(), t.Name()), newTestStream())
	wantLogs(t, p.Name(), "request_headers grpc_stream: status=0 id=2", "request_headers grpc_send: status=0",
		"request_headers grpc_send: status=2", "request_headers grpc_send: status=1",
		"request_headers grpc_stream: status=4 id=0", "request_headers grpc_stream: status=2 id=0")
	s := opened(t, ch)
	if s.req.Service != "pkg.Svc" || s.req.Method != "Chat" || fmt.Sprint(s.req.Metadata) != "[[x-md 1] [x-b 2]]" {
		t.Errorf("request %+v", s.req)
	}
	wantSent(t, s, fakeGRPCSend{"hello", false})

	s.ev.InitialMetadata([][2]string{{":status", "200"}, {"x-init", "a"}})
	s.ev.Message([]byte("m1"))
	wantSent(t, s, fakeGRPCSend{"reply", false})
	s.ev.Message([]byte("m2"))
	wantSent(t, s, fakeGRPCSend{"reply", false})
	s.ev.TrailingMetadata([][2]string{{"grpc-status", "3"}, {"grpc-message", "bad"}})
	s.ev.Close(3, "bad")
	s.ev.Message([]byte("after close")) // dropped: the stream is over
	wantClosed(t, s.closed, "half-closed by grpc_close")

	want := []string{
		"grpc_initial id=2 n=2", "grpc_initial hdr_get: status=0 a", "grpc_initial hdr_pairs: status=0 :status=200,x-init=a",
		"grpc_receive id=2 size=2", "grpc_receive buf_get: status=0 m1", "grpc_receive grpc_send: status=0",
		"grpc_receive id=2 size=2", "grpc_receive buf_get: status=0 m2", "grpc_receive grpc_send: status=0",
		"grpc_trailing id=2 n=2", "grpc_trailing hdr_get: status=0 3", "grpc_trailing hdr_pairs: status=0 grpc-status=3,grpc-message=bad",
		"grpc_close id=2 code=3", "grpc_close status: status=0 code=3 bad", "grpc_close grpc_close: status=0",
		"grpc_close grpc_send: status=1",
	}
	var got []string
	for _, l := range logsOf(p.Name())[seen:] {
		if len(l) > 5 && l[:5] == "grpc_" {
			got = append(got, l)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("callbacks:\n%q\nwant\n%q", got, want)
	}
	if n := callouts(p); n != 0 {
		t.Errorf("%d callouts left after both sides closed", n)
	}
}

// TestGRPCStreamHalfClose: proxy_grpc_close closes only the local side;
// the upstream's messages and close still arrive, and then the token is
// forgotten. A message with end_of_stream half-closes too, and nothing may
// be sent after it.
func TestGRPCStreamHalfClose(t *testing.T) {
	ch := testGRPC.addCluster(t, "gs-"+t.Name())
	p, _, _ := runHeaders(t, fmt.Sprintf("request_headers: grpc_stream gs-%s a.B C | grpc_close 2 | grpc_send 2 after 0 | grpc_stream gs-%[1]s a.B C | grpc_send 4 last 1 | grpc_send 4 more 0\n"+
		"grpc_receive: buf_get 5 0 100\n", t.Name()), newTestStream())
	wantLogs(t, p.Name(), "request_headers grpc_close: status=0", "request_headers grpc_send: status=2",
		"request_headers grpc_stream: status=0 id=4", "request_headers grpc_send: status=0")
	s, s2 := opened(t, ch), opened(t, ch)
	wantClosed(t, s.closed, "half-closed")
	s.ev.Message([]byte("still"))
	wantLogs(t, p.Name(), "grpc_receive id=2 size=5", "grpc_receive buf_get: status=0 still")
	if n := callouts(p); n != 2 {
		t.Errorf("callouts = %d before the remote side closed, want 2", n)
	}
	s.ev.Close(0, "")
	wantLogs(t, p.Name(), "grpc_close id=2 code=0")
	if n := callouts(p); n != 1 {
		t.Errorf("callouts = %d after both sides of stream 2 closed, want 1", n)
	}
	wantSent(t, s2, fakeGRPCSend{"last", true})
	select {
	case m := <-s2.sent:
		t.Errorf("sent after end_of_stream: %+v", m)
	default:
	}
	// Remote close without a local close keeps the token until the
	// filter closes it (Envoy keeps the stream until both sides closed).
	s2.ev.Close(0, "ok")
	if n := callouts(p); n != 1 {
		t.Errorf("callouts = %d after a remote-only close, want 1", n)
	}
}

// TestGRPCStreamCancel: proxy_grpc_cancel resets the stream and no callback
// follows.
func TestGRPCStreamCancel(t *testing.T) {
	ch := testGRPC.addCluster(t, "gs-"+t.Name())
	p, _, _ := runHeaders(t, fmt.Sprintf("request_headers: grpc_stream gs-%s a.B C | grpc_cancel 2 | grpc_cancel 2 | grpc_close 2", t.Name()), newTestStream())
	wantLogs(t, p.Name(), "request_headers grpc_cancel: status=0", "request_headers grpc_cancel: status=1",
		"request_headers grpc_close: status=1")
	s := opened(t, ch)
	wantClosed(t, s.reset, "reset")
	s.ev.InitialMetadata(nil)
	s.ev.Message([]byte("x"))
	s.ev.Close(1, "cancelled")
	for _, l := range logsOf(p.Name()) {
		if len(l) > 5 && l[:5] == "grpc_" {
			t.Errorf("callback after cancel: %q", l)
		}
	}
	if n := callouts(p); n != 0 {
		t.Errorf("%d callouts left after cancel", n)
	}
}

// TestGRPCStreamResetWithPlugin: closing the plugin resets its open streams.
func TestGRPCStreamResetWithPlugin(t *testing.T) {
	ch := testGRPC.addCluster(t, "gs-"+t.Name())
	p, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name(), Wasm: testGuests["rawabi"],
		PluginConfig: []byte(fmt.Sprintf("configure: grpc_stream gs-%s a.B C", t.Name()))})
	if err != nil {
		t.Fatal(err)
	}
	s := opened(t, ch)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, s.reset, "reset when the plugin closed")
}
