package hostabi

import (
	"context"
	"errors"
	"sync"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

func hcGetSharedData(ctx context.Context, in *instance, a []uint64) abi.Status {
	kb, err := in.read(u32(a[0]), u32(a[1]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	if !in.fits(u32(a[4]), 4) {
		return abi.InvalidMemoryAccess
	}
	var val []byte
	var cas uint32
	if m, ok := in.vm.e.cfg.Shared.(*MemoryStore); ok {
		// Copied out under the store's lock (a write may rewrite the
		// value in place), into the instance's scratch buffer.
		val, cas, err = m.appendValue(in.scratch[:0], in.vm.cfg.VMID, kb)
		in.scratch = val[:0]
	} else {
		val, cas, err = in.vm.e.cfg.Shared.Get(ctx, in.vm.cfg.VMID, string(kb))
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return abi.NotFound
	case err != nil:
		return abi.InternalFailure
	}
	if st := in.returnBytes(ctx, val, u32(a[2]), u32(a[3])); st != abi.OK {
		return st
	}
	_ = in.putU32(u32(a[4]), cas)
	return abi.OK
}

func hcSetSharedData(ctx context.Context, in *instance, a []uint64) abi.Status {
	kb, err := in.read(u32(a[0]), u32(a[1]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	val, err := in.read(u32(a[2]), u32(a[3]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	if m, ok := in.vm.e.cfg.Shared.(*MemoryStore); ok {
		err = m.setView(in.vm.cfg.VMID, kb, val, u32(a[4]))
	} else {
		err = in.vm.e.cfg.Shared.Set(ctx, in.vm.cfg.VMID, string(kb), append([]byte(nil), val...), u32(a[4]))
	}
	switch {
	case errors.Is(err, ErrCASMismatch):
		return abi.CasMismatch
	case err != nil:
		return abi.InternalFailure
	}
	return abi.OK
}

// MemoryStore is the in-process SharedStore: what Envoy keeps per process,
// a key space per vm_id.
type MemoryStore struct {
	mu sync.Mutex
	// spaces holds each vm_id's keys, made at its first write.
	spaces map[string]map[string]storeEntry
	cas    uint32
}

type storeEntry struct {
	// key is the map's own key, so that a write to a key that exists
	// makes no string.
	key string
	val []byte
	cas uint32
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{spaces: map[string]map[string]storeEntry{}} }

// Get implements SharedStore. The value is a copy: the store rewrites a
// value in place when the next one fits.
func (m *MemoryStore) Get(_ context.Context, vmID, key string) ([]byte, uint32, error) {
	return m.appendValue(nil, vmID, stringBytes(key))
}

// appendValue appends key's value to dst, under the store's lock; the
// key is a view of guest memory (valid for the call), looked up without
// making a string of it.
func (m *MemoryStore) appendValue(dst []byte, vmID string, key []byte) ([]byte, uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.spaces[vmID][string(key)]
	if !ok {
		return dst, 0, ErrNotFound
	}
	return append(dst, e.val...), e.cas, nil
}

// Set implements SharedStore. The store keeps a copy of val.
func (m *MemoryStore) Set(_ context.Context, vmID, key string, val []byte, cas uint32) error {
	return m.set(vmID, key, nil, val, cas)
}

// setView is Set with the key and the value as views of guest memory
// (valid for the call): a key that exists is written under the store's
// own string, a new one copied; the value is copied, into the old
// value's storage when it fits (a counter rewritten on every request
// then costs no allocation).
func (m *MemoryStore) setView(vmID string, key, val []byte, cas uint32) error {
	return m.set(vmID, "", key, val, cas)
}

// set writes val under key, or under kb (a view, copied if new) when key
// is empty, in vmID's space.
func (m *MemoryStore) set(vmID, key string, kb, val []byte, cas uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if kb == nil {
		kb = stringBytes(key)
	}
	space := m.spaces[vmID]
	if space == nil {
		space = map[string]storeEntry{}
		m.spaces[vmID] = space
	}
	e, ok := space[string(kb)]
	if ok && cas != 0 && cas != e.cas {
		return ErrCASMismatch
	}
	m.cas++
	if m.cas == 0 {
		m.cas = 1
	}
	switch {
	case ok:
		key = e.key
	case key == "":
		key = string(kb)
	}
	if ok && cap(e.val) >= len(val) {
		val = append(e.val[:0], val...)
	} else {
		val = append(make([]byte, 0, len(val)+len(val)/4), val...)
	}
	space[key] = storeEntry{key: key, val: val, cas: m.cas}
	return nil
}
