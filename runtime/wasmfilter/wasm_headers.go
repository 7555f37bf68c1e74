package wasmfilter

import (
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// wasmStreamHost is hostabi's view of a Stream: the header hostcalls read
// and write the stream's own header maps (lower-case names, pseudo-headers
// first, the order received), with no copy to another representation.
// It lives inside its wasmFilter and hostabi holds it by pointer, so
// neither it nor the header maps it hands out cost an allocation: every
// header hostcall asks for its map.
type wasmStreamHost struct {
	s         filter.Stream
	req, resp headerMap
	// ended is set once the filter's OnDone has run: hostabi runs what a
	// callback queued (Resume, a local reply) after the instance's lock,
	// possibly on another goroutine (a tick, an http_call reply) just as
	// the stream ends; mu makes those drop once the stream is over, so
	// the proxy may reuse it (filter.Finisher).
	mu    sync.Mutex
	ended bool
}

// end marks the stream over for the host's queued calls.
func (h *wasmStreamHost) end() {
	h.mu.Lock()
	h.ended = true
	h.mu.Unlock()
}

// live runs call on the stream unless it has ended.
func (h *wasmStreamHost) live(call func(filter.Stream)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.ended {
		call(h.s)
	}
}

func (h *wasmStreamHost) Headers(t hostabi.MapType) hostabi.HeaderMap {
	switch t {
	case hostabi.RequestHeaders:
		// Every header hostcall asks: the view is made again only when
		// the stream's map is another (a new view costs the Info call and
		// write barriers on its pointers while the GC runs).
		if m := h.s.RequestHeaders(); h.req.m != m || h.req.kind != requestMap {
			h.req = headerMap{m: m, kind: requestMap, info: h.s.Info()}
		}
		return &h.req
	case hostabi.RequestTrailers:
		if tr := h.s.RequestTrailers(); tr != nil {
			return tr
		}
	case hostabi.ResponseHeaders:
		if m := h.s.ResponseHeaders(); m != nil {
			if h.resp.m != m {
				h.resp = headerMap{m: m, kind: responseMap}
			}
			return &h.resp
		}
	case hostabi.ResponseTrailers:
		// Trailers a filter adds before any arrived are kept.
		if m := h.s.ResponseTrailers(); m != nil {
			return m
		}
	}
	return nil
}

func (h *wasmStreamHost) SendLocalResponse(r hostabi.LocalResponse) {
	var hdr *stream.HeaderMap
	if len(r.Headers) > 0 {
		hdr = &stream.HeaderMap{}
		for _, kv := range r.Headers {
			hdr.Add(kv[0], kv[1])
		}
	}
	lr := filter.LocalReply{Status: r.Status, Body: r.Body, Header: hdr, Details: r.Details, GRPCStatus: r.GRPCStatus}
	h.live(func(s filter.Stream) { s.SendLocalReply(lr) })
}

func (h *wasmStreamHost) Resume(t hostabi.StreamType) {
	d := filter.Request
	if t == hostabi.StreamResponse {
		d = filter.Response
	}
	h.live(func(s filter.Stream) { s.Resume(d) })
}

// Close has no reset in the Stream contract; a local reply ends the
// stream as far as the filter chain is concerned.
func (h *wasmStreamHost) Close(hostabi.StreamType) {
	h.live(func(s filter.Stream) {
		s.SendLocalReply(filter.LocalReply{Status: http.StatusBadGateway, Details: "wasm_close_stream", GRPCStatus: 14})
	})
}

// The trailer maps go to hostabi as they are.
var _ hostabi.HeaderMap = (*stream.HeaderMap)(nil)

type mapKind uint8

const (
	requestMap  mapKind = iota + 1 // :method, :path, :authority, :scheme
	responseMap                    // :status
)

// headerMap is a request's or response's stream.HeaderMap as hostabi's
// HeaderMap: every call goes to the map itself, except that its
// pseudo-headers are guarded. A request cannot lose its method or path
// (Remove ignores pseudo-headers, Reset keeps them), and a value that
// would break the message (a :path that is no request-target, a :status
// out of range, an empty :method) is ignored, as the binding always did.
type headerMap struct {
	m    *stream.HeaderMap
	kind mapKind
	info *filter.Info
}

func (h headerMap) Len() int                      { return h.m.Len() }
func (h headerMap) At(i int) (name, value []byte) { return h.m.At(i) }

func (h headerMap) GetBytes(k []byte) ([]byte, bool) {
	if h.kind == requestMap && len(k) == 4 && strings.EqualFold(string(k), "host") {
		// Envoy keeps HTTP/1.1's Host as :authority.
		return h.m.Get(stream.Authority)
	}
	return h.m.GetBytes(k)
}

// pseudoOK says whether the pseudo-header k may be set to v in this map.
func (h headerMap) pseudoOK(k, v []byte) bool {
	switch h.kind {
	case requestMap:
		switch string(k) {
		case stream.Method, stream.Authority:
			return len(v) > 0
		case stream.Scheme:
			if h.info != nil {
				h.info.Scheme = string(v)
			}
			return true
		case stream.Path:
			_, err := url.ParseRequestURI(string(v))
			return err == nil
		}
	case responseMap:
		if string(k) == stream.Status {
			if len(v) != 3 {
				return false
			}
			for _, c := range v {
				if c < '0' || c > '9' {
					return false
				}
			}
			return v[0] != '0'
		}
	}
	return false
}

func (h headerMap) AddBytes(k, v []byte) {
	if len(k) > 0 && k[0] == ':' {
		// A message has one of each pseudo-header.
		if h.pseudoOK(k, v) {
			h.m.SetBytes(k, v)
		}
		return
	}
	h.m.AddBytes(k, v)
}

func (h headerMap) SetBytes(k, v []byte) {
	if len(k) > 0 && k[0] == ':' {
		h.AddBytes(k, v)
		return
	}
	h.m.SetBytes(k, v)
}

func (h headerMap) DelBytes(k []byte) {
	if len(k) == 0 || k[0] != ':' {
		h.m.DelBytes(k)
	}
}

// Reset drops the regular fields and keeps the pseudo-headers; those
// proxy_set_header_map_pairs gives then replace them one by one.
func (h headerMap) Reset() {
	var keep [][2]string
	for i := 0; i < h.m.Len(); i++ {
		name, value := h.m.At(i)
		if len(name) > 0 && name[0] == ':' {
			keep = append(keep, [2]string{string(name), string(value)})
		}
	}
	h.m.Reset()
	for _, kv := range keep {
		h.m.Add(kv[0], kv[1])
	}
}

// RequestID names the stream in the log line of a trap or deadline
// (hostabi.RequestIDer): the x-request-id the router settled on, whatever
// a filter did to the header since.
func (h *wasmStreamHost) RequestID() string { return filter.RequestIDOf(h.s.Info()) }
