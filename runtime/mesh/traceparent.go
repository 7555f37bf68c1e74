package mesh

import (
	"encoding/hex"
	"math/rand/v2"
)

// W3C Trace Context (https://www.w3.org/TR/trace-context/): a sidecar is
// a hop, so it forwards the trace id and flags and puts its own span id in
// parent-id; a request without a valid traceparent starts a new trace.

// traceparentLen is a version 00 traceparent's length: "00-" trace id
// "-" span id "-" flags.
const traceparentLen = 55

// nextTraceparent writes into out the traceparent to send on after in
// (the headers filter's value, read as bytes: no string is made of it nor
// of the result), and says whether the trace was (re)started here, in
// which case tracestate, which belongs to the old trace, must be dropped.
func nextTraceparent[S ~string | ~[]byte](out *[traceparentLen]byte, in S) (started bool) {
	copy(out[:], "00-")
	traceID, flags, ok := parseTraceparent(in)
	if ok {
		copy(out[3:35], traceID)
		copy(out[53:], flags)
	} else {
		putRandomHex(out[3:35])
		copy(out[53:], "01") // sampled: the hop that starts a trace records it
		started = true
	}
	out[35], out[52] = '-', '-'
	putRandomHex(out[36:52])
	return started
}

// TraceID is the trace id of a valid traceparent ("" otherwise).
func TraceID(tp string) string {
	id, _, ok := parseTraceparent(tp)
	if !ok {
		return ""
	}
	return id
}

// parseTraceparent accepts version 00 exactly and, as the spec asks,
// later versions by their first four fields; version ff is invalid.
func parseTraceparent[S ~string | ~[]byte](s S) (traceID, flags S, ok bool) {
	s = trimSpace(s)
	if len(s) < traceparentLen {
		return traceID, flags, false
	}
	version := s[0:2]
	v00, vff := version[0] == '0' && version[1] == '0', version[0] == 'f' && version[1] == 'f'
	if !isLowerHex(version) || vff || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return traceID, flags, false
	}
	if v00 && len(s) != traceparentLen || !v00 && len(s) > traceparentLen && s[55] != '-' {
		return traceID, flags, false
	}
	traceID, parent, flags := s[3:35], s[36:52], s[53:55]
	if !isLowerHex(traceID) || !isLowerHex(parent) || !isLowerHex(flags) || allZero(traceID) || allZero(parent) {
		return traceID[:0], flags[:0], false
	}
	return traceID, flags, true
}

func isLowerHex[S ~string | ~[]byte](s S) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero[S ~string | ~[]byte](s S) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

// trimSpace drops the optional whitespace (space, tab) HTTP allows around
// a field value.
func trimSpace[S ~string | ~[]byte](s S) S {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// putRandomHex fills dst (16 or 32 bytes) with random lowercase hex,
// never all zero (invalid in W3C). Trace and span ids must be unique, not
// secret (W3C asks for randomness, not unpredictability), so the runtime's
// per-thread generator serves: no syscall, no allocation.
func putRandomHex(dst []byte) {
	var raw [16]byte
	n := len(dst) / 2
	for {
		hi, lo := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			raw[i], raw[8+i] = byte(hi>>(8*i)), byte(lo>>(8*i))
		}
		if !allZeroBytes(raw[:n]) {
			hex.Encode(dst, raw[:n])
			return
		}
	}
}

func allZeroBytes(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
