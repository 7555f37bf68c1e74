package http1

import (
	"strings"
	"testing"
)

// TestHasCTLStringMatchesByteByByte: hasCTLString (and stream.HasCTL,
// whose own test is stream's) finds exactly the bytes the byte-by-byte
// rule refuses, every byte value at every position.
func TestHasCTLStringMatchesByteByByte(t *testing.T) {
	ref := func(v []byte) bool {
		for _, c := range v {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return true
			}
		}
		return false
	}
	var lengths []int
	for n := 0; n <= 40; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 63, 64, 65, 71, 96, 103)
	for _, fill := range []byte{'a', '\t', 0x80, 0xff, ' ', '~'} {
		for _, n := range lengths {
			v := []byte(strings.Repeat(string(fill), n))
			for pos := 0; pos < n; pos++ {
				for c := 0; c < 256; c++ {
					v[pos] = byte(c)
					if got, want := hasCTLString(string(v)), ref(v); got != want {
						t.Fatalf("%q: hasCTLString %v, want %v", v, got, want)
					}
				}
				v[pos] = fill
			}
		}
	}
}

// TestFieldCharTables: the tables hold the RFC's classes: tokenLower a
// byte's lower-case form exactly for tchar, hostChar the reg-name,
// IP-literal and port characters of an authority.
func TestFieldCharTables(t *testing.T) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		wantToken := b < 0x80 && (b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0)
		if got := tokenLower[b] != 0; got != wantToken {
			t.Errorf("tokenLower[%#x] set %v, want %v", b, got, wantToken)
		}
		if wantToken && tokenLower[b] != strings.ToLower(string(b))[0] {
			t.Errorf("tokenLower[%#x] = %#x", b, tokenLower[b])
		}
		wantHost := b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || strings.IndexByte("-._~!$&'()*+,;=:[]%", b) >= 0
		if hostChar[b] != wantHost {
			t.Errorf("hostChar[%#x] = %v, want %v", b, hostChar[b], wantHost)
		}
	}
}
