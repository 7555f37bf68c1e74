package proxy

import (
	"fmt"
	"regexp"
	"testing"
)

// TestFormatRequestID: a request id is a version 4 UUID in lower-case
// hex, and the digit table holds each byte's two digits.
func TestFormatRequestID(t *testing.T) {
	for c := range 256 {
		if got, want := string(hexPairs[c][:]), fmt.Sprintf("%02x", c); got != want {
			t.Fatalf("hexPairs[%#x] = %q, want %q", c, got, want)
		}
	}
	uuid4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		var out [36]byte
		formatRequestID(&out)
		id := string(out[:])
		if !uuid4.MatchString(id) {
			t.Fatalf("request id %q is not a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("request id %q made twice", id)
		}
		seen[id] = true
	}
}
