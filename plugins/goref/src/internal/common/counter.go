package common

import (
	"errors"
	"fmt"

	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// Store is the host's shared data: a key-value store with compare-and-swap,
// shared by every instance of the process (or, Redis-backed, by replicas).
type Store interface {
	// Get returns types.ErrorStatusNotFound for a missing key.
	Get(key string) (value []byte, cas uint32, err error)
	// Set with cas 0 writes unconditionally; otherwise it fails with
	// types.ErrorStatusCasMismatch if the value changed since Get.
	Set(key string, value []byte, cas uint32) error
}

// SharedData is the Store of the host.
type SharedData struct{}

func (SharedData) Get(key string) ([]byte, uint32, error) { return proxywasm.GetSharedData(key) }
func (SharedData) Set(key string, v []byte, cas uint32) error {
	return proxywasm.SetSharedData(key, v, cas)
}

// casAttempts bounds the retries of a contended counter; past it the caller
// treats the store as failing.
const casAttempts = 16

// A window counter is stored as 16 bytes: the window's start (unix seconds)
// then the count, both little-endian. Keeping one key per identifier and
// period (not per window) keeps the store from growing with time.

func decodeWindow(b []byte) (start, count int64, ok bool) {
	if len(b) != 16 {
		return 0, 0, false
	}
	s, _ := proxywasm.DecodeUint64(b[:8])
	c, _ := proxywasm.DecodeUint64(b[8:])
	return int64(s), int64(c), true
}

func encodeWindow(start, count int64) []byte {
	return append(proxywasm.EncodeUint64(uint64(start)), proxywasm.EncodeUint64(uint64(count))...)
}

// Usage returns the count of key in the window that starts at windowStart.
func Usage(s Store, key string, windowStart int64) (int64, error) {
	v, _, err := s.Get(key)
	if errors.Is(err, types.ErrorStatusNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading %q: %w", key, err)
	}
	start, count, ok := decodeWindow(v)
	if !ok || start != windowStart {
		return 0, nil
	}
	return count, nil
}

// Increment adds by to key's count in the window starting at windowStart,
// unless that would pass limit (limit <= 0: no limit). It returns the count
// after the call and whether the increment happened. Concurrent writers are
// serialised by CAS, so no more than limit increments succeed per window;
// the first write of a key is unconditional (the ABI has no create-if-absent).
func Increment(s Store, key string, windowStart, by, limit int64) (int64, bool, error) {
	for attempt := 0; attempt < casAttempts; attempt++ {
		v, cas, err := s.Get(key)
		var count int64
		switch {
		case errors.Is(err, types.ErrorStatusNotFound):
			cas = 0
		case err != nil:
			return 0, false, fmt.Errorf("reading %q: %w", key, err)
		default:
			if start, c, ok := decodeWindow(v); ok && start == windowStart {
				count = c
			}
		}
		if limit > 0 && count+by > limit {
			return count, false, nil
		}
		err = s.Set(key, encodeWindow(windowStart, count+by), cas)
		if errors.Is(err, types.ErrorStatusCasMismatch) {
			continue
		}
		if err != nil {
			return 0, false, fmt.Errorf("writing %q: %w", key, err)
		}
		return count + by, true, nil
	}
	return 0, false, fmt.Errorf("updating %q: still contended after %d attempts", key, casAttempts)
}

// MemStore is an in-memory Store for tests of plugin logic.
type MemStore struct {
	m   map[string]memEntry
	seq uint32
	// Fail, when set, is returned by every call.
	Fail error
	// Interfere, when set, runs between a Get and the next Set, so tests can
	// play a concurrent writer.
	Interfere func()
}

type memEntry struct {
	v   []byte
	cas uint32
}

func NewMemStore() *MemStore { return &MemStore{m: map[string]memEntry{}} }

func (s *MemStore) Get(key string) ([]byte, uint32, error) {
	if s.Fail != nil {
		return nil, 0, s.Fail
	}
	e, ok := s.m[key]
	if !ok {
		return nil, 0, types.ErrorStatusNotFound
	}
	if s.Interfere != nil {
		f := s.Interfere
		s.Interfere = nil
		f()
	}
	return e.v, e.cas, nil
}

func (s *MemStore) Set(key string, v []byte, cas uint32) error {
	if s.Fail != nil {
		return s.Fail
	}
	if e, ok := s.m[key]; cas != 0 && (!ok || e.cas != cas) {
		return types.ErrorStatusCasMismatch
	}
	s.seq++
	s.m[key] = memEntry{v: append([]byte(nil), v...), cas: s.seq}
	return nil
}

// Len is the number of keys stored.
func (s *MemStore) Len() int { return len(s.m) }
