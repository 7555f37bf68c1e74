package hostabi

import (
	"context"
	"testing"
)

// runHeaders loads rawabi with script, runs one request through request
// headers and returns the stream's host and the action.
func runHeaders(t *testing.T, script string, s *testStream) (*Plugin, *HTTPStream, Action) {
	t.Helper()
	p := load(t, "rawabi", PluginConfig{PluginConfig: []byte(script), VMID: "vm-" + t.Name()})
	hs, err := p.NewHTTPStream(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.OnDone() })
	a, err := hs.OnRequestHeaders(false)
	if err != nil {
		t.Fatal(err)
	}
	return p, hs, a
}

func TestHeaderMaps(t *testing.T) {
	tests := []struct {
		name, script string
		wantLogs     []string
		wantPairs    string
	}{
		{
			name:      "get present and pseudo; first of several values, as Envoy",
			script:    "request_headers: hdr_get 0 :path | hdr_get 0 X-Multi",
			wantLogs:  []string{"request_headers hdr_get: status=0 /p?q=1", "request_headers hdr_get: status=0 a"},
			wantPairs: ":method=GET,:path=/p?q=1,:authority=example.com,:scheme=http,x-multi=a,x-multi=b",
		},
		{
			name:     "get missing is NotFound on 0.2.x",
			script:   "request_headers: hdr_get 0 nope",
			wantLogs: []string{"request_headers hdr_get: status=1 "},
		},
		{
			name:      "add replace remove",
			script:    "request_headers: hdr_add 0 x-new v1 | hdr_replace 0 x-multi c | hdr_remove 0 :scheme | hdr_remove 0 absent",
			wantLogs:  []string{"request_headers hdr_add: status=0", "request_headers hdr_replace: status=0", "request_headers hdr_remove: status=0"},
			wantPairs: ":method=GET,:path=/p?q=1,:authority=example.com,x-new=v1,x-multi=c",
		},
		{
			name:   "pairs and size",
			script: "request_headers: hdr_pairs 0 | hdr_size 0",
			wantLogs: []string{
				"request_headers hdr_pairs: status=0 :method=GET,:path=/p?q=1,:authority=example.com,:scheme=http,x-multi=a,x-multi=b",
				"request_headers hdr_size: status=0 size=69",
			},
		},
		{
			name:      "set pairs",
			script:    "request_headers: hdr_setpairs 0 :method=POST,:path=/x,a=1",
			wantLogs:  []string{"request_headers hdr_setpairs: status=0"},
			wantPairs: ":method=POST,:path=/x,a=1",
		},
		{
			// As Envoy: BadArgument, except that pairs read as empty.
			name:   "maps that do not exist yet",
			script: "request_headers: hdr_get 2 :status | hdr_pairs 3 | hdr_get 6 x | hdr_add 9 a b | hdr_size 7",
			wantLogs: []string{"request_headers hdr_get: status=2 ", "request_headers hdr_pairs: status=0 ", "request_headers hdr_add: status=2",
				"request_headers hdr_size: status=2 size=0"},
		},
		{
			name:     "callback is told the count and end of stream",
			script:   "request_headers: ret 0",
			wantLogs: []string{"request_headers n=6 eos=0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStream("x-multi", "a", "x-multi", "b")
			p, _, a := runHeaders(t, tt.script, s)
			if a != Continue {
				t.Errorf("action = %v", a)
			}
			wantLogs(t, p.Name(), tt.wantLogs...)
			if tt.wantPairs != "" {
				if got := s.pairs(RequestHeaders); got != tt.wantPairs {
					t.Errorf("headers = %s, want %s", got, tt.wantPairs)
				}
			}
		})
	}
}

func TestResponseHeadersAndTrailers(t *testing.T) {
	s := newTestStream()
	p := load(t, "rawabi", PluginConfig{PluginConfig: []byte(
		"response_headers: hdr_get 2 :status | hdr_add 2 x-resp yes\n" +
			"request_trailers: hdr_pairs 1\n" +
			"response_trailers: hdr_replace 3 grpc-status 7\n")})
	hs, err := p.NewHTTPStream(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.OnDone()
	s.set(RequestTrailers, [2]string{"x-t", "1"})
	if a, err := hs.OnRequestTrailers(); a != Continue || err != nil {
		t.Fatal(a, err)
	}
	s.set(ResponseHeaders, [2]string{":status", "200"})
	if a, err := hs.OnResponseHeaders(true); a != Continue || err != nil {
		t.Fatal(a, err)
	}
	s.set(ResponseTrailers, [2]string{"grpc-status", "0"})
	if a, err := hs.OnResponseTrailers(); a != Continue || err != nil {
		t.Fatal(a, err)
	}
	wantLogs(t, p.Name(), "request_trailers n=1", "request_trailers hdr_pairs: status=0 x-t=1",
		"response_headers n=1 eos=1", "response_headers hdr_get: status=0 200", "response_trailers n=1")
	if got := s.pairs(ResponseHeaders); got != ":status=200,x-resp=yes" {
		t.Errorf("response headers = %s", got)
	}
	if got := s.pairs(ResponseTrailers); got != "grpc-status=7" {
		t.Errorf("response trailers = %s", got)
	}
}
