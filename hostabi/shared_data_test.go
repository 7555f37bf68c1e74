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

// TestMemoryStoreHammer: concurrent CAS increments must never lose one.
func TestMemoryStoreHammer(t *testing.T) {
	s := NewMemoryStore()
	ctx := context.Background()
	// cas 0 means "no check" (as in Envoy), so racing first writers may
	// both win: the counter exists before the hammer starts.
	if err := s.Set(ctx, "n", []byte("0"), 0); err != nil {
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
					v, cas, err := s.Get(ctx, "n")
					n := 0
					if err == nil {
						fmt.Sscan(string(v), &n)
					} else if !errors.Is(err, ErrNotFound) {
						t.Error(err)
						return
					}
					err = s.Set(ctx, "n", []byte(fmt.Sprint(n+1)), cas)
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
	v, _, _ := s.Get(ctx, "n")
	if string(v) != fmt.Sprint(workers*each) {
		t.Errorf("n = %s, want %d", v, workers*each)
	}
}
