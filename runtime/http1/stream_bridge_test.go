package http1

import (
	"io"
	"net/http"
	"strings"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// streamBridge serves an http.Handler on a stream.ServerStream, so the
// server tests read as net/http handlers while every byte on the wire is
// the stream's: what the handler does maps one to one onto the stream's
// calls (WriteHeader to WriteHeaders, Write to WriteBody, Flush, trailers
// to WriteTrailers, http.ErrAbortHandler to Reset).
type streamBridge struct{ h http.Handler }

func (b streamBridge) ServeStream(s stream.ServerStream) {
	hm := s.RequestHeaders()
	method, _ := hm.Get(stream.Method)
	path, _ := hm.Get(stream.Path)
	authority, _ := hm.Get(stream.Authority)
	r, err := http.NewRequestWithContext(s.Context(), string(method), string(path), nil)
	if err != nil {
		s.Reset(stream.ResetProtocol)
		return
	}
	r.RequestURI, r.Host = string(path), string(authority)
	r.Proto = s.Connection().Protocol
	r.ProtoMajor, r.ProtoMinor, _ = http.ParseHTTPVersion(r.Proto)
	for name, value := range hm.All() {
		if name[0] != ':' {
			r.Header.Add(string(name), string(value))
		}
	}
	r.ContentLength, r.Body = s.RequestBodyLength(), http.NoBody
	if r.ContentLength != 0 {
		r.Body = &bridgeBody{s: s, r: r}
	}
	w := &bridgeWriter{s: s, header: http.Header{}}
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			s.Reset(stream.ResetInternal)
		}
	}()
	b.h.ServeHTTP(w, r)
	w.finish()
}

type bridgeBody struct {
	s stream.ServerStream
	r *http.Request
}

func (b *bridgeBody) Read(p []byte) (int, error) {
	n, err := b.s.ReadBody(p)
	if err == io.EOF {
		if t := b.s.RequestTrailers(); t != nil {
			b.r.Trailer = http.Header{}
			for name, value := range t.All() {
				b.r.Trailer.Add(string(name), string(value))
			}
		}
	}
	return n, err
}

func (b *bridgeBody) Close() error { return nil }

type bridgeWriter struct {
	s      stream.ServerStream
	header http.Header
	wrote  bool
}

func (w *bridgeWriter) Header() http.Header { return w.header }

func (w *bridgeWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	var hm stream.HeaderMap
	hm.Add(stream.Status, itoa(code))
	for k, vs := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vs {
			hm.Add(k, v)
		}
	}
	w.wrote = code >= 200 || code == http.StatusSwitchingProtocols
	w.s.WriteHeaders(&hm, false)
}

func (w *bridgeWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if err := w.s.WriteBody(p, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *bridgeWriter) Flush() {
	w.WriteHeader(http.StatusOK)
	w.s.Flush()
}

func (w *bridgeWriter) finish() {
	w.WriteHeader(http.StatusOK)
	var t stream.HeaderMap
	for _, names := range w.header["Trailer"] {
		for _, k := range strings.Split(names, ",") {
			for _, v := range w.header[http.CanonicalHeaderKey(strings.TrimSpace(k))] {
				t.Add(k, v)
			}
		}
	}
	for k, vs := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vs {
				t.Add(name, v)
			}
		}
	}
	if t.Len() > 0 {
		w.s.WriteTrailers(&t)
		return
	}
	w.s.WriteBody(nil, true)
}
