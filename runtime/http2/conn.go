package http2

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

const (
	clientPreface    = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	initialWindow    = 65535 // RFC 9113 6.9.2
	maxWindow        = 1<<31 - 1
	defaultFrameSize = 16384
	headerTableSize  = 4096
	// maxPending is how many bytes of frames may wait for the writer
	// before a body write waits for it: the batch a syscall takes.
	maxPending = 128 << 10
	// recentStreams is how many of the latest streams are remembered: to
	// tell a closed stream from one never opened (STREAM_CLOSED vs
	// PROTOCOL_ERROR) and to judge a reset of one no longer served as
	// premature or not. A power of two.
	recentStreams = 256
)

var (
	errConnClosed   = errors.New("http2: connection closed")
	errStreamReset  = errors.New("http2: stream reset")
	errStreamClosed = errors.New("http2: stream already ended")
)

// serverConn is one connection. The goroutine running serve is the only
// reader of the socket and the only caller of the Framer and the HPACK
// decoder; the writer goroutine (writeLoop) is the only writer of the
// socket; everything else shared is under mu.
type serverConn struct {
	srv      *Server
	lim      limits
	conn     net.Conn
	handler  stream.Handler
	info     *stream.ConnectionInfo
	values   context.Context // ConnContext's: the values of every stream's Context
	br       *bufio.Reader
	frames   frameReader
	hdec     *hpackDecoder
	emit     func(name, value []byte) // onField
	block    headerBlock              // the header block being decoded
	scratch  stream.HeaderMap
	handlers sync.WaitGroup

	bounded boundedReader // what br reads

	// Reader-only state.
	maxClientID   uint32
	undispatched  bool // startStream queued streams since dispatchStarts
	emptyFrames   int
	priorityCount int
	windowUpdates int
	streamsOpened int
	prematureRsts int

	mu         sync.Mutex
	wcond      sync.Cond // window, pending space or state changed
	streams    map[uint32]*serverStream
	open       int // streams open or half-closed (the concurrency limit's count)
	closed     bool
	closing    bool // a final GOAWAY is queued; the writer closes after it
	draining   bool // no new streams: we or the peer sent GOAWAY
	goAwaySent bool
	goAwayID   uint32
	err        error // why the connection ended
	flood      string
	start      time.Time
	idle       *time.Timer // drains the connection once it has no stream for IdleTimeout
	recent     [recentStreams]recentStream
	// Stream contexts that ended quiet, for the connection's next streams
	// (serverStream.Context): reused on this connection only, so a
	// context's values are always this connection's.
	freeCtxs []*streamContext
	// Streams decoded, their handlers not started yet (dispatchStarts).
	startHead, startTail *serverStream
	chaining             bool

	writeDeadline time.Time // the writer's (armWriteDeadline)

	// Send side (under mu).
	frameQueue
	pendingCtrl int   // control frames in pending (maxOutControl)
	sendWindow  int64 // the peer's connection window
	peerInitial int64 // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	dataSent    int

	// Receive side flow control (under mu).
	recvWindow  int64 // what the peer may still send on the connection
	recvUnacked int64 // consumed, not yet returned in a WINDOW_UPDATE
}

func (s *Server) newConn(c net.Conn, h stream.Handler) *serverConn {
	sc := &serverConn{
		srv:         s,
		lim:         s.limits(),
		conn:        c,
		handler:     h,
		info:        s.connInfo(c),
		values:      s.connContext(c),
		streams:     make(map[uint32]*serverStream),
		sendWindow:  initialWindow,
		peerInitial: initialWindow,
		start:       time.Now(),
	}
	sc.frameQueue.init()
	sc.wcond.L = &sc.mu
	sc.recvWindow = int64(sc.lim.connWindow)
	sc.bounded.init(c, sc.lim.readBound, &sc.mu, sc.closingLocked)
	sc.br = bufio.NewReaderSize(&sc.bounded, 16<<10)
	sc.frames.init(sc.br)
	sc.hdec = newHPACKDecoder(int(sc.lim.maxHeaderList))
	sc.emit = sc.onField
	if !s.track(sc, true) {
		return nil
	}
	if sc.lim.idleTimeout > 0 {
		sc.idle = time.AfterFunc(sc.lim.idleTimeout, sc.drain)
	}
	return sc
}

// serve runs the connection: preface, SETTINGS, then the frame loop on
// this goroutine. upgraded is the request of an h2c Upgrade (stream 1).
func (sc *serverConn) serve(upgraded *serverStream) error {
	defer sc.srv.track(sc, false)
	go sc.writeLoop()

	sc.mu.Lock()
	settings := []http2.Setting{
		{ID: http2.SettingMaxConcurrentStreams, Val: sc.lim.maxStreams},
		{ID: http2.SettingInitialWindowSize, Val: uint32(sc.lim.streamWindow)},
		{ID: http2.SettingMaxHeaderListSize, Val: sc.lim.maxHeaderList},
	}
	sc.wfr.WriteSettings(settings...)
	if d := sc.lim.connWindow - initialWindow; d > 0 {
		sc.wfr.WriteWindowUpdate(0, uint32(d))
	}
	sc.signalWriter()
	sc.mu.Unlock()

	if err := sc.readPreface(); err != nil {
		sc.teardown(err)
		return err
	}
	if upgraded != nil {
		sc.startStream(upgraded)
	}
	err := sc.readLoop()
	// Streams decoded last still get their handlers, which see the end.
	sc.dispatchStarts()
	sc.teardown(err)
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (sc *serverConn) readPreface() error {
	var buf [len(clientPreface)]byte
	sc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(sc.br, buf[:]); err != nil {
		return err
	}
	sc.bounded.set(true)
	if string(buf[:]) != clientPreface {
		return errors.New("http2: bad client preface")
	}
	return nil
}

// readLoop reads and handles frames until the connection fails or a
// connection error has queued the final GOAWAY.
func (sc *serverConn) readLoop() error {
	for {
		if sc.undispatched && !sc.frames.frameBuffered() {
			// The next read may wait for the peer: the streams decoded
			// so far start now.
			sc.dispatchStarts()
		}
		f, hf, err := sc.frames.next()
		sc.mu.Lock()
		closing := sc.closing
		sc.mu.Unlock()
		if closing {
			// A final GOAWAY is queued: what the peer sends now is read
			// and dropped until it closes or the writer gives up on it.
			if err != nil {
				return sc.closeErr(err)
			}
			continue
		}
		if err != nil {
			var se http2.StreamError
			switch {
			case errors.As(err, &se):
				sc.resetFromReader(se.StreamID, se.Code)
				continue
			case errors.Is(err, http2.ErrFrameTooLarge):
				err = http2.ConnectionError(http2.ErrCodeFrameSize)
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				sc.fail(http2.ErrCode(ce), "")
				continue
			}
			return err
		}
		if hf != nil {
			err = sc.processHeaders(hf)
		} else {
			err = sc.processFrame(f)
		}
		if err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				sc.fail(http2.ErrCode(ce), "")
				continue
			}
			return err
		}
	}
}

func (sc *serverConn) closeErr(err error) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.err != nil {
		return sc.err
	}
	return err
}

// fail ends the connection with a connection error: GOAWAY with code,
// then close once the peer has had GoAwayTimeout to read it. A flood
// reason is reported to OnFloodClose.
func (sc *serverConn) fail(code http2.ErrCode, flood string) {
	if flood != "" && sc.lim.onFloodClose != nil {
		sc.lim.onFloodClose(flood)
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.err == nil {
		sc.err = http2.ConnectionError(code)
	}
	sc.startCloseLocked(code)
}

// startCloseLocked queues the final GOAWAY; the writer sends it, half
// closes the socket and bounds the reader's drain.
func (sc *serverConn) startCloseLocked(code http2.ErrCode) {
	if sc.closing || sc.closed {
		return
	}
	sc.closing = true
	switch {
	case !sc.goAwaySent:
		sc.wfr.WriteGoAway(sc.maxClientID, code, nil)
	case code != http2.ErrCodeNo:
		// A drain's GOAWAY went already: the last stream id cannot grow.
		sc.wfr.WriteGoAway(sc.goAwayID, code, nil)
	}
	sc.goAwaySent = true
	sc.conn.SetWriteDeadline(time.Now().Add(sc.lim.goAwayTimeout))
	sc.signalWriter()
}

// closingLocked: the connection closes, and its read deadline is the
// writer's (GoAwayTimeout, once the final GOAWAY is out).
func (sc *serverConn) closingLocked() bool { return sc.closing || sc.closed }

// drain starts a graceful shutdown: GOAWAY(NO_ERROR) with the last stream
// accepted; open streams finish; the connection closes when none is left.
func (sc *serverConn) drain() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.draining || sc.closing || sc.closed {
		return
	}
	sc.draining = true
	sc.goAwayID = sc.maxClientID
	sc.goAwaySent = true
	sc.wfr.WriteGoAway(sc.goAwayID, http2.ErrCodeNo, nil)
	sc.signalWriter()
	sc.maybeFinishDrainLocked()
}

func (sc *serverConn) maybeFinishDrainLocked() {
	if sc.draining && len(sc.streams) == 0 {
		sc.startCloseLocked(http2.ErrCodeNo)
	}
}

// teardown ends everything: streams fail, handlers are waited for, the
// socket is closed.
func (sc *serverConn) teardown(err error) {
	sc.mu.Lock()
	if sc.err == nil {
		sc.err = err
	}
	closing := sc.closing
	sc.mu.Unlock()
	if closing {
		// Give the writer the chance to send the final GOAWAY (its
		// deadline bounds it) before the socket goes.
		<-sc.writerDone
	}
	sc.mu.Lock()
	sc.closed = true
	for _, st := range sc.streams {
		st.abortLocked(errConnClosed)
	}
	sc.wcond.Broadcast()
	sc.signalWriter()
	flood := sc.flood
	if sc.idle != nil {
		sc.idle.Stop()
	}
	sc.mu.Unlock()
	sc.conn.Close()
	if flood != "" && sc.lim.onFloodClose != nil {
		sc.lim.onFloodClose(flood)
	}
	sc.handlers.Wait()
	<-sc.writerDone
}

// processFrame handles one frame on the reader goroutine.
func (sc *serverConn) processFrame(f http2.Frame) error {
	empty := false
	var err error
	switch f := f.(type) {
	case *http2.DataFrame:
		empty = f.Length == 0 && !f.StreamEnded()
		err = sc.processData(f)
	case *http2.SettingsFrame:
		err = sc.processSettings(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			sc.mu.Lock()
			sc.wfr.WritePing(true, f.Data)
			err = sc.queuedControlLocked()
			sc.mu.Unlock()
		}
	case *http2.WindowUpdateFrame:
		err = sc.processWindowUpdate(f)
	case *http2.RSTStreamFrame:
		err = sc.processRSTStream(f)
	case *http2.PriorityFrame:
		err = sc.processPriority(f.StreamID, f.PriorityParam)
	case *http2.GoAwayFrame:
		// The peer opens no more streams; the open ones finish.
		sc.mu.Lock()
		sc.draining = true
		sc.maybeFinishDrainLocked()
		sc.mu.Unlock()
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	default:
		// Unknown frame types are ignored (RFC 9113 5.5).
	}
	if err != nil {
		return err
	}
	return sc.countEmpty(empty)
}

// countEmpty closes a connection that sends frames without payload that
// do nothing (Envoy's max_consecutive_inbound_frames_with_empty_payload).
func (sc *serverConn) countEmpty(empty bool) error {
	if !empty {
		sc.emptyFrames = 0
		return nil
	}
	sc.emptyFrames++
	if sc.emptyFrames > sc.lim.maxEmpty {
		sc.fail(http2.ErrCodeProtocol, FloodEmptyFrames)
		return nil
	}
	return nil
}

// queuedControlLocked counts a control frame queued for the writer; a
// peer that makes us queue more than the limit without reading them is
// cut off (Envoy's max_outbound_control_frames): a GOAWAY could not
// reach it anyway.
func (sc *serverConn) queuedControlLocked() error {
	sc.pendingCtrl++
	sc.pendingFrames++
	sc.signalWriter()
	if sc.pendingCtrl > sc.lim.maxOutControl || sc.pendingFrames > sc.lim.maxOutFrames {
		sc.closeNowLocked()
		return errOutboundFlood
	}
	return nil
}

var errOutboundFlood = errors.New("http2: too many frames queued for a peer that does not read them")

func (sc *serverConn) processSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		return err
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	// Settings apply in order: when one repeats, the last wins (RFC 9113
	// 6.5.3).
	if err := f.ForeachSetting(sc.applySetting); err != nil {
		return err
	}
	sc.wfr.WriteSettingsAck()
	return sc.queuedControlLocked()
}

// applySetting applies one of the peer's settings (under mu, or before
// the connection is served).
func (sc *serverConn) applySetting(s http2.Setting) error {
	if sc.applyPeerSetting(s) {
		return nil
	}
	if s.ID == http2.SettingInitialWindowSize {
		delta := int64(s.Val) - sc.peerInitial
		sc.peerInitial = int64(s.Val)
		for _, st := range sc.streams {
			st.sendWindow += delta
			if st.sendWindow > maxWindow {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
		}
		sc.wcond.Broadcast()
	}
	return nil
}

func (sc *serverConn) processWindowUpdate(f *http2.WindowUpdateFrame) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.windowUpdates++
	if sc.windowUpdates > 1+2*(sc.streamsOpened+sc.lim.maxWindowUpdates*sc.dataSent) && sc.lim.maxWindowUpdates < int(^uint(0)>>1) {
		sc.mu.Unlock()
		sc.fail(http2.ErrCodeEnhanceYourCalm, FloodWindowUpdates)
		sc.mu.Lock()
		return nil
	}
	if f.StreamID == 0 {
		sc.sendWindow += int64(f.Increment)
		if sc.sendWindow > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		sc.wcond.Broadcast()
		return nil
	}
	if f.StreamID > sc.maxClientID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // idle stream
	}
	st := sc.streams[f.StreamID]
	if st == nil || st.reset {
		return nil
	}
	st.sendWindow += int64(f.Increment)
	if st.sendWindow > maxWindow {
		sc.resetLocked(st, http2.ErrCodeFlowControl, true)
		return nil
	}
	sc.wcond.Broadcast()
	return nil
}

func (sc *serverConn) processRSTStream(f *http2.RSTStreamFrame) error {
	if f.StreamID > sc.maxClientID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // idle stream
	}
	sc.mu.Lock()
	st := sc.streams[f.StreamID]
	if st != nil && !st.reset {
		st.resetByPeer = true
		sc.resetLocked(st, 0, false)
	}
	// Premature: reset before its response was complete, soon after it
	// opened; a stream we refused counts too (the flood goes on past the
	// concurrency limit), one reset twice does not.
	r := sc.recentLocked(f.StreamID)
	premature := r.id == f.StreamID && !r.done && time.Since(sc.start)-r.openedAt < sc.lim.prematureAge
	if r.id == f.StreamID {
		r.done = true
	}
	sc.mu.Unlock()
	if premature {
		sc.prematureRsts++
		if sc.tooManyPrematureResets() {
			sc.fail(http2.ErrCodeEnhanceYourCalm, FloodPrematureResets)
		}
	}
	return nil
}

// tooManyPrematureResets is Envoy's heuristic: half of the streams reset
// within the minimum lifetime, checked once the connection has had
// PrematureResetStreams streams, and before as soon as the premature
// resets alone reach half of that.
func (sc *serverConn) tooManyPrematureResets() bool {
	if sc.streamsOpened < sc.lim.prematureStreams {
		return 2*sc.prematureRsts >= sc.lim.prematureStreams
	}
	return 2*sc.prematureRsts >= sc.streamsOpened
}

func (sc *serverConn) processPriority(id uint32, p http2.PriorityParam) error {
	// Priorities are ignored (RFC 9113 5.3.2 lets a server), but a stream
	// cannot depend on itself, and a flood of them is cut off.
	sc.priorityCount++
	if sc.priorityCount > sc.lim.maxPriority*(1+sc.streamsOpened) && sc.lim.maxPriority < int(^uint(0)>>1) {
		sc.fail(http2.ErrCodeEnhanceYourCalm, FloodPriorityFrames)
		return nil
	}
	if p.StreamDep == id {
		sc.resetFromReader(id, http2.ErrCodeProtocol)
	}
	return nil
}

// resetFromReader answers a stream error found while reading: RST_STREAM
// with code, and the stream (if open) ends.
func (sc *serverConn) resetFromReader(id uint32, code http2.ErrCode) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if st := sc.streams[id]; st != nil && !st.reset {
		sc.resetLocked(st, code, true)
		return
	}
	sc.writeRSTLocked(id, code)
}

// writeRSTLocked queues RST_STREAM for a stream that is already closed.
func (sc *serverConn) writeRSTLocked(id uint32, code http2.ErrCode) {
	if r := sc.recentLocked(id); r.id == id {
		r.rstSent = true
	}
	sc.wfr.WriteRSTStream(id, code)
	sc.queuedControlLocked()
}

// closeNowLocked closes the socket at once (a peer that does not read).
func (sc *serverConn) closeNowLocked() {
	if sc.closed || sc.flood != "" {
		return
	}
	if sc.err == nil {
		sc.err = errOutboundFlood
	}
	sc.flood = FloodOutboundFrames // reported by teardown, outside the lock
	sc.closing = true
	sc.conn.Close()
	sc.signalWriter() // so that it sees the end and returns
}

// resetLocked ends st: RST_STREAM with code when send is set (our reset),
// the handler's reads and writes fail and its context ends.
func (sc *serverConn) resetLocked(st *serverStream, code http2.ErrCode, send bool) {
	if st.reset {
		return
	}
	wasOpen := st.isOpen()
	st.reset = true
	if wasOpen {
		sc.open--
	}
	if send && !sc.closed {
		sc.writeRSTLocked(st.id, code)
	}
	// Body bytes the handler will now never read go back to the
	// connection's window.
	sc.creditConnLocked(int64(st.recv.drop()))
	st.abortLocked(errStreamReset)
	sc.wcond.Broadcast()
}

// creditConnLocked returns n consumed bytes to the connection's receive
// window, with a WINDOW_UPDATE once half the window is owed.
func (sc *serverConn) creditConnLocked(n int64) {
	if n <= 0 {
		return
	}
	sc.recvWindow += n
	sc.recvUnacked += n
	if sc.recvUnacked >= int64(sc.lim.connWindow)/2 && !sc.closed && !sc.closing {
		sc.wfr.WriteWindowUpdate(0, uint32(sc.recvUnacked))
		sc.recvUnacked = 0
		sc.pendingFrames++
		sc.signalWriter()
	}
}

// recentStream is what is remembered of one of the latest streams (see
// recentStreams), under mu.
type recentStream struct {
	id       uint32
	done     bool          // its response was complete, or it was reset already
	rstSent  bool          // we reset it: what the peer had in flight is ignored
	openedAt time.Duration // since the connection's start
}

func (sc *serverConn) recentLocked(id uint32) *recentStream {
	return &sc.recent[(id>>1)&(recentStreams-1)]
}

// rememberStream records that stream id was opened now (refused or not).
func (sc *serverConn) rememberStream(id uint32) {
	sc.mu.Lock()
	*sc.recentLocked(id) = recentStream{id: id, openedAt: time.Since(sc.start)}
	sc.mu.Unlock()
}

func (sc *serverConn) wasStream(id uint32) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.recentLocked(id).id == id
}

func (sc *serverConn) processData(f *http2.DataFrame) error {
	id := f.StreamID
	if id > sc.maxClientID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // idle stream
	}
	n := int64(f.Length) // padding included: it counts against the windows
	data := f.Data()
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if n > sc.recvWindow {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	sc.recvWindow -= n
	st := sc.streams[id]
	if st == nil || st.reset || st.closedRemote {
		// Dropped: the connection's window gets the bytes back. Frames in
		// flight after our own RST_STREAM are ignored (RFC 9113 5.1);
		// anything else on a closed stream is STREAM_CLOSED.
		sc.creditConnLocked(n)
		switch {
		case st == nil && sc.recentLocked(id).id == id && sc.recentLocked(id).rstSent:
			// Gone after our RST_STREAM (e.g. a response complete
			// before the request, RST_STREAM NO_ERROR).
		case st == nil || st.reset && st.resetByPeer:
			sc.writeRSTLocked(id, http2.ErrCodeStreamClosed)
		case !st.reset:
			sc.resetLocked(st, http2.ErrCodeStreamClosed, true)
		}
		return nil
	}
	if n > st.recvWindow {
		sc.creditConnLocked(n)
		sc.resetLocked(st, http2.ErrCodeFlowControl, true)
		return nil
	}
	st.recvWindow -= n
	if pad := n - int64(len(data)); pad > 0 {
		sc.creditConnLocked(pad)
		st.creditLocked(pad)
	}
	st.received += int64(len(data))
	if st.declaredLen >= 0 && (st.received > st.declaredLen || f.StreamEnded() && st.received != st.declaredLen) {
		// content-length disagrees with the DATA (RFC 9113 8.1.1).
		sc.creditConnLocked(int64(len(data)))
		sc.resetLocked(st, http2.ErrCodeProtocol, true)
		return nil
	}
	st.recv.add(data)
	if f.StreamEnded() {
		st.closeRemoteLocked()
	}
	st.cond.Broadcast()
	return nil
}

// processHeaders handles a HEADERS frame and the CONTINUATIONs that
// finish its block: a new stream, trailers, or an error.
func (sc *serverConn) processHeaders(f *headersFrame) error {
	if f.Type == http2.FrameContinuation {
		// The Framer lets a CONTINUATION through only after a HEADERS
		// without END_HEADERS, whose block readHeaderBlock reads: this
		// one follows a HEADERS refused before its block was read.
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if err := sc.countEmpty(false); err != nil {
		return err
	}
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	// Priorities are ignored, but a stream cannot depend on itself.
	selfDep := f.HasPriority() && f.Priority.StreamDep == id
	if id <= sc.maxClientID {
		return sc.processTrailers(f, selfDep)
	}
	sc.maxClientID = id

	sc.mu.Lock()
	refuse := sc.draining || sc.closing || sc.open >= int(sc.lim.maxStreams) || len(sc.streams) >= 2*int(sc.lim.maxStreams)
	sc.mu.Unlock()
	st := newServerStream(sc, id)
	b := &sc.block
	b.start(&st.req, false, sc.lim.maxHeaderList)
	if refuse {
		b.discard = true
	}
	if err := sc.readHeaderBlock(f); err != nil {
		st.release()
		return err
	}
	sc.streamsOpened++
	sc.rememberStream(id)
	switch {
	case refuse:
		st.release()
		sc.resetFromReader(id, http2.ErrCodeRefusedStream)
		return nil
	case selfDep || b.malformed != "" || !b.requestComplete():
		st.release()
		sc.resetFromReader(id, http2.ErrCodeProtocol)
		return nil
	case b.tooLarge:
		st.release()
		sc.answer431(id, f.StreamEnded())
		return nil
	}
	st.declaredLen = b.contentLength
	st.headRequest = string(b.method) == "HEAD"
	switch {
	case f.StreamEnded():
		st.bodyLen = 0
		if st.declaredLen > 0 {
			st.release()
			sc.resetFromReader(id, http2.ErrCodeProtocol)
			return nil
		}
	case st.declaredLen >= 0:
		st.bodyLen = st.declaredLen
	default:
		st.bodyLen = -1
	}
	sc.mu.Lock()
	if f.StreamEnded() {
		st.closedRemote = true
	}
	sc.mu.Unlock()
	sc.startStream(st)
	return nil
}

// startStream publishes st; its handler starts when the reader has
// decoded what it has buffered (dispatchStarts), in the order the streams
// came. The handler is counted before the stream is published: a running
// handler's startNext may take it as soon as it is on the queue, and its
// handler may end (handlers.Done) before this goroutine goes on, which
// with the count after drove it negative and panicked the process.
func (sc *serverConn) startStream(st *serverStream) {
	sc.handlers.Add(1)
	sc.mu.Lock()
	st.sendWindow = sc.peerInitial
	sc.streams[st.id] = st
	sc.open++
	if sc.idle != nil {
		sc.idle.Stop()
	}
	if sc.startTail == nil {
		sc.startHead = st
	} else {
		sc.startTail.nextStart = st
	}
	sc.startTail = st
	sc.mu.Unlock()
	if h := sc.srv.testHookStreamQueued; h != nil {
		h(sc)
	}
	sc.undispatched = true
}

// dispatchStarts starts the handlers of the streams startStream queued,
// one after another: the first goes to a handler goroutine, which hands
// the next to another one before it runs its own (startNext). Each
// hand-off makes the new goroutine the next to run (Go's scheduler runs
// the goroutine a running one readied next), so every stream of a read
// starts as soon as the one before it waits (typically on its upstream):
// a request is forwarded when it is decoded, not after everything else
// runnable. A dispatch per stream did that to all but the last stream of
// a read (each hand-off pushed the one before to the back of the run
// queue), the largest share of h2's tail latency under load. Called by
// the reader before a read that may wait for the peer.
func (sc *serverConn) dispatchStarts() {
	sc.undispatched = false
	sc.mu.Lock()
	var st *serverStream
	if !sc.chaining {
		st = sc.nextStartLocked()
	}
	sc.mu.Unlock()
	if st != nil {
		sc.srv.dispatch(st)
	}
}

// nextStartLocked takes the first stream waiting to start, and notes
// whether the chain of hand-offs goes on (chaining: a goroutine is on its
// way that takes the next one itself).
func (sc *serverConn) nextStartLocked() *serverStream {
	st := sc.startHead
	if st == nil {
		sc.chaining = false
		return nil
	}
	sc.startHead, st.nextStart = st.nextStart, nil
	if sc.startHead == nil {
		sc.startTail = nil
	}
	sc.chaining = true
	return st
}

// startNext is the chain's step, on a handler goroutine before it runs
// its own stream: the next waiting stream goes to another goroutine.
func (sc *serverConn) startNext() {
	sc.mu.Lock()
	st := sc.nextStartLocked()
	sc.mu.Unlock()
	if st != nil {
		sc.srv.dispatch(st)
	}
}

// processTrailers handles HEADERS on a stream already seen.
func (sc *serverConn) processTrailers(f *headersFrame, selfDep bool) error {
	id := f.StreamID
	sc.mu.Lock()
	st := sc.streams[id]
	var state int
	switch {
	case st == nil && sc.recentLocked(id).id == id && sc.recentLocked(id).rstSent:
		state = 1
	case st == nil || st.endSent && st.closedRemote && !st.reset:
		state = 0 // closed (its handler may not have returned yet)
	case st.reset && !st.resetByPeer:
		state = 1 // we reset it: frames in flight are ignored
	case st.reset || st.closedRemote:
		state = 2
	default:
		state = 3
	}
	sc.mu.Unlock()
	b := &sc.block
	sc.scratch.Reset()
	b.start(&sc.scratch, true, sc.lim.maxHeaderList)
	b.discard = state != 3
	if err := sc.readHeaderBlock(f); err != nil {
		return err
	}
	switch state {
	case 0:
		if sc.wasStream(id) {
			return http2.ConnectionError(http2.ErrCodeStreamClosed)
		}
		return http2.ConnectionError(http2.ErrCodeProtocol) // never opened: ids only grow
	case 1:
		return nil
	case 2:
		sc.resetFromReader(id, http2.ErrCodeStreamClosed)
		return nil
	}
	if selfDep || !f.StreamEnded() || b.malformed != "" || b.tooLarge {
		// Trailers end the stream (RFC 9113 8.1).
		sc.resetFromReader(id, http2.ErrCodeProtocol)
		return nil
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if st.reset || sc.streams[id] != st {
		return nil
	}
	if st.declaredLen >= 0 && st.received != st.declaredLen {
		sc.resetLocked(st, http2.ErrCodeProtocol, true)
		return nil
	}
	// The handler reads the trailers only after the end of the body,
	// which is set below under the same lock.
	st.trailers, sc.scratch = sc.scratch, st.trailers
	st.hasTrailers = true
	st.closeRemoteLocked()
	st.cond.Broadcast()
	return nil
}

// readHeaderBlock decodes f's block and the CONTINUATIONs after it. A
// block larger than the header list limit plus a frame's worth is a
// CONTINUATION flood: the connection closes.
func (sc *serverConn) readHeaderBlock(f *headersFrame) error {
	if !f.HeadersEnded() {
		sc.dispatchStarts() // its CONTINUATIONs may be slow to come
	}
	limit := int(sc.lim.maxHeaderList) + 2*defaultFrameSize
	err := decodeHeaderBlock(&sc.frames, sc.hdec, f, limit, func(frag []byte, ended bool) error {
		if err := sc.countEmpty(len(frag) == 0 && !ended); err != nil {
			return err
		}
		if sc.isClosing() {
			return errClosing
		}
		return nil
	}, sc.emit)
	if err == errHeaderFlood {
		sc.fail(http2.ErrCodeEnhanceYourCalm, FloodContinuation)
		return errClosing
	}
	return err
}

// errClosing: the connection is already closing; the read loop drains.
var errClosing = http2.ConnectionError(http2.ErrCodeNo)

func (sc *serverConn) isClosing() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.closing
}

// answer431 refuses a request whose headers are past the limit, as Envoy
// does, without reaching the handler.
func (sc *serverConn) answer431(id uint32, ended bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.hbuf.Reset()
	sc.henc.WriteField(hpack.HeaderField{Name: ":status", Value: "431"})
	sc.queueHeadersLocked(id, sc.hbuf.Bytes(), true)
	if !ended {
		sc.wfr.WriteRSTStream(id, http2.ErrCodeNo)
		sc.pendingFrames++
	}
	sc.signalWriter()
}

// onField is the HPACK decoder's emit function: the block's fields go
// through validation into the block's map.
func (sc *serverConn) onField(name, value []byte) { sc.block.add(fieldView(name, value)) }
