package mesh

import (
	"strings"
	"testing"
)

// next is nextTraceparent with a string result, for the tests.
func next(in string) (string, bool) {
	var b [traceparentLen]byte
	started := nextTraceparent(&b, in)
	return string(b[:]), started
}

func TestNextTraceparent(t *testing.T) {
	const in = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	out, started := next(in)
	if started || !strings.HasPrefix(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(out, "-01") ||
		out == in || TraceID(out) == "" {
		t.Fatalf("next traceparent after %q = %q, %v; want the trace id and flags kept, a new span id", in, out, started)
	}
	seen := map[string]bool{}
	for _, bad := range []string{"", "garbage", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		out, started := next(bad)
		if !started || TraceID(out) == "" || !strings.HasSuffix(out, "-01") || len(out) != 55 {
			t.Errorf("next traceparent after %q = %q, %v; want a new sampled trace", bad, out, started)
		}
		if seen[TraceID(out)] {
			t.Errorf("trace id %s twice", TraceID(out))
		}
		seen[TraceID(out)] = true
	}
	var b [traceparentLen]byte
	inb := []byte(in) // as the headers filter has it
	if n := testing.AllocsPerRun(100, func() { nextTraceparent(&b, inb) }); n > 0 {
		t.Errorf("nextTraceparent: %v allocations, want none (built in place)", n)
	}
}
