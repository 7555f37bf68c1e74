// Package http2 is sluice's HTTP/2 server codec (RFC 9113): it turns the
// frames of one connection into stream.ServerStream calls on a
// stream.Handler and the handler's writes back into frames. Frames are
// parsed by x/net's http2.Framer and header blocks encoded by its hpack
// package; the connection's state machine, flow control, write batching,
// limits and HPACK decoding are ours. See README.md for the invariants.
package http2

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Defaults, Envoy's where Envoy has one (its http2_protocol_options).
const (
	DefaultMaxConcurrentStreams = 100
	// DefaultStreamWindow is Envoy's initial_stream_window_size.
	DefaultStreamWindow = 256 << 10
	// DefaultConnWindow is Envoy's initial_connection_window_size.
	DefaultConnWindow = 1 << 20
	// DefaultMaxHeaderListSize is Envoy's max_request_headers_kb (60).
	DefaultMaxHeaderListSize = 60 << 10
	// DefaultMaxOutboundFrames and DefaultMaxOutboundControlFrames are
	// Envoy's max_outbound_frames and max_outbound_control_frames: frames
	// queued and not yet handed to the socket.
	DefaultMaxOutboundFrames        = 10000
	DefaultMaxOutboundControlFrames = 1000
	// DefaultMaxConsecutiveEmptyFrames is Envoy's
	// max_consecutive_inbound_frames_with_empty_payload.
	DefaultMaxConsecutiveEmptyFrames = 1
	// DefaultMaxPriorityFramesPerStream is Envoy's
	// max_inbound_priority_frames_per_stream.
	DefaultMaxPriorityFramesPerStream = 100
	// DefaultMaxWindowUpdatesPerDataFrame is Envoy's
	// max_inbound_window_update_frames_per_data_frame_sent.
	DefaultMaxWindowUpdatesPerDataFrame = 10
	// DefaultPrematureResetStreams and DefaultPrematureResetAge are
	// Envoy's overload.premature_reset_total_stream_count and
	// premature_reset_min_stream_lifetime_seconds (CVE-2023-44487).
	DefaultPrematureResetStreams = 500
	DefaultPrematureResetAge     = time.Second
	// DefaultGoAwayTimeout is how long a closing connection waits for the
	// peer to read its last GOAWAY before the socket is closed.
	DefaultGoAwayTimeout = time.Second
	// DefaultWriteTimeout is how long one write to the client may block
	// (nginx's send_timeout).
	DefaultWriteTimeout = 60 * time.Second
)

// Server holds the settings shared by the connections it serves. The zero
// value serves with the defaults above. Its fields must not change once
// ServeConn has been called.
type Server struct {
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS; a stream
	// past it is refused (REFUSED_STREAM). Default 100.
	MaxConcurrentStreams uint32
	// StreamWindow is SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a
	// stream may have in flight and buffered. Default 256 KiB.
	StreamWindow int32
	// ConnWindow is the connection's receive window. Default 1 MiB.
	ConnWindow int32
	// MaxHeaderListSize is SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113
	// 6.5.2's size: names, values and 32 bytes a field); a request past it
	// is answered 431 without reaching the handler. Default 60 KiB.
	MaxHeaderListSize uint32

	// Flood limits, each Envoy's; 0 takes the default, <0 disables.
	MaxOutboundFrames            int
	MaxOutboundControlFrames     int
	MaxConsecutiveEmptyFrames    int
	MaxPriorityFramesPerStream   int
	MaxWindowUpdatesPerDataFrame int
	// PrematureResetStreams: a connection whose client resets at least
	// half of its streams within PrematureResetAge of opening them is
	// closed with ENHANCE_YOUR_CALM, checked once it has had this many
	// streams, and before that as soon as the premature resets reach half
	// of it. Default 500 and 1s.
	PrematureResetStreams int
	PrematureResetAge     time.Duration
	// GoAwayTimeout: see DefaultGoAwayTimeout.
	GoAwayTimeout time.Duration
	// WriteTimeout closes a connection whose client has not taken a
	// write's bytes for this long (it stopped reading mid-response, and
	// its TCP window is full), ending its streams. Default 60 s.
	WriteTimeout time.Duration
	// IdleTimeout closes a connection (GOAWAY NO_ERROR) that has had no
	// stream for this long; 0 never does.
	IdleTimeout time.Duration

	// ConnInfo, when set, describes a connection for its streams (the
	// listener's connection ids); by default the Server numbers its
	// connections itself and reads TLS state from a *tls.Conn.
	ConnInfo func(net.Conn) *stream.ConnectionInfo

	// ConnContext, when set, gives a connection the context whose values
	// (only: not its deadline or cancellation) every stream's Context
	// carries, such as facts a listener works out once per connection.
	ConnContext func(net.Conn) context.Context

	// OnFloodClose, when set, is called when a connection is closed by a
	// flood or rapid-reset limit (a stats counter), with one of the Flood
	// reasons.
	OnFloodClose func(reason string)

	// Log, when set, gets a handler's panic with its stack (the stream is
	// reset, the connection and its other streams go on).
	Log *zap.Logger

	ids atomic.Uint64
	// work hands a stream to an idle handler goroutine (workers).
	work       chan *serverStream
	workerIdle time.Duration // 0: the workerIdle constant
	readBound  time.Duration // 0: the readBound constant
	// testHookStreamQueued, for tests, runs on the reader once a stream is
	// on the start queue, where a running handler may take it.
	testHookStreamQueued func(*serverConn)

	mu       sync.Mutex
	conns    map[*serverConn]struct{}
	draining bool
}

// The reasons OnFloodClose is given.
const (
	FloodPrematureResets = "premature_resets" // rapid reset (CVE-2023-44487)
	FloodEmptyFrames     = "empty_frames"     // empty DATA / CONTINUATION
	FloodWindowUpdates   = "window_updates"   // WINDOW_UPDATE per DATA sent
	FloodPriorityFrames  = "priority_frames"  // PRIORITY per stream
	FloodOutboundFrames  = "outbound_frames"  // frames queued for a peer that does not read
	FloodContinuation    = "continuation"     // header block past its limit
)

// ErrServerDraining is what ServeConn returns for a connection handed to a
// server that is shutting down.
var ErrServerDraining = errors.New("http2: server is shutting down")

// ServeConn serves HTTP/2 on c until the connection ends: c is a TCP
// connection whose client speaks h2c with prior knowledge, or a TLS
// connection whose ALPN chose "h2". It reads the client's preface itself.
// It returns once every stream's handler has returned; it closes c.
func (s *Server) ServeConn(c net.Conn, h stream.Handler) error {
	sc := s.newConn(c, h)
	if sc == nil {
		c.Close()
		return ErrServerDraining
	}
	return sc.serve(nil)
}

// Shutdown drains every connection: GOAWAY, open streams finish, new ones
// are refused; it returns when all have closed, or closes what is left and
// returns ctx's error when ctx ends first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	for sc := range s.conns {
		sc.drain()
	}
	s.mu.Unlock()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			s.mu.Lock()
			for sc := range s.conns {
				sc.conn.Close()
			}
			s.mu.Unlock()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *Server) track(sc *serverConn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, sc)
		return true
	}
	if s.draining {
		return false
	}
	if s.conns == nil {
		s.conns = map[*serverConn]struct{}{}
		s.work = make(chan *serverStream)
	}
	s.conns[sc] = struct{}{}
	return true
}

// limits is the Server's settings with the defaults filled in.
type limits struct {
	maxStreams        uint32
	streamWindow      int32
	connWindow        int32
	maxHeaderList     uint32
	maxOutFrames      int
	maxOutControl     int
	maxEmpty          int
	maxPriority       int
	maxWindowUpdates  int
	prematureStreams  int
	prematureAge      time.Duration
	goAwayTimeout     time.Duration
	writeTimeout      time.Duration
	idleTimeout       time.Duration
	readBound         time.Duration
	onFloodClose      func(string)
	initialConnWindow int32
}

func orInt(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return int(^uint(0) >> 1) // disabled
	}
	return v
}

func (s *Server) limits() limits {
	l := limits{
		maxStreams:       s.MaxConcurrentStreams,
		streamWindow:     s.StreamWindow,
		connWindow:       s.ConnWindow,
		maxHeaderList:    s.MaxHeaderListSize,
		maxOutFrames:     orInt(s.MaxOutboundFrames, DefaultMaxOutboundFrames),
		maxOutControl:    orInt(s.MaxOutboundControlFrames, DefaultMaxOutboundControlFrames),
		maxEmpty:         orInt(s.MaxConsecutiveEmptyFrames, DefaultMaxConsecutiveEmptyFrames),
		maxPriority:      orInt(s.MaxPriorityFramesPerStream, DefaultMaxPriorityFramesPerStream),
		maxWindowUpdates: orInt(s.MaxWindowUpdatesPerDataFrame, DefaultMaxWindowUpdatesPerDataFrame),
		prematureStreams: orInt(s.PrematureResetStreams, DefaultPrematureResetStreams),
		prematureAge:     s.PrematureResetAge,
		goAwayTimeout:    s.GoAwayTimeout,
		writeTimeout:     s.WriteTimeout,
		idleTimeout:      s.IdleTimeout,
		readBound:        s.readBound,
		onFloodClose:     s.OnFloodClose,
	}
	if l.readBound <= 0 {
		l.readBound = readBound
	}
	if l.maxStreams == 0 {
		l.maxStreams = DefaultMaxConcurrentStreams
	}
	if l.streamWindow <= 0 {
		l.streamWindow = DefaultStreamWindow
	}
	if l.connWindow <= 0 {
		l.connWindow = DefaultConnWindow
	}
	if l.connWindow < initialWindow {
		l.connWindow = initialWindow // the connection's window cannot shrink below the RFC's start
	}
	if l.maxHeaderList == 0 {
		l.maxHeaderList = DefaultMaxHeaderListSize
	}
	if l.prematureAge <= 0 {
		l.prematureAge = DefaultPrematureResetAge
	}
	if l.goAwayTimeout <= 0 {
		l.goAwayTimeout = DefaultGoAwayTimeout
	}
	if l.writeTimeout <= 0 {
		l.writeTimeout = DefaultWriteTimeout
	}
	return l
}

func (s *Server) connContext(c net.Conn) context.Context {
	if s.ConnContext == nil {
		return nil
	}
	return s.ConnContext(c)
}

// connInfo describes c for the streams of its connection.
func (s *Server) connInfo(c net.Conn) *stream.ConnectionInfo {
	if s.ConnInfo != nil {
		return s.ConnInfo(c)
	}
	info := &stream.ConnectionInfo{ID: s.ids.Add(1), Protocol: "HTTP/2", Scheme: "http", Remote: c.RemoteAddr(), Local: c.LocalAddr()}
	info.FormatAddresses()
	if tc, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
		cs := tc.ConnectionState()
		info.TLS, info.Scheme = &cs, "https"
	}
	return info
}
