package upstream

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
)

func TestDNSLocalhost(t *testing.T) {
	b := startHTTP(t, "a", nil, false)
	_, port, _ := net.SplitHostPort(b.addr)
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Endpoints: []string{"localhost:" + port}})
	c := m.Cluster("c")
	if got := mustGet(t, c, Pick{}); got != "a" {
		t.Fatalf("got %q", got)
	}
	st := c.Status()
	if len(st.Endpoints) != 1 || st.Endpoints[0].Address != "127.0.0.1:"+port || st.Endpoints[0].Hostname != "localhost" {
		t.Errorf("endpoints %+v", st.Endpoints)
	}
}

// fakeDNS answers from a table the test changes.
type fakeDNS struct {
	mu      sync.Mutex
	answers map[string][]string
	err     error
	lookups int
}

func (f *fakeDNS) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if f.err != nil {
		return nil, f.err
	}
	var out []netip.Addr
	for _, a := range f.answers[host] {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func (f *fakeDNS) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups
}

func (f *fakeDNS) set(host string, addrs []string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[host] = addrs
	f.err = err
}

// listenOn serves name on ip:port (port "0" for any).
func listenOn(t *testing.T, ip, port, name string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, port))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: idHandler(name)}}
	srv.Start()
	t.Cleanup(srv.Close)
	return l.Addr().String()
}

func TestDNSReResolution(t *testing.T) {
	a := listenOn(t, "127.0.0.1", "0", "a")
	_, port, _ := net.SplitHostPort(a)
	listenOn(t, "127.0.0.2", port, "b")
	dns := &fakeDNS{answers: map[string][]string{"svc.test": {"127.0.0.1"}}}
	opts := defaultOptions()
	opts.lookup = dns.lookup
	m, _ := newTestManager(t, opts, config.Cluster{Name: "c", DNS: "svc.test:" + port, DNSRefresh: config.Duration(20 * time.Millisecond)})
	c := m.Cluster("c")
	if got := mustGet(t, c, Pick{}); got != "a" {
		t.Fatalf("got %q", got)
	}
	// V4 preferred: the AAAA answer is ignored while an A answer exists.
	dns.set("svc.test", []string{"::1", "127.0.0.2"}, nil)
	eventually(t, 2*time.Second, "re-resolution", func() bool { return mustGet(t, c, Pick{}) == "b" })
	if eps := c.Status().Endpoints; len(eps) != 1 || eps[0].Address != "127.0.0.2:"+port {
		t.Errorf("endpoints %+v", eps)
	}
	// A failing lookup keeps the last answer.
	dns.set("svc.test", nil, errors.New("SERVFAIL"))
	n := dns.count()
	eventually(t, 2*time.Second, "failed lookups", func() bool { return dns.count() > n+2 })
	if got := mustGet(t, c, Pick{}); got != "b" {
		t.Errorf("after failed lookups: %q", got)
	}
	m.Close()
	n = dns.count()
	time.Sleep(60 * time.Millisecond)
	if dns.count() != n {
		t.Error("DNS refresh goes on after Close")
	}
}

func TestEndpointStateSurvivesRefresh(t *testing.T) {
	a := listenOn(t, "127.0.0.1", "0", "a")
	_, port, _ := net.SplitHostPort(a)
	dns := &fakeDNS{answers: map[string][]string{"svc.test": {"127.0.0.1"}}}
	opts := defaultOptions()
	opts.lookup = dns.lookup
	m, _ := newTestManager(t, opts, config.Cluster{Name: "c", DNS: "svc.test:" + port, DNSRefresh: config.Duration(10 * time.Millisecond)})
	c := m.Cluster("c")
	first := c.hosts.Load().hosts[0]
	dns.set("svc.test", []string{"127.0.0.1", "127.0.0.3"}, nil)
	eventually(t, 2*time.Second, "second endpoint", func() bool { return len(c.hosts.Load().hosts) == 2 })
	if c.hosts.Load().byAddr[a] != first {
		t.Error("unchanged endpoint was replaced; its health and outlier state are lost")
	}
}

func TestEndpointsFile(t *testing.T) {
	a := startHTTP(t, "a", nil, false)
	b := startHTTP(t, "b", nil, false)
	path := filepath.Join(t.TempDir(), "endpoints.txt")
	write := func(s string) {
		t.Helper()
		// Rename keeps the swap atomic, as a config tool would do it.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("# first\n" + a.addr + " version=v1\n")
	opts := defaultOptions()
	opts.filePoll = 10 * time.Millisecond
	m, _ := newTestManager(t, opts, config.Cluster{Name: "c", EndpointsFile: path})
	c := m.Cluster("c")
	if got := mustGet(t, c, Pick{}); got != "a" {
		t.Fatalf("got %q", got)
	}
	write(a.addr + " version=v1\n" + b.addr + " version=v2 weight=2  # canary\n")
	eventually(t, 2*time.Second, "file reload", func() bool { return len(c.Status().Endpoints) == 2 })
	if got := mustGet(t, c, Pick{Subset: map[string]string{"version": "v2"}}); got != "b" {
		t.Errorf("labels from file not applied: %q", got)
	}
	if w := c.Status().Endpoints[1].Weight; w != 2 {
		t.Errorf("weight from file = %d", w)
	}
	// A broken file keeps the last good endpoints.
	write("not an address\n")
	time.Sleep(50 * time.Millisecond)
	if n := len(c.Status().Endpoints); n != 2 {
		t.Errorf("bad file replaced endpoints: %d left", n)
	}
}

func TestEndpointsFileMissing(t *testing.T) {
	_, err := NewManager([]config.Cluster{{Name: "c", EndpointsFile: filepath.Join(t.TempDir(), "nope")}}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), `cluster "c": endpoints_file`) {
		t.Errorf("err = %v", err)
	}
}

func TestParseEndpointsFile(t *testing.T) {
	tests := []struct {
		in      string
		want    []source
		wantErr string
	}{
		{"", nil, ""},
		{"# only a comment\n\n", nil, ""},
		{"10.0.0.1:80\n", []source{{host: "10.0.0.1", port: "80"}}, ""},
		{"  svc.local:8080 weight=3 zone=a # note\n", []source{{host: "svc.local", port: "8080", weight: 3, labels: map[string]string{"zone": "a"}}}, ""},
		{"[::1]:80\n", []source{{host: "::1", port: "80"}}, ""},
		{"10.0.0.1\n", nil, "line 1"},
		{"10.0.0.1:80\n10.0.0.2:80 weight=x\n", nil, "line 2: weight"},
		{"10.0.0.1:80 zone\n", nil, "want key=value"},
	}
	for _, tt := range tests {
		got, err := parseEndpointsFile([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestBadClusterConfig(t *testing.T) {
	tests := []struct {
		c    config.Cluster
		want string
	}{
		{config.Cluster{Name: "x", Protocol: "spdy"}, `cluster "x": unknown protocol "spdy"`},
		{config.Cluster{Name: "x", LB: "maglev"}, `cluster "x": unknown lb "maglev"`},
		{config.Cluster{Name: "x", Endpoints: []string{"nohost"}}, `endpoints "nohost": want host:port`},
		{config.Cluster{Name: "x", Protocol: "h2", TLS: &config.UpstreamTLS{CA: "/does/not/exist"}}, "tls.ca: trust bundle: stat /does/not/exist"},
		{config.Cluster{Name: "x", Protocol: "h2", TLS: &config.UpstreamTLS{Identity: "spiffe://a/b"}}, "tls.identity needs tls.ca"},
	}
	for _, tt := range tests {
		_, err := NewManager([]config.Cluster{tt.c}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err %v, want %q", tt.c, err, tt.want)
		}
	}
}

func TestDNSSRV(t *testing.T) {
	a := startHTTP(t, "a", nil, false)
	b := startHTTP(t, "b", nil, false)
	port := func(addr string) uint16 {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return uint16(n)
	}
	var mu sync.Mutex
	srvs := []*net.SRV{
		{Target: "a.test.", Port: port(a.addr), Priority: 10, Weight: 1},
		{Target: "b.test.", Port: port(b.addr), Priority: 10, Weight: 3},
		{Target: "backup.test.", Port: 1, Priority: 20, Weight: 1},
	}
	dns := &fakeDNS{answers: map[string][]string{"a.test": {"127.0.0.1"}, "b.test": {"127.0.0.1"}, "backup.test": {"127.0.0.9"}}}
	opts := defaultOptions()
	opts.lookup = dns.lookup
	opts.lookupSRV = func(ctx context.Context, name string) ([]*net.SRV, error) {
		mu.Lock()
		defer mu.Unlock()
		if name != "_http._tcp.svc.test" {
			return nil, errors.New("NXDOMAIN")
		}
		return srvs, nil
	}
	m, _ := newTestManager(t, opts, config.Cluster{Name: "c", DNS: "_http._tcp.svc.test.", DNSRefresh: config.Duration(10 * time.Millisecond)})
	c := m.Cluster("c")
	eps := c.Status().Endpoints
	if len(eps) != 2 || eps[0].Address != a.addr || eps[0].Weight != 1 || eps[1].Address != b.addr || eps[1].Weight != 3 || eps[1].Hostname != "b.test" {
		t.Fatalf("SRV endpoints %+v", eps)
	}
	got := map[string]int{}
	for i := 0; i < 8; i++ {
		got[mustGet(t, c, Pick{})]++
	}
	if got["a"] != 2 || got["b"] != 6 {
		t.Errorf("SRV weights not honoured: %v", got)
	}
	// The primary group gone: the backup priority takes over.
	mu.Lock()
	srvs = srvs[2:]
	mu.Unlock()
	eventually(t, 2*time.Second, "SRV refresh", func() bool {
		eps := c.Status().Endpoints
		return len(eps) == 1 && eps[0].Address == "127.0.0.9:1"
	})
}

// TestDNSAnswerOrderIgnored: a server rotating the order of its answers
// does not rebuild the host set (and its balancer state) every refresh.
func TestDNSAnswerOrderIgnored(t *testing.T) {
	dns := &fakeDNS{answers: map[string][]string{"svc.test": {"127.0.0.1", "127.0.0.2", "127.0.0.3"}}}
	opts := defaultOptions()
	opts.lookup = dns.lookup
	m, _ := newTestManager(t, opts, config.Cluster{Name: "c", DNS: "svc.test:80", DNSRefresh: config.Duration(5 * time.Millisecond)})
	c := m.Cluster("c")
	first := c.hosts.Load()
	dns.set("svc.test", []string{"127.0.0.3", "127.0.0.1", "127.0.0.2", "127.0.0.1"}, nil)
	n := dns.count()
	eventually(t, 2*time.Second, "refreshes", func() bool { return dns.count() > n+3 })
	if c.hosts.Load() != first {
		t.Error("host set rebuilt for a reordered answer")
	}
}
