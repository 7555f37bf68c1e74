package httpstream

import (
	"context"
	"net"
	"net/http"
	"sync"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

type connectionKey struct{}

// connSlot is a connection's stream.ConnectionInfo, filled from its first
// request: net/http tells the protocol and TLS state only there.
type connSlot struct {
	once sync.Once
	info stream.ConnectionInfo
}

// WithConnection gives a new connection's context its id; listeners call
// it from their ConnContext, so every stream of the connection shares one
// stream.ConnectionInfo.
func WithConnection(ctx context.Context, id uint64) context.Context {
	return context.WithValue(ctx, connectionKey{}, &connSlot{info: stream.ConnectionInfo{ID: id}})
}

// connectionOf is the connection r came on.
func connectionOf(r *http.Request) *stream.ConnectionInfo {
	slot, _ := r.Context().Value(connectionKey{}).(*connSlot)
	if slot == nil {
		// A server without WithConnection: a description per request.
		slot = &connSlot{}
	}
	slot.once.Do(func() {
		info := &slot.info
		info.Protocol = protocolName(r)
		info.Scheme = "http"
		if r.TLS != nil {
			info.Scheme = "https"
			info.TLS = r.TLS
		}
		info.Remote = addr(r.RemoteAddr)
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			info.Local = la
		}
		info.FormatAddresses()
	})
	if r.ProtoMajor == 1 && r.ProtoMinor == 0 && slot.info.Protocol != "HTTP/1.0" || r.ProtoMajor == 1 && r.ProtoMinor == 1 && slot.info.Protocol != "HTTP/1.1" {
		// HTTP/1.x serves one request at a time: the version is the
		// request's (the contract's "set per request").
		slot.info.Protocol = protocolName(r)
	}
	return &slot.info
}

func protocolName(r *http.Request) string {
	switch r.ProtoMajor {
	case 2:
		return "HTTP/2"
	case 3:
		return "HTTP/3"
	}
	if r.ProtoMinor == 0 {
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// addr is a remote address net/http gives as text.
type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }
