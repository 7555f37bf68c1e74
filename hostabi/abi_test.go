package hostabi

import (
	"context"
	"testing"
	"time"
)

// TestABI010 runs a 0.1.0 guest: headers callbacks get two arguments, a
// missing header is Ok and empty, configuration comes from
// proxy_get_configuration, memory from malloc, and continue_request
// resumes a paused stream.
func TestABI010(t *testing.T) {
	p := load(t, "abi010", PluginConfig{PluginConfig: []byte("pause")})
	if st := p.Stats(); st.ABI != "0.1.0" {
		t.Errorf("ABI = %q", st.ABI)
	}
	s := newTestStream()
	hs, err := p.NewHTTPStream(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.OnDone()
	a, err := hs.OnRequestHeaders(true)
	if err != nil || a != Pause {
		t.Fatalf("request headers: %v %v", a, err)
	}
	select {
	case d := <-s.resumed:
		if d != StreamRequest {
			t.Errorf("resumed %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("continue_request did not resume")
	}
	s.set(ResponseHeaders, [2]string{":status", "200"})
	if a, err := hs.OnResponseHeaders(false); err != nil || a != Continue {
		t.Fatalf("response headers: %v %v", a, err)
	}
	wantLogs(t, p.Name(), "configure 0 pause", "request_headers n=4 missing=0 clear=0",
		"tick continue=0", "response_headers n=1 continue=0")
}
