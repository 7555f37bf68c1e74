package wasmfilter

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

type recordedEvents struct {
	mu  sync.Mutex
	got []string
	end chan struct{}
}

func (r *recordedEvents) add(s string) {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
}
func (r *recordedEvents) InitialMetadata(md [][2]string)  { r.add("initial") }
func (r *recordedEvents) Message(msg []byte)              { r.add("message " + string(msg)) }
func (r *recordedEvents) TrailingMetadata(md [][2]string) { r.add("trailing") }
func (r *recordedEvents) Close(status int, msg string) {
	r.add("close " + msg)
	close(r.end)
}

// TestWasmGRPCStreamEndsWriter: when the upstream ends the call (here a
// trailers-only reply to a non-200 status) and the filter never
// half-closes, the request body writer still stops; later sends are
// dropped quietly.
func TestWasmGRPCStreamEndsWriter(t *testing.T) {
	c := &WasmHTTPCaller{Lookup: func(string) (ClusterCall, bool) {
		return func(_ context.Context, r *CallRequest) (CallResponse, error) {
			go io.Copy(io.Discard, r.BodyStream)
			h := new(stream.HeaderMap)
			h.Add(stream.Status, "503")
			h.Add("grpc-status", "14")
			h.Add("grpc-message", "gone")
			return fakeResponse{status: 503, headers: h}, nil
		}, true
	}}
	ev := &recordedEvents{end: make(chan struct{})}
	st, err := c.GRPCStream(context.Background(), hostabi.GRPCStreamRequest{Cluster: "c", Service: "s.S", Method: "M"}, ev)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ev.end:
	case <-time.After(5 * time.Second):
		t.Fatal("no close")
	}
	select {
	case <-st.(*wasmGRPCStream).writerDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the body writer outlived the call")
	}
	if err := st.Send([]byte("late"), false); err != nil {
		t.Errorf("send after the call ended: %v", err)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if want := "[initial trailing close gone]"; fmtList(ev.got) != want {
		t.Errorf("events %v, want %s", ev.got, want)
	}
}

func fmtList(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}
