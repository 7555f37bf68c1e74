package hostabi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestLocalResponse(t *testing.T) {
	s := newTestStream()
	p, hs, a := runHeaders(t, `request_headers: local 403 denied\sby\swasm policy x-why=test,x-b=2 7 | local 500 again x -1`, s)
	if a != Pause {
		t.Errorf("action = %v, want Pause after a local reply", a)
	}
	wantLogs(t, p.Name(), "request_headers local: status=0")
	if len(s.local) != 1 {
		t.Fatalf("local replies = %+v, want exactly one", s.local)
	}
	r := s.local[0]
	if r.Status != 403 || string(r.Body) != "denied by wasm" || r.Details != "policy" || r.GRPCStatus != 7 ||
		len(r.Headers) != 2 || r.Headers[0] != [2]string{"x-why", "test"} {
		t.Errorf("local reply = %+v", r)
	}
	// Later callbacks still run (the proxy decides whether to call them).
	if err := hs.OnLog(); err != nil {
		t.Fatal(err)
	}
}

func TestLocalResponseBadStatus(t *testing.T) {
	s := newTestStream()
	p, _, _ := runHeaders(t, "request_headers: local 42 x - - -1", s)
	wantLogs(t, p.Name(), "request_headers local: status=2")
	if len(s.local) != 0 {
		t.Errorf("local replies = %+v", s.local)
	}
}

func TestContinueInsideOwnCallback(t *testing.T) {
	s := newTestStream()
	_, _, a := runHeaders(t, "request_headers: ret 1 | continue 0", s)
	if a != Continue {
		t.Errorf("action = %v: continue_stream in the paused callback should win", a)
	}
	select {
	case d := <-s.resumed:
		t.Errorf("Resume(%v) called for a stream that never paused", d)
	default:
	}
}

func TestCloseStream(t *testing.T) {
	s := newTestStream()
	p, _, a := runHeaders(t, "request_headers: close 0 | close 2", s)
	if a != Pause {
		t.Errorf("action = %v", a)
	}
	wantLogs(t, p.Name(), "request_headers close: status=0", "request_headers close: status=2")
	if len(s.closed) != 1 || s.closed[0] != StreamRequest {
		t.Errorf("closed = %v", s.closed)
	}
}

func TestTickResumesPausedStream(t *testing.T) {
	s := newTestStream()
	p, _, a := runHeaders(t, "request_headers: tick 10 | ret 1\ntick: effective | continue 0 | tick 0", s)
	if a != Pause {
		t.Fatalf("action = %v", a)
	}
	select {
	case d := <-s.resumed:
		if d != StreamRequest {
			t.Errorf("resumed %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tick did not resume the stream")
	}
	wantLogs(t, p.Name(), "request_headers tick: status=0", "tick effective: status=0", "tick continue: status=0")
}

func TestEffectiveContextChecks(t *testing.T) {
	s := newTestStream()
	p, _, _ := runHeaders(t, "request_headers: effective 999 | effective root | hdr_get 0 :path | continue 0 | done | effective", s)
	// From the root context a stream's maps do not exist and there is
	// nothing to continue; proxy_done has no pending done to acknowledge
	// (NotFound, as Envoy).
	wantLogs(t, p.Name(), "request_headers effective: status=2", "request_headers effective: status=0",
		"request_headers hdr_get: status=2 ", "request_headers continue: status=1", "request_headers done: status=1")
}

func TestStreamCallbackOrder(t *testing.T) {
	s := newTestStream()
	p := load(t, "rawabi", PluginConfig{PluginConfig: []byte("context_create: log 2 created\nlog: log 2 logged\ndelete: log 2 deleted")})
	hs, err := p.NewHTTPStream(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if err := hs.OnLog(); err != nil {
		t.Fatal(err)
	}
	if err := hs.OnDone(); err != nil {
		t.Fatal(err)
	}
	if err := hs.OnDone(); err != nil {
		t.Fatal("second OnDone:", err)
	}
	if _, err := hs.OnRequestHeaders(true); err == nil {
		t.Error("callback after OnDone succeeded")
	}
	var seq []string
	for _, l := range logsOf(p.Name()) {
		switch l {
		case "created", "logged", "deleted":
			seq = append(seq, l)
		}
		if len(l) > 5 && l[:5] == "done " {
			seq = append(seq, "done")
		}
	}
	if got := len(seq); got != 4 || seq[0] != "created" || seq[1] != "logged" || seq[2] != "done" || seq[3] != "deleted" {
		t.Errorf("order = %v", seq)
	}
	if st := p.Stats(); st.ActiveStreams != 0 {
		t.Errorf("active streams = %d", st.ActiveStreams)
	}
}

// TestBodyAfterPausedHeaders: a filter that pauses in request headers still
// gets the body callbacks (unlike Envoy, proxy-wasm-cpp-host#143), so it
// can decide on headers and body together and continue from there.
func TestBodyAfterPausedHeaders(t *testing.T) {
	s := newTestStream()
	p, hs, a := runHeaders(t, "request_headers: ret 1\nrequest_body: buf_get 0 0 100 | hdr_add 0 x-seen-body yes | continue 0 | ret 0", s)
	if a != Pause {
		t.Fatalf("headers action = %v", a)
	}
	body, a, err := hs.OnRequestBody([]byte("payload"), true)
	if err != nil || a != Continue || string(body) != "payload" {
		t.Fatalf("body: %q %v %v", body, a, err)
	}
	wantLogs(t, p.Name(), "request_body buf_get: status=0 payload", "request_body continue: status=0")
	if got := s.pairs(RequestHeaders); !strings.Contains(got, "x-seen-body=yes") {
		t.Errorf("headers still editable while paused: %s", got)
	}
}

// TestHeaderActions maps Envoy's FilterHeadersStatus values.
func TestHeaderActions(t *testing.T) {
	for ret, want := range []Action{Continue, Pause, Continue, Pause, Pause} {
		t.Run(fmt.Sprint(ret), func(t *testing.T) {
			_, _, a := runHeaders(t, fmt.Sprintf("request_headers: ret %d", ret), newTestStream())
			if a != want {
				t.Errorf("ret %d: %v, want %v", ret, a, want)
			}
		})
	}
}

// TestSettledAfterQueuedActions: an action a hostcall queued for a
// stream (a tick's continue_stream) runs after the instance's lock, on
// the tick's goroutine, and may still hold the stream's host when the
// stream's OnDone has returned: the stream is Settled (its host free for
// another stream) only once that action has run.
func TestSettledAfterQueuedActions(t *testing.T) {
	s := newTestStream()
	s.resumed = make(chan StreamType) // the queued Resume waits for the test
	_, hs, a := runHeaders(t, "request_headers: tick 10 | ret 1\ntick: effective | continue 0 | tick 0", s)
	if a != Pause {
		t.Fatalf("action = %v", a)
	}
	for deadline := time.Now().Add(5 * time.Second); hs.queued.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the tick queued no Resume")
		}
	}
	if hs.Settled() {
		t.Error("Settled before OnDone")
	}
	if err := hs.OnDone(); err != nil {
		t.Fatal(err)
	}
	if hs.Settled() {
		t.Error("Settled after OnDone while the queued Resume has not run")
	}
	<-s.resumed
	for deadline := time.Now().Add(5 * time.Second); !hs.Settled(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not Settled once the queued Resume ran")
		}
	}
}
