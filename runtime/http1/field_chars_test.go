package http1

import (
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// TestHasCTLString: the check of sluice's own reply text refuses a
// byte exactly when stream.IsCTL does (stream.HasCTL's test covers the
// class), every byte value among clean text.
func TestHasCTLString(t *testing.T) {
	for c := range 256 {
		s := string([]byte{'a', byte(c), 'b'})
		if got, want := hasCTLString(s), stream.IsCTL(byte(c)); got != want {
			t.Fatalf("%q: hasCTLString %v, want %v", s, got, want)
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
