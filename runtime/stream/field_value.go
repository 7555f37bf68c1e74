package stream

import "encoding/binary"

// A field value's byte class (RFC 9110 section 5.5): the codecs check
// every value of every head that goes through with it, and the proxy the
// values it adds (AddClean), by table and eight bytes at a time, where a
// byte-by-byte test of ranges cost the HTTP/1.1 codec a third of its
// instructions a request.

// IsCTL is a byte a field value may not carry: a control character other
// than HTAB, or DEL (obs-text, 0x80 and above, is allowed).
func IsCTL(c byte) bool { return (c < ' ' && c != '\t') || c == 0x7f }

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// ctl is IsCTL as a table.
var ctl = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = IsCTL(byte(c))
	}
	return t
}()

// HasCTL says whether v holds a byte IsCTL refuses.
func HasCTL(v []byte) bool {
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
		if CTLMask(binary.LittleEndian.Uint64(w))|CTLMask(binary.LittleEndian.Uint64(w[8:]))|
			CTLMask(binary.LittleEndian.Uint64(w[16:]))|CTLMask(binary.LittleEndian.Uint64(w[24:])) != 0 && hasCTLBytes(w) {
			return true
		}
	}
	// The rest (under four words): its whole words and the word ending
	// at v's end (which may overlap the one before, or the last block:
	// a byte looked at twice is no harm), their masks ORed as above.
	from := min(i, n-8)
	m := CTLMask(binary.LittleEndian.Uint64(v[n-8:]))
	for ; i+8 <= n; i += 8 {
		m |= CTLMask(binary.LittleEndian.Uint64(v[i : i+8 : i+8]))
	}
	return m != 0 && hasCTLBytes(v[from:])
}

// hasCTLBytes is HasCTL byte by byte: for short values, and for the
// words whose mask is set (a HTAB sets it too).
func hasCTLBytes(v []byte) bool {
	for _, c := range v {
		if ctl[c] {
			return true
		}
	}
	return false
}

// CTLMask has the high bit of each byte of w set where the byte may be
// one IsCTL refuses, and no other bit: exactly the bytes below 0x20
// (HTAB among them) and DEL. On a byte's low seven bits a: a+0x60 stays
// below 0x80 exactly when a < 0x20, and a+1 reaches 0x80 exactly when
// a == 0x7f; neither carries into the next byte. Bytes of 0x80 and above
// (obs-text) are masked out by w's own high bit. A word with a HTAB is
// looked at byte by byte.
func CTLMask(w uint64) uint64 {
	a := w &^ highs
	return (^(a + 0x60*ones) | (a + ones)) &^ w & highs
}
