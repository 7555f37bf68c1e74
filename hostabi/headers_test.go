package hostabi

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"
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

// FuzzHeaderMapHostcalls makes every header-map hostcall with arguments
// from the fuzzer: map types, pointers and lengths anywhere (past the end
// of memory, wrapping around), serialized maps that lie about their
// counts, an allocator that answers out-of-bounds addresses. The host must
// answer each with a status and never panic or break the instance: the
// callback returns without error.
func FuzzHeaderMapHostcalls(f *testing.F) {
	words := func(ws ...uint32) []byte {
		b := make([]byte, 256)
		for i, w := range ws {
			binary.LittleEndian.PutUint32(b[4*i:], w)
		}
		return b
	}
	// Argument words: call i at 20*i (word 5*i); the allocator's answer at 252.
	at := func(b []byte, word int, ws ...uint32) []byte {
		for i, w := range ws {
			binary.LittleEndian.PutUint32(b[4*(word+i):], w)
		}
		return b
	}
	const end = 65536
	f.Add([]byte{})
	f.Add(words())
	hostile := words()
	for i := range 35 {
		binary.LittleEndian.PutUint32(hostile[4*i:], []uint32{end - 2, 0xffffffff, end, 0x7fffffff, end - 4}[i%5])
	}
	f.Add(at(hostile, 63, end-8))
	// Plausible calls: key "host" at 512, value "v" at 520, out pointers
	// at 300 and 304, allocations at 1024.
	ok := append(words(), make([]byte, 1024)...)
	copy(ok[512:], "host\x00\x00\x00\x00v")
	at(ok, 0, 0, 300, 304)          // get pairs
	at(ok, 5, 0, 600, 30)           // set pairs from 600
	at(ok, 10, 0, 300)              // size
	at(ok, 15, 0, 512, 4, 300, 304) // get value
	at(ok, 20, 2, 512, 4, 520, 1)   // add
	at(ok, 25, 3, 512, 4, 520, 1)   // replace
	at(ok, 30, 0, 512, 4)           // remove
	at(ok, 63, 1024)                // allocator
	copy(ok[600:], "\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00a\x00b\x00")
	f.Add(bytes.Clone(ok))
	lying := bytes.Clone(ok)
	copy(lying[600:], "\xff\xff\xff\xff\xff\xff\xff\xff") // 2^32-1 pairs, 2^32-1-byte keys
	f.Add(lying)
	f.Add(at(bytes.Clone(ok), 63, 0xfffffff0)) // the allocator answers past the end
	f.Add(at(bytes.Clone(ok), 0, 99, 300, 304))
	f.Add(at(bytes.Clone(ok), 15, 6, 512, 0xffffffff, end-2, 304))

	// A generous deadline: fuzzing workers share the CPU, and this target
	// is about memory bounds, not time.
	p, err := testEngine.Load(context.Background(), PluginConfig{Name: "FuzzHeaderMapHostcalls", Wasm: headerFuzzGuest(),
		CallTimeout: 10 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	defer p.Close(context.Background())
	f.Fuzz(func(t *testing.T, mem []byte) {
		if err := runHeaderFuzz(p, mem, fuzzStream()); err != nil {
			t.Fatalf("the host failed the callback: %v", err)
		}
	})
	// The plausible seed does reach the maps: the fuzzer is not knocking
	// on a closed door.
	s := fuzzStream()
	if err := runHeaderFuzz(p, ok, s); err != nil {
		f.Fatal(err)
	}
	if got := s.pairs(RequestHeaders) + " | " + s.pairs(ResponseHeaders) + " | " + s.pairs(ResponseTrailers); got != "a=b | :status=200,host=v | host=v" {
		f.Errorf("after the plausible calls the maps are %q", got)
	}
}

func fuzzStream() *testStream {
	s := newTestStream("host", "example.com")
	s.set(ResponseHeaders, [2]string{":status", "200"})
	s.set(ResponseTrailers)
	return s
}

// runHeaderFuzz writes mem at the start of the guest's memory (its first
// 64KiB, zeros past mem) and runs proxy_on_request_headers on a new
// stream.
func runHeaderFuzz(p *Plugin, mem []byte, s *testStream) error {
	hs, err := p.NewHTTPStream(context.Background(), s)
	if err != nil {
		return err
	}
	defer hs.OnDone()
	page := make([]byte, 65536)
	copy(page, mem)
	hs.in.mu.Lock()
	hs.in.mem.Write(0, page)
	hs.in.mu.Unlock()
	_, err = hs.OnRequestHeaders(false)
	return err
}
