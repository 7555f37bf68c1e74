package hostabi

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// headersArg encodes sluice_add_headers' argument: the map type, then the
// pairs serialized; escaped for a rawabi script (the lengths used here
// stay clear of the bytes a script cannot carry).
func headersArg(t *testing.T, mapType uint32, pairs ...string) string {
	t.Helper()
	b := binary.LittleEndian.AppendUint32(nil, mapType)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(pairs)/2))
	for i := 0; i+1 < len(pairs); i += 2 {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(pairs[i])))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(pairs[i+1])))
	}
	for _, p := range pairs {
		b = append(append(b, p...), 0)
	}
	return scriptEscape(t, b)
}

func scriptEscape(t *testing.T, b []byte) string {
	t.Helper()
	var s strings.Builder
	for _, c := range b {
		switch c {
		case ' ':
			s.WriteString(`\s`)
		case '|':
			s.WriteString(`\p`)
		case '\n':
			s.WriteString(`\n`)
		case '\t', '\v', '\f', '\r', '\\':
			t.Fatalf("byte %q cannot go into a script", c)
		default:
			s.WriteByte(c)
		}
	}
	return s.String()
}

// TestForeignHeaderEdits: sluice_add_headers and sluice_replace_headers
// apply their pairs in order, as the single hostcalls would; a map the
// context does not have is BadArgument and pairs that do not decode are
// SerializationFailure, both changing nothing.
func TestForeignHeaderEdits(t *testing.T) {
	for _, c := range []struct {
		name, fn, arg string
		wantStatus    string
		wantPairs     string
	}{
		{"add in order, a name twice", "sluice_add_headers", headersArg(t, 0, "x-a", "1", "x-multi", "c", "x-a", "2"), "status=0",
			":method=GET,:path=/p?q=1,:authority=example.com,:scheme=http,x-multi=a,x-multi=b,x-a=1,x-multi=c,x-a=2"},
		{"replace every value, then the next pair", "sluice_replace_headers", headersArg(t, 0, "x-multi", "c", "x-new", "v", "x-new", "w"), "status=0",
			":method=GET,:path=/p?q=1,:authority=example.com,:scheme=http,x-multi=c,x-new=w"},
		{"no pairs", "sluice_add_headers", headersArg(t, 0), "status=0",
			":method=GET,:path=/p?q=1,:authority=example.com,:scheme=http,x-multi=a,x-multi=b"},
		{"a map this context does not have", "sluice_add_headers", headersArg(t, 2, "x-a", "1"), "status=2",
			":method=GET,:path=/p?q=1,:authority=example.com,:scheme=http,x-multi=a,x-multi=b"},
		{"an unknown map", "sluice_replace_headers", headersArg(t, 99, "x-a", "1"), "status=2",
			":method=GET,:path=/p?q=1,:authority=example.com,:scheme=http,x-multi=a,x-multi=b"},
		{"pairs cut short", "sluice_add_headers", strings.TrimSuffix(headersArg(t, 0, "x-a", "1", "x-b", "2"), "2\x00"), "status=3",
			":method=GET,:path=/p?q=1,:authority=example.com,:scheme=http,x-multi=a,x-multi=b"},
		{"no map type", "sluice_add_headers", "\x00\x00", "status=2",
			":method=GET,:path=/p?q=1,:authority=example.com,:scheme=http,x-multi=a,x-multi=b"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newTestStream("x-multi", "a", "x-multi", "b")
			p, _, _ := runHeaders(t, "request_headers: ffi "+c.fn+" "+c.arg, s)
			wantLogs(t, p.Name(), `request_headers ffi: `+c.wantStatus+` len=0 ""`)
			if got := s.pairs(RequestHeaders); got != c.wantPairs {
				t.Errorf("headers = %s, want %s", got, c.wantPairs)
			}
		})
	}
}

// hideViewFuncs takes sluice's per-request foreign functions away until
// the test ends, as on a host without them (Envoy).
func hideViewFuncs(t *testing.T) {
	saved := foreignViewFuncs
	foreignViewFuncs = func([]byte) func(*instance, []byte) ([]byte, abi.Status) { return nil }
	t.Cleanup(func() { foreignViewFuncs = saved })
}

// TestRustBatchedHeaderEdits: the Rust crate's add_map_values and
// replace_map_values edit the stream's real header map in order, through
// sluice_add_headers / sluice_replace_headers, and give the same map on a
// host without them (they are hidden here, as on Envoy: the crate falls
// back to the single hostcalls).
func TestRustBatchedHeaderEdits(t *testing.T) {
	const want = "x-wasm-1=1,x-wasm-2=2,x-wasm-3=3,x-wasm-4=4,x-wasm-5=5"
	for _, hidden := range []bool{false, true} {
		for _, op := range []string{"add5", "replace5"} {
			name := op
			if hidden {
				name += "-without-the-functions"
			}
			t.Run(name, func(t *testing.T) {
				if hidden {
					hideViewFuncs(t)
				}
				s, hs := hostcallStream(t, op)
				// One call of five headers a callback (hostcallStream's
				// count is divided by five): 20 batches, 100 fields.
				s.refill()
				if a, err := hs.OnRequestHeaders(false); a != Continue || err != nil {
					t.Fatal(a, err)
				}
				var got []string
				for i := range s.req.Len() {
					k, v := s.req.At(i)
					if strings.HasPrefix(string(k), "x-wasm-") {
						got = append(got, string(k)+"="+string(v))
					}
				}
				wantN := hostcallsPerCallback
				if op == "replace5" {
					wantN = 5 // each batch replaces the one before
				}
				if len(got) != wantN || strings.Join(got[:5], ",") != want {
					t.Errorf("%d x-wasm fields, first %v; want %d, first %s", len(got), got[:min(5, len(got))], wantN, want)
				}
			})
		}
	}
}
