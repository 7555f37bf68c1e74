package hostabi

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestLogTimeAndLevel(t *testing.T) {
	p, _, _ := runHeaders(t, `request_headers: loglevel | time | log 0 trace-line | log 3 warn-line | status`, newTestStream())
	// The test logger keeps debug, so the guest is told "debug".
	wantLogs(t, p.Name(), "request_headers loglevel: status=0 level=1", "request_headers time: status=0 nonzero=true",
		"trace-line", "warn-line", "request_headers status: status=0 code=0 ")
}

// TestBadPointers: pointers outside linear memory are InvalidMemoryAccess
// and cost nothing: the same instance serves the next stream.
func TestBadPointers(t *testing.T) {
	p, _, _ := runHeaders(t, "request_headers: badptr", newTestStream())
	wantLogs(t, p.Name(), "request_headers badptr: status=6 status=6 status=6 status=6")
	hs, err := p.NewHTTPStream(t.Context(), newTestStream())
	if err != nil {
		t.Fatal(err)
	}
	defer hs.OnDone()
	if _, err := hs.OnRequestHeaders(true); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Failures != 0 {
		t.Errorf("failures = %d", st.Failures)
	}
}

// TestLogFloodStopsAtDeadline: a callback that calls proxy_log in an
// endless loop is stopped near its deadline, and what it may write is
// bounded per callback; the rest is counted as dropped.
func TestLogFloodStopsAtDeadline(t *testing.T) {
	p := overrun(t, floodGuest(), 100*time.Millisecond)
	defer p.Close(context.Background())
	lines, bytes := 0, 0
	for _, l := range logsOf(p.Name()) {
		if strings.HasPrefix(l, "flood: ") {
			lines++
			bytes += len(l)
		}
	}
	t.Logf("the flood wrote %d lines, %d bytes", lines, bytes)
	if bytes > 1<<20 {
		t.Errorf("one callback wrote %d bytes of log", bytes)
	}
	if n := droppedLogLines(p.Name()); n == 0 {
		t.Error("no dropped log lines counted")
	}
	waitLog(t, p.Name(), "wasm callback logged past its limit; the rest was dropped")
}

func droppedLogLines(plugin string) int64 {
	for _, m := range testMetrics.Snapshot() {
		if m.Name == "wasm_log_lines_dropped_total_plugin="+plugin {
			return m.Value
		}
	}
	return 0
}
