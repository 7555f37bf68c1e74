package hostabi

import (
	"context"
	"encoding/binary"
	"errors"
	"sync/atomic"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// errMemory is a guest pointer or length outside linear memory.
var errMemory = errors.New("invalid memory access")

// limitedMemory backs one instance's linear memory and refuses to grow past
// the plugin's limit, so a memory bomb makes memory.grow fail inside the
// guest (which then dies on its own) instead of exhausting the host.
type limitedMemory struct {
	limit uint64
	buf   []byte
	// size is read by Stats without the instance lock.
	size atomic.Uint64
	// refused records that a grow hit the limit, to name the cause of the
	// instance's failure.
	refused atomic.Bool
	// mapped is set when buf is a reservation of limit bytes outside the Go
	// heap (linear_memory_linux.go) rather than a Go slice.
	mapped *mappedRegion
}

func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused.Store(true)
		return nil
	}
	if uint64(cap(m.buf)) >= size {
		// A mapped reservation always lands here: grows never copy.
		m.buf = m.buf[:size]
	} else {
		// Grow geometrically but never beyond the limit: guests grow a page
		// or a few at a time and copying on every grow is quadratic.
		c := max(size, min(uint64(cap(m.buf))*2, m.limit))
		nb := make([]byte, size, c)
		copy(nb, m.buf)
		m.buf = nb
	}
	m.size.Store(size)
	return m.buf
}

// Free gives the memory back. buf stays: wazero's memory instance keeps
// the same slice, and a close may come from another goroutine while the
// guest (or a hostcall reading buf) still runs; only that goroutine
// writes buf (Reallocate, as the guest grows its memory). A mapped
// region then reads zeros until it is unmapped (mappedRegion).
func (m *limitedMemory) Free() {
	m.size.Store(0)
	if m.mapped != nil {
		m.mapped.free()
	}
}

type memoryLimiter struct{ mem *limitedMemory }

// Allocate reserves the whole limit outside the Go heap where the platform
// allows (pages cost memory only once the guest touches them, grows never
// copy, and the Go GC neither scans nor paces on guest memory); otherwise
// it falls back to a Go slice grown on demand.
func (l *memoryLimiter) Allocate(capacity, maxBytes uint64) experimental.LinearMemory {
	if r := reserveLinearMemory(min(l.mem.limit, maxBytes)); r != nil {
		l.mem.mapped = r
		l.mem.buf = r.buf[:0]
		return l.mem
	}
	l.mem.buf = make([]byte, 0, min(capacity, l.mem.limit))
	return l.mem
}

// While the host runs the guest's allocator (proxy_on_memory_allocate or
// malloc) to copy data in, proxy-wasm-cpp-host lets it make only these
// hostcalls (WasmBase::allocMemory's restricted callback, cpp-host PR
// #306): logging, stdout/stderr and the clock, and poll_oneoff since Go's
// runtime may sleep in a collection its allocator starts (cpp-host PR
// #533). Any other traps: an allocator that calls back into the host
// re-enters a hostcall half done (a header read from inside a header read).
var allowedInAllocator = map[string]bool{"proxy_log": true, "fd_write": true, "clock_time_get": true, "poll_oneoff": true}

// AllocatorHostcallError: the guest's allocator made a hostcall that
// proxy-wasm-cpp-host forbids there; the instance fails as on a trap.
type AllocatorHostcallError struct{ Hostcall string }

func (e *AllocatorHostcallError) Error() string {
	return e.Hostcall + " is not allowed in the guest's allocator (proxy_on_memory_allocate, malloc): only proxy_log, fd_write, clock_time_get and poll_oneoff are"
}

// guardAllocator wraps a WASI or Emscripten import that cpp-host refuses
// inside the allocator (they stay allowed during start-up).
func guardAllocator(name string, f api.GoModuleFunc) api.GoModuleFunc {
	if allowedInAllocator[name] {
		return f
	}
	return func(ctx context.Context, m api.Module, stack []uint64) {
		if in, ok := ctx.Value(instKey{}).(*instance); ok && in.allocating {
			in.refuseHostcall(name)
		}
		f(ctx, m, stack)
	}
}

// The hostcalls reach guest memory through the instance's own view of
// it (limitedMemory.buf: wazero's memory instance holds the same slice,
// which only the guest's goroutine changes, by growing it), not through
// api.Memory: an interface call per access (a get_header_map_value makes
// four) with bounds checks done twice cost more than the access itself.
// A guest always defines its memory (the host exports none), so every
// instance's memory comes from its limitedMemory.

// read returns a view of guest memory; it must not be kept past the call.
func (in *instance) read(ptr, size uint32) ([]byte, error) {
	b := in.memory.buf
	if uint64(ptr)+uint64(size) > uint64(len(b)) {
		return nil, errMemory
	}
	return b[ptr : ptr+size : ptr+size], nil
}

func (in *instance) readString(ptr, size uint32) (string, error) {
	b, err := in.read(ptr, size)
	return string(b), err
}

// fits says whether [ptr, ptr+size) is inside guest memory.
func (in *instance) fits(ptr, size uint32) bool {
	return uint64(ptr)+uint64(size) <= uint64(len(in.memory.buf))
}

func (in *instance) putU32(ptr, v uint32) error {
	b := in.memory.buf
	if uint64(ptr)+4 > uint64(len(b)) {
		return errMemory
	}
	binary.LittleEndian.PutUint32(b[ptr:], v)
	return nil
}

func (in *instance) putU64(ptr uint32, v uint64) error {
	b := in.memory.buf
	if uint64(ptr)+8 > uint64(len(b)) {
		return errMemory
	}
	binary.LittleEndian.PutUint64(b[ptr:], v)
	return nil
}

// serializePairs encodes a map as the ABI does: count, (key len, value len)
// per pair, then each key and value followed by NUL.
func serializePairs(pairs [][2]string) []byte { return serializeMap(pairsMap{&pairs}) }

// serializedSize is the length of m in the ABI's map encoding.
func serializedSize(m HeaderMap) int {
	n := 4
	for i := range m.Len() {
		k, v := m.At(i)
		n += 8 + len(k) + len(v) + 2
	}
	return n
}

// serializeMap encodes m into a new slice.
func serializeMap(m HeaderMap) []byte {
	b := make([]byte, serializedSize(m))
	putPairs(b, m)
	return b
}

// putPairs encodes m into b, which is serializedSize(m) long.
func putPairs(b []byte, m HeaderMap) {
	n := m.Len()
	binary.LittleEndian.PutUint32(b, uint32(n))
	off := 4 + 8*n
	for i := range n {
		k, v := m.At(i)
		binary.LittleEndian.PutUint32(b[4+8*i:], uint32(len(k)))
		binary.LittleEndian.PutUint32(b[8+8*i:], uint32(len(v)))
		off += copy(b[off:], k)
		b[off] = 0
		off += 1 + copy(b[off+1:], v)
		b[off] = 0
		off++
	}
}

// Limits as proxy-wasm-cpp-host's limits.h, so a guest cannot make the host
// parse an unbounded map.
const (
	maxPairs      = 1024
	maxPairsBytes = 1 << 20
)

var errSerialization = errors.New("malformed pairs")

func deserializePairs(b []byte) ([][2]string, error) {
	r, err := newPairsReader(b)
	if err != nil || r.n == 0 {
		return nil, err
	}
	out := make([][2]string, 0, r.n)
	for k, v, ok := r.next(); ok; k, v, ok = r.next() {
		out = append(out, [2]string{string(k), string(v)})
	}
	return out, nil
}

// pairsReader walks a serialized map in place: what next returns are
// views of b.
type pairsReader struct {
	b         []byte
	n, i, off int
}

// newPairsReader checks the whole encoding first, so a malformed map is
// refused before any of it is used.
func newPairsReader(b []byte) (pairsReader, error) {
	if len(b) == 0 || (len(b) == 1 && b[0] == 0) {
		return pairsReader{}, nil
	}
	n, _, ok := pairsLen(b)
	if !ok {
		return pairsReader{}, errSerialization
	}
	return pairsReader{b: b, n: n, off: 4 + 8*n}, nil
}

// pairsLen checks the encoded map at the start of b (a count, then its
// pairs; b may go on past them) and returns its count and length.
func pairsLen(b []byte) (n, end int, ok bool) {
	if len(b) < 4 || len(b) > maxPairsBytes {
		return 0, 0, false
	}
	n = int(binary.LittleEndian.Uint32(b))
	if n > maxPairs || 4+8*n > len(b) {
		return 0, 0, false
	}
	end = 4 + 8*n
	for i := range n {
		kl := int(binary.LittleEndian.Uint32(b[4+8*i:]))
		vl := int(binary.LittleEndian.Uint32(b[8+8*i:]))
		if kl > len(b) || vl > len(b) || end+kl+1+vl+1 > len(b) {
			return 0, 0, false
		}
		end += kl + 1 + vl + 1
	}
	return n, end, true
}

func (r *pairsReader) next() (k, v []byte, ok bool) {
	if r.i == r.n {
		return nil, nil, false
	}
	kl := int(binary.LittleEndian.Uint32(r.b[4+8*r.i:]))
	vl := int(binary.LittleEndian.Uint32(r.b[8+8*r.i:]))
	r.i++
	k = r.b[r.off : r.off+kl]
	r.off += kl + 1
	v = r.b[r.off : r.off+vl]
	r.off += vl + 1
	return k, v, true
}
