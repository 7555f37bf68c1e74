package upstream

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// TestHostsFollowDiscovery: Hosts (what TCP listeners dial) follows the
// same discovery as HTTP requests: SRV and A records as they change, an
// endpoints file as it is rewritten, and ejected endpoints left out until
// none is left.
func TestHostsFollowDiscovery(t *testing.T) {
	var mu sync.Mutex
	srvs := []*net.SRV{{Target: "a.test.", Port: 5432, Priority: 1, Weight: 1}}
	dns := &fakeDNS{answers: map[string][]string{"a.test": {"127.0.0.1"}, "b.test": {"127.0.0.2", "127.0.0.3"}}}
	opts := defaultOptions()
	opts.lookup = dns.lookup
	opts.lookupSRV = func(ctx context.Context, name string) ([]*net.SRV, error) {
		mu.Lock()
		defer mu.Unlock()
		return srvs, nil
	}
	opts.filePoll = 10 * time.Millisecond
	file := filepath.Join(t.TempDir(), "endpoints")
	if err := os.WriteFile(file, []byte("127.0.0.7:9000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _ := newTestManager(t, opts,
		config.Cluster{Name: "srv", DNS: "_pg._tcp.db.test", DNSRefresh: config.Duration(10 * time.Millisecond)},
		config.Cluster{Name: "file", EndpointsFile: file},
	)
	srv, fc := m.Cluster("srv"), m.Cluster("file")
	if got, want := srv.Hosts(), []Host{{"127.0.0.1:5432", "a.test"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("SRV hosts %v, want %v", got, want)
	}
	mu.Lock()
	srvs = []*net.SRV{{Target: "b.test.", Port: 6543, Priority: 1, Weight: 1}}
	mu.Unlock()
	want := []Host{{"127.0.0.2:6543", "b.test"}, {"127.0.0.3:6543", "b.test"}}
	eventually(t, 2*time.Second, "SRV refresh", func() bool { return reflect.DeepEqual(srv.Hosts(), want) })

	// An ejected endpoint is skipped while another is available.
	srv.hosts.Load().byAddr["127.0.0.2:6543"].ejected.Store(true)
	if got := srv.Hosts(); !reflect.DeepEqual(got, want[1:]) {
		t.Errorf("with one ejected: %v", got)
	}
	srv.hosts.Load().byAddr["127.0.0.3:6543"].ejected.Store(true)
	if got := srv.Hosts(); !reflect.DeepEqual(got, want) {
		t.Errorf("with all ejected (panic mode): %v", got)
	}

	if got := fc.Hosts(); !reflect.DeepEqual(got, []Host{{"127.0.0.7:9000", ""}}) {
		t.Fatalf("file hosts %v", got)
	}
	if err := os.WriteFile(file, []byte("# moved\n127.0.0.8:9000\n127.0.0.9:9000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "file change", func() bool {
		return reflect.DeepEqual(fc.Hosts(), []Host{{"127.0.0.8:9000", ""}, {"127.0.0.9:9000", ""}})
	})
}
