package http2

import (
	"encoding/binary"
	"errors"
	"net"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// ServeUpgraded serves HTTP/2 on c after an HTTP/1.1 request asked for h2c
// (RFC 7540 3.2) and the listener answered it with 101 Switching
// Protocols: settings is the request's decoded HTTP2-Settings payload and
// req its head as the HTTP/1.1 codec made it (with :method, :scheme,
// :authority and :path), which becomes stream 1, half closed: a request
// with a body is for the listener to serve as HTTP/1.1 instead (a server
// may ignore an upgrade), so that no body is buffered to replay it. The
// client's preface follows on c.
func (s *Server) ServeUpgraded(c net.Conn, h stream.Handler, settings []byte, req *stream.HeaderMap) error {
	if len(settings)%6 != 0 {
		c.Close()
		return errors.New("http2: HTTP2-Settings is not a list of settings")
	}
	sc := s.newConn(c, h)
	if sc == nil {
		c.Close()
		return ErrServerDraining
	}
	for i := 0; i < len(settings); i += 6 {
		st := http2.Setting{ID: http2.SettingID(binary.BigEndian.Uint16(settings[i:])), Val: binary.BigEndian.Uint32(settings[i+2:])}
		if err := st.Valid(); err != nil {
			c.Close()
			return err
		}
		sc.applySetting(st)
	}
	st := newServerStream(sc, 1)
	for name, value := range req.All() {
		switch string(name) {
		case "connection", "upgrade", "http2-settings", "keep-alive", "proxy-connection", "transfer-encoding":
			continue // this hop's, not the request's
		}
		st.req.Add(string(name), string(value))
	}
	st.closedRemote = true
	sc.maxClientID = 1
	sc.streamsOpened = 1
	sc.rememberStream(1)
	return sc.serve(st)
}
