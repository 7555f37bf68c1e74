package mesh

import (
	"encoding/hex"
	"math/rand/v2"
	"strings"
)

// W3C Trace Context (https://www.w3.org/TR/trace-context/): a sidecar is
// a hop, so it forwards the trace id and flags and puts its own span id in
// parent-id; a request without a valid traceparent starts a new trace.

// NextTraceparent returns the traceparent to send on, and whether the
// trace was (re)started here, in which case tracestate, which belongs to
// the old trace, must be dropped.
func NextTraceparent(in string) (out string, started bool) {
	// "00-" trace id "-" span id "-" flags: 55 bytes, built in place.
	var b [55]byte
	copy(b[:], "00-")
	traceID, flags, ok := parseTraceparent(in)
	if ok {
		copy(b[3:35], traceID)
		copy(b[53:], flags)
	} else {
		putRandomHex(b[3:35])
		copy(b[53:], "01") // sampled: the hop that starts a trace records it
		started = true
	}
	b[35], b[52] = '-', '-'
	putRandomHex(b[36:52])
	return string(b[:]), started
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
func parseTraceparent(s string) (traceID, flags string, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) < 55 {
		return "", "", false
	}
	version := s[0:2]
	if !isLowerHex(version) || version == "ff" || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return "", "", false
	}
	if version == "00" && len(s) != 55 || version != "00" && len(s) > 55 && s[55] != '-' {
		return "", "", false
	}
	traceID, parent, flags := s[3:35], s[36:52], s[53:55]
	if !isLowerHex(traceID) || !isLowerHex(parent) || !isLowerHex(flags) || allZero(traceID) || allZero(parent) {
		return "", "", false
	}
	return traceID, flags, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool { return strings.Trim(s, "0") == "" }

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
