package upstream

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// gate is a handler that holds every request until released.
type gate struct {
	arrived chan struct{}
	release chan struct{}
}

func newGate() *gate { return &gate{arrived: make(chan struct{}, 100), release: make(chan struct{})} }

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.arrived <- struct{}{}
	select {
	case <-g.release:
	case <-r.Context().Done():
	}
	io.WriteString(w, "done")
}

// startTry runs one Send in the background and reports its result.
func startTry(c *Cluster, ctx context.Context) <-chan error {
	ch := make(chan error, 1)
	go func() {
		ch <- sendOnce(ctx, c, &Request{Headers: headers("GET", "/", "x")}, make([]byte, 512))
	}()
	return ch
}

func TestCircuitBreaker(t *testing.T) {
	tests := []struct {
		name     string
		protocol string
		limits   config.Limits
		// held requests occupy the upstream; the next one must overflow
		held    int
		pending int // requests that wait rather than overflow
		metric  string
	}{
		{"max_requests http1", "http1", config.Limits{MaxRequests: 2}, 2, 0, "sluice_upstream_rq_overflow_total"},
		{"max_requests h2c", "h2c", config.Limits{MaxRequests: 3}, 3, 0, "sluice_upstream_rq_overflow_total"},
		{"max_pending http1", "http1", config.Limits{MaxConnections: 1, MaxPendingRequests: 2}, 1, 2, "sluice_upstream_rq_pending_overflow_total"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate()
			b := startHTTP(t, "a", g, tt.protocol == "h2c")
			m, reg := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: tt.protocol, Endpoints: []string{b.addr}, Limits: tt.limits})
			c := m.Cluster("c")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var results []<-chan error
			for i := 0; i < tt.held; i++ {
				results = append(results, startTry(c, ctx))
				<-g.arrived
			}
			for i := 0; i < tt.pending; i++ {
				results = append(results, startTry(c, ctx))
			}
			eventually(t, 2*time.Second, "pending requests", func() bool { return c.pending.Load() == int64(tt.pending) })
			_, err := get(t, c, Pick{})
			if Classify(err) != Overflow {
				t.Fatalf("try over the limit: err %v, want overflow", err)
			}
			if !strings.Contains(metricText(t, reg), tt.metric+`{cluster="c"} 1`) {
				t.Errorf("%s not counted:\n%s", tt.metric, metricText(t, reg))
			}
			close(g.release)
			for i, r := range results {
				if err := <-r; err != nil {
					t.Errorf("request %d: %v", i, err)
				}
			}
			if st := c.Status(); st.ActiveRequests != 0 || st.PendingRequests != 0 {
				t.Errorf("after release: %+v", st)
			}
			if tt.limits.MaxConnections > 0 && c.limiter.active.Load() > int64(tt.limits.MaxConnections) {
				t.Errorf("%d connections open, limit %d", c.limiter.active.Load(), tt.limits.MaxConnections)
			}
		})
	}
}

func TestPendingRequestHonoursContext(t *testing.T) {
	g := newGate()
	b := startHTTP(t, "a", g, false)
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Endpoints: []string{b.addr}, Limits: config.Limits{MaxConnections: 1}})
	c := m.Cluster("c")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	held := startTry(c, ctx)
	<-g.arrived
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	_, err := c.Send(short, &Request{Headers: headers("GET", "/", "x")}, Pick{})
	if Classify(err) != Timeout {
		t.Errorf("pending try past its deadline: %v, want timeout", err)
	}
	close(g.release)
	if err := <-held; err != nil {
		t.Error(err)
	}
}

func TestRetryBudget(t *testing.T) {
	m, reg := newTestManager(t, nil, config.Cluster{Name: "c", Endpoints: []string{"127.0.0.1:1"}, Limits: config.Limits{MaxRetries: 2}})
	c := m.Cluster("c")
	if !c.TryAcquireRetry() || !c.TryAcquireRetry() {
		t.Fatal("retries under the limit refused")
	}
	if c.TryAcquireRetry() {
		t.Fatal("third concurrent retry allowed with max_retries 2")
	}
	c.ReleaseRetry()
	if !c.TryAcquireRetry() {
		t.Fatal("released retry token not reusable")
	}
	if !strings.Contains(metricText(t, reg), `sluice_upstream_rq_retry_overflow_total{cluster="c"} 1`) {
		t.Error("retry overflow not counted")
	}
}

// TestMaxRequestsPerConnection counts the connections the upstream sees.
func TestMaxRequestsPerConnection(t *testing.T) {
	tests := []struct {
		protocol                     string
		perConn, requests, wantConns int
	}{
		{"http1", 0, 6, 1},
		{"http1", 1, 4, 4},
		{"http1", 2, 6, 3},
		{"http1", 3, 7, 3},
		{"h2c", 0, 6, 1},
		{"h2c", 1, 3, 3},
		{"h2c", 2, 6, 3},
	}
	for _, tt := range tests {
		var mu sync.Mutex
		conns := map[string]bool{}
		b := startHTTP(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			conns[r.RemoteAddr] = true
			mu.Unlock()
			io.WriteString(w, "ok")
		}), tt.protocol == "h2c")
		m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: tt.protocol, Endpoints: addrs(b),
			Limits: config.Limits{MaxRequestsPerConnection: tt.perConn}})
		for i := 0; i < tt.requests; i++ {
			mustGet(t, m.Cluster("c"), Pick{})
		}
		mu.Lock()
		got := len(conns)
		mu.Unlock()
		if got != tt.wantConns {
			t.Errorf("%s max_requests_per_connection %d, %d requests: %d connections, want %d", tt.protocol, tt.perConn, tt.requests, got, tt.wantConns)
		}
		if tt.perConn > 0 {
			c := m.Cluster("c")
			eventually(t, 2*time.Second, "retired connections to close", func() bool { return c.limiter.active.Load() <= 1 })
		}
		m.Close()
	}
}

func TestConnectionCountReturnsToZero(t *testing.T) {
	b := startHTTP(t, "a", nil, false)
	m, reg := newTestManager(t, nil, config.Cluster{Name: "c", Endpoints: []string{b.addr}, Limits: config.Limits{IdleTimeout: config.Duration(300 * time.Millisecond)}}) // outlasts the first metric read on a busy machine
	c := m.Cluster("c")
	mustGet(t, c, Pick{})
	if !strings.Contains(metricText(t, reg), `sluice_upstream_cx_active{cluster="c"} 1`) {
		t.Errorf("cx_active not 1 after a request:\n%s", metricText(t, reg))
	}
	eventually(t, 2*time.Second, "idle connection to close", func() bool { return c.limiter.active.Load() == 0 })
	text := metricText(t, reg)
	for _, want := range []string{`sluice_upstream_cx_active{cluster="c"} 0`, `sluice_upstream_rq_active{cluster="c"} 0`, `sluice_upstream_rq_total{cluster="c",code_class="2xx"} 1`} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s in\n%s", want, text)
		}
	}
}

// TestH2PendingWhileConnecting: requests waiting for an h2 connection to
// come up are pending; past max_pending_requests they overflow at once.
func TestH2PendingWhileConnecting(t *testing.T) {
	// Accepts TCP and never answers the TLS handshake.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	m, reg := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2", Endpoints: []string{l.Addr().String()},
		TLS: &config.UpstreamTLS{InsecureSkipVerify: true}, ConnectTimeout: config.Duration(2 * time.Second), // spans the checks below on a busy machine
		Limits: config.Limits{MaxPendingRequests: 2}})
	c := m.Cluster("c")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, b := startTry(c, ctx), startTry(c, ctx)
	eventually(t, 2*time.Second, "two pending", func() bool { return c.Status().PendingRequests == 2 })
	if _, err := get(t, c, Pick{}); Classify(err) != Overflow {
		t.Errorf("third request: %v, want overflow", err)
	}
	for _, ch := range []<-chan error{a, b} {
		if err := <-ch; Classify(err) != ConnectFailure {
			t.Errorf("pending request: %v, want connect_failure", err)
		}
	}
	if c.Status().PendingRequests != 0 {
		t.Error("pending not released")
	}
	if !strings.Contains(metricText(t, reg), `sluice_upstream_rq_pending_overflow_total{cluster="c"} 1`) {
		t.Error("pending overflow not counted")
	}
}
