package hostabi

import (
	"context"
	"strings"
	"unsafe"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// splitPath turns the ABI's NUL-separated path into segments; a trailing
// NUL (some SDKs add one) is not an empty last segment. The segments are
// views of b (guest memory for a read, the host's copy for a write), and
// the slice of them is the instance's scratch space, valid for the
// hostcall only (the StreamHost contract): a property read makes no
// string of its path.
func (in *instance) splitPath(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	s := strings.TrimSuffix(unsafe.String(&b[0], len(b)), "\x00")
	if s == "" {
		return nil
	}
	path := in.pathBuf[:0]
	for {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			return append(path, s)
		}
		path = append(path, s[:i])
		s = s[i+1:]
	}
}

// property answers the plugin's own properties, then the stream's, then
// the process's.
func (in *instance) property(path []string) ([]byte, bool) {
	if p := in.pluginFor(in.effective); p != nil && len(path) == 1 {
		switch path[0] {
		case "plugin_name":
			return []byte(p.cfg.Name), true
		case "plugin_root_id":
			return []byte(p.cfg.RootID), true
		case "plugin_vm_id":
			return []byte(p.cfg.VMID), true
		}
	}
	if s := in.stream(); s != nil {
		if v, ok := s.host.Property(path); ok {
			return v, true
		}
	}
	if f := in.vm.e.cfg.Properties; f != nil {
		return f(path)
	}
	return nil, false
}

func hcGetProperty(ctx context.Context, in *instance, a []uint64) abi.Status {
	b, err := in.read(u32(a[0]), u32(a[1]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	path := in.splitPath(b)
	if len(path) == 0 {
		return abi.BadArgument
	}
	v, ok := in.property(path)
	if !ok {
		return abi.NotFound
	}
	return in.returnBytes(ctx, v, u32(a[2]), u32(a[3]))
}

func hcSetProperty(_ context.Context, in *instance, a []uint64) abi.Status {
	b, err := in.read(u32(a[0]), u32(a[1]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	v, err := in.read(u32(a[2]), u32(a[3]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	if len(in.splitPath(b)) == 0 {
		return abi.BadArgument
	}
	// What the host keeps, in one allocation: the value, then the path,
	// whose segments are then the host's own too (a key of one segment,
	// as filters mostly set, needs no copy of its own).
	buf := make([]byte, len(v)+len(b))
	copy(buf, v)
	copy(buf[len(v):], b)
	v = buf[:len(v):len(v)]
	path := in.splitPath(buf[len(v):])
	if s := in.stream(); s != nil {
		if err := s.host.SetProperty(path, v); err != nil {
			return abi.BadArgument
		}
		return abi.OK
	}
	// A root context has no stream to carry it (Envoy: no stream info).
	return abi.NotFound
}
