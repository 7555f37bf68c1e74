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
	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/http1"
	"github.com/sluice-proxy/sluice/runtime/mesh"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// connServer accepts a listener's TCP connections and gives each one to
// sluice's HTTP/1.1 server (runtime/http1) or to x/net's HTTP/2 server:
// TLS by ALPN ("h2" or HTTP/1.1), plain text by the h2c prior-knowledge
// preface or an "Upgrade: h2c" request.
type connServer struct {
	h1      *http1.Server
	h2      *http2.Server
	base    *http.Server // x/net's base config; its Shutdown sends GOAWAY
	handler http.Handler
	resets  *stats.Counter // connections the rapid-reset guard closed
	tls     *tls.Config    // nil: plain text (a permissive listener hands *tls.Conn itself)
	http1   bool           // HTTP/1.1 served (else HTTP/2 only)
	h2c     bool           // plain-text HTTP/2 served
	log     *zap.Logger
	// handshake bounds a TLS handshake.
	handshake time.Duration

	mu      sync.Mutex
	closed  bool
	h2conns map[net.Conn]struct{}
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
	if !isTLS && s.tls != nil {
		tc, isTLS = tls.Server(c, s.tls), true
	}
	if !isTLS {
		if !s.http1 {
			s.serveH2(c, withConnection(context.Background()))
			return
		}
		s.h1.ServeConn(c, nil)
		return
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
	case state.NegotiatedProtocol == http2.NextProtoTLS:
		s.serveH2(tc, mesh.WithConnTLS(withConnection(context.Background())))
	case s.http1:
		s.h1.ServeConn(tc, &state)
	default:
		tc.Close()
	}
}

// serveH2 runs x/net's HTTP/2 server on c, behind the rapid-reset guard,
// until it ends. c starts with the client's connection preface.
func (s *connServer) serveH2(c net.Conn, ctx context.Context) {
	if !s.trackH2(c, true) {
		c.Close()
		return
	}
	defer s.trackH2(c, false)
	s.h2.ServeConn(guarded(c, s.resets), &http2.ServeConnOpts{Context: ctx, BaseConfig: s.base, Handler: s.handler})
}

func (s *connServer) trackH2(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.h2conns, c)
		return true
	}
	if s.closed {
		return false
	}
	if s.h2conns == nil {
		s.h2conns = make(map[net.Conn]struct{})
	}
	s.h2conns[c] = struct{}{}
	return true
}

func (s *connServer) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// shutdown drains: HTTP/1.1 connections finish their request in flight,
// HTTP/2 ones get GOAWAY; at ctx's end whatever is left is closed.
func (s *connServer) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.base.Shutdown(ctx) // runs x/net's graceful-shutdown hook (GOAWAY)
	err := s.h1.Shutdown(ctx)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.h2conns)
		if n > 0 && ctx.Err() != nil {
			for c := range s.h2conns {
				c.Close()
			}
		}
		s.mu.Unlock()
		if n == 0 {
			return err
		}
		if ctx.Err() != nil {
			if err == nil {
				err = ctx.Err()
			}
			return err
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

type connServerConfig struct {
	// streams is the connection manager; handler serves it behind
	// net/http (x/net's HTTP/2).
	streams          stream.Handler
	handler          http.Handler
	base             *http.Server
	h2               *http2.Server
	resets           *stats.Counter
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
		base:      cfg.base,
		handler:   cfg.handler,
		resets:    cfg.resets,
		http1:     cfg.http1,
		h2c:       cfg.h2c,
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
		h1Streams = &h2cUpgrade{next: cfg.streams, h2: cfg.handler, srv: cfg.base, h2s: cfg.h2, closed: cfg.resets}
	}
	s.h1 = &http1.Server{
		StreamHandler:     h1Streams,
		Limits:            http1.Limits{MaxHeaderBytes: cfg.maxHeader},
		ReadHeaderTimeout: cfg.readHeader,
		IdleTimeout:       cfg.idle,
		BaseServer:        cfg.base,
		Log:               cfg.log.Named("http1"),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			// Each connection is numbered once (Envoy's connection.id).
			ctx = withConnection(ctx)
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
		s.h1.H2C = func(c net.Conn, ctx context.Context) { s.serveH2(c, ctx) }
	}
	return s
}
