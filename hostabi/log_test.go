package hostabi

import "testing"

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
