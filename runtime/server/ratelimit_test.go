package server

import (
	"net/http"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/sharedstore/redistest"
)

// Two sluice processes sharing one Redis enforce one rate limit: Kong's
// rate-limiting with policy = "redis".
func TestRateLimitSharedAcrossReplicasThroughRedis(t *testing.T) {
	redisAddr := redistest.Start(t)
	up := startEcho(t, "up", nil)
	cfg := baseConfig(`
[shared_store]
kind = "redis"
redis = { address = "` + redisAddr + `", timeout = "1s" }

[[plugins]]
name = "rl"
wasm = "builtin:rate-limiting"
config = { minute = 10, policy = "redis" }

[[routes]]
name = "r"
plugins = ["rl"]
backends = [ { cluster = "up" } ]

[[clusters]]
name = "up"
endpoints = ["` + up.addr + `"]
`)
	a := startServer(t, cfg)
	b := startServer(t, cfg)
	codes := map[int]int{}
	for i := 0; i < 16; i++ {
		srv := a
		if i%2 == 1 {
			srv = b
		}
		resp, err := http.Get(srv.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes[resp.StatusCode]++
		if i == 0 && resp.Header.Get("X-RateLimit-Limit-Minute") != "10" {
			t.Fatalf("first response lacks X-RateLimit-Limit-Minute: %v", resp.Header)
		}
	}
	if codes[200] != 10 || codes[429] != 6 {
		t.Fatalf("status counts %v over two replicas, want 10 x 200 then 6 x 429", codes)
	}
}

// With Redis down, fault_tolerant (the default) lets requests through and
// the failure shows in the store's error counter.
func TestRateLimitFaultTolerantWhenRedisDown(t *testing.T) {
	up := startEcho(t, "up", nil)
	ts := startServer(t, baseConfig(`
[shared_store]
kind = "redis"
redis = { address = "127.0.0.1:1", timeout = "50ms" }

[[plugins]]
name = "rl"
wasm = "builtin:rate-limiting"
config = { minute = 1, policy = "redis" }

[[routes]]
name = "r"
plugins = ["rl"]
backends = [ { cluster = "up" } ]

[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]
`))
	for i := 0; i < 3; i++ {
		resp, err := http.Get(ts.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d with Redis down: %d, want 200 (fault tolerant)", i, resp.StatusCode)
		}
	}
	if n := ts.Registry().Counter("sluice_shared_store_errors_total", "", "store", "redis").Value(); n == 0 {
		t.Fatal("Redis failures were not counted")
	}
}
