package listen

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/http1"
	"github.com/sluice-proxy/sluice/runtime/http2"
	"github.com/sluice-proxy/sluice/runtime/mesh"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// connServer accepts a listener's TCP connections and gives each one to
// sluice's HTTP/1.1 server (runtime/http1) or its HTTP/2 server
// (runtime/http2): TLS by ALPN ("h2" or HTTP/1.1), plain text by the h2c
// prior-knowledge preface or an "Upgrade: h2c" request.
type connServer struct {
	h1      *http1.Server
	h2      *http2.Server
	streams stream.Handler // the connection manager
	tls     *tls.Config    // nil: plain text (a permissive listener hands *tls.Conn itself)
	http1   bool           // HTTP/1.1 served (else HTTP/2 only)
	log     *zap.Logger
	// handshake bounds a TLS handshake.
	handshake time.Duration

	mu     sync.Mutex
	closed bool
}

func (s *connServer) serve(ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return http.ErrServerClosed
			}
			// Out of descriptors and the like: back off and go on, as
			// net/http does, so the listener recovers.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go s.serveConn(c)
	}
}

func (s *connServer) serveConn(c net.Conn) {
	tc, isTLS := c.(*tls.Conn)
	if !isTLS && s.tls == nil {
		if !s.http1 {
			s.h2.ServeConn(c, s.streams)
			return
		}
		s.h1.ServeConn(c, nil)
		return
	}
	s.serveTLS(c, tc)
}

// serveTLS is serveConn for a TLS connection (tc, or nil for one the
// handshake is still to start on): the handshake, then HTTP/2
// or HTTP/1.1 by ALPN. Out of line: serveConn's frame is at the bottom of
// every connection goroutine's stack, and the connection state and the
// log fields here (some 400 bytes) would make every plain-text request's
// call chain sit that much deeper in its stack.
//
//go:noinline
func (s *connServer) serveTLS(c net.Conn, tc *tls.Conn) {
	if tc == nil {
		tc = tls.Server(c, s.tls)
	}
	if s.handshake > 0 {
		tc.SetDeadline(time.Now().Add(s.handshake))
	}
	if err := tc.Handshake(); err != nil {
		if ce := s.log.Check(zap.DebugLevel, "tls handshake failed"); ce != nil {
			ce.Write(zap.String("remote", c.RemoteAddr().String()), zap.Error(err))
		}
		tc.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	state := tc.ConnectionState()
	switch {
	case state.NegotiatedProtocol == "h2":
		s.h2.ServeConn(tc, s.streams)
	case s.http1:
		s.h1.ServeConn(tc, &state)
	default:
		tc.Close()
	}
}

func (s *connServer) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// shutdown drains: HTTP/1.1 connections finish their request in flight,
// HTTP/2 ones get GOAWAY and finish their open streams; at ctx's end
// whatever is left is closed.
func (s *connServer) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	h2done := make(chan error, 1)
	go func() { h2done <- s.h2.Shutdown(ctx) }()
	err := s.h1.Shutdown(ctx)
	if err2 := <-h2done; err == nil {
		err = err2
	}
	return err
}

type connServerConfig struct {
	// streams is the connection manager.
	streams          stream.Handler
	h2               *http2.Server
	tls              *tls.Config
	permissive       bool
	http1, h2c       bool
	h2cUpgrade       bool // switch HTTP/1.1 requests that ask for h2c
	readHeader, idle time.Duration
	maxHeader        int
	log              *zap.Logger
}

func newConnServer(cfg connServerConfig) *connServer {
	s := &connServer{
		h2:        cfg.h2,
		streams:   cfg.streams,
		http1:     cfg.http1,
		log:       cfg.log,
		handshake: cfg.readHeader,
	}
	if !cfg.permissive {
		// A permissive listener hands over *tls.Conn for the connections
		// that start with a handshake, plain ones as they are.
		s.tls = cfg.tls
	}
	// HTTP/1.1 streams go to the connection manager directly.
	h1Streams := cfg.streams
	if cfg.h2cUpgrade {
		h1Streams = &h2cUpgrade{next: cfg.streams, h2: cfg.h2}
	}
	s.h1 = &http1.Server{
		StreamHandler:     h1Streams,
		Limits:            http1.Limits{MaxHeaderBytes: cfg.maxHeader},
		ReadHeaderTimeout: cfg.readHeader,
		IdleTimeout:       cfg.idle,
		Log:               cfg.log.Named("http1"),
		// Numbered from the same counter as HTTP/2, HTTP/3 and TCP
		// connections (Envoy's connection.id).
		ConnectionID: filter.NextConnectionID,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if _, ok := c.(*tls.Conn); ok {
				// A connection's TLS facts (peer identity, certificate
				// hash, subject) are worked out for its first request
				// and kept.
				return mesh.WithConnTLS(ctx)
			}
			return ctx
		},
	}
	if cfg.h2c {
		s.h1.H2C = func(c net.Conn, _ context.Context) { s.h2.ServeConn(c, cfg.streams) }
	}
	return s
}

// h2ConnInfo describes an HTTP/2 connection for its streams: numbered
// like every downstream connection (Envoy's connection.id; a connection
// upgraded from HTTP/1.1 keeps its number), with its TLS state.
func h2ConnInfo(c net.Conn) *stream.ConnectionInfo {
	info := &stream.ConnectionInfo{Protocol: "HTTP/2", Scheme: "http", Remote: c.RemoteAddr(), Local: c.LocalAddr()}
	info.FormatAddresses()
	if u, ok := c.(*upgradedConn); ok {
		info.ID = u.id
	} else {
		info.ID = filter.NextConnectionID()
	}
	if tc, ok := c.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		info.TLS, info.Scheme = &cs, "https"
	}
	return info
}

// waitReadable passes the HTTP/1.1 server's wait for a request
// (http1.ReadWaiter) on to the connection a wrapper holds; false when it
// cannot wait without a buffer.
func waitReadable(c net.Conn) bool {
	w, ok := c.(http1.ReadWaiter)
	return ok && w.WaitReadable()
}
