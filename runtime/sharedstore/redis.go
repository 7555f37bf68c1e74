// Package sharedstore backs proxy-wasm shared data beyond one process: a
// Redis store, so replicas of sluice share rate limits and other state, and
// a router that sends the keys meant to be shared there and keeps the rest
// in memory.
package sharedstore

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/stats"
)

// Redis is a hostabi.SharedStore on a Redis server. Each key is a hash of
// the value and its cas counter, so compare-and-swap is one server-side
// script: no read-modify-write race between replicas.
type Redis struct {
	c       *redis.Client
	timeout time.Duration
	errors  *stats.Counter
}

// Options say where the server is.
type Options struct {
	Address  string
	Password string
	DB       int
	// Timeout bounds one operation; a Wasm callback waits for it, so it is
	// short. Default 100ms.
	Timeout time.Duration
}

// NewRedis connects lazily: a server that is down at start is an error on
// each use (which filters may tolerate), not a failure to start.
func NewRedis(o Options, reg *stats.Registry) *Redis {
	if o.Timeout <= 0 {
		o.Timeout = 100 * time.Millisecond
	}
	c := redis.NewClient(&redis.Options{
		Addr:         o.Address,
		Password:     o.Password,
		DB:           o.DB,
		DialTimeout:  o.Timeout,
		ReadTimeout:  o.Timeout,
		WriteTimeout: o.Timeout,
		MaxRetries:   0,
	})
	return &Redis{c: c, timeout: o.Timeout, errors: reg.Counter("sluice_shared_store_errors_total", "Shared store operations that failed.", "store", "redis")}
}

// Close releases the client's connections.
func (r *Redis) Close() error { return r.c.Close() }

// casSet writes ARGV[1] when ARGV[2] is 0 or the stored cas; the new cas
// skips 0 on wrap so 0 keeps meaning "no check".
var casSet = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'c') or '0')
local want = tonumber(ARGV[2])
if want ~= 0 and want ~= cur then return -1 end
local nxt = cur + 1
if nxt > 4294967295 then nxt = 1 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'c', nxt)
return nxt
`)

// redisKey is where a vm_id's key lives on the server: "vm/" + the vm_id
// path-escaped (so it holds no "/") + "/" + the key. Every replica with
// the same config names the same key, and no two vm_ids' spaces meet.
func redisKey(vmID, key string) string { return "vm/" + url.PathEscape(vmID) + "/" + key }

// Get implements hostabi.SharedStore.
func (r *Redis) Get(ctx context.Context, vmID, key string) ([]byte, uint32, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	key = redisKey(vmID, key)
	vals, err := r.c.HMGet(ctx, key, "v", "c").Result()
	if err != nil {
		r.errors.Inc()
		return nil, 0, fmt.Errorf("redis get %q: %w", key, err)
	}
	if len(vals) != 2 || vals[0] == nil {
		return nil, 0, hostabi.ErrNotFound
	}
	v, _ := vals[0].(string)
	var cas uint32
	if cs, ok := vals[1].(string); ok {
		fmt.Sscan(cs, &cas)
	}
	return []byte(v), cas, nil
}

// Set implements hostabi.SharedStore.
func (r *Redis) Set(ctx context.Context, vmID, key string, value []byte, cas uint32) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	key = redisKey(vmID, key)
	n, err := casSet.Run(ctx, r.c, []string{key}, value, cas).Int64()
	if err != nil {
		r.errors.Inc()
		return fmt.Errorf("redis set %q: %w", key, err)
	}
	if n < 0 {
		return hostabi.ErrCASMismatch
	}
	return nil
}

// Routed sends keys with a "redis" path segment (as the rate limiters'
// "sluice/rate-limiting/redis/..." keys have) to the shared store and keeps
// every other key in the process's memory, so policy = "local" stays local
// even when a Redis server is configured.
type Routed struct {
	Local  hostabi.SharedStore
	Shared hostabi.SharedStore
}

func (r Routed) pick(key string) hostabi.SharedStore {
	if r.Shared != nil && strings.Contains("/"+key+"/", "/redis/") {
		return r.Shared
	}
	return r.Local
}

// Get implements hostabi.SharedStore.
func (r Routed) Get(ctx context.Context, vmID, key string) ([]byte, uint32, error) {
	return r.pick(key).Get(ctx, vmID, key)
}

// Set implements hostabi.SharedStore.
func (r Routed) Set(ctx context.Context, vmID, key string, value []byte, cas uint32) error {
	return r.pick(key).Set(ctx, vmID, key, value, cas)
}
