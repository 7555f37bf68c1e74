package http2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// ClientStream is one request on a ClientConn. Its owner writes the body
// (Write, CloseSend) on one goroutine and reads the response (AwaitHead,
// Read, Trailers) on one goroutine; Cancel may come from any goroutine.
// Release hands it back for reuse once the owner is done with it.
type ClientStream struct {
	cc   *ClientConn
	id   uint32
	wake chan struct{} // the reader's "something changed", capacity 1

	// Under cc.mu.
	head            stream.HeaderMap
	trailers        stream.HeaderMap
	hasTrailers     bool
	trailersStarted bool
	status          int
	interim         int
	contentLength   int64
	headRequest     bool
	gotHead         bool
	buf             bodyBuffer // response body bytes received, not read yet
	received        int64
	recvEnded       bool
	sendEnded       bool
	sendStopped     bool // the peer wants no more of the request
	err             error
	sendWindow      int64
	recvWindow      int64
	recvUnacked     int64

	// The request's context: its end cancels the stream, seen by the
	// owner's waits (no goroutine or callback per request).
	ctx  context.Context
	done <-chan struct{}
}

var clientStreamPool = sync.Pool{New: func() any { return &ClientStream{wake: make(chan struct{}, 1)} }}

var (
	// ErrStreamCanceled is a stream's error after Cancel without a cause.
	ErrStreamCanceled = errors.New("http2: stream canceled")
	errSendEnded      = errors.New("http2: request body already ended")
)

// signal wakes the owner's wait (under cc.mu).
func (s *ClientStream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *ClientStream) abortLocked(err error) {
	if s.err == nil {
		s.err = err
	}
	s.signal()
}

// Open starts a stream: h (pseudo-headers :method, :path, :authority,
// optionally :scheme, then the fields) goes out as HEADERS, with as much
// of body as the windows (and one writer batch) take at once coalesced
// behind it; end (only when body went out whole) ends the request there. It
// returns what of body is left to Write. contentLength, when not
// negative, is sent as content-length (the map's own is dropped: framing
// is the codec's). ErrConnBusy means the
// connection takes no stream now and nothing was sent; ErrInvalidHeader
// that a field is unfit to send.
//
// ctx, when it ends, cancels the stream (RST_STREAM CANCEL): AwaitHead
// and Read return its error. A Write waiting for a window is woken by
// the cancel those make (or by Release).
func (cc *ClientConn) Open(ctx context.Context, h *stream.HeaderMap, contentLength int64, body []byte, end bool) (*ClientStream, []byte, error) {
	for i := 0; i < h.Len(); i++ {
		name, value := h.At(i)
		if len(name) > 0 && name[0] == ':' {
			name = name[1:]
		}
		if !validRequestName(name) || !validRequestValue(value) {
			return nil, body, ErrInvalidHeader
		}
	}
	method, _ := h.Get(stream.Method)
	cc.mu.Lock()
	if cc.nextID > maxWindow && !cc.draining {
		// Stream ids are spent (2^30 requests): the connection takes no
		// more and closes after its last stream.
		cc.draining = true
		cc.maybeCloseLocked()
	}
	if cc.closed || cc.draining || uint32(len(cc.streams)) >= cc.peerMaxStream {
		cc.mu.Unlock()
		return nil, body, ErrConnBusy
	}
	if size := cc.requestHeadLocked(h, contentLength); size > uint64(cc.peerMaxList) {
		limit := cc.peerMaxList
		clear(cc.head)
		cc.mu.Unlock()
		return nil, body, fmt.Errorf("%w: %d bytes, the upstream allows %d", ErrHeaderListTooLarge, size, limit)
	}
	s := clientStreamPool.Get().(*ClientStream)
	s.cc, s.id = cc, cc.nextID
	cc.nextID += 2
	s.contentLength = -1
	s.headRequest = string(method) == "HEAD"
	s.sendWindow, s.recvWindow = cc.peerInitial, int64(cc.opts.StreamWindow)
	cc.streams[s.id] = s
	if cc.idleTimer != nil {
		cc.idleTimer.Stop()
	}

	cc.encodeRequestLocked()
	endHeaders := end && len(body) == 0
	cc.queueHeadersLocked(s.id, cc.hbuf.Bytes(), endHeaders)
	if endHeaders {
		s.sendEnded = true
	} else {
		for len(body) > 0 && len(cc.pending) < maxPending {
			n := s.sendableLocked(len(body))
			if n == 0 {
				break
			}
			fin := end && n == len(body)
			cc.writeDataLocked(s, body[:n], fin)
			body = body[n:]
			if fin {
				s.sendEnded = true
			}
		}
		if end && len(body) == 0 && !s.sendEnded {
			cc.writeDataLocked(s, nil, true)
			s.sendEnded = true
		}
	}
	cc.signalWriter()
	cc.mu.Unlock()
	s.ctx, s.done = ctx, ctx.Done()
	return s, body, nil
}

// sendableLocked is how many of want bytes may go in one DATA frame now.
func (s *ClientStream) sendableLocked(want int) int {
	cc := s.cc
	return int(max(0, min(int64(want), s.sendWindow, cc.sendWindow, int64(cc.peerMaxFrame))))
}

// Write sends body bytes, waiting for the windows (and for the writer
// when much is queued). It fails once the stream was reset or the
// connection lost, and stops quietly (all of p "written") once the
// server, its response complete, reset the stream with NO_ERROR: it
// wants no more of the request (RFC 9113 8.1).
func (s *ClientStream) Write(p []byte) (int, error) {
	cc := s.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
	total := len(p)
	for len(p) > 0 {
		if s.err != nil {
			return total - len(p), s.err
		}
		if s.sendStopped {
			return total, nil
		}
		if s.sendEnded {
			return total - len(p), errSendEnded
		}
		n := s.sendableLocked(len(p))
		if n == 0 || len(cc.pending) >= maxPending {
			cc.cond.Wait()
			continue
		}
		cc.writeDataLocked(s, p[:n], false)
		cc.signalWriter()
		p = p[n:]
	}
	return total, nil
}

// CloseSend ends the request: trailers (if any, and not empty) in a
// HEADERS frame, else an empty DATA frame with END_STREAM.
func (s *ClientStream) CloseSend(trailers *stream.HeaderMap) error {
	cc := s.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.sendEnded || s.sendStopped {
		return nil
	}
	if trailers != nil && trailers.Len() > 0 {
		for name, value := range trailers.All() {
			if len(name) > 0 && name[0] == ':' {
				continue // not sent: trailers carry no pseudo-headers
			}
			if !validRequestName(name) || !validRequestValue(value) {
				cc.resetLocked(s, http2.ErrCodeCancel, ErrInvalidHeader)
				return ErrInvalidHeader
			}
		}
		cc.encodeTrailersLocked(trailers)
		cc.queueHeadersLocked(s.id, cc.hbuf.Bytes(), true)
	} else {
		cc.writeDataLocked(s, nil, true)
	}
	s.sendEnded = true
	cc.endLocked(s)
	cc.signalWriter()
	return nil
}

// AwaitHead waits for the final response head (interim 1xx heads are
// skipped). The stream's context bounds the wait through Cancel.
func (s *ClientStream) AwaitHead() error {
	cc := s.cc
	for {
		cc.mu.Lock()
		got, err := s.gotHead, s.err
		cc.mu.Unlock()
		if got {
			return nil
		}
		if err != nil {
			return err
		}
		s.wait()
	}
}

// wait blocks until the reader signals the stream or its context ends
// (which cancels it).
func (s *ClientStream) wait() {
	select {
	case <-s.wake:
	case <-s.done:
		s.Cancel(context.Cause(s.ctx))
	}
}

// Status, Header and ContentLength describe the head AwaitHead waited
// for. The map is the stream's until Release; the caller may change it.
func (s *ClientStream) Status() int               { return s.status }
func (s *ClientStream) Header() *stream.HeaderMap { return &s.head }
func (s *ClientStream) ContentLength() int64      { return s.contentLength }
func (s *ClientStream) BodyEnded() bool {
	s.cc.mu.Lock()
	defer s.cc.mu.Unlock()
	return s.recvEnded && s.buf.unread() == 0
}
func (s *ClientStream) Trailers() *stream.HeaderMap {
	s.cc.mu.Lock()
	defer s.cc.mu.Unlock()
	if !s.hasTrailers || !s.recvEnded || s.buf.unread() > 0 {
		return nil
	}
	return &s.trailers
}

// Read reads the response body: io.EOF at END_STREAM (the trailers are
// then there), the stream's error after a reset or a lost connection.
func (s *ClientStream) Read(p []byte) (int, error) {
	cc := s.cc
	select {
	case <-s.done:
		// A body that keeps coming must not outlive the request's
		// deadline either.
		s.Cancel(context.Cause(s.ctx))
	default:
	}
	for {
		cc.mu.Lock()
		if s.buf.unread() > 0 {
			n := s.buf.read(p)
			s.creditLocked(int64(n))
			var err error
			if s.recvEnded && s.buf.unread() == 0 {
				err = io.EOF
			}
			cc.mu.Unlock()
			return n, err
		}
		ended, err := s.recvEnded, s.err
		cc.mu.Unlock()
		if ended {
			return 0, io.EOF
		}
		if err != nil {
			return 0, err
		}
		if len(p) == 0 {
			return 0, nil
		}
		s.wait()
	}
}

// creditLocked returns n read bytes to the stream's and the connection's
// receive windows, with WINDOW_UPDATEs once half a window is owed.
func (s *ClientStream) creditLocked(n int64) {
	cc := s.cc
	cc.creditConnLocked(n)
	if s.recvEnded || s.err != nil {
		return
	}
	s.recvWindow += n
	s.recvUnacked += n
	if s.recvUnacked >= int64(cc.opts.StreamWindow)/2 && !cc.closed {
		cc.wfr.WriteWindowUpdate(s.id, uint32(s.recvUnacked))
		s.recvUnacked = 0
		cc.signalWriter()
	}
}

// Cancel resets the stream (RST_STREAM CANCEL) unless it ended both ways;
// its reads and writes fail with err (ErrStreamCanceled when nil).
func (s *ClientStream) Cancel(err error) {
	if err == nil {
		err = ErrStreamCanceled
	}
	cc := s.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.streams[s.id] == s {
		cc.resetLocked(s, http2.ErrCodeCancel, err)
	} else if s.err == nil && !s.recvEnded {
		s.abortLocked(err)
	}
	cc.cond.Broadcast() // a Write waiting for a window
}

// Done reports that the stream is over both ways without error: the
// response was read to its end and the request sent whole.
func (s *ClientStream) Done() bool {
	s.cc.mu.Lock()
	defer s.cc.mu.Unlock()
	return s.err == nil && s.recvEnded && (s.sendEnded || s.sendStopped) && s.buf.unread() == 0
}

// Release ends the owner's use: a stream still open is canceled, and the
// stream is reused by later requests. Nothing of it may be used after.
func (s *ClientStream) Release() {
	s.end()
	s.head.Reset()
	s.trailers.Reset()
	select {
	case <-s.wake:
	default:
	}
	*s = ClientStream{wake: s.wake, head: s.head, trailers: s.trailers, buf: s.buf.reused()}
	clientStreamPool.Put(s)
}

// Abandon is Release for a stream another goroutine may still be using
// (a Read that the cancel is waking): it is canceled and left to the
// garbage collector instead of being reused.
func (s *ClientStream) Abandon() { s.end() }

// end cancels a stream still open and gives unread bytes back to the
// connection's window.
func (s *ClientStream) end() {
	cc := s.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.streams[s.id] == s {
		cc.resetLocked(s, http2.ErrCodeCancel, ErrStreamCanceled)
	} else if unread := s.buf.drop(); unread > 0 {
		cc.creditConnLocked(int64(unread))
	}
}
