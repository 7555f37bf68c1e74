package upstream

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// TestH2OpensConnectionsPastStreamLimit: a peer that allows one stream at
// a time gets one connection per concurrent request; a peer that allows
// many gets one connection for all.
func TestH2OpensConnectionsPastStreamLimit(t *testing.T) {
	tests := []struct {
		maxStreams uint32
		concurrent int
		wantConns  int
	}{
		{1, 3, 3},
		{100, 3, 1},
	}
	for _, tt := range tests {
		g := newGate()
		var mu sync.Mutex
		conns := map[string]bool{}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			conns[r.RemoteAddr] = true
			mu.Unlock()
			if r.URL.Path == "/warm" {
				return
			}
			g.ServeHTTP(w, r)
		})
		srv := httptest.NewServer(h2c.NewHandler(h, &http2.Server{MaxConcurrentStreams: tt.maxStreams}))
		m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []string{srv.Listener.Addr().String()}})
		c := m.Cluster("c")
		// One request first, so the peer's SETTINGS are known.
		resp, err := send(t, c, &Request{Headers: headers("GET", "/warm", "x")})
		if err != nil {
			t.Fatal(err)
		}
		resp.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var results []<-chan error
		for i := 0; i < tt.concurrent; i++ {
			results = append(results, startTry(c, ctx))
			<-g.arrived
		}
		close(g.release)
		for _, r := range results {
			if err := <-r; err != nil {
				t.Error(err)
			}
		}
		cancel()
		mu.Lock()
		got := len(conns)
		mu.Unlock()
		if got != tt.wantConns {
			t.Errorf("MAX_CONCURRENT_STREAMS %d, %d concurrent requests: %d connections, want %d", tt.maxStreams, tt.concurrent, got, tt.wantConns)
		}
		m.Close()
		srv.Close()
	}
}

// TestH2PeerHangsUpAtOnce: a peer that accepts and closes every
// connection fails the request promptly instead of being redialed
// forever. Which failure depends on where the hang-up is seen: at the
// preface or after a stream was given the connection.
func TestH2PeerHangsUpAtOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []string{l.Addr().String()}})
	// The deadline only bounds a broken pool; a working one fails fast.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = m.Cluster("c").Send(ctx, &Request{Headers: headers("GET", "/", "x")}, Pick{})
	if f := Classify(err); f != ConnectFailure && f != Reset {
		t.Errorf("err %v classified %v, want connect_failure or reset", err, f)
	}
	if n := accepted.Load(); n > 10 {
		t.Errorf("%d connections dialed", n)
	}
}
