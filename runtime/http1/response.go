package http1

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// AppendStatusLine appends "HTTP/1.1 code reason\r\n".
func AppendStatusLine(dst []byte, code int) []byte {
	if code == http.StatusOK { // nearly every response
		return append(dst, "HTTP/1.1 200 OK\r\n"...)
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(code)...)
	return append(dst, "\r\n"...)
}

// AppendField appends "name: value\r\n". Control characters in either
// (CR, LF and NUL among them; HTAB kept) are written as spaces, so what a
// handler or an upstream put in a field can never start a new field or a
// new message (response splitting), nor make a strict peer refuse the
// head (RFC 9110 section 5.5 allows no CTL in a field value).
func AppendField(dst []byte, name, value string) []byte {
	dst = appendCleanString(dst, name)
	dst = append(dst, ": "...)
	dst = appendCleanString(dst, value)
	return append(dst, "\r\n"...)
}

func appendClean(dst, s []byte) []byte {
	// Checked first and copied whole: clean text (nearly all of it)
	// costs one copy, not an append per byte.
	if !stream.HasCTL(s) {
		return append(dst, s...)
	}
	return appendSpaced(dst, s)
}

// appendCleanString is appendClean for text held as a string.
func appendCleanString(dst []byte, s string) []byte {
	if !hasCTLString(s) {
		return append(dst, s...)
	}
	return appendSpaced(dst, s)
}

// appendSpaced appends s with its control characters written as spaces.
func appendSpaced[T string | []byte](dst []byte, s T) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if stream.IsCTL(c) {
			c = ' '
		}
		dst = append(dst, c)
	}
	return dst
}

// AppendChunkHeader appends a chunk-size line for n bytes of data.
func AppendChunkHeader(dst []byte, n int) []byte {
	dst = strconv.AppendInt(dst, int64(n), 16)
	return append(dst, "\r\n"...)
}

var crlf = []byte("\r\n")

// dateValue is the Date field, formatted at most once a second.
type dateCache struct {
	v atomic.Pointer[dateEntry]
}

type dateEntry struct {
	sec int64
	s   string
}

var date dateCache

func (d *dateCache) get() string {
	now := time.Now()
	if e := d.v.Load(); e != nil && e.sec == now.Unix() {
		return e.s
	}
	e := &dateEntry{sec: now.Unix(), s: now.UTC().Format(http.TimeFormat)}
	d.v.Store(e)
	return e.s
}
