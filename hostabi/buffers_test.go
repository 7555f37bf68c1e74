package hostabi

import (
	"context"
	"testing"
)

func TestBodyBuffers(t *testing.T) {
	tests := []struct {
		name, script string
		chunk        string
		eos          bool
		wantBody     string
		wantAction   Action
		wantLogs     []string
	}{
		{name: "read", script: "request_body: buf_get 0 0 100 | buf_get 0 2 3 | buf_status 0",
			chunk: "hello world", eos: true, wantBody: "hello world", wantAction: Continue,
			wantLogs: []string{"request_body size=11 eos=1", "request_body buf_get: status=0 hello world",
				"request_body buf_get: status=0 llo", "request_body buf_status: status=0 size=11 flags=1"}},
		{name: "read past end", script: "request_body: buf_get 0 50 1",
			chunk: "abc", wantBody: "abc", // A start past the end reads nothing: Ok, as cpp-host (src/exports.cc).
			wantLogs: []string{"request_body buf_get: status=0 "}},
		{name: "replace whole", script: "request_body: buf_set 0 0 4294967295 replaced",
			chunk: "original", wantBody: "replaced"},
		{name: "prepend and append", script: "request_body: buf_set 0 0 0 << | buf_set 0 100 0 >>",
			chunk: "mid", wantBody: "<<mid>>"},
		{name: "replace range", script: "request_body: buf_set 0 1 2 XYZ",
			chunk: "abcd", wantBody: "aXYZd"},
		{name: "buffer", script: "request_body: ret 1", chunk: "part", wantBody: "part", wantAction: Buffer},
		{name: "no buffer pause", script: "request_body: ret 3", chunk: "part", wantBody: "part", wantAction: Pause},
		{name: "response body not in request phase", script: "request_body: buf_get 1 0 10 | buf_set 1 0 0 x",
			chunk: "a", wantBody: "a", wantLogs: []string{"request_body buf_get: status=1 ", "request_body buf_set: status=1"}},
		{name: "config buffers are read-only", script: "request_body: buf_set 7 0 0 x | buf_get 8 0 1",
			chunk: "a", wantBody: "a", wantLogs: []string{"request_body buf_set: status=2", "request_body buf_get: status=1 "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := load(t, "rawabi", PluginConfig{PluginConfig: []byte(tt.script)})
			hs, err := p.NewHTTPStream(context.Background(), newTestStream())
			if err != nil {
				t.Fatal(err)
			}
			defer hs.OnDone()
			body, a, err := hs.OnRequestBody([]byte(tt.chunk), tt.eos)
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != tt.wantBody || a != tt.wantAction {
				t.Errorf("got %q, %v; want %q, %v", body, a, tt.wantBody, tt.wantAction)
			}
			wantLogs(t, p.Name(), tt.wantLogs...)
		})
	}
}

func TestResponseBody(t *testing.T) {
	p := load(t, "rawabi", PluginConfig{PluginConfig: []byte("response_body: buf_get 1 0 10 | buf_set 1 0 10 new")})
	hs, err := p.NewHTTPStream(context.Background(), newTestStream())
	if err != nil {
		t.Fatal(err)
	}
	defer hs.OnDone()
	body, a, err := hs.OnResponseBody([]byte("old"), false)
	if err != nil || a != Continue || string(body) != "new" {
		t.Fatalf("got %q %v %v", body, a, err)
	}
	wantLogs(t, p.Name(), "response_body size=3 eos=0", "response_body buf_get: status=0 old")
}
