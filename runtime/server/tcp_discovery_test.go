package server

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// greeting connects to addr and returns the app's name line.
func greeting(t testing.TB, addr string) (string, net.Conn) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return readN(t, c, 2), c
}

// TestTCPClusterDiscovery: a tcp listener's cluster takes the discovery of
// HTTP clusters. An endpoints_file rewritten under the running listener
// moves new connections to the new endpoint while an open connection
// stays where it was; a dns = "localhost:PORT" cluster resolves through
// the system resolver.
func TestTCPClusterDiscovery(t *testing.T) {
	a, b := startTCPApp(t, "a\n"), startTCPApp(t, "b\n")
	file := filepath.Join(t.TempDir(), "db.endpoints")
	if err := os.WriteFile(file, []byte(a+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, bPort, _ := net.SplitHostPort(b)
	ts := startServer(t, fmt.Sprintf(`
[admin]
address = "127.0.0.1:0"
[server]
watch_config = false
drain_timeout = "5s"

[[listeners]]
name = "db"
address = "127.0.0.1:0"
protocols = ["tcp"]
cluster = "db"

[[listeners]]
name = "by-name"
address = "127.0.0.1:0"
protocols = ["tcp"]
cluster = "by-name"

[[clusters]]
name = "db"
endpoints_file = %q

[[clusters]]
name = "by-name"
dns = "localhost:%s"
`, file, bPort))

	got, open := greeting(t, ts.ListenerAddr("db"))
	if got != "a\n" {
		t.Fatalf("first connection reached %q, want a", got)
	}
	if err := os.WriteFile(file, []byte("# moved\n"+b+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, c := greeting(t, ts.ListenerAddr("db"))
		c.Close()
		if got == "b\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new connections still reach a after the endpoints file changed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The connection opened before the change still talks to a.
	if _, err := open.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, open, 4); got != "ping" {
		t.Fatalf("old connection echoed %q", got)
	}

	if got, _ := greeting(t, ts.ListenerAddr("by-name")); got != "b\n" {
		t.Fatalf("dns cluster reached %q, want b", got)
	}
}
