package server

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCloserRunsInDueOrderAndAllAtShutdown: closes queued out of order
// run in the order they fall due; shutdown runs the ones still waiting at
// once and returns when every close has returned.
func TestCloserRunsInDueOrderAndAllAtShutdown(t *testing.T) {
	c := newCloser()
	var mu sync.Mutex
	var ran []string
	ranCh := make(chan struct{}, 8)
	note := func(s string) func() {
		return func() {
			mu.Lock()
			ran = append(ran, s)
			mu.Unlock()
			ranCh <- struct{}{}
		}
	}
	c.after(30*time.Millisecond, note("b"))
	c.after(10*time.Millisecond, note("a"))
	c.after(time.Hour, note("late"))
	for range 2 {
		select {
		case <-ranCh:
		case <-time.After(10 * time.Second):
			t.Fatal("queued closes did not run")
		}
	}
	mu.Lock()
	if strings.Join(ran, ",") != "a,b" {
		t.Fatalf("ran %v, want a,b", ran)
	}
	mu.Unlock()
	if c.queued() != 1 {
		t.Fatalf("%d queued, want the late one", c.queued())
	}
	c.shutdown()
	mu.Lock()
	got := strings.Join(ran, ",")
	mu.Unlock()
	if got != "a,b,late" {
		t.Fatalf("after shutdown ran %v", got)
	}
	c.after(time.Hour, note("after shutdown")) // runs at once
	mu.Lock()
	defer mu.Unlock()
	if ran[len(ran)-1] != "after shutdown" {
		t.Fatalf("a close queued after shutdown did not run at once: %v", ran)
	}
}

// TestReloadBurstHoldsNoGoroutinePerReload: a burst of config reloads
// leaves the replaced snapshots' clusters to close after the drain time
// (a minute here) without a goroutine sleeping for each; at shutdown they
// all close and the goroutines are back where they were.
func TestReloadBurstHoldsNoGoroutinePerReload(t *testing.T) {
	up := startEcho(t, "up", nil)
	cfg := strings.Replace(baseConfig(`
[[routes]]
name = "r"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]
`), `drain_timeout = "5s"`, `drain_timeout = "1m"`, 1)
	ts := startServer(t, cfg)
	if code, _ := hello(t, ts, "/"); code != 200 {
		t.Fatalf("GET /: %d", code)
	}
	before := runtime.NumGoroutine()
	const reloads = 300
	for i := range reloads {
		// The cluster carries over (a changed one would hold its own
		// goroutines until its drain time ends); each replaced snapshot
		// still has its hold on it to drop.
		if err := ts.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	after := runtime.NumGoroutine()
	if after-before > reloads/10 {
		t.Fatalf("%d goroutines before the burst of %d reloads, %d after: one per reload", before, reloads, after)
	}
	if q := ts.closer.queued(); q < reloads {
		t.Fatalf("%d closes queued, want the %d replaced snapshots' clusters", q, reloads)
	}
	if code, _ := hello(t, ts, "/"); code != 200 {
		t.Fatalf("GET / after the burst: %d", code)
	}
}
