package proxy

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// gRPC status codes the proxy itself raises (grpc/codes).
const (
	grpcOK                = 0
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcDeadlineExceeded  = 4
	grpcResourceExhausted = 8
	grpcUnimplemented     = 12
	grpcPermissionDenied  = 7
	grpcUnauthenticated   = 16
)

// isGRPC reports whether a request is gRPC, so errors the proxy raises
// become trailers-only responses the client library can read.
func isGRPC(h *stream.HeaderMap) bool {
	ct, _ := h.Get("content-type")
	return bytes.HasPrefix(ct, []byte("application/grpc"))
}

// grpcStatusFor maps an HTTP status to the gRPC code for a trailers-only
// reply when the filter gave none (the mapping gRPC's HTTP-to-gRPC doc uses).
func grpcStatusFor(status int) int {
	switch status {
	case http.StatusBadRequest:
		return grpcInternal
	case http.StatusUnauthorized:
		return grpcUnauthenticated
	case http.StatusForbidden:
		return grpcPermissionDenied
	case http.StatusNotFound:
		return grpcUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable:
		return grpcUnavailable
	case http.StatusGatewayTimeout:
		return grpcDeadlineExceeded
	}
	return 2 // UNKNOWN
}

// writeLocalReply answers the client with r. For gRPC requests it is a
// trailers-only response: HTTP 200, the status in grpc-status/grpc-message.
// Until the response has begun, the reply passes back through the filters
// the request reached (filterManager.encodeLocal); a filter may answer
// with another reply there, which then goes out as it is. It returns the
// body bytes sent and the reply that went out.
func (x *activeStream) writeLocalReply(r *filter.LocalReply) (int64, *filter.LocalReply) {
	h := &x.respHeaders
	h.Reset()
	x.respTrailers.Reset()
	status := r.Status
	if status < 100 || status > 999 {
		status = http.StatusInternalServerError
	}
	grpc := isGRPC(x.ss.RequestHeaders()) && (r.GRPCStatus > 0 || r.Status != http.StatusOK)
	if grpc {
		h.Add(stream.Status, "200")
	} else {
		h.Add(stream.Status, statusText(status))
	}
	if r.Header != nil {
		for name, value := range r.Header.All() {
			if len(name) > 0 && name[0] != ':' {
				h.Add(string(name), string(value))
			}
		}
	}
	if len(x.reqID) > 0 && !h.Has("x-request-id") {
		h.AddBytes(xRequestID, x.reqID)
	}
	if grpc {
		code := r.GRPCStatus
		if code <= 0 {
			code = grpcStatusFor(r.Status)
		}
		h.Set("content-type", "application/grpc")
		h.Set("grpc-status", strconv.Itoa(code))
		msg := strings.TrimSpace(string(r.Body))
		if msg == "" {
			msg = http.StatusText(r.Status)
		}
		h.Set("grpc-message", grpcPercentEncode(msg))
		h.Del("content-length")
		if _, next := x.encodeLocalReply(nil, true); next != nil {
			return x.writeLocalReply(next)
		}
		x.sendHead(h, true)
		return 0, r
	}
	if !h.Has("content-type") && len(r.Body) > 0 {
		h.Add("content-type", "text/plain; charset=utf-8")
	}
	h.Set("content-length", strconv.Itoa(len(r.Body)))
	method, _ := x.ss.RequestHeaders().Get(stream.Method)
	head := string(method) == http.MethodHead
	body, next := x.encodeLocalReply(r.Body, head || len(r.Body) == 0)
	if next != nil {
		return x.writeLocalReply(next)
	}
	if len(body) != len(r.Body) {
		h.Set("content-length", strconv.Itoa(len(body)))
	}
	x.sendHead(h, head || len(body) == 0)
	if head || len(body) == 0 {
		return 0, r
	}
	if x.ss.WriteBody(body, true) != nil {
		return 0, r
	}
	return int64(len(body)), r
}

// encodeLocalReply passes a local reply's head (x.respHeaders) and body
// through the filters the request reached, unless the response filters
// have begun already (a reply made there goes out as it is) or no filter
// was reached. The body unless endOfStream.
func (x *activeStream) encodeLocalReply(body []byte, endOfStream bool) ([]byte, *filter.LocalReply) {
	fm := x.fm
	if fm == nil || fm.encoding || fm.started == 0 {
		return body, nil
	}
	return fm.encodeLocal(body, endOfStream)
}

// grpcPercentEncode encodes a grpc-message value as the gRPC HTTP/2 spec
// asks: printable ASCII except '%' stays, everything else is %XX.
func grpcPercentEncode(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
