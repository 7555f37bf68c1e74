package hostabi

import (
	"context"
	"errors"
	"sync"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

func hcGetSharedData(ctx context.Context, in *instance, a []uint64) abi.Status {
	key, err := readString(in.mem, u32(a[0]), u32(a[1]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	if _, ok := in.mem.Read(u32(a[4]), 4); !ok {
		return abi.InvalidMemoryAccess
	}
	val, cas, err := in.vm.e.cfg.Shared.Get(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return abi.NotFound
	case err != nil:
		return abi.InternalFailure
	}
	if st := in.returnBytes(ctx, val, u32(a[2]), u32(a[3])); st != abi.OK {
		return st
	}
	in.mem.WriteUint32Le(u32(a[4]), cas)
	return abi.OK
}

func hcSetSharedData(ctx context.Context, in *instance, a []uint64) abi.Status {
	key, err := readString(in.mem, u32(a[0]), u32(a[1]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	val, err := read(in.mem, u32(a[2]), u32(a[3]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	err = in.vm.e.cfg.Shared.Set(ctx, key, append([]byte(nil), val...), u32(a[4]))
	switch {
	case errors.Is(err, ErrCASMismatch):
		return abi.CasMismatch
	case err != nil:
		return abi.InternalFailure
	}
	return abi.OK
}

// MemoryStore is the in-process SharedStore: what Envoy keeps per process.
type MemoryStore struct {
	mu   sync.Mutex
	data map[string]storeEntry
	cas  uint32
}

type storeEntry struct {
	val []byte
	cas uint32
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{data: map[string]storeEntry{}} }

// Get implements SharedStore.
func (m *MemoryStore) Get(_ context.Context, key string) ([]byte, uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.data[key]
	if !ok {
		return nil, 0, ErrNotFound
	}
	return e.val, e.cas, nil
}

// Set implements SharedStore. The cas counter is store-wide and skips 0, so
// a value's cas changes on every write and 0 always means "no check".
func (m *MemoryStore) Set(_ context.Context, key string, val []byte, cas uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.data[key]; ok && cas != 0 && cas != e.cas {
		return ErrCASMismatch
	}
	m.cas++
	if m.cas == 0 {
		m.cas = 1
	}
	m.data[key] = storeEntry{val: val, cas: m.cas}
	return nil
}
