package hostabi

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// On Linux an instance's linear memory is a reservation outside the Go
// heap: the Go GC neither scans it nor counts it into its heap goal, and a
// grow never copies.
func TestLinearMemoryOutsideGoHeap(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("mapped linear memory is Linux-only")
	}
	m := &limitedMemory{limit: 4 * 65536}
	(&memoryLimiter{mem: m}).Allocate(65536, 1<<32)
	if m.mapped == nil {
		t.Fatal("linear memory was not mapped")
	}
	a := m.Reallocate(65536)
	a[0] = 1
	b := m.Reallocate(3 * 65536)
	if &a[0] != &b[0] || b[0] != 1 {
		t.Fatal("growing moved the memory")
	}
	if b[3*65536-1] != 0 {
		t.Fatal("grown memory is not zero")
	}
	// Not attached to an instance (instantiation failed): Free unmaps.
	m.Free()
	if !m.mapped.unmapped {
		t.Fatal("Free of an unattached region did not unmap it")
	}
}

// Attached to wazero's memory instance, a region is only given back by
// Free (a closing guest may still run) and unmapped once the memory
// instance is unreachable.
func TestLinearMemoryUnmappedWithItsInstance(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("mapped linear memory is Linux-only")
	}
	ctx := context.Background()
	p, err := testEngine.Load(ctx, PluginConfig{Name: t.Name(), Wasm: minimalGuest()})
	if err != nil {
		t.Fatal(err)
	}
	p.vm.mu.Lock()
	region := p.vm.insts[0].memory.mapped
	p.vm.mu.Unlock()
	if region == nil {
		t.Fatal("instance memory is not mapped")
	}
	p.Close(ctx)
	// Cleanups run after a collection, on their own goroutine.
	for range 500 {
		runtime.GC()
		region.mu.Lock()
		done := region.unmapped
		region.mu.Unlock()
		if done {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the region outlived its closed instance")
}
