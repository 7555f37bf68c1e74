package wasmfilter

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// wasmStreamHost is hostabi's view of a Stream: net/http types shown as
// Envoy's header maps, with pseudo-headers, lowercase keys and a stable
// order.
type wasmStreamHost struct{ s filter.Stream }

func (h wasmStreamHost) Headers(t hostabi.MapType) hostabi.HeaderMap {
	switch t {
	case hostabi.RequestHeaders:
		return &bytesMap{m: requestHeaderMap{s: h.s}}
	case hostabi.RequestTrailers:
		if tr := h.s.RequestTrailers(); tr != nil {
			return &bytesMap{m: headerMap{h: tr}}
		}
	case hostabi.ResponseHeaders:
		if r := h.s.Response(); r != nil {
			return &bytesMap{m: responseHeaderMap{r: r}}
		}
	case hostabi.ResponseTrailers:
		if r := h.s.Response(); r != nil {
			if r.Trailer == nil {
				// Trailers a filter adds before any arrived are kept.
				r.Trailer = http.Header{}
			}
			return &bytesMap{m: headerMap{h: r.Trailer}}
		}
	}
	return nil
}

// The header maps hostabi edits are a *stream.HeaderMap once the proxy's
// filters hold one; until then the adapters below show net/http's types.
var _ hostabi.HeaderMap = (*stream.HeaderMap)(nil)

// stringMap is what the net/http adapters below implement.
type stringMap interface {
	Len() int
	Pairs() [][2]string
	Get(k string) (string, bool)
	Add(k, v string)
	Set(k, v string)
	Remove(k string)
	SetPairs(p [][2]string)
}

// bytesMap shows a stringMap as hostabi's []byte HeaderMap. At reads a
// snapshot of the pairs taken at its first call and dropped on a change.
type bytesMap struct {
	m     stringMap
	pairs [][2]string
}

// Len is the adapters' count, which their Pairs (At's snapshot) matches.
func (b *bytesMap) Len() int { return b.m.Len() }
func (b *bytesMap) At(i int) (name, value []byte) {
	if b.pairs == nil {
		b.pairs = b.m.Pairs()
	}
	return []byte(b.pairs[i][0]), []byte(b.pairs[i][1])
}
func (b *bytesMap) GetBytes(k []byte) ([]byte, bool) {
	v, ok := b.m.Get(string(k))
	return []byte(v), ok
}
func (b *bytesMap) AddBytes(k, v []byte) { b.pairs = nil; b.m.Add(string(k), string(v)) }
func (b *bytesMap) SetBytes(k, v []byte) { b.pairs = nil; b.m.Set(string(k), string(v)) }
func (b *bytesMap) DelBytes(k []byte)    { b.pairs = nil; b.m.Remove(string(k)) }

// Reset keeps the pseudo-headers of a request or response (SetPairs
// replaces only those it is given), as before.
func (b *bytesMap) Reset() { b.pairs = nil; b.m.SetPairs(nil) }

func (h wasmStreamHost) SendLocalResponse(r hostabi.LocalResponse) {
	hdr := http.Header{}
	for _, kv := range r.Headers {
		hdr.Add(kv[0], kv[1])
	}
	h.s.SendLocalReply(filter.LocalReply{Status: r.Status, Body: r.Body, Header: hdr, Details: r.Details, GRPCStatus: r.GRPCStatus})
}

func (h wasmStreamHost) Resume(t hostabi.StreamType) {
	if t == hostabi.StreamResponse {
		h.s.Resume(filter.Response)
		return
	}
	h.s.Resume(filter.Request)
}

// Close has no reset in the Stream contract; a local reply ends the
// stream as far as the filter chain is concerned.
func (h wasmStreamHost) Close(hostabi.StreamType) {
	h.s.SendLocalReply(filter.LocalReply{Status: http.StatusBadGateway, Details: "wasm_close_stream", GRPCStatus: 14})
}

// headerMap adapts an http.Header (no pseudo-headers).
type headerMap struct{ h http.Header }

func (m headerMap) Len() int {
	n := 0
	for _, vs := range m.h {
		n += len(vs)
	}
	return n
}

func (m headerMap) appendPairs(out [][2]string) [][2]string {
	keys := make([]string, 0, len(m.h))
	for k := range m.h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		lk := strings.ToLower(k)
		for _, v := range m.h[k] {
			out = append(out, [2]string{lk, v})
		}
	}
	return out
}

func (m headerMap) Pairs() [][2]string { return m.appendPairs(nil) }

func (m headerMap) Get(k string) (string, bool) {
	vs := m.h.Values(k)
	if len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

func (m headerMap) Add(k, v string) { m.h.Add(k, v) }
func (m headerMap) Set(k, v string) { m.h.Set(k, v) }
func (m headerMap) Remove(k string) { m.h.Del(k) }
func (m headerMap) SetPairs(p [][2]string) {
	for k := range m.h {
		delete(m.h, k)
	}
	for _, kv := range p {
		m.h.Add(kv[0], kv[1])
	}
}

// requestHeaderMap shows the request with :method, :path, :authority and
// :scheme first, as Envoy does.
type requestHeaderMap struct{ s filter.Stream }

func (m requestHeaderMap) hdr() headerMap { return headerMap{h: m.s.Request().Header} }

func (m requestHeaderMap) pseudo(k string) (string, bool) {
	r := m.s.Request()
	switch k {
	case ":method":
		return r.Method, true
	case ":path":
		return r.URL.RequestURI(), true
	case ":authority":
		return r.Host, true
	case ":scheme":
		if s := m.s.Info().Scheme; s != "" {
			return s, true
		}
		if r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	return "", false
}

func (m requestHeaderMap) setPseudo(k, v string) {
	r := m.s.Request()
	switch k {
	case ":method":
		r.Method = v
	case ":path":
		if u, err := url.ParseRequestURI(v); err == nil {
			r.URL.Path, r.URL.RawPath, r.URL.RawQuery = u.Path, u.RawPath, u.RawQuery
		}
	case ":authority":
		r.Host = v
	case ":scheme":
		m.s.Info().Scheme = v
	}
}

var requestPseudo = [...]string{":method", ":path", ":authority", ":scheme"}

func (m requestHeaderMap) Len() int { return len(requestPseudo) + m.hdr().Len() }

func (m requestHeaderMap) Pairs() [][2]string {
	out := make([][2]string, 0, m.Len())
	for _, k := range requestPseudo {
		v, _ := m.pseudo(k)
		out = append(out, [2]string{k, v})
	}
	return m.hdr().appendPairs(out)
}

func (m requestHeaderMap) Get(k string) (string, bool) {
	if strings.HasPrefix(k, ":") {
		return m.pseudo(k)
	}
	if strings.EqualFold(k, "host") {
		return m.s.Request().Host, true
	}
	return m.hdr().Get(k)
}

func (m requestHeaderMap) Add(k, v string) {
	if strings.HasPrefix(k, ":") {
		m.setPseudo(k, v)
		return
	}
	m.hdr().Add(k, v)
}

func (m requestHeaderMap) Set(k, v string) {
	if strings.HasPrefix(k, ":") {
		m.setPseudo(k, v)
		return
	}
	m.hdr().Set(k, v)
}

// Remove ignores pseudo-headers: a request cannot lose its method or path.
func (m requestHeaderMap) Remove(k string) {
	if !strings.HasPrefix(k, ":") {
		m.hdr().Remove(k)
	}
}

func (m requestHeaderMap) SetPairs(p [][2]string) {
	var regular [][2]string
	for _, kv := range p {
		if strings.HasPrefix(kv[0], ":") {
			m.setPseudo(kv[0], kv[1])
		} else {
			regular = append(regular, kv)
		}
	}
	m.hdr().SetPairs(regular)
}

// responseHeaderMap shows the response with :status first.
type responseHeaderMap struct{ r *filter.ResponseHead }

func (m responseHeaderMap) hdr() headerMap {
	if m.r.Header == nil {
		m.r.Header = http.Header{}
	}
	return headerMap{h: m.r.Header}
}

func (m responseHeaderMap) Len() int { return 1 + m.hdr().Len() }

func (m responseHeaderMap) Pairs() [][2]string {
	out := make([][2]string, 0, m.Len())
	out = append(out, [2]string{":status", strconv.Itoa(m.r.Status)})
	return m.hdr().appendPairs(out)
}

func (m responseHeaderMap) Get(k string) (string, bool) {
	if k == ":status" {
		return strconv.Itoa(m.r.Status), true
	}
	if strings.HasPrefix(k, ":") {
		return "", false
	}
	return m.hdr().Get(k)
}

func (m responseHeaderMap) setStatus(v string) {
	if n, err := strconv.Atoi(v); err == nil && n >= 100 && n <= 999 {
		m.r.Status = n
	}
}

func (m responseHeaderMap) Add(k, v string) {
	if strings.HasPrefix(k, ":") {
		if k == ":status" {
			m.setStatus(v)
		}
		return
	}
	m.hdr().Add(k, v)
}

func (m responseHeaderMap) Set(k, v string) {
	if strings.HasPrefix(k, ":") {
		m.Add(k, v)
		return
	}
	m.hdr().Set(k, v)
}

func (m responseHeaderMap) Remove(k string) {
	if !strings.HasPrefix(k, ":") {
		m.hdr().Remove(k)
	}
}

func (m responseHeaderMap) SetPairs(p [][2]string) {
	var regular [][2]string
	for _, kv := range p {
		if kv[0] == ":status" {
			m.setStatus(kv[1])
		} else if !strings.HasPrefix(kv[0], ":") {
			regular = append(regular, kv)
		}
	}
	m.hdr().SetPairs(regular)
}

// RequestID names the stream in the log line of a trap or deadline
// (hostabi.RequestIDer): the x-request-id the router settled on, whatever
// a filter did to the header since.
func (h wasmStreamHost) RequestID() string { return h.s.Info().RequestID }
