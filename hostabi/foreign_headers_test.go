package hostabi

import (
	"encoding/binary"
	"strings"
	"testing"
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
