package hostabi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestForeignFunctions(t *testing.T) {
	p, _, _ := runHeaders(t, `request_headers: ffi_roundtrip hello\sworld | ffi nope x | ffi uncompress garbage | ffi declare_property x`, newTestStream())
	wantLogs(t, p.Name(),
		"request_headers ffi_roundtrip: status=0 status=0 hello world",
		`request_headers ffi: status=1 len=0 ""`,
		`request_headers ffi: status=3 len=0 ""`,
		`request_headers ffi: status=0 len=0 ""`)
}

// TestForeignFunctionCallback: resolve_lua answers an IP literal at once
// and any other name through proxy_on_foreign_function (function id 0,
// buffer 8: address length, address, name) on the context that asked,
// which may continue its paused stream from there.
func TestForeignFunctionCallback(t *testing.T) {
	s := newTestStream()
	p, hs, a := runHeaders(t, "request_headers: ffi resolve_lua 127.0.0.1 | ffi resolve_lua ::1 | ffi resolve_lua \\e | ffi resolve_lua backend.test | ret 1\n"+
		"foreign: buf_get 8 0 100 | buf_status 8 | buf_set 8 0 1 x | continue 0\n", s)
	if a != Pause {
		t.Fatalf("action %v", a)
	}
	select {
	case <-s.resumed:
	case <-time.After(5 * time.Second):
		t.Fatalf("not resumed from proxy_on_foreign_function; logs %q", logsOf(p.Name()))
	}
	wantLogs(t, p.Name(),
		`request_headers ffi: status=0 len=4 "\x7f\x00\x00\x01"`,
		`request_headers ffi: status=0 len=16 "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"`,
		`request_headers ffi: status=2 len=0 ""`,
		`request_headers ffi: status=0 len=0 ""`,
		fmt.Sprintf("foreign ctx=%d fid=0 size=17", hs.ID()),
		"foreign buf_get: status=0 \x04\x7f\x00\x00\x01backend.test",
		"foreign buf_status: status=0 size=17 flags=0",
		// The arguments are the host's, read-only as in Envoy (CallData).
		"foreign buf_set: status=2",
		"foreign continue: status=0")
}

// TestForeignFunctionCallbackToRoot: a root context asks (here from
// proxy_on_configure); a name that does not resolve reports length 0.
func TestForeignFunctionCallbackToRoot(t *testing.T) {
	p := load(t, "rawabi", PluginConfig{PluginConfig: []byte("configure: ffi resolve_lua v6.test | ffi resolve_lua nowhere.test\n" +
		"foreign: buf_get 8 0 100\n")})
	waitLog(t, p.Name(), "foreign ctx=1 fid=0 size=24")
	waitLog(t, p.Name(), "foreign ctx=1 fid=0 size=13")
	wantLogs(t, p.Name(),
		"foreign buf_get: status=0 \x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01v6.test",
		"foreign buf_get: status=0 \x00nowhere.test")
}

// TestForeignFunctionCallbackDroppedAfterStream: a lookup that ends after
// its stream is gone calls nothing.
func TestForeignFunctionCallbackDroppedAfterStream(t *testing.T) {
	p, hs, _ := runHeaders(t, "request_headers: ffi resolve_lua slow.test\nforeign: log 2 late\n", newTestStream())
	if err := hs.OnDone(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil { // cancels the lookup
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	for _, l := range logsOf(p.Name()) {
		if l == "late" || strings.HasPrefix(l, "foreign ") {
			t.Errorf("callback after the stream ended: %q", l)
		}
	}
}
