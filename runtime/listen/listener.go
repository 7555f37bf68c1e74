// Package listen runs sluice's downstream listeners: HTTP/1.1, HTTP/2 over
// TLS (ALPN), h2c (prior knowledge and Upgrade) and HTTP/3 on the UDP port
// of the TLS listener, all in front of one http.Handler.
package listen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/http2"
	"github.com/sluice-proxy/sluice/runtime/httpstream"
	"github.com/sluice-proxy/sluice/runtime/iohandle"
	"github.com/sluice-proxy/sluice/runtime/mesh"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Listener is one running downstream listener.
type Listener struct {
	Name string
	cfg  config.Listener
	log  *zap.Logger

	tcp net.Listener
	// permissive: connections that start with a handshake get TLS, the
	// others are served as plain HTTP (permissiveListener sorts them).
	permissive bool
	conns      *connServer
	h3         *http3.Server
	udp        net.PacketConn
	wg         sync.WaitGroup
	errs       chan error
}

// Defaults for the listener limits when the config leaves them zero.
const (
	defaultReadHeaderTimeout    = 10 * time.Second
	defaultIdleTimeout          = 60 * time.Second
	defaultMaxHeaderBytes       = 64 << 10
	defaultMaxConcurrentStreams = 250
)

// Guards are the process-wide protections a listener takes part in; the
// zero value has none.
type Guards struct {
	// Conns caps the downstream connections of every data-plane listener.
	Conns *ConnLimit
	// Stats, when set, counts what the guards refuse.
	Stats *stats.Registry
}

// HTTP starts an HTTP listener for cfg in front of the connection manager
// h. setAltSvc is called with the Alt-Svc value when the listener serves
// HTTP/3. Every protocol reaches h as stream.ServerStreams: HTTP/1.1 from
// runtime/http1 and HTTP/2 from runtime/http2 directly, HTTP/3 through the
// net/http adapter (runtime/httpstream).
func HTTP(cfg config.Listener, h stream.Handler, setAltSvc func(string), log *zap.Logger, g Guards) (*Listener, error) {
	handler := httpstream.Handler(h)
	l := &Listener{Name: cfg.Name, cfg: cfg, log: log, errs: make(chan error, 2)}
	has := func(p string) bool { return slices.Contains(cfg.Protocols, p) }

	readHeader := orDuration(cfg.ReadHeaderTimeout.D(), defaultReadHeaderTimeout)
	idle := orDuration(cfg.IdleTimeout.D(), defaultIdleTimeout)
	maxHeader := int(cfg.MaxHeaderBytes)
	if maxHeader <= 0 {
		maxHeader = defaultMaxHeaderBytes
	}
	streams := cfg.MaxConcurrentStreams
	if streams == 0 {
		streams = defaultMaxConcurrentStreams
	}
	// HTTP/1.1 and HTTP/2 are sluice's own codecs (runtime/http1,
	// runtime/http2), both in front of the connection manager; HTTP/2
	// connections come by ALPN, the h2c preface or an h2c upgrade.
	h2s := &http2.Server{
		MaxConcurrentStreams: streams,
		StreamWindow:         int32(cfg.InitialStreamWindowSize),
		ConnWindow:           int32(cfg.InitialConnectionWindowSize),
		MaxHeaderListSize:    uint32(maxHeader),
		IdleTimeout:          idle,
		ConnInfo:             h2ConnInfo,
		Log:                  log.Named("http2"),
		ConnContext: func(c net.Conn) context.Context {
			// A TLS connection's facts (peer identity, certificate hash)
			// are worked out for its first stream and kept.
			if _, ok := c.(*tls.Conn); ok {
				return mesh.WithConnTLS(context.Background())
			}
			return nil
		},
	}
	if g.Stats != nil && (has("h2") || has("h2c") || Permissive(cfg)) {
		resets := g.Stats.Counter("sluice_downstream_rq_too_many_premature_resets_total", "HTTP/2 connections closed (GOAWAY ENHANCE_YOUR_CALM) for resetting too many streams just after opening them.", "listener", cfg.Name)
		h2s.OnFloodClose = func(reason string) {
			if reason == http2.FloodPrematureResets {
				resets.Inc()
				return
			}
			g.Stats.Counter("sluice_downstream_cx_http2_flood_total", "HTTP/2 connections closed for a flood of frames (control frames, empty frames, priority, window updates, CONTINUATION, unread output).", "listener", cfg.Name, "reason", reason).Inc()
		}
	}

	var tlsCfg *tls.Config
	if cfg.TLS != nil {
		var protos []string
		if has("h2") {
			protos = append(protos, "h2")
		}
		if has("http1") || len(protos) == 0 {
			protos = append(protos, "http/1.1")
		}
		var err error
		tlsCfg, err = serverTLS(cfg.TLS, protos, log)
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", cfg.Name, err)
		}
	}

	serveHTTP1 := has("http1") || len(cfg.Protocols) == 0
	h2c := cfg.TLS == nil && has("h2c")
	if cfg.TLS != nil {
		l.permissive = Permissive(cfg)
	}
	l.conns = newConnServer(connServerConfig{
		streams:    h,
		h2:         h2s,
		tls:        tlsCfg,
		permissive: l.permissive,
		http1:      serveHTTP1,
		// Plain-text peers of a permissive inbound side may speak h2c.
		h2c:        h2c || l.permissive,
		h2cUpgrade: h2c && serveHTTP1,
		readHeader: readHeader,
		idle:       idle,
		maxHeader:  maxHeader,
		log:        log,
	})

	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", cfg.Name, err)
	}
	ln = g.Conns.Listener(iohandle.Listener(ln))
	if cfg.TLS == nil && has("h2c") {
		ln = prefaceListener{Listener: ln, h2Only: !has("http1")}
	}
	if l.permissive {
		ln = newPermissiveListener(ln, tlsCfg, readHeader)
	}
	l.tcp = ln

	if has("h3") {
		if tlsCfg == nil {
			ln.Close()
			return nil, fmt.Errorf("listener %q: h3 needs tls", cfg.Name)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		udp, err := net.ListenPacket("udp", net.JoinHostPort(hostOf(cfg.Address), strconv.Itoa(port)))
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("listener %q: h3 on udp port %d: %w", cfg.Name, port, err)
		}
		l.udp = udp
		h3TLS := tlsCfg.Clone()
		h3TLS.NextProtos = nil
		l.h3 = &http3.Server{
			Handler:        handler,
			TLSConfig:      http3.ConfigureTLSConfig(h3TLS),
			MaxHeaderBytes: maxHeader,
			IdleTimeout:    idle,
			ConnContext: func(ctx context.Context, _ *quic.Conn) context.Context {
				return mesh.WithConnTLS(withConnection(ctx))
			},
		}
		if setAltSvc != nil {
			setAltSvc(fmt.Sprintf(`h3=":%d"; ma=86400`, port))
		}
	}
	return l, nil
}

// Serve runs the listener until Shutdown; it returns at once.
func (l *Listener) Serve() {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := l.conns.serve(l.tcp); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.log.Error("listener stopped", zap.String("listener", l.Name), zap.Error(err))
		}
	}()
	if l.h3 != nil {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := l.h3.Serve(l.udp); err != nil && !errors.Is(err, http.ErrServerClosed) {
				l.log.Debug("http3 listener stopped", zap.String("listener", l.Name), zap.Error(err))
			}
		}()
	}
}

// Addr is the TCP address actually bound (useful with port 0).
func (l *Listener) Addr() net.Addr { return l.tcp.Addr() }

// Shutdown stops accepting and waits for in-flight requests to finish, up
// to ctx's deadline; then it closes what is left.
func (l *Listener) Shutdown(ctx context.Context) error {
	var first error
	if l.h3 != nil {
		if err := l.h3.Shutdown(ctx); err != nil && first == nil {
			first = err
		}
	}
	l.tcp.Close()
	if err := l.conns.shutdown(ctx); err != nil {
		if first == nil {
			first = err
		}
	}
	if l.h3 != nil {
		l.h3.Close()
		l.udp.Close()
	}
	l.wg.Wait()
	return first
}

// Permissive reports whether a listener takes mTLS and plain text on one
// port: a sidecar's inbound side with peer_authentication = "permissive"
// (TLS with a client CA that does not require a client certificate).
func Permissive(cfg config.Listener) bool {
	t := cfg.TLS
	return cfg.Direction == "inbound" && t != nil && t.ClientCA != "" && t.RequireClientCert != nil && !*t.RequireClientCert
}

func orDuration(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

// withConnection numbers a new downstream connection (Envoy's
// connection.id) and gives it the one stream.ConnectionInfo its streams
// share.
func withConnection(ctx context.Context) context.Context {
	return httpstream.WithConnection(ctx, filter.NextConnectionID())
}
