package http2

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// ClientOptions are a client connection's settings; zero fields take
// Envoy's defaults.
type ClientOptions struct {
	// Scheme is the :scheme of requests whose map has none ("http" for
	// h2c, "https" over TLS).
	Scheme string
	// StreamWindow is what the peer may send on one stream before we
	// read it (SETTINGS_INITIAL_WINDOW_SIZE); default 256 KiB.
	StreamWindow int32
	// ConnWindow is the connection's receive window; default 1 MiB.
	ConnWindow int32
	// MaxHeaderList bounds a response head (or trailers), decoded;
	// default 1 MiB, as the HTTP/1.1 client's head.
	MaxHeaderList uint32
	// ReadIdleTimeout: after this long without a frame from the peer a
	// PING is sent; PingTimeout later without one the connection is
	// closed (a peer gone without a FIN). 0 turns liveness checks off.
	ReadIdleTimeout time.Duration
	PingTimeout     time.Duration
	// IdleTimeout closes the connection once it has had no stream for
	// this long; 0 keeps it.
	IdleTimeout time.Duration

	readBound time.Duration // for tests; 0: the readBound constant
}

func (o *ClientOptions) fill() {
	if o.Scheme == "" {
		o.Scheme = "http"
	}
	if o.StreamWindow <= 0 {
		o.StreamWindow = 256 << 10
	}
	if o.ConnWindow <= 0 {
		o.ConnWindow = 1 << 20
	}
	if o.MaxHeaderList == 0 {
		o.MaxHeaderList = 1 << 20
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 15 * time.Second
	}
	if o.readBound <= 0 {
		o.readBound = readBound
	}
}

var (
	// ErrConnBusy: the connection takes no new stream now (the peer's
	// MAX_CONCURRENT_STREAMS is reached, or it is draining or closed).
	// Nothing was sent; another connection may take the request.
	ErrConnBusy = errors.New("http2: connection takes no new stream")
	// ErrInvalidHeader: a request field could end a field or is not
	// allowed; nothing was sent.
	ErrInvalidHeader = errors.New("http2: invalid request header field")
	// ErrHeaderListTooLarge: a request's header list is larger than the
	// peer's SETTINGS_MAX_HEADER_LIST_SIZE; nothing was sent.
	ErrHeaderListTooLarge = errors.New("http2: request header list larger than the upstream's SETTINGS_MAX_HEADER_LIST_SIZE")
	// errLost is the cause given to streams when the connection breaks.
	errLost = fmt.Errorf("http2: upstream connection lost: %w", io.ErrUnexpectedEOF)
)

// ClientConn is the client side of one HTTP/2 connection (h2c with prior
// knowledge, or TLS that negotiated h2). One goroutine reads frames and
// drives the streams; one writer goroutine hands every frame queued since
// its last write to the kernel in one Write, as the server side does.
// Streams are opened with Open and used from the caller's goroutines.
//
// What the peer does to streams reaches their owners as errors a pool can
// classify: RST_STREAM as an http2.StreamError with the peer's code
// (REFUSED_STREAM: never processed); a GOAWAY fails the streams above its
// last stream id with an http2.GoAwayError (never processed) and lets the
// others finish, after which the connection closes; a lost connection or
// a connection error (sent as GOAWAY with its RFC 9113 code) wraps
// io.ErrUnexpectedEOF. A malformed response resets its stream with
// PROTOCOL_ERROR; the connection serves on.
type ClientConn struct {
	conn    net.Conn
	opts    ClientOptions
	bounded boundedReader // what br reads
	br      *bufio.Reader
	frames  frameReader
	hdec    *hpackDecoder
	emit    func(name, value []byte) // onField

	// Reader-only state.
	block    responseBlock
	scratch  stream.HeaderMap // the header block being decoded
	lastRead atomic.Int64     // unix nanoseconds of the last frame read

	mu            sync.Mutex
	cond          sync.Cond // windows, pending space or state changed
	streams       map[uint32]*ClientStream
	nextID        uint32
	peerMaxStream uint32
	peerMaxList   uint32 // the peer's SETTINGS_MAX_HEADER_LIST_SIZE
	settingsSeen  bool
	settingsCh    chan struct{} // closed at the peer's first SETTINGS
	doneCh        chan struct{} // closed when the connection is closed
	draining      bool          // no new streams: GOAWAY, or retired
	goAwayID      uint32
	goAwayCode    http2.ErrCode // the peer's
	goAwaySent    bool          // ours is queued: the writer closes the socket after it
	closed        bool
	err           error
	idleTimer     *time.Timer
	pingTimer     *time.Timer
	pingOut       bool

	// Send side (under mu).
	frameQueue
	sendWindow  int64       // the peer's connection window
	peerInitial int64       // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	head        []headField // the request head being sent (requestHeadLocked)
	scheme      []byte      // opts.Scheme
	lengthBuf   [20]byte    // its content-length's digits

	// Receive side flow control (under mu).
	recvWindow  int64
	recvUnacked int64
}

// NewClientConn starts HTTP/2 on c: it queues the preface, our SETTINGS
// and the connection window, and starts the reader and the writer. The
// peer's SETTINGS arrive later (WaitSettings).
func NewClientConn(c net.Conn, opts ClientOptions) *ClientConn {
	opts.fill()
	cc := &ClientConn{
		conn:          c,
		opts:          opts,
		streams:       make(map[uint32]*ClientStream),
		nextID:        1,
		peerMaxStream: math.MaxUint32, // RFC 9113 6.5.2: unlimited until SETTINGS
		peerMaxList:   math.MaxUint32,
		scheme:        []byte(opts.Scheme),
		settingsCh:    make(chan struct{}),
		doneCh:        make(chan struct{}),
		sendWindow:    initialWindow,
		peerInitial:   initialWindow,
		recvWindow:    int64(opts.ConnWindow),
	}
	cc.frameQueue.init()
	cc.cond.L = &cc.mu
	cc.bounded.init(c, opts.readBound, &cc.mu, cc.closedLocked)
	cc.br = bufio.NewReaderSize(&cc.bounded, 16<<10)
	cc.frames.init(cc.br)
	cc.hdec = newHPACKDecoder(int(opts.MaxHeaderList))
	cc.emit = cc.onField
	cc.lastRead.Store(time.Now().UnixNano())

	cc.mu.Lock()
	cc.pending = append(cc.pending, clientPreface...)
	cc.wfr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(opts.StreamWindow)},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: opts.MaxHeaderList},
	)
	if d := int64(opts.ConnWindow) - initialWindow; d > 0 {
		cc.wfr.WriteWindowUpdate(0, uint32(d))
	}
	cc.signalWriter()
	if opts.ReadIdleTimeout > 0 {
		cc.pingTimer = time.AfterFunc(opts.ReadIdleTimeout, cc.checkAlive)
	}
	cc.mu.Unlock()

	go cc.writeLoop()
	cc.bounded.set(true) // before the reader, which alone touches it after
	go cc.readLoop()
	return cc
}

// closedLocked: the connection is closed; the writer closes the socket
// once its GOAWAY is out, or has already.
func (cc *ClientConn) closedLocked() bool { return cc.closed }

// WaitSettings waits for the peer's first SETTINGS frame (its limits:
// until then a peer allowing few streams would be sent more).
func (cc *ClientConn) WaitSettings(ctx context.Context) error {
	select {
	case <-cc.settingsCh:
		return nil
	case <-cc.doneCh:
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if cc.settingsSeen {
			return nil
		}
		return cc.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ClientConnState is a snapshot for a pool.
type ClientConnState struct {
	Closed   bool // the connection is gone
	Draining bool // it takes no new stream (GOAWAY, or retired)
	Active   int  // streams in flight
	// Full: the peer's MAX_CONCURRENT_STREAMS is reached.
	Full bool
}

func (cc *ClientConn) State() ClientConnState {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return ClientConnState{Closed: cc.closed, Draining: cc.draining, Active: len(cc.streams),
		Full: uint32(len(cc.streams)) >= cc.peerMaxStream}
}

// Retire takes no new stream and closes the connection once its streams
// have ended (max_requests_per_connection, a pool closing).
func (cc *ClientConn) Retire() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.draining = true
	cc.maybeCloseLocked()
}

// Close closes the connection now, with a GOAWAY NO_ERROR; its streams
// fail.
func (cc *ClientConn) Close() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.shutdownLocked(net.ErrClosed)
	return nil
}

// Done is closed once the connection is closed.
func (cc *ClientConn) Done() <-chan struct{} { return cc.doneCh }

// Err is why the connection ended (nil while it is up).
func (cc *ClientConn) Err() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err
}

// maybeCloseLocked closes a draining connection whose last stream ended,
// and arms the idle timer of one that has none.
func (cc *ClientConn) maybeCloseLocked() {
	if len(cc.streams) > 0 || cc.closed {
		return
	}
	if cc.draining {
		cc.shutdownLocked(net.ErrClosed)
		return
	}
	if cc.opts.IdleTimeout > 0 {
		if cc.idleTimer == nil {
			cc.idleTimer = time.AfterFunc(cc.opts.IdleTimeout, cc.closeIfIdle)
		} else {
			cc.idleTimer.Reset(cc.opts.IdleTimeout)
		}
	}
}

func (cc *ClientConn) closeIfIdle() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if len(cc.streams) == 0 && !cc.closed {
		cc.draining = true
		cc.shutdownLocked(net.ErrClosed)
	}
}

// checkAlive runs every ReadIdleTimeout: a PING after a silent period, the
// end of the connection when the previous PING went unanswered.
func (cc *ClientConn) checkAlive() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.closed {
		return
	}
	silent := time.Since(time.Unix(0, cc.lastRead.Load()))
	switch {
	case cc.pingOut && silent >= cc.opts.PingTimeout:
		cc.shutdownLocked(fmt.Errorf("http2: no answer to PING in %v: %w", cc.opts.PingTimeout, errLost))
		return
	case !cc.pingOut && silent >= cc.opts.ReadIdleTimeout:
		cc.pingOut = true
		cc.wfr.WritePing(false, [8]byte{'l', 'i', 'v', 'e', 'n', 'e', 's', 's'})
		cc.signalWriter()
		cc.pingTimer.Reset(cc.opts.PingTimeout)
		return
	}
	cc.pingTimer.Reset(cc.opts.ReadIdleTimeout)
}

// goAwayCloseTimeout bounds how long a closing connection's last frames
// (its GOAWAY) may take to reach a peer that does not read.
const goAwayCloseTimeout = time.Second

// shutdownLocked is a close of our own (Close, a retired or idle
// connection, a peer silent past PingTimeout): the peer learns it with a
// GOAWAY NO_ERROR (RFC 9113 6.8; as the server does on drain) before the
// socket closes. Last-Stream-ID is 0: we take no stream from the peer
// (push is off).
func (cc *ClientConn) shutdownLocked(err error) {
	if cc.closed {
		return
	}
	if !cc.goAwaySent {
		cc.goAwaySent = true
		cc.wfr.WriteGoAway(0, http2.ErrCodeNo, nil)
	}
	cc.closeLocked(err)
}

// closeLocked ends the connection; its streams fail with err. With a
// GOAWAY queued the writer writes it (within goAwayCloseTimeout) and then
// closes the socket; without one (the connection broke, or the peer
// floods us) the socket closes now. Either way the reader's next read
// fails and it stops.
func (cc *ClientConn) closeLocked(err error) {
	if cc.closed {
		return
	}
	cc.closed, cc.draining = true, true
	if cc.err == nil {
		cc.err = err
	}
	for _, s := range cc.streams {
		s.abortLocked(err)
	}
	clear(cc.streams)
	if cc.idleTimer != nil {
		cc.idleTimer.Stop()
	}
	if cc.pingTimer != nil {
		cc.pingTimer.Stop()
	}
	close(cc.doneCh)
	cc.cond.Broadcast()
	if cc.goAwaySent {
		cc.conn.SetWriteDeadline(time.Now().Add(goAwayCloseTimeout))
	} else {
		cc.conn.Close()
	}
	cc.signalWriter()
}

func (cc *ClientConn) teardown(err error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.closeLocked(err)
}

// connError ends the connection with a GOAWAY carrying code (RFC 9113
// 5.4.1), written before the socket closes (closeLocked).
func (cc *ClientConn) connError(code http2.ErrCode, why string) error {
	cc.mu.Lock()
	if !cc.closed && !cc.goAwaySent {
		cc.goAwaySent = true
		cc.wfr.WriteGoAway(0, code, nil)
		cc.signalWriter()
		cc.draining = true
	}
	cc.mu.Unlock()
	// The reader stops on the error returned; its teardown leaves the
	// socket to the writer, which closes it once the GOAWAY is out.
	return fmt.Errorf("http2: upstream protocol error (%v): %s: %w", code, why, io.ErrUnexpectedEOF)
}

// maxQueuedControl bounds what may wait for the writer beyond a body
// batch: answers to a peer's PINGs and SETTINGS that it sends without
// reading ours (a control-frame flood, Envoy's max_outbound_control_frames).
const maxQueuedControl = maxPending + 64<<10

var errControlFlood = fmt.Errorf("http2: peer floods control frames without reading the answers: %w", io.ErrUnexpectedEOF)

// controlFloodLocked says the peer is flooding us: answers pile up past
// maxQueuedControl. The reader then ends the connection.
func (cc *ClientConn) controlFloodLocked() bool {
	return len(cc.pending) > maxQueuedControl
}

// readLoop is the connection's only reader.
func (cc *ClientConn) readLoop() {
	err := cc.readFrames()
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		err = errLost
	}
	cc.teardown(err)
}

func (cc *ClientConn) readFrames() error {
	for {
		f, hf, err := cc.frames.next()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				cc.mu.Lock()
				if s := cc.streams[se.StreamID]; s != nil {
					cc.resetLocked(s, se.Code, se)
				}
				cc.mu.Unlock()
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				return cc.connError(http2.ErrCode(ce), "bad frame")
			}
			if errors.Is(err, http2.ErrFrameTooLarge) {
				return cc.connError(http2.ErrCodeFrameSize, "frame too large")
			}
			return err
		}
		cc.lastRead.Store(time.Now().UnixNano())
		if hf != nil {
			err = cc.processHeaders(hf)
		} else {
			err = cc.processFrame(f)
		}
		if err != nil {
			return err
		}
	}
}

func (cc *ClientConn) processFrame(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.DataFrame:
		return cc.processData(f)
	case *http2.SettingsFrame:
		return cc.processSettings(f)
	case *http2.PingFrame:
		cc.mu.Lock()
		if !f.IsAck() {
			cc.wfr.WritePing(true, f.Data)
			cc.signalWriter()
		} else {
			cc.pingOut = false
		}
		flood := cc.controlFloodLocked()
		cc.mu.Unlock()
		if flood {
			return errControlFlood
		}
	case *http2.WindowUpdateFrame:
		return cc.processWindowUpdate(f)
	case *http2.RSTStreamFrame:
		cc.mu.Lock()
		if s := cc.streams[f.StreamID]; s != nil {
			if f.ErrCode == http2.ErrCodeNo && s.recvEnded {
				// The response is whole; the server only wants no more
				// of the request (RFC 9113 8.1).
				s.sendStopped = true
				cc.removeLocked(s)
				cc.cond.Broadcast()
			} else {
				cc.resetLocked(s, 0, http2.StreamError{StreamID: f.StreamID, Code: f.ErrCode})
			}
		} else if f.StreamID >= cc.nextID {
			cc.mu.Unlock()
			return cc.connError(http2.ErrCodeProtocol, "RST_STREAM on an idle stream")
		}
		cc.mu.Unlock()
	case *http2.GoAwayFrame:
		cc.mu.Lock()
		cc.draining = true
		cc.goAwayID, cc.goAwayCode = f.LastStreamID, f.ErrCode
		for id, s := range cc.streams {
			if id > f.LastStreamID {
				// Never processed: safe to send elsewhere.
				s.abortLocked(http2.GoAwayError{LastStreamID: f.LastStreamID, ErrCode: f.ErrCode})
				delete(cc.streams, id)
			}
		}
		cc.cond.Broadcast()
		cc.maybeCloseLocked()
		cc.mu.Unlock()
	case *http2.PushPromiseFrame:
		return cc.connError(http2.ErrCodeProtocol, "PUSH_PROMISE with push disabled")
	}
	return nil
}

func (cc *ClientConn) processSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			return cc.connError(http2.ErrCode(ce), "bad setting")
		}
		return cc.connError(http2.ErrCodeProtocol, "bad setting")
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	overflow := false
	f.ForeachSetting(func(s http2.Setting) error {
		if cc.applyPeerSetting(s) {
			return nil
		}
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			cc.peerMaxStream = s.Val
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - cc.peerInitial
			cc.peerInitial = int64(s.Val)
			for _, st := range cc.streams {
				st.sendWindow += delta
				if st.sendWindow > maxWindow {
					overflow = true
				}
			}
		case http2.SettingMaxHeaderListSize:
			cc.peerMaxList = s.Val
		}
		return nil
	})
	if overflow {
		cc.mu.Unlock()
		err := cc.connError(http2.ErrCodeFlowControl, "window past 2^31-1")
		cc.mu.Lock()
		return err
	}
	cc.wfr.WriteSettingsAck()
	cc.signalWriter()
	cc.cond.Broadcast()
	if cc.controlFloodLocked() {
		return errControlFlood
	}
	if !cc.settingsSeen {
		cc.settingsSeen = true
		close(cc.settingsCh)
	}
	return nil
}

func (cc *ClientConn) processWindowUpdate(f *http2.WindowUpdateFrame) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if f.StreamID == 0 {
		cc.sendWindow += int64(f.Increment)
		if cc.sendWindow > maxWindow {
			cc.mu.Unlock()
			err := cc.connError(http2.ErrCodeFlowControl, "connection window past 2^31-1")
			cc.mu.Lock()
			return err
		}
	} else if s := cc.streams[f.StreamID]; s != nil {
		s.sendWindow += int64(f.Increment)
		if s.sendWindow > maxWindow {
			cc.resetLocked(s, http2.ErrCodeFlowControl, http2.StreamError{StreamID: s.id, Code: http2.ErrCodeFlowControl})
		}
	}
	cc.cond.Broadcast()
	return nil
}

func (cc *ClientConn) processData(f *http2.DataFrame) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	id := f.StreamID
	n := int64(f.Length)
	cc.recvWindow -= n
	if cc.recvWindow < 0 {
		cc.mu.Unlock()
		err := cc.connError(http2.ErrCodeFlowControl, "DATA past the connection window")
		cc.mu.Lock()
		return err
	}
	s := cc.streams[id]
	if s == nil {
		if id >= cc.nextID {
			cc.mu.Unlock()
			err := cc.connError(http2.ErrCodeProtocol, "DATA on an idle stream")
			cc.mu.Lock()
			return err
		}
		// A stream we reset or forgot: its bytes still count against the
		// connection window, which we give back at once.
		cc.creditConnLocked(n)
		return nil
	}
	data := f.Data()
	cc.creditConnLocked(n - int64(len(data))) // padding is never read
	s.recvWindow -= n
	switch {
	case s.recvWindow < 0:
		cc.creditConnLocked(int64(len(data)))
		cc.resetLocked(s, http2.ErrCodeFlowControl, http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl})
		return nil
	case s.recvEnded:
		cc.creditConnLocked(int64(len(data)))
		cc.closeLateLocked(s)
		return nil
	case !s.gotHead || s.trailersStarted:
		cc.creditConnLocked(int64(len(data)))
		cc.resetLocked(s, http2.ErrCodeProtocol, http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol})
		return nil
	}
	s.received += int64(len(data))
	if s.contentLength >= 0 && (s.received > s.contentLength || f.StreamEnded() && s.received != s.contentLength) {
		cc.creditConnLocked(int64(len(data)))
		cc.resetLocked(s, http2.ErrCodeProtocol, fmt.Errorf("http2: response body does not match its content-length: %w", http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}))
		return nil
	}
	s.buf.add(data)
	if f.StreamEnded() {
		s.recvEnded = true
		cc.endLocked(s)
	}
	s.signal()
	return nil
}

// creditConnLocked returns n bytes to the connection's receive window,
// with a WINDOW_UPDATE once half of it is owed.
func (cc *ClientConn) creditConnLocked(n int64) {
	if n <= 0 {
		return
	}
	cc.recvWindow += n
	cc.recvUnacked += n
	if cc.recvUnacked >= int64(cc.opts.ConnWindow)/2 && !cc.closed {
		cc.wfr.WriteWindowUpdate(0, uint32(cc.recvUnacked))
		cc.recvUnacked = 0
		cc.signalWriter()
	}
}

func (cc *ClientConn) processHeaders(f *headersFrame) error {
	if f.Type == http2.FrameContinuation {
		return cc.connError(http2.ErrCodeProtocol, "CONTINUATION without HEADERS")
	}
	id := f.StreamID
	cc.mu.Lock()
	s := cc.streams[id]
	if s == nil && id >= cc.nextID {
		cc.mu.Unlock()
		return cc.connError(http2.ErrCodeProtocol, "HEADERS on an idle stream")
	}
	var target *stream.HeaderMap
	trailers := false
	halfClosed := s != nil && s.recvEnded
	if halfClosed {
		// The response already ended (we are still sending): its head
		// and trailers are the owner's now. Decode only, then reset.
		s = nil
	}
	if s != nil {
		trailers = s.gotHead
		s.trailersStarted = trailers
		target = &cc.scratch
		target.Reset()
	}
	cc.mu.Unlock()

	// Decode on the reader alone into its scratch map: the stream may be
	// reset and reused meanwhile, and its owner sees only whole blocks,
	// swapped in below.
	cc.block.start(target, trailers, cc.opts.MaxHeaderList)
	if err := decodeHeaderBlock(&cc.frames, cc.hdec, f, int(cc.opts.MaxHeaderList)+2*defaultFrameSize, nil, cc.emit); err != nil {
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			return cc.connError(http2.ErrCode(ce), "reading a header block")
		}
		return err
	}

	cc.mu.Lock()
	defer cc.mu.Unlock()
	if s = cc.streams[id]; s == nil {
		return nil // reset while its block was read
	}
	if halfClosed {
		cc.closeLateLocked(s)
		return nil
	}
	b := &cc.block
	switch {
	case b.tooLarge:
		cc.resetLocked(s, http2.ErrCodeProtocol, fmt.Errorf("http2: response head past %d bytes: %w", cc.opts.MaxHeaderList, http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}))
		return nil
	case b.malformed != "":
		cc.resetLocked(s, http2.ErrCodeProtocol, fmt.Errorf("http2: malformed response (%s): %w", b.malformed, http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}))
		return nil
	case trailers && !f.StreamEnded():
		cc.resetLocked(s, http2.ErrCodeProtocol, fmt.Errorf("http2: trailers without END_STREAM: %w", http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}))
		return nil
	case trailers && s.contentLength >= 0 && s.received != s.contentLength && !s.headRequest:
		cc.resetLocked(s, http2.ErrCodeProtocol, fmt.Errorf("http2: response body does not match its content-length: %w", http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}))
		return nil
	case trailers:
		s.hasTrailers = true
		s.trailers, cc.scratch = cc.scratch, s.trailers
	case b.status == 0:
		cc.resetLocked(s, http2.ErrCodeProtocol, fmt.Errorf("http2: response without :status: %w", http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}))
		return nil
	case b.status < 200:
		if b.status == 101 || f.StreamEnded() {
			cc.resetLocked(s, http2.ErrCodeProtocol, fmt.Errorf("http2: bad interim response %d: %w", b.status, http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}))
			return nil
		}
		if s.interim++; s.interim > 10 {
			cc.resetLocked(s, http2.ErrCodeProtocol, fmt.Errorf("http2: more than 10 interim responses: %w", http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}))
		}
		return nil // skipped; the final head comes next
	default:
		s.gotHead = true
		s.head, cc.scratch = cc.scratch, s.head
		s.status = b.status
		s.contentLength = b.contentLength
		// A HEAD or 304 answer's content-length describes a body it does
		// not carry (RFC 9110 8.6).
		if f.StreamEnded() && s.contentLength > 0 && !s.headRequest && b.status != 304 {
			cc.resetLocked(s, http2.ErrCodeProtocol, fmt.Errorf("http2: response body does not match its content-length: %w", http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}))
			return nil
		}
	}
	if f.StreamEnded() {
		s.recvEnded = true
		cc.endLocked(s)
	}
	s.signal()
	return nil
}

func (cc *ClientConn) onField(name, value []byte) { cc.block.add(fieldView(name, value)) }

// resetLocked ends s with err for its owner; code, when not 0 (NO_ERROR
// is not a reason we reset with), is sent in a RST_STREAM; 0 is a reset
// the peer sent.
func (cc *ClientConn) resetLocked(s *ClientStream, code http2.ErrCode, err error) {
	if code != 0 && !cc.closed {
		cc.wfr.WriteRSTStream(s.id, code)
		cc.signalWriter()
	}
	if code != 0 {
		// Our reset: what was not read is dropped. A peer's reset leaves
		// the bytes that came before it to be read, then the error.
		if unread := s.buf.drop(); unread > 0 {
			cc.creditConnLocked(int64(unread))
		}
	}
	s.abortLocked(err)
	cc.removeLocked(s)
}

// closeLateLocked answers a frame that came after the response's
// END_STREAM (RFC 9113 5.1: STREAM_CLOSED) while the request was still
// being sent: the stream is reset and the request body stops, but the
// response, complete before that frame, stays whole for its owner.
func (cc *ClientConn) closeLateLocked(s *ClientStream) {
	if !cc.closed {
		cc.wfr.WriteRSTStream(s.id, http2.ErrCodeStreamClosed)
		cc.signalWriter()
	}
	s.sendStopped = true
	cc.removeLocked(s)
	cc.cond.Broadcast()
}

// endLocked forgets s once both directions have ended; its unread body
// stays for the owner.
func (cc *ClientConn) endLocked(s *ClientStream) {
	if s.recvEnded && s.sendEnded {
		cc.removeLocked(s)
	}
}

func (cc *ClientConn) removeLocked(s *ClientStream) {
	if cc.streams[s.id] == s {
		delete(cc.streams, s.id)
		cc.cond.Broadcast()
		cc.maybeCloseLocked()
	}
}
