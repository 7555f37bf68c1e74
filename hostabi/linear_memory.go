package hostabi

import (
	"reflect"
	"runtime"
	"sync"

	"github.com/tetratelabs/wazero/api"
)

// mappedRegion is a linear memory reserved with mmap outside the Go heap.
//
// Unmapping it is the delicate part: wazero calls Free when a module closes,
// and a close can come from another goroutine while the guest still runs
// (wazero's CloseOnContextDone, Engine.Close at shutdown). So Free only
// gives the pages back (the region stays mapped, reading zeros), and the
// region is unmapped once wazero's memory instance, which every access to
// it goes through (the guest's code, api.Memory), is unreachable. A region
// that was never attached to an instance (instantiation failed before any
// guest code ran) is unmapped by Free itself.
type mappedRegion struct {
	buf []byte

	mu       sync.Mutex
	attached bool
	unmapped bool
}

// free is limitedMemory.Free: the memory goes back to the system at once.
func (r *mappedRegion) free() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unmapped {
		return
	}
	if !r.attached {
		r.unmapped = true
		unmapLinearMemory(r.buf)
		return
	}
	releaseLinearMemory(r.buf)
}

// attach ties the region's lifetime to mem, wazero's memory instance that
// uses it.
func (r *mappedRegion) attach(mem api.Memory) {
	if mem == nil {
		return
	}
	v := reflect.ValueOf(mem)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return
	}
	r.mu.Lock()
	r.attached = true
	r.mu.Unlock()
	runtime.AddCleanup((*byte)(v.UnsafePointer()), func(r *mappedRegion) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if !r.unmapped {
			r.unmapped = true
			unmapLinearMemory(r.buf)
		}
	}, r)
}

// attachMemory is called once the instance's memory exists (see
// mappedRegion); a no-op for memory on the Go heap.
func (m *limitedMemory) attachMemory(mem api.Memory) {
	if m.mapped != nil {
		m.mapped.attach(mem)
	}
}

// releaseZeroPages gives back the pages of a mapped memory that hold only
// zeros (linear_memory_linux.go); a no-op for memory on the Go heap. The
// guest must not be running.
func (m *limitedMemory) releaseZeroPages() {
	if m.mapped != nil {
		releaseZeroPages(m.buf)
	}
}
