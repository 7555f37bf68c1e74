package stream

import (
	"bytes"
	"strings"
	"testing"
)

func fields(h *HeaderMap) string {
	var b strings.Builder
	for n, v := range h.All() {
		b.WriteString(string(n) + "=" + string(v) + ";")
	}
	return b.String()
}

func TestHeaderMap(t *testing.T) {
	var h HeaderMap
	h.Add("Content-Type", "text/plain")
	h.AddRaw([]byte("x-a"), []byte("1"))
	h.Add(Method, "GET")
	h.Add("X-A", "2")
	h.Add(Path, "/p")
	if got, want := fields(&h), ":method=GET;:path=/p;content-type=text/plain;x-a=1;x-a=2;"; got != want {
		t.Fatalf("order: got %s want %s", got, want)
	}
	if v, ok := h.Get("x-A"); !ok || string(v) != "1" {
		t.Fatalf("Get x-A = %q %v", v, ok)
	}
	var all []string
	for v := range h.Values("X-a") {
		all = append(all, string(v))
	}
	if strings.Join(all, ",") != "1,2" {
		t.Fatalf("Values = %v", all)
	}
	h.Set("x-a", "3")
	if got, want := fields(&h), ":method=GET;:path=/p;content-type=text/plain;x-a=3;"; got != want {
		t.Fatalf("Set: got %s want %s", got, want)
	}
	h.Del(Method)
	h.Add(Status, "200")
	if got, want := fields(&h), ":path=/p;:status=200;content-type=text/plain;x-a=3;"; got != want {
		t.Fatalf("Del pseudo: got %s want %s", got, want)
	}
	c := h.Clone()
	h.Reset()
	if h.Len() != 0 || h.Has("x-a") {
		t.Fatalf("Reset left %d fields", h.Len())
	}
	h.Add("x-b", "overwrites the arena")
	if got, want := fields(c), ":path=/p;:status=200;content-type=text/plain;x-a=3;"; got != want {
		t.Fatalf("clone changed by the original's reuse: %s", got)
	}
}

// A reused map does not allocate on the common path (what a codec does per
// request: reset, add fields, look some up, set and delete one).
func TestHeaderMapNoAllocs(t *testing.T) {
	var h HeaderMap
	name, value := []byte("host"), []byte("example.com")
	method, get := []byte(Method), []byte("GET")
	run := func() {
		h.Reset()
		h.AddRaw(method, get)
		for range 20 {
			h.AddRaw(name, value)
		}
		h.Get("Host")
		h.Set("x-request-id", "0123456789")
		h.Del("host")
		h.Add("via", "sluice")
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("allocs per run = %v, want 0", n)
	}
}

// The []byte methods behave as their string twins and keep no reference
// to their arguments (a Wasm guest's memory, reused after the call).
func TestHeaderMapBytes(t *testing.T) {
	var h HeaderMap
	name, value := []byte("X-Guest"), []byte("one")
	h.AddBytes(name, value)
	h.AddBytes([]byte(Path), []byte("/p"))
	h.AddBytes([]byte("x-guest"), []byte("two"))
	copy(name, "Y-Other")
	copy(value, "bad")
	if got, want := fields(&h), ":path=/p;x-guest=one;x-guest=two;"; got != want {
		t.Fatalf("AddBytes: got %s want %s", got, want)
	}
	if v, ok := h.GetBytes([]byte("X-GUEST")); !ok || string(v) != "one" {
		t.Fatalf("GetBytes = %q %v", v, ok)
	}
	if _, ok := h.GetBytes([]byte("x-gues")); ok {
		t.Fatal("GetBytes matched a prefix")
	}
	h.SetBytes([]byte("x-Guest"), []byte("three"))
	h.SetBytes([]byte("x-new"), []byte("n"))
	if got, want := fields(&h), ":path=/p;x-guest=three;x-new=n;"; got != want {
		t.Fatalf("SetBytes: got %s want %s", got, want)
	}
	h.DelBytes([]byte(":PATH"))
	h.DelBytes([]byte("absent"))
	if got, want := fields(&h), "x-guest=three;x-new=n;"; got != want {
		t.Fatalf("DelBytes: got %s want %s", got, want)
	}
	h.AddBytes([]byte(Method), []byte("GET"))
	if got, want := fields(&h), ":method=GET;x-guest=three;x-new=n;"; got != want {
		t.Fatalf("pseudo-header order: got %s want %s", got, want)
	}
}

// What a Wasm filter does per request through the []byte methods does not
// allocate once the map has grown.
func TestHeaderMapBytesNoAllocs(t *testing.T) {
	var h HeaderMap
	name, value := []byte("x-wasm"), []byte("1")
	ua := []byte("user-agent")
	run := func() {
		h.Reset()
		h.Add(Method, "GET")
		h.Add("user-agent", "curl")
		h.GetBytes(ua)
		h.AddBytes(name, value)
		h.SetBytes(name, value)
		h.DelBytes(name)
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("allocs per run = %v, want 0", n)
	}
}

// TestHasUpperMatchesByteByByte: the word-at-a-time test finds exactly
// the upper-case ASCII letters, every byte value at every position of
// names of every length up to three words, in a string and in bytes,
// around lower-case text, '@' and '[' (the bytes either side of A-Z) and
// bytes of 0x80 and above.
func TestHasUpperMatchesByteByByte(t *testing.T) {
	ref := func(v []byte) bool {
		for _, c := range v {
			if 'A' <= c && c <= 'Z' {
				return true
			}
		}
		return false
	}
	for _, fill := range []byte{'a', '@', '[', 0x80, 0xc1, 0xff, '-'} {
		for n := 0; n <= 24; n++ {
			v := bytes.Repeat([]byte{fill}, n)
			for pos := -1; pos < n; pos++ {
				for c := 0; c < 256; c++ {
					if pos >= 0 {
						v[pos] = byte(c)
					}
					if got, want := hasUpperBytes(v), ref(v); got != want {
						t.Fatalf("%q: hasUpperBytes %v, want %v", v, got, want)
					}
					if got, want := hasUpperString(string(v)), ref(v); got != want {
						t.Fatalf("%q: hasUpperString %v, want %v", v, got, want)
					}
					if pos < 0 {
						break
					}
				}
				if pos >= 0 {
					v[pos] = fill
				}
			}
		}
	}
}

// TestEqualFold: equal in any ASCII case, bytes beyond ASCII only equal
// to themselves; the exact comparison taken first changes no answer.
func TestEqualFold(t *testing.T) {
	ref := func(b []byte, s string) bool {
		if len(b) != len(s) {
			return false
		}
		for i := range b {
			if lower(b[i]) != lower(s[i]) {
				return false
			}
		}
		return true
	}
	for _, s := range []string{"", "keep-alive", "close", "upgrade", "x-forwarded-for", "\xc4\xb0", "a"} {
		for _, b := range []string{"", "keep-alive", "Keep-Alive", "KEEP-ALIVE", "keep-alivf", "keep-aliv", "close", "CLOSE", "clos", "Upgrade",
			"X-Forwarded-For", "\xc4\xb0", "\xe4\xb0", "A", "a", "b"} {
			if got, want := EqualFold([]byte(b), s), ref([]byte(b), s); got != want {
				t.Errorf("EqualFold(%q, %q) = %v, want %v", b, s, got, want)
			}
		}
	}
}

// TestDelZeroesRemoved: the places Del frees hold no references into the
// buffers the removed fields pointed at (a codec's read buffer, another
// arena), so that a map kept for reuse does not keep them alive.
func TestDelZeroesRemoved(t *testing.T) {
	var h HeaderMap
	buf := []byte("connectionkeep-alive")
	h.AddRaw([]byte("a"), []byte("1"))
	h.AddRaw(buf[:10], buf[10:])
	h.AddRaw([]byte("b"), []byte("2"))
	h.AddRaw(buf[:10], buf[10:])
	h.Del("connection")
	if h.Len() != 2 {
		t.Fatalf("%d fields after Del, want 2", h.Len())
	}
	for i, f := range h.fields[h.Len():cap(h.fields)] {
		if f.Name != nil || f.Value != nil {
			t.Fatalf("freed place %d still holds %q: %q", h.Len()+i, f.Name, f.Value)
		}
	}
}
