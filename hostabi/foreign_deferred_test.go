package hostabi

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// deferRun is one run of sluice_defer_response_headers' argument: an op
// and its pairs.
type deferRun struct {
	op    uint32
	pairs []string
}

// deferArg encodes runs as sluice_defer_response_headers takes them,
// escaped for a rawabi script.
func deferArg(t *testing.T, runs ...deferRun) string {
	t.Helper()
	return scriptEscape(t, deferBytes(runs...))
}

func deferBytes(runs ...deferRun) []byte {
	var b []byte
	for _, r := range runs {
		b = binary.LittleEndian.AppendUint32(b, r.op)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(r.pairs)/2))
		for i := 0; i+1 < len(r.pairs); i += 2 {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(r.pairs[i])))
			b = binary.LittleEndian.AppendUint32(b, uint32(len(r.pairs[i+1])))
		}
		for _, p := range r.pairs {
			b = append(append(b, p...), 0)
		}
	}
	return b
}

const (
	declareDeferred = "configure: ffi sluice_defer_response_headers\n"
	// skipResponseHeaders is sluice_skip_callbacks with bit 3 alone.
	skipResponseHeaders = "configure: ffi sluice_skip_callbacks \x08\\0\\0\\0\n"
)

// TestDeferResponseHeaders: sluice_defer_response_headers keeps a
// stream's edits and applies them at its response headers, in the order
// given, each as the single hostcall would, before the guest's own
// callback; its statuses for a root context, an undeclared plugin, runs
// that do not decode, the byte cap and a call after the response headers,
// each keeping nothing of the call.
func TestDeferResponseHeaders(t *testing.T) {
	const upstream = ":status=200,x-b=old,x-up=1"
	big := strings.Repeat("v", 9000)
	for _, c := range []struct {
		name, script string
		// wantReq is the status of the stream's calls, wantCfg the
		// configure call's (both as rawabi logs them).
		wantCfg, wantReq, wantResp string
		// wantPairs: the response headers after OnResponseHeaders.
		wantPairs string
	}{
		{
			name: "applied in order, each as its hostcall, before the guest's callback",
			script: declareDeferred +
				"request_headers: ffi sluice_defer_response_headers " +
				deferArg(t, deferRun{deferAdd, []string{"x-a", "1"}}, deferRun{deferReplace, []string{"x-b", "2", "x-up", "9"}}) +
				" | ffi sluice_defer_response_headers " + deferArg(t, deferRun{deferAdd, []string{"x-a", "3"}}, deferRun{deferReplace, nil}) +
				"\nresponse_headers: hdr_replace 2 x-a guest",
			wantCfg: "status=0", wantReq: "status=0",
			wantPairs: ":status=200,x-b=2,x-up=9,x-a=guest",
		},
		{
			name: "the guest's callback sees them",
			script: declareDeferred +
				"request_headers: ffi sluice_defer_response_headers " + deferArg(t, deferRun{deferAdd, []string{"vary", "Origin"}}) +
				"\nresponse_headers: hdr_add 2 vary x-guest",
			wantCfg: "status=0", wantReq: "status=0",
			wantPairs: upstream + ",vary=Origin,vary=x-guest",
		},
		{
			name:    "a plugin that did not declare",
			script:  "request_headers: ffi sluice_defer_response_headers " + deferArg(t, deferRun{deferAdd, []string{"x-a", "1"}}),
			wantReq: "status=2", wantPairs: upstream,
		},
		{
			name:    "a root context with an argument",
			script:  "configure: ffi sluice_defer_response_headers " + deferArg(t, deferRun{deferAdd, []string{"x-a", "1"}}),
			wantCfg: "status=2", wantPairs: upstream,
		},
		{
			name: "an unknown op",
			script: declareDeferred + "request_headers: ffi sluice_defer_response_headers " +
				deferArg(t, deferRun{deferAdd, []string{"x-a", "1"}}, deferRun{7, []string{"x-c", "1"}}),
			wantCfg: "status=0", wantReq: "status=3", wantPairs: upstream,
		},
		{
			name: "pairs cut short",
			script: declareDeferred + "request_headers: ffi sluice_defer_response_headers " +
				strings.TrimSuffix(deferArg(t, deferRun{deferAdd, []string{"x-a", "1", "x-b", "2"}}), "2\x00"),
			wantCfg: "status=0", wantReq: "status=3", wantPairs: upstream,
		},
		{
			name: "an op without its count",
			script: declareDeferred + "request_headers: ffi sluice_defer_response_headers " +
				deferArg(t, deferRun{deferAdd, []string{"x-a", "1"}}) + "\x01\\0\\0\\0",
			wantCfg: "status=0", wantReq: "status=3", wantPairs: upstream,
		},
		{
			name: "past the cap: the first call is kept, the second refused",
			script: declareDeferred + "request_headers: ffi sluice_defer_response_headers " +
				deferArg(t, deferRun{deferAdd, []string{"x-a", big}}) + " | log 2 second | ffi sluice_defer_response_headers " +
				deferArg(t, deferRun{deferAdd, []string{"x-b", big}}),
			wantCfg: "status=0", wantReq: "status=9", wantPairs: upstream + ",x-a=" + big,
		},
		{
			name: "after the response headers",
			script: declareDeferred +
				"response_headers: ffi sluice_defer_response_headers " + deferArg(t, deferRun{deferAdd, []string{"x-a", "1"}}),
			wantCfg: "status=0", wantResp: "status=2", wantPairs: upstream,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newTestStream()
			s.set(ResponseHeaders, [2]string{":status", "200"}, [2]string{"x-b", "old"}, [2]string{"x-up", "1"})
			p, hs, _ := runHeaders(t, c.script, s)
			if c.wantCfg != "" {
				wantLogs(t, p.Name(), `configure ffi: `+c.wantCfg+` len=0 ""`)
			}
			if c.wantReq != "" {
				wantLogs(t, p.Name(), `request_headers ffi: `+c.wantReq+` len=0 ""`)
			}
			if a, err := hs.OnResponseHeaders(false); a != Continue || err != nil {
				t.Fatal(a, err)
			}
			if c.wantResp != "" {
				wantLogs(t, p.Name(), `response_headers ffi: `+c.wantResp+` len=0 ""`)
			}
			if got := s.pairs(ResponseHeaders); got != c.wantPairs {
				t.Errorf("response headers = %.200s, want %.200s", got, c.wantPairs)
			}
		})
	}
}

// TestDeferredEditsWithSkippedCallback: a plugin that declares and skips
// proxy_on_response_headers still gets its deferred edits applied there
// without entering the guest, and its streams report the callback as not
// skipped (the proxy must call it). Without the declaration the callback
// stays skipped.
func TestDeferredEditsWithSkippedCallback(t *testing.T) {
	for _, declared := range []bool{true, false} {
		name := "declared"
		if !declared {
			name = "not declared"
		}
		t.Run(name, func(t *testing.T) {
			script := skipResponseHeaders + "request_headers: ffi sluice_defer_response_headers " +
				deferArg(t, deferRun{deferReplace, []string{"x-ratelimit-remaining", "4"}}) +
				"\nresponse_headers: log 2 guest entered"
			if declared {
				script = declareDeferred + script
			}
			s := newTestStream()
			s.set(ResponseHeaders, [2]string{":status", "200"})
			p, hs, _ := runHeaders(t, script, s)
			const bit = 1 << 3 // on_response_headers
			if got := hs.SkippedCallbacks()&bit != 0; got == declared {
				t.Errorf("SkippedCallbacks() = %#x: response headers skipped %v, want %v", hs.SkippedCallbacks(), got, !declared)
			}
			if a, err := hs.OnResponseHeaders(true); a != Continue || err != nil {
				t.Fatal(a, err)
			}
			if hasLog(p.Name(), "guest entered") {
				t.Error("the skipped callback entered the guest")
			}
			want := ":status=200"
			if declared {
				want += ",x-ratelimit-remaining=4"
			}
			if got := s.pairs(ResponseHeaders); got != want {
				t.Errorf("response headers = %s, want %s", got, want)
			}
		})
	}
}

// TestDeferredEditsKeptPerStream: streams of one instance keep their own
// edits (each applied once, whichever stream answers first), and a stream
// that ends without its response headers (a local reply: the response
// chain does not run) has nothing applied.
func TestDeferredEditsKeptPerStream(t *testing.T) {
	script := declareDeferred + skipResponseHeaders +
		"request_headers: ffi sluice_defer_response_headers " +
		deferArg(t, deferRun{deferAdd, []string{"x-first", "a"}})
	p := load(t, "rawabi", PluginConfig{PluginConfig: []byte(script), VMID: "vm-" + t.Name()})
	var streams [3]*testStream
	var hs [3]*HTTPStream
	for i := range streams {
		streams[i] = newTestStream()
		streams[i].set(ResponseHeaders, [2]string{":status", "200"})
		h, err := p.NewHTTPStream(context.Background(), streams[i])
		if err != nil {
			t.Fatal(err)
		}
		hs[i] = h
		if _, err := h.OnRequestHeaders(true); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{1, 0} {
		if _, err := hs[i].OnResponseHeaders(true); err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range hs {
		if err := h.OnDone(); err != nil {
			t.Fatal(err)
		}
		// Stream 2 ends without its response headers: its edits are
		// dropped all the same (and Reset keeps no edit either).
		if len(h.deferred) != 0 {
			t.Errorf("stream %d: its deferred edits outlived the stream", i)
		}
		h.Reset()
		if len(h.deferred) != 0 || h.deferredSize != 0 || h.deferClosed {
			t.Errorf("stream %d: Reset kept its edits", i)
		}
		want := ":status=200,x-first=a"
		if i == 2 {
			want = ":status=200"
		}
		if got := streams[i].pairs(ResponseHeaders); got != want {
			t.Errorf("stream %d: response headers = %s, want %s", i, got, want)
		}
	}
}

// FuzzDeferredRuns: checking an argument never panics; what it refuses
// leaves the kept edits as they were, and what it accepts applies (as
// applyDeferred walks it) after the edit kept before it.
func FuzzDeferredRuns(f *testing.F) {
	f.Add(deferBytes(deferRun{deferAdd, []string{"a", "1"}}, deferRun{deferReplace, nil}))
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var pairs [][2]string
		s := &HTTPStream{host: &testStream{maps: map[MapType]*[][2]string{ResponseHeaders: &pairs}},
			skip: deferredEdits}
		in := &instance{effStream: s}
		if _, st := deferResponseHeaders(in, deferBytes(deferRun{deferAdd, []string{"k", "v"}})); st != abi.OK {
			t.Fatalf("a valid edit: %v", st)
		}
		kept := string(s.deferred)
		_, st := deferResponseHeaders(in, b)
		if st != abi.OK && string(s.deferred) != kept {
			t.Fatal("a refused argument changed what was kept")
		}
		s.applyDeferred()
		switch {
		case st != abi.OK && (len(pairs) != 1 || pairs[0] != [2]string{"k", "v"}):
			t.Fatalf("the kept edit alone applied as %q", pairs)
		case len(pairs) == 0:
			t.Fatal("the kept edits were not applied")
		}
	})
}

// TestBuiltinsDeferOrFallBack: the Rust built-ins cors and rate-limiting
// hand their response headers over at request time on sluice (one entry
// into the guest a stream) and, on a host without
// sluice_defer_response_headers (hidden here, as on Envoy), add them in
// their response-headers callback, which they then do not skip: the same
// response headers either way, in the same order.
func TestBuiltinsDeferOrFallBack(t *testing.T) {
	wasm, err := os.ReadFile(filepath.Join("..", "plugins", "rust", "builtins.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ plugin, config, want string }{
		{"cors", `{"origins":["https://app.example.com"],"credentials":true,"exposed_headers":["x-total"]}`,
			":status=200,vary=Accept-Encoding,access-control-allow-origin=https://app.example.com,vary=Origin," +
				"access-control-allow-credentials=true,access-control-expose-headers=x-total"},
		{"rate-limiting", `{"minute":1000000,"hour":2000000}`,
			":status=200,vary=Accept-Encoding,access-control-allow-origin=*," +
				"x-ratelimit-limit-minute=1000000,x-ratelimit-remaining-minute=999998,x-ratelimit-limit-hour=2000000," +
				"x-ratelimit-remaining-hour=1999998,ratelimit-limit=1000000,ratelimit-remaining=999998,ratelimit-reset=R"},
	} {
		for _, hidden := range []bool{false, true} {
			name := c.plugin
			if hidden {
				name += "-without-the-function"
			}
			t.Run(name, func(t *testing.T) {
				if hidden {
					hideViewFuncs(t)
				}
				ctx := context.Background()
				p, err := testEngine.Load(ctx, PluginConfig{Name: t.Name(), RootID: c.plugin, VMID: "vm-" + t.Name(), Wasm: wasm,
					Trusted: true, PluginConfig: []byte(c.config)})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = p.Close(ctx) })
				if err := p.WaitCompiled(ctx); err != nil {
					t.Fatal(err)
				}
				var got string
				var calls uint64
				var skipped uint32
				for range 2 {
					s := newTestStream("origin", "https://app.example.com")
					s.set(ResponseHeaders, [2]string{":status", "200"}, [2]string{"vary", "Accept-Encoding"}, [2]string{"access-control-allow-origin", "*"})
					before := p.Stats().Calls
					hs, err := p.NewHTTPStream(ctx, s)
					if err != nil {
						t.Fatal(err)
					}
					skipped = hs.SkippedCallbacks()
					if a, err := hs.OnRequestHeaders(true); a != Continue || err != nil {
						t.Fatal(a, err)
					}
					if a, err := hs.OnResponseHeaders(true); a != Continue || err != nil {
						t.Fatal(a, err)
					}
					if err := hs.OnDone(); err != nil {
						t.Fatal(err)
					}
					calls = p.Stats().Calls - before
					got = s.pairs(ResponseHeaders)
				}
				if i := strings.LastIndex(got, "ratelimit-reset="); i >= 0 {
					got = got[:i] + "ratelimit-reset=R"
				}
				if got != c.want {
					t.Errorf("response headers:\n got %s\nwant %s", got, c.want)
				}
				// The proxy calls the response-headers hook either way:
				// to apply the edits, or to enter the guest.
				if skipped&(1<<3) != 0 {
					t.Errorf("SkippedCallbacks() = %#x: response headers skipped", skipped)
				}
				if want := map[bool]uint64{false: 1, true: 2}[hidden]; calls != want {
					t.Errorf("guest calls per stream = %d, want %d", calls, want)
				}
			})
		}
	}
}
