package proxy

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/stream"
	"github.com/sluice-proxy/sluice/runtime/upstream"
)

func TestShadowHost(t *testing.T) {
	for in, want := range map[string]string{
		"orders":              "orders-shadow",
		"orders.example:8080": "orders.example-shadow:8080",
		"10.0.0.1:80":         "10.0.0.1-shadow:80",
		"":                    "-shadow",
	} {
		if got := shadowHost(in); got != want {
			t.Errorf("shadowHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMirrorsHammer: copies sent from many goroutines at once, with Close
// racing the last of them, never exceed the in-flight bound; every copy
// is accounted for exactly once (sent, failed or dropped); Close leaves
// nothing running.
func TestMirrorsHammer(t *testing.T) {
	const limit, senders, perSender = 4, 16, 25
	var cur, peak atomic.Int64
	shadow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		defer cur.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		w.Write([]byte("ignored"))
	}))
	defer shadow.Close()
	reg := stats.NewRegistry()
	up, err := upstream.NewManager([]config.Cluster{{Name: "shadow", Endpoints: []string{shadow.Listener.Addr().String()}}}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	m := NewMirrors(limit, reg, nil)
	p := newMirrorPolicy(reg, config.Route{Name: "r", Mirror: "shadow"})
	hammer := func(closeAt int) {
		var wg sync.WaitGroup
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perSender {
					h := new(stream.HeaderMap)
					h.Add(stream.Method, "POST")
					h.Add(stream.Path, "/")
					h.Add(stream.Authority, "h")
					pm := &pendingMirror{m: m, p: p, cl: up.Cluster("shadow"), headers: h, timeout: 5 * time.Second}
					if s == 0 && i == closeAt {
						m.Close() // racing the other senders
					}
					pm.send([]byte("body"))
					pm.drop() // after send: no effect
				}
			}()
		}
		wg.Wait()
	}
	hammer(-1)
	deadline := time.Now().Add(5 * time.Second)
	for m.inFlight.Value() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if p.sent.Value() == 0 {
		t.Error("no copy was sent")
	}
	hammer(perSender / 2)
	m.Close()
	total := p.sent.Value() + p.failed.Value() + p.droppedBusy.Value() + p.droppedBody.Value()
	if total != 2*senders*perSender || p.droppedBody.Value() != 0 {
		t.Fatalf("accounted %d copies (sent %d failed %d busy %d body %d), want %d", total,
			p.sent.Value(), p.failed.Value(), p.droppedBusy.Value(), p.droppedBody.Value(), 2*senders*perSender)
	}
	if peak.Load() > limit {
		t.Errorf("%d copies in flight at once, limit %d", peak.Load(), limit)
	}
	if n := m.inFlight.Value(); n != 0 {
		t.Errorf("in-flight gauge %d after Close", n)
	}
}
