package mesh

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// W3C Trace Context (https://www.w3.org/TR/trace-context/): a sidecar is
// a hop, so it forwards the trace id and flags and puts its own span id in
// parent-id; a request without a valid traceparent starts a new trace.

// NextTraceparent returns the traceparent to send on, and whether the
// trace was (re)started here, in which case tracestate, which belongs to
// the old trace, must be dropped.
func NextTraceparent(in string) (out string, started bool) {
	traceID, flags, ok := parseTraceparent(in)
	if !ok {
		traceID = randomHex(16)
		flags = "01" // sampled: the hop that starts a trace records it
		started = true
	}
	var b strings.Builder
	b.Grow(55)
	b.WriteString("00-")
	b.WriteString(traceID)
	b.WriteByte('-')
	b.WriteString(randomHex(8))
	b.WriteByte('-')
	b.WriteString(flags)
	return b.String(), started
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

// randomHex is n random bytes in hex, never all zero (invalid in W3C).
func randomHex(n int) string {
	b := make([]byte, n)
	for {
		rand.Read(b)
		for _, c := range b {
			if c != 0 {
				return hex.EncodeToString(b)
			}
		}
	}
}
