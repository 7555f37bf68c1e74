package http1

import "github.com/sluice-proxy/sluice/runtime/stream"

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

// hasCTLString is stream.HasCTL for text held as a string (sluice's own
// replies, not the proxied heads).
func hasCTLString(s string) bool {
	for i := 0; i < len(s); i++ {
		if stream.IsCTL(s[i]) {
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
