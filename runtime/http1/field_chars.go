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
		return hasCTLBytes(v)
	}
	// Four words a turn, their masks ORed and tested once: a long value
	// (a bearer token of a few hundred bytes) costs about a third of
	// what a word a turn did, the loop's own work being most of that.
	i := 0
	for ; i+32 <= n; i += 32 {
		w := v[i : i+32 : i+32]
		if ctlMask(binary.LittleEndian.Uint64(w))|ctlMask(binary.LittleEndian.Uint64(w[8:]))|
			ctlMask(binary.LittleEndian.Uint64(w[16:]))|ctlMask(binary.LittleEndian.Uint64(w[24:])) != 0 && hasCTLBytes(w) {
			return true
		}
	}
	// The rest (under four words): its whole words and the word ending
	// at v's end (which may overlap the one before, or the last block:
	// a byte looked at twice is no harm), their masks ORed as above.
	from := min(i, n-8)
	m := ctlMask(binary.LittleEndian.Uint64(v[n-8:]))
	for ; i+8 <= n; i += 8 {
		m |= ctlMask(binary.LittleEndian.Uint64(v[i : i+8 : i+8]))
	}
	return m != 0 && hasCTLBytes(v[from:])
}

// hasCTLBytes is hasCTL byte by byte: for short values, and for the
// words whose mask is set (a HTAB sets it too).
func hasCTLBytes(v []byte) bool {
	for _, c := range v {
		if ctl[c] {
			return true
		}
	}
	return false
}

// ctlMask has the high bit of each byte of w set where the byte may be
// one isCTL refuses, and no other bit. On a byte's low seven bits a:
// a+0x60 stays below 0x80 exactly when a < 0x20, and a+1 reaches 0x80
// exactly when a == 0x7f; neither carries into the next byte. Bytes of
// 0x80 and above (obs-text) are masked out by w's own high bit. HTAB is
// below 0x20 too, so a word with one is looked at byte by byte.
func ctlMask(w uint64) uint64 {
	a := w &^ highs
	return (^(a + 0x60*ones) | (a + ones)) &^ w & highs
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
