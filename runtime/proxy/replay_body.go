package proxy

import (
	"io"
	"sync"
)

// replayBody lets a request body be sent again on retry while it fits in a
// bounded buffer. The transport may still be reading an earlier try's body
// from another goroutine after Send returns, so each try reads through
// its own view, and a rewind cuts off the earlier views.
type replayBody struct {
	mu       sync.Mutex
	readMu   sync.Mutex // serialises reads of src, which run without mu
	src      io.Reader
	srcDone  bool
	srcErr   error
	recorded []byte
	limit    int
	overflow bool
	gen      int
	// onEnd, when set, is called once, outside the locks, when the source
	// ends: with the whole body and true at io.EOF within the limit, with
	// nil and false on overflow or a read error. body is not modified
	// afterwards; it may be read concurrently with the views.
	onEnd func(body []byte, complete bool)
	ended bool
	// length is the body's declared length (-1 unknown): reaching it
	// completes the body for onEnd without waiting for io.EOF, which the
	// transport may read only after the upstream has answered.
	length int64
}

func newReplayBody(src io.Reader, limit int) *replayBody {
	return &replayBody{src: src, limit: limit, length: -1}
}

// view returns a reader for the next try, starting from the beginning.
// ok is false when the body outgrew the buffer and cannot be replayed.
func (b *replayBody) view() (io.ReadCloser, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.overflow {
		return nil, false
	}
	b.gen++
	return &replayView{b: b, gen: b.gen}, true
}

// sourceDone says whether the source was read to its end (or failed):
// nothing reads it again.
func (b *replayBody) sourceDone() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.srcDone
}

func (b *replayBody) replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.overflow
}

type replayView struct {
	b   *replayBody
	gen int
	off int
}

func (v *replayView) Read(p []byte) (int, error) {
	b := v.b
	for {
		b.mu.Lock()
		if v.gen != b.gen {
			b.mu.Unlock()
			return 0, io.ErrClosedPipe
		}
		if v.off < len(b.recorded) {
			n := copy(p, b.recorded[v.off:])
			v.off += n
			b.mu.Unlock()
			return n, nil
		}
		if b.srcDone {
			b.mu.Unlock()
			return 0, b.srcErr
		}
		b.mu.Unlock()

		// The source read blocks (a streaming client), so it runs without
		// mu: retry decisions must not wait for the client's next message.
		b.readMu.Lock()
		b.mu.Lock()
		// An earlier try's read may have recorded more while we waited.
		behind := v.off < len(b.recorded) || b.srcDone
		b.mu.Unlock()
		if behind {
			b.readMu.Unlock()
			continue
		}
		n, err := b.src.Read(p)
		b.mu.Lock()
		if n > 0 {
			// Whatever the source gave belongs to the body, whichever
			// view asked for it: record it first.
			if !b.overflow && len(b.recorded)+n <= b.limit {
				b.recorded = append(b.recorded, p[:n]...)
			} else {
				b.overflow = true
				b.recorded = nil
			}
		}
		if err != nil {
			b.srcDone, b.srcErr = true, err
		}
		stale := v.gen != b.gen
		if b.overflow {
			v.off = 1 << 62
		} else {
			v.off = len(b.recorded)
		}
		var end func([]byte, bool)
		var endBody []byte
		complete := false
		whole := !b.overflow && b.length >= 0 && int64(len(b.recorded)) == b.length
		if b.onEnd != nil && !b.ended && (b.overflow || b.srcDone || whole) {
			b.ended, end = true, b.onEnd
			complete = whole || !b.overflow && b.srcErr == io.EOF
			if complete {
				endBody = b.recorded
			}
		}
		b.mu.Unlock()
		b.readMu.Unlock()
		if end != nil {
			end(endBody, complete)
		}
		if stale {
			return 0, io.ErrClosedPipe
		}
		return n, err
	}
}

func (v *replayView) Close() error { return nil }
