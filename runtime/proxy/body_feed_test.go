package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/httpstream"
)

// bodyJudge holds the request headers and decides on the whole body: the
// pattern Envoy cannot serve (proxy-wasm-cpp-host#143).
type bodyJudge struct {
	seen       []byte
	sawHeaders bool
}

func (j *bodyJudge) OnRequestHeaders(s filter.Stream, eos bool) filter.Status {
	j.sawHeaders = true
	return filter.StopIteration
}

func (j *bodyJudge) OnRequestBody(s filter.Stream, b *filter.Body, eos bool) filter.Status {
	j.seen = append(j.seen, b.Data...)
	if !eos {
		return filter.Continue
	}
	if strings.Contains(string(j.seen), "forbidden") {
		s.SendLocalReply(filter.LocalReply{Status: 403, Body: []byte("judged by body\n")})
		return filter.StopIteration
	}
	s.RequestHeaders().Set("x-judged", "ok")
	s.Resume(filter.Request)
	return filter.Continue
}

func (j *bodyJudge) OnRequestTrailers(filter.Stream) filter.Status       { return filter.Continue }
func (j *bodyJudge) OnResponseHeaders(filter.Stream, bool) filter.Status { return filter.Continue }
func (j *bodyJudge) OnResponseBody(filter.Stream, *filter.Body, bool) filter.Status {
	return filter.Continue
}
func (j *bodyJudge) OnResponseTrailers(filter.Stream) filter.Status { return filter.Continue }
func (j *bodyJudge) OnLog(filter.Stream)                            {}
func (j *bodyJudge) OnDone(filter.Stream)                           {}

// upperCase is a later filter: it must see the body after the judge.
type upperCase struct{ bodyJudge }

func (u *upperCase) OnRequestHeaders(filter.Stream, bool) filter.Status { return filter.Continue }
func (u *upperCase) OnRequestBody(s filter.Stream, b *filter.Body, eos bool) filter.Status {
	b.Data = []byte(strings.ToUpper(string(b.Data)))
	return filter.Continue
}

type factory struct {
	name string
	mk   func() filter.HTTPFilter
}

func (f factory) Name() string   { return f.name }
func (f factory) FailOpen() bool { return false }
func (f factory) NewFilter(context.Context, filter.Stream) (filter.HTTPFilter, error) {
	return f.mk(), nil
}

func TestPausedHeadersStillGetBody(t *testing.T) {
	var upstreamBody atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		upstreamBody.Store(string(b) + "|" + r.Header.Get("X-Judged"))
		w.Write([]byte("ok"))
	}))
	defer up.Close()
	srv := serveProxy(t, up.URL, []factory{
		{"judge", func() filter.HTTPFilter { return &bodyJudge{} }},
		{"upper", func() filter.HTTPFilter { return &upperCase{} }},
	})

	post := func(body string) (int, string) {
		// A streamed body (no Content-Length) arrives in pieces.
		pr, pw := io.Pipe()
		go func() {
			for _, part := range strings.SplitAfter(body, " ") {
				pw.Write([]byte(part))
			}
			pw.Close()
		}()
		resp, err := http.Post(srv.URL, "text/plain", pr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, body := post("this is forbidden content"); code != 403 || body != "judged by body\n" {
		t.Fatalf("forbidden body: %d %q", code, body)
	}
	if code, _ := post("this is fine"); code != 200 {
		t.Fatalf("fine body: %d", code)
	}
	if got := upstreamBody.Load(); got != "THIS IS FINE|ok" {
		t.Fatalf("upstream saw %q: the later filter must get the body after the judge resumed", got)
	}
}

// declarePlugins declares the plugins facs serve for a test config:
// their [[plugins]] entries (names must be declared; the factories
// serve them), the list of their names for a route, and the map for the
// connection manager.
func declarePlugins(facs []filter.Factory) (decl, names string, m map[string]filter.Factory) {
	var d, n strings.Builder
	m = map[string]filter.Factory{}
	for i, f := range facs {
		fmt.Fprintf(&d, "[[plugins]]\nname = %q\nwasm = \"builtin:add-header\"\n", f.Name())
		if i > 0 {
			n.WriteString(", ")
		}
		fmt.Fprintf(&n, "%q", f.Name())
		m[f.Name()] = f
	}
	return d.String(), n.String(), m
}

// serveProxy runs a connection manager behind net/http on 127.0.0.1 with
// one route to the upstream at upURL through filters, in order, until the
// test ends.
func serveProxy(t *testing.T, upURL string, filters []factory) *httptest.Server {
	t.Helper()
	fs := make([]filter.Factory, len(filters))
	for i, f := range filters {
		fs[i] = f
	}
	decl, names, facs := declarePlugins(fs)
	cm := newTestConnectionManager(t, `
[admin]
disabled = true
[[listeners]]
name = "l"
address = "127.0.0.1:0"
`+decl+`
[[routes]]
name = "r"
plugins = [`+names+`]
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+strings.TrimPrefix(upURL, "http://")+`"]
`, "l", facs, nil)
	srv := httptest.NewServer(httpstream.Handler(cm))
	t.Cleanup(srv.Close)
	return srv
}
