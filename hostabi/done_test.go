package hostabi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/plugins"
)

// logIndex is where want first appears in the plugin's logs, -1 if not.
func logIndex(name, want string) int { return slices.Index(logsOf(name), want) }

// TestProxyDoneDefersDelete: a root context whose proxy_on_done returns
// false keeps running (its ticks still come) until it calls proxy_done;
// proxy_on_delete comes after, and a second proxy_done is NotFound.
func TestProxyDoneDefersDelete(t *testing.T) {
	p, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name(), Wasm: testGuests["rawabi"],
		DoneTimeout: 10 * time.Second,
		PluginConfig: []byte("configure: done\n" +
			"done: ret 0 | tick 20\ntick: log 2 tick | done | done\ndelete: log 2 root\\sdeleted")})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v: it waited for the timeout, not for proxy_done", d)
	}
	n := t.Name()
	// Before shutdown no done is pending.
	wantLogs(t, n, "configure done: status=1", "done id=1", "tick done: status=0", "tick done: status=1", "root deleted")
	if !(logIndex(n, "done id=1") < logIndex(n, "tick") && logIndex(n, "tick done: status=0") < logIndex(n, "root deleted")) {
		t.Errorf("order: want on_done, tick, proxy_done, on_delete; got %q", logsOf(n))
	}
}

// TestProxyDoneTimeout: a plugin that never calls proxy_done is deleted
// after DoneTimeout, with a warning.
func TestProxyDoneTimeout(t *testing.T) {
	p, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name(), Wasm: testGuests["rawabi"],
		DoneTimeout:  300 * time.Millisecond,
		PluginConfig: []byte("done: ret 0\ndelete: log 2 root\\sdeleted")})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("Close took %v, want about the 300ms DoneTimeout", d)
	}
	wantLogs(t, t.Name(), "done id=1", "root deleted",
		"plugin did not call proxy_done after proxy_on_done returned false; deleting its root context")
}

// TestProxyDoneStreamsDoNotWait: a stream context's false from
// proxy_on_done changes nothing (Envoy's Context::onDestroy calls onDone
// then onDelete), and proxy_done with no pending done is NotFound.
func TestProxyDoneStreamsDoNotWait(t *testing.T) {
	p, hs, _ := runHeaders(t, "request_headers: done\ndone: ret 0 | done\ndelete: log 2 deleted", newTestStream())
	if err := hs.OnDone(); err != nil {
		t.Fatal(err)
	}
	wantLogs(t, p.Name(), "request_headers done: status=1", "done done: status=1", "deleted")
}

// TestProxyDoneSharedVMWaitsForItsPlugin: in a shared VM, closing one
// plugin waits for its own root context only; the other plugin's streams
// go on meanwhile.
func TestProxyDoneSharedVMWaitsForItsPlugin(t *testing.T) {
	vmID := "vm-" + t.Name()
	a, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name() + "-a", Wasm: testGuests["rawabi"], VMID: vmID,
		Instances: 1, DoneTimeout: 10 * time.Second,
		PluginConfig: []byte("done: ret 0 | tick 200\ntick: done\ndelete: log 2 a\\sdeleted")})
	if err != nil {
		t.Fatal(err)
	}
	b := load(t, "rawabi", PluginConfig{Name: t.Name() + "-b", VMID: vmID, Instances: 1,
		PluginConfig: []byte("request_headers: log 2 b\\sserved")})
	closed := make(chan error, 1)
	go func() { closed <- a.Close(context.Background()) }()
	time.Sleep(50 * time.Millisecond) // a is waiting for its tick
	hs, err := b.NewHTTPStream(context.Background(), newTestStream())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hs.OnRequestHeaders(true); err != nil {
		t.Fatal(err)
	}
	hs.OnDone()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a did not close after its proxy_done")
	}
	wantLogs(t, t.Name()+"-b", "b served")
	wantLogs(t, t.Name()+"-a", "a deleted")
}

// TestSkipStreamDone: bit 7 of sluice_skip_callbacks says the plugin's
// stream contexts answer proxy_on_done true and do nothing else, so a
// stream ends with proxy_on_delete alone; without it on_done comes first,
// and a root context gets its on_done either way.
func TestSkipStreamDone(t *testing.T) {
	for _, c := range []struct {
		name     string
		mask     string
		wantDone bool
	}{
		{"skipped", "\x80\x00\x00\x00", false},
		{"log only", "\x40\x00\x00\x00", true},
		{"none", "\x00\x00\x00\x00", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := load(t, "rawabi", PluginConfig{Name: t.Name(), PluginConfig: []byte(
				"configure: ffi sluice_skip_callbacks " + c.mask + "\ndelete: log 2 deleted")})
			hs, err := p.NewHTTPStream(context.Background(), newTestStream())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := hs.OnRequestHeaders(true); err != nil {
				t.Fatal(err)
			}
			if err := hs.OnDone(); err != nil {
				t.Fatal(err)
			}
			n := t.Name()
			wantLogs(t, n, "configure ffi: status=0 len=0 \"\"", "deleted")
			if got := logIndex(n, fmt.Sprintf("done id=%d", hs.ID())) >= 0; got != c.wantDone {
				t.Errorf("proxy_on_done for the stream: called = %v, want %v; logs %q", got, c.wantDone, logsOf(n))
			}
			if err := p.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			wantLogs(t, n, "done id=1") // the root context's
		})
	}
}

// TestStreamReleasedByGuest: bit 8 of sluice_skip_callbacks says the
// plugin's SDK frees a stream's context itself. When every callback after
// the request headers is skipped, the host marks them the stream's last
// entry (bit 1 of end_of_stream); a guest that answers with bit 8 of its
// result has freed the context, and no proxy_on_delete comes for it. A
// guest without the bit, or with a later callback it wants, is never
// told, and gets its proxy_on_delete.
func TestStreamReleasedByGuest(t *testing.T) {
	for _, c := range []struct {
		name        string
		mask        string // after request headers: bits 1-7 skipped; 8 releases
		ret         string
		wantEOS     string
		wantDeleted bool
	}{
		{"released", "\xfe\x01\x00\x00", "256", "eos=3", false},
		{"kept", "\xfe\x01\x00\x00", "0", "eos=3", true},
		{"no release bit", "\xfe\x00\x00\x00", "0", "eos=1", true},
		{"response headers wanted", "\xf6\x01\x00\x00", "0", "eos=1", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := load(t, "rawabi", PluginConfig{Name: t.Name(), PluginConfig: []byte(
				"configure: ffi sluice_skip_callbacks " + c.mask + "\nrequest_headers: ret " + c.ret + "\ndelete: log 2 deleted")})
			hs, err := p.NewHTTPStream(context.Background(), newTestStream())
			if err != nil {
				t.Fatal(err)
			}
			if a, err := hs.OnRequestHeaders(true); err != nil || a != Continue {
				t.Fatalf("request headers: %v, %v", a, err)
			}
			if err := hs.OnDone(); err != nil {
				t.Fatal(err)
			}
			n := t.Name()
			if !slices.ContainsFunc(logsOf(n), func(l string) bool {
				return strings.HasPrefix(l, "request_headers ") && strings.HasSuffix(l, " "+c.wantEOS)
			}) {
				t.Errorf("no request_headers line with %s; logs %q", c.wantEOS, logsOf(n))
			}
			if got := hasLog(n, "deleted"); got != c.wantDeleted {
				t.Errorf("proxy_on_delete for the stream: called = %v, want %v; logs %q", got, c.wantDeleted, logsOf(n))
			}
			if err := p.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// BenchmarkStreamSkipDone is a stream through the add-header built-in
// (context create, request headers adding one field, done, delete) with
// proxy_on_done called and with it skipped (bit 7 of
// sluice_skip_callbacks, set here as an SDK would set it): what the bit
// saves a stream.
func BenchmarkStreamSkipDone(b *testing.B) {
	for _, skip := range []bool{false, true} {
		b.Run(fmt.Sprintf("skip=%v", skip), func(b *testing.B) {
			testGuests["add-header"] = plugins.RustModule("add-header")
			p := load(b, "add-header", PluginConfig{RootID: "add-header", Trusted: true,
				PluginConfig: []byte(`{"request_headers":{"x-a":"1"}}`)})
			if skip {
				p.vm.mu.Lock()
				insts := append([]*instance(nil), p.vm.insts...)
				p.vm.mu.Unlock()
				for _, in := range insts {
					in.mu.Lock()
					in.roots[in.rootOf[p]].skip |= 1 << cbDone
					in.mu.Unlock()
				}
			}
			s := newTestStream()
			b.ReportAllocs()
			for b.Loop() {
				if err := oneRequest(p, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
