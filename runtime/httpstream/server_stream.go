// Package httpstream serves a stream.Handler (the connection manager)
// behind a net/http server: HTTP/2 (x/net) and HTTP/3 (quic-go) today, and
// HTTP/1.1 until runtime/http1 serves streams natively. It converts at the
// edge only: the request's fields into a stream.HeaderMap once, the
// response's map into the ResponseWriter's header once.
package httpstream

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Handler adapts h to net/http.
func Handler(h stream.Handler) http.Handler { return handler{h} }

type handler struct{ h stream.Handler }

func (a handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Not pooled: the upstream side may still be reading the request
	// body on a goroutine of its own when ServeStream returns (a server
	// that answered before the body's end); net/http's body is safe to
	// read then, and so must this stream be.
	s := &serverStream{}
	s.reset(w, r)
	defer func() {
		if s.wasReset {
			// net/http's way to abandon a response: HTTP/1.1 closes the
			// connection, HTTP/2 and HTTP/3 reset the stream.
			panic(http.ErrAbortHandler)
		}
	}()
	a.h.ServeStream(s)
}

// serverStream is one request of a net/http server as a stream.ServerStream.
type serverStream struct {
	w   http.ResponseWriter
	r   *http.Request
	req stream.HeaderMap
	tr  stream.HeaderMap
	// hasTrailers: tr holds the request's trailers (after the body's end).
	hasTrailers bool
	wroteHeader bool
	// ended: the response is complete (its end or trailers written).
	ended    bool
	wasReset bool
	// upgradeHead is a 101 response head held until Upgrade writes it on
	// the taken-over connection (net/http cannot write a 101 itself and
	// then hand the connection over).
	upgradeHead []byte
	keys        []string
}

func (s *serverStream) reset(w http.ResponseWriter, r *http.Request) {
	s.w, s.r = w, r
	s.req.Reset()
	s.tr.Reset()
	s.hasTrailers, s.wroteHeader, s.wasReset = false, false, false
	s.upgradeHead = s.upgradeHead[:0]
	path := r.RequestURI
	if path == "" || (path[0] != '/' && path != "*" && r.Method != http.MethodConnect) {
		// Absolute-form ("GET http://host/p") or a server that kept no
		// request-target: the URL's own escaped path.
		path = r.URL.RequestURI()
	}
	s.req.Add(stream.Method, r.Method)
	s.req.Add(stream.Path, path)
	s.req.Add(stream.Authority, r.Host)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	s.req.Add(stream.Scheme, scheme)
	s.keys = appendFields(&s.req, r.Header, s.keys)
	if len(r.Trailer) > 0 && !s.req.Has("trailer") {
		// net/http moves the client's Trailer declaration out of the
		// header; the stream keeps it as received.
		s.keys = s.keys[:0]
		for k := range r.Trailer {
			s.keys = append(s.keys, k)
		}
		sort.Strings(s.keys)
		s.req.Add("trailer", strings.Join(s.keys, ", "))
	}
}

// appendFields adds h's fields to m in a stable order (net/http's map has
// none: sorted names), using keys as scratch space.
func appendFields(m *stream.HeaderMap, h http.Header, keys []string) []string {
	keys = keys[:0]
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			m.Add(k, v)
		}
	}
	return keys
}

func (s *serverStream) RequestHeaders() *stream.HeaderMap { return &s.req }

func (s *serverStream) RequestBodyLength() int64 {
	if s.r.Body == nil || s.r.Body == http.NoBody {
		return 0
	}
	return s.r.ContentLength
}

func (s *serverStream) ReadBody(p []byte) (int, error) {
	if s.r.Body == nil {
		return 0, io.EOF
	}
	n, err := s.r.Body.Read(p)
	if err == io.EOF && !s.hasTrailers && len(s.r.Trailer) > 0 {
		for k, vs := range s.r.Trailer {
			for _, v := range vs {
				s.tr.Add(k, v)
				s.hasTrailers = true
			}
		}
	}
	return n, err
}

func (s *serverStream) RequestTrailers() *stream.HeaderMap {
	if !s.hasTrailers {
		return nil
	}
	return &s.tr
}

func (s *serverStream) WriteHeaders(h *stream.HeaderMap, endStream bool) error {
	status := http.StatusOK
	if v, ok := h.Get(stream.Status); ok {
		if n, err := strconv.Atoi(string(v)); err == nil {
			status = n
		}
	}
	if status == http.StatusSwitchingProtocols {
		// Held for Upgrade (see upgradeHead).
		b := append(s.upgradeHead[:0], "HTTP/1.1 101 Switching Protocols\r\n"...)
		for name, value := range h.All() {
			if len(name) > 0 && name[0] != ':' {
				b = append(append(append(append(b, name...), ": "...), value...), "\r\n"...)
			}
		}
		s.upgradeHead = append(b, "\r\n"...)
		return nil
	}
	hdr := s.w.Header()
	for name, value := range h.All() {
		if len(name) == 0 || name[0] == ':' {
			continue
		}
		k := http.CanonicalHeaderKey(string(name))
		hdr[k] = append(hdr[k], string(value))
	}
	s.wroteHeader = true
	s.ended = endStream
	s.w.WriteHeader(status)
	return nil
}

func (s *serverStream) WriteBody(p []byte, endStream bool) error {
	if endStream {
		s.ended = true
	}
	if len(p) == 0 {
		return nil
	}
	_, err := s.w.Write(p)
	return err
}

// WriteTrailers sends t as trailers: net/http sends header fields under
// http.TrailerPrefix at the end of the response (chunked on HTTP/1.1).
func (s *serverStream) WriteTrailers(t *stream.HeaderMap) error {
	s.ended = true
	hdr := s.w.Header()
	for name, value := range t.All() {
		k := http.TrailerPrefix + http.CanonicalHeaderKey(string(name))
		hdr[k] = append(hdr[k], string(value))
	}
	return nil
}

func (s *serverStream) Flush() error {
	return http.NewResponseController(s.w).Flush()
}

// Reset ends the request side at once (a body read blocked on the client
// returns) and, unless the response was complete, abandons the response
// when ServeStream returns.
func (s *serverStream) Reset(stream.ResetReason) {
	if s.r.Body != nil {
		s.r.Body.Close()
	}
	if !s.ended {
		s.wasReset = true
	}
}

func (s *serverStream) Context() context.Context { return s.r.Context() }

func (s *serverStream) Connection() *stream.ConnectionInfo {
	return connectionOf(s.r)
}

// Upgrade takes the connection over and writes the held 101 head on it.
func (s *serverStream) Upgrade() (net.Conn, []byte, error) {
	if s.r.ProtoMajor != 1 || len(s.upgradeHead) == 0 {
		return nil, nil, stream.ErrUpgradeUnsupported
	}
	conn, brw, err := http.NewResponseController(s.w).Hijack()
	if err != nil {
		return nil, nil, stream.ErrUpgradeUnsupported
	}
	s.wroteHeader = true
	if _, err := conn.Write(s.upgradeHead); err != nil {
		conn.Close()
		return nil, nil, err
	}
	// What the server read past the head may sit in brw's reader or
	// behind it (runtime/http1 replays it through the reader): the
	// connection is read through brw.
	return &hijackedConn{Conn: conn, r: brw.Reader}, nil, nil
}

// hijackedConn reads a taken-over connection through the server's reader.
type hijackedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *hijackedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// SetReadDeadline and SetWriteDeadline end blocked body I/O with the
// client (the stream idle timeout): not part of stream.ServerStream, an
// optional face a codec may have.
func (s *serverStream) SetReadDeadline(t time.Time) error {
	return http.NewResponseController(s.w).SetReadDeadline(t)
}

func (s *serverStream) SetWriteDeadline(t time.Time) error {
	return http.NewResponseController(s.w).SetWriteDeadline(t)
}
