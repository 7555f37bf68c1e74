package sharedstore

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/sharedstore/redistest"
	"github.com/sluice-proxy/sluice/runtime/stats"
)

func TestRedisGetSetCAS(t *testing.T) {
	r := NewRedis(Options{Address: redistest.Start(t), Timeout: time.Second}, stats.NewRegistry())
	defer r.Close()
	ctx := context.Background()
	if _, _, err := r.Get(ctx, "", "k"); !errors.Is(err, hostabi.ErrNotFound) {
		t.Fatalf("missing key: %v, want ErrNotFound", err)
	}
	if err := r.Set(ctx, "", "k", []byte("v1"), 0); err != nil {
		t.Fatal(err)
	}
	v, cas, err := r.Get(ctx, "", "k")
	if err != nil || string(v) != "v1" || cas == 0 {
		t.Fatalf("get: %q %d %v", v, cas, err)
	}
	if err := r.Set(ctx, "", "k", []byte("v2"), cas+7); !errors.Is(err, hostabi.ErrCASMismatch) {
		t.Fatalf("stale cas: %v, want ErrCASMismatch", err)
	}
	if err := r.Set(ctx, "", "k", []byte("v2"), cas); err != nil {
		t.Fatalf("right cas: %v", err)
	}
	if v, _, _ := r.Get(ctx, "", "k"); string(v) != "v2" {
		t.Fatalf("after cas write: %q", v)
	}
}

// Each vm_id has its own keys on the server, as in memory; a vm_id that
// looks like a path cannot reach into another's space.
func TestRedisKeysPerVMID(t *testing.T) {
	r := NewRedis(Options{Address: redistest.Start(t), Timeout: time.Second}, stats.NewRegistry())
	defer r.Close()
	ctx := context.Background()
	if err := r.Set(ctx, "a", "b/k", []byte("a's"), 0); err != nil {
		t.Fatal(err)
	}
	for _, other := range [][2]string{{"b", "k"}, {"a/b", "k"}, {"", "b/k"}, {"", "a/b/k"}} {
		if v, _, err := r.Get(ctx, other[0], other[1]); !errors.Is(err, hostabi.ErrNotFound) {
			t.Errorf("vm_id %q key %q read %q (%v), want ErrNotFound", other[0], other[1], v, err)
		}
	}
	if v, _, err := r.Get(ctx, "a", "b/k"); err != nil || string(v) != "a's" {
		t.Errorf("its own key: %q %v", v, err)
	}
}

// Two stores (as two sluice processes) incrementing one counter with CAS
// loops never lose an update.
func TestRedisCASHammerAcrossClients(t *testing.T) {
	addr := redistest.Start(t)
	reg := stats.NewRegistry()
	stores := []*Redis{NewRedis(Options{Address: addr, Timeout: time.Second}, reg), NewRedis(Options{Address: addr, Timeout: time.Second}, reg)}
	ctx := context.Background()
	// Created first: a write with cas 0 is unconditional by the ABI, so
	// racing creations would each win.
	if err := stores[0].Set(ctx, "", "n", []byte("0"), 0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(s *Redis) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				for {
					v, cas, err := s.Get(ctx, "", "n")
					n := 0
					if err == nil {
						n, _ = strconv.Atoi(string(v))
					} else if !errors.Is(err, hostabi.ErrNotFound) {
						t.Error(err)
						return
					}
					if err := s.Set(ctx, "", "n", []byte(strconv.Itoa(n+1)), cas); err == nil {
						break
					} else if !errors.Is(err, hostabi.ErrCASMismatch) {
						t.Error(err)
						return
					}
				}
			}
		}(stores[w%2])
	}
	wg.Wait()
	v, _, _ := stores[0].Get(ctx, "", "n")
	if string(v) != "400" {
		t.Fatalf("counter = %s, want 400", v)
	}
}

func TestRedisDownIsAnError(t *testing.T) {
	reg := stats.NewRegistry()
	r := NewRedis(Options{Address: "127.0.0.1:1", Timeout: 200 * time.Millisecond}, reg)
	defer r.Close()
	_, _, err := r.Get(context.Background(), "", "k")
	if err == nil || errors.Is(err, hostabi.ErrNotFound) {
		t.Fatalf("down server: %v, want a plain error", err)
	}
	if reg.Counter("sluice_shared_store_errors_total", "", "store", "redis").Value() != 1 {
		t.Fatal("the failure was not counted")
	}
}

func TestRoutedKeepsLocalKeysLocal(t *testing.T) {
	local, shared := hostabi.NewMemoryStore(), hostabi.NewMemoryStore()
	r := Routed{Local: local, Shared: shared}
	ctx := context.Background()
	r.Set(ctx, "", "sluice/rate-limiting/redis/rl/minute/1.2.3.4", []byte("1"), 0)
	r.Set(ctx, "", "sluice/rate-limiting/local/rl/minute/1.2.3.4", []byte("1"), 0)
	if _, _, err := shared.Get(ctx, "", "sluice/rate-limiting/redis/rl/minute/1.2.3.4"); err != nil {
		t.Fatal("redis-policy key did not reach the shared store")
	}
	if _, _, err := shared.Get(ctx, "", "sluice/rate-limiting/local/rl/minute/1.2.3.4"); err == nil {
		t.Fatal("local-policy key reached the shared store")
	}
}
