package hostabi

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHTTPCallResumesPausedStream(t *testing.T) {
	testCaller.addCluster(t, "authz-"+t.Name(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Trailer")
		w.Header().Set("X-Echo-Path", r.URL.Path)
		fmt.Fprintf(w, "got %s %s", r.Method, b)
		w.Header().Set("X-Trailer", "done")
	}))
	s := newTestStream()
	script := fmt.Sprintf("request_headers: http_call authz-%s :method=POST,:path=/check,:authority=authz,x-k=v payload 1000 | ret 1\n"+
		"http_call_response: hdr_get 6 x-echo-path | hdr_get 6 :status | buf_get 4 0 100 | hdr_pairs 7 | effective | continue 0\n", t.Name())
	p, _, a := runHeaders(t, script, s)
	if a != Pause {
		t.Fatalf("action = %v", a)
	}
	select {
	case d := <-s.resumed:
		if d != StreamRequest {
			t.Errorf("resumed %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("http_call reply did not resume the stream; logs:\n%q", logsOf(p.Name()))
	}
	wantLogs(t, p.Name(), "request_headers http_call: status=0 id=1",
		"http_call_response hdr_get: status=0 /check", "http_call_response hdr_get: status=0 200",
		"http_call_response buf_get: status=0 got POST payload",
		"http_call_response hdr_pairs: status=0 x-trailer=done",
		"http_call_response continue: status=0")
	// The header count depends on net/http's reply headers; the rest must hold.
	found := false
	for _, l := range logsOf(p.Name()) {
		if strings.HasPrefix(l, "http_call_response root=true id=1 headers=") && strings.HasSuffix(l, " body=16 trailers=1") {
			found = true
		}
	}
	if !found {
		t.Errorf("no http_call_response callback line in %q", logsOf(p.Name()))
	}
}

func TestHTTPCallRefused(t *testing.T) {
	testCaller.addCluster(t, "known-"+t.Name(), http.NotFoundHandler())
	tests := []struct{ name, call string }{
		{"unknown cluster", "http_call nowhere :method=GET,:path=/,:authority=a - 100"},
		{"no path", fmt.Sprintf("http_call known-%s :method=GET,:authority=a - 100", t.Name())},
		{"no authority", fmt.Sprintf("http_call known-%s :method=GET,:path=/ - 100", t.Name())},
		{"no method", fmt.Sprintf("http_call known-%s :path=/,:authority=a - 100", t.Name())},
		{"negative timeout", fmt.Sprintf("http_call known-%s :method=GET,:path=/,:authority=a - -1", t.Name())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, _ := runHeaders(t, "request_headers: "+tt.call, newTestStream())
			wantLogs(t, p.Name(), "request_headers http_call: status=2 id=0")
		})
	}
	t.Run("grpc unknown cluster", func(t *testing.T) {
		// Envoy answers ParseFailure here, kept for ABI 0.1.x callers.
		p, _, _ := runHeaders(t, "request_headers: grpc_call nowhere a.B C x 100", newTestStream())
		wantLogs(t, p.Name(), "request_headers grpc_call: status=4 id=0")
	})
}

func TestHTTPCallFailureReportsNoHeaders(t *testing.T) {
	// A cluster whose server is gone: the call fails and the callback gets
	// zero headers, as Envoy reports a failed call.
	testCaller.addCluster(t, "dead-"+t.Name(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj, _ := w.(http.Hijacker)
		c, _, _ := hj.Hijack()
		c.Close()
	}))
	p, _, _ := runHeaders(t, fmt.Sprintf("request_headers: http_call dead-%s :method=GET,:path=/,:authority=a - 1000\n"+
		"http_call_response: hdr_pairs 6 | buf_get 4 0 10", t.Name()), newTestStream())
	waitLog(t, p.Name(), "http_call_response root=true id=1 headers=0 body=0 trailers=0")
	wantLogs(t, p.Name(), "http_call_response hdr_pairs: status=0 ", "http_call_response buf_get: status=1 ")
}

func TestGRPCCall(t *testing.T) {
	testCaller.addCluster(t, "grpc-"+t.Name(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/pkg.Svc/Do" || r.Header.Get("content-type") != "application/grpc" || len(b) < 5 {
			w.WriteHeader(400)
			return
		}
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		w.Header().Set("Content-Type", "application/grpc")
		msg := append([]byte("echo:"), b[5:]...)
		frame := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg)))
		w.Write(append(frame, msg...))
		w.Header().Set("Grpc-Status", "5")
		w.Header().Set("Grpc-Message", "not-found")
	}))
	p, _, _ := runHeaders(t, fmt.Sprintf("request_headers: grpc_call grpc-%s pkg.Svc Do ping 1000\n"+
		"grpc_receive: buf_get 5 0 100\ngrpc_close: status", t.Name()), newTestStream())
	waitLog(t, p.Name(), "grpc_close status: status=0 code=5 not-found")
	wantLogs(t, p.Name(), "request_headers grpc_call: status=0 id=1",
		"grpc_receive id=1 size=9", "grpc_receive buf_get: status=0 echo:ping", "grpc_trailing id=1 n=2", "grpc_close id=1 code=5")
}

func TestGRPCCancel(t *testing.T) {
	release := make(chan struct{})
	testCaller.addCluster(t, "slow-"+t.Name(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	p, _, _ := runHeaders(t, fmt.Sprintf("request_headers: grpc_call slow-%s a.B C x 5000 | grpc_cancel 1 | grpc_cancel 77", t.Name()), newTestStream())
	close(release)
	wantLogs(t, p.Name(), "request_headers grpc_cancel: status=0", "request_headers grpc_cancel: status=1")
	time.Sleep(50 * time.Millisecond)
	for _, l := range logsOf(p.Name()) {
		if len(l) > 5 && l[:5] == "grpc_" {
			t.Errorf("callback after cancel: %q", l)
		}
	}
}

// TestHTTPCallFromTickResumesTheRightStream: two streams pause; a tick
// dispatches an http_call from the root context; its reply names the first
// stream by id, and only that stream resumes.
func TestHTTPCallFromTickResumesTheRightStream(t *testing.T) {
	testCaller.addCluster(t, "c-"+t.Name(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	p := load(t, "rawabi", PluginConfig{Instances: 1, PluginConfig: []byte(fmt.Sprintf(
		"request_headers: ret 1 | tick 5\n"+
			"tick: tick 0 | http_call c-%s :method=GET,:path=/,:authority=a - 1000\n"+
			"http_call_response: effective 2 | continue 0\n", t.Name()))})
	a, b := newTestStream(), newTestStream()
	var streams []*HTTPStream
	for _, s := range []*testStream{a, b} {
		hs, err := p.NewHTTPStream(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		defer hs.OnDone()
		streams = append(streams, hs)
		if act, err := hs.OnRequestHeaders(true); err != nil || act != Pause {
			t.Fatalf("%v %v", act, err)
		}
	}
	if streams[0].ID() != 2 || streams[1].ID() != 3 {
		t.Fatalf("stream ids %d %d: the script assumes 2 and 3", streams[0].ID(), streams[1].ID())
	}
	select {
	case <-a.resumed:
	case <-time.After(5 * time.Second):
		t.Fatalf("first stream not resumed; logs %q", logsOf(p.Name()))
	}
	select {
	case <-b.resumed:
		t.Error("the other stream was resumed too")
	case <-time.After(50 * time.Millisecond):
	}
	wantLogs(t, p.Name(), "tick http_call: status=0 id=1", "http_call_response effective: status=0")
}
