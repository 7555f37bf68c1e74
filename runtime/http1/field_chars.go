package http1

import "encoding/binary"

// The byte classes of header fields (RFC 9110 section 5), checked on
// every byte of every head that goes through: by table and eight bytes
// at a time, where a byte-by-byte test of ranges cost the codec a third
// of its instructions a request.

// tokenLower maps a token character (tchar, RFC 9110 section 5.6.2) to
// its lower-case form and every other byte to 0: the one table of the
// token class (isTchar reads it too).
var tokenLower = func() (t [256]byte) {
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c)
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = byte(c)
		t[c-'a'+'A'] = byte(c)
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = byte(c)
	}
	return t
}()

// validToken says whether name is a non-empty token.
func validToken(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if tokenLower[c] == 0 {
			return false
		}
	}
	return true
}

// isCTL is a byte a field value may not carry: a control character other
// than HTAB, or DEL (obs-text, 0x80 and above, is allowed).
func isCTL(c byte) bool { return (c < ' ' && c != '\t') || c == 0x7f }

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// ctl is isCTL as a table.
var ctl = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = isCTL(byte(c))
	}
	return t
}()

// hasCTL says whether v holds a byte isCTL refuses.
func hasCTL(v []byte) bool {
	n := len(v)
	if n < 8 {
		for _, c := range v {
			if ctl[c] {
				return true
			}
		}
		return false
	}
	// Whole words, the last one ending at v's end (it may overlap the
	// one before: a byte looked at twice is no harm).
	for i := 0; ; i += 8 {
		if i > n-8 {
			i = n - 8
		}
		if wordHasCTL(binary.LittleEndian.Uint64(v[i:])) {
			for _, c := range v[i : i+8] {
				if ctl[c] {
					return true
				}
			}
		}
		if i == n-8 {
			return false
		}
	}
}

// wordHasCTL says whether a byte of w may be one isCTL refuses: a byte
// below 0x20 sets its high bit in below, a byte of 0x7f in del (exactly:
// no borrow starts without such a byte, and bytes of 0x80 and above are
// masked out). HTAB is below 0x20 too, so a word with one is looked at
// byte by byte.
func wordHasCTL(w uint64) bool {
	below := (w - 0x20*ones) &^ w & highs
	d := w ^ 0x7f*ones
	del := (d - ones) &^ d & highs
	return below|del != 0
}

// hasCTLString is hasCTL for text held as a string (sluice's own
// replies, not the proxied heads).
func hasCTLString(s string) bool {
	for i := 0; i < len(s); i++ {
		if isCTL(s[i]) {
			return true
		}
	}
	return false
}

// hostChar: the bytes a Host value or an authority may hold (validHost).
var hostChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~!$&'()*+,;=:[]%" {
		t[c] = true
	}
	return t
}()
