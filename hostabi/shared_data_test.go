package hostabi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestSharedDataHostcalls(t *testing.T) {
	k := "k-" + t.Name()
	p, _, _ := runHeaders(t, fmt.Sprintf("request_headers: shared_get %[1]s | shared_set %[1]s v1 0 | shared_get %[1]s | shared_set %[1]s v2 12345", k), newTestStream())
	logs := logsOf(p.Name())
	wantLogs(t, p.Name(), "request_headers shared_get: status=1  cas=0", "request_headers shared_set: status=0",
		"request_headers shared_set: status=8")
	found := false
	for _, l := range logs {
		if strings.HasPrefix(l, "request_headers shared_get: status=0 v1 cas=") {
			found = true
		}
	}
	if !found {
		t.Errorf("no successful get in %q", logs)
	}
}

// TestSharedDataIsPerVMID: as in Envoy, shared data lives in its vm_id's
// space. A plugin of another vm_id (or of none) neither reads nor
// overwrites what one wrote; another plugin of the same vm_id reads it.
// Before the spaces, any filter could rewrite the built-ins' counters or
// the keys jwt fetched.
func TestSharedDataIsPerVMID(t *testing.T) {
	key := "k-" + t.Name()
	run := func(name, vmID, script string) string {
		t.Helper()
		p := load(t, "rawabi", PluginConfig{Name: t.Name() + "/" + name, VMID: vmID, PluginConfig: []byte(script)})
		hs, err := p.NewHTTPStream(context.Background(), newTestStream())
		if err != nil {
			t.Fatal(err)
		}
		defer hs.OnDone()
		if _, err := hs.OnRequestHeaders(false); err != nil {
			t.Fatal(err)
		}
		return strings.Join(logsOf(p.Name()), "; ")
	}
	vmA, vmB := "a-"+t.Name(), "b-"+t.Name()
	if got := run("writer", vmA, "request_headers: shared_set "+key+" secret 0"); !strings.Contains(got, "shared_set: status=0") {
		t.Fatalf("the write: %s", got)
	}
	for _, other := range []struct{ name, vmID string }{{"other-vm", vmB}, {"no-vm", ""}} {
		got := run(other.name, other.vmID, "request_headers: shared_get "+key+" | shared_set "+key+" forged 0")
		if !strings.Contains(got, "shared_get: status=1") {
			t.Errorf("%s read vm_id %q's key: %s", other.name, vmA, got)
		}
	}
	if got := run("reader", vmA, "request_headers: shared_get "+key); !strings.Contains(got, "shared_get: status=0 secret ") {
		t.Errorf("a plugin of the same vm_id: %s (want the writer's value, not a forged one)", got)
	}
}

// TestMemoryStoreHammer: concurrent CAS increments must never lose one.
func TestMemoryStoreHammer(t *testing.T) {
	s := NewMemoryStore()
	ctx := context.Background()
	// cas 0 means "no check" (as in Envoy), so racing first writers may
	// both win: the counter exists before the hammer starts.
	if err := s.Set(ctx, "", "n", []byte("0"), 0); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				for {
					v, cas, err := s.Get(ctx, "", "n")
					n := 0
					if err == nil {
						fmt.Sscan(string(v), &n)
					} else if !errors.Is(err, ErrNotFound) {
						t.Error(err)
						return
					}
					err = s.Set(ctx, "", "n", []byte(fmt.Sprint(n+1)), cas)
					if err == nil {
						break
					}
					if !errors.Is(err, ErrCASMismatch) {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	v, _, _ := s.Get(ctx, "", "n")
	if string(v) != fmt.Sprint(workers*each) {
		t.Errorf("n = %s, want %d", v, workers*each)
	}
}

// TestMemoryStoreViewsAllocateNothing: the shared-data hostcalls hand
// MemoryStore their key as a view of guest memory, so a read, and a
// write to a key that exists (a rate limiter's counter on every
// request), make no string of it and rewrite the value in place; what a
// view wrote reads back through Get, and a new key and every value are
// copied, not kept as the views.
func TestMemoryStoreViewsAllocateNothing(t *testing.T) {
	s := NewMemoryStore()
	key := []byte("sluice/rate-limiting/local/rl/second/ip:10.0.0.1")
	val := []byte("0123456789abcdef")
	if err := s.setView("", key, val, 0); err != nil {
		t.Fatal(err)
	}
	key[0] = 'X' // the caller's view changes; the store's key must not
	if _, _, err := s.Get(context.Background(), "", "sluice/rate-limiting/local/rl/second/ip:10.0.0.1"); err != nil {
		t.Fatalf("the new key was kept as the caller's view: %v", err)
	}
	key[0] = 's'
	val[0] = 'X' // nor the value
	if v, _, _ := s.Get(context.Background(), "", string(key)); string(v) != "0123456789abcdef" {
		t.Fatalf("the value was kept as the caller's view: %q", v)
	}
	val[0] = '0'
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	var cas uint32
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		v, c, err := s.appendValue(buf[:0], "", key)
		if err != nil || string(v) != string(val) {
			t.Fatal(v, err)
		}
		if err := s.setView("", key, val, c); err != nil {
			t.Fatal(err)
		}
		cas = c
	}); n != 0 {
		t.Errorf("a read and a write of an existing key: %v allocations, want 0", n)
	}
	if v, c, err := s.Get(context.Background(), "", string(key)); err != nil || string(v) != string(val) || c == cas {
		t.Errorf("after the writes: %q, cas %d (was %d), %v", v, c, cas, err)
	}
}
