package proxy

import (
	"io"
	"sync"
)

// replayBody lets a request body be sent again on retry while it fits in a
// bounded buffer. The transport may still be reading an earlier try's body
// from another goroutine after RoundTrip returns, so each try reads through
// its own view, and a rewind cuts off the earlier views.
type replayBody struct {
	mu       sync.Mutex
	src      io.Reader
	srcDone  bool
	srcErr   error
	recorded []byte
	limit    int
	overflow bool
	gen      int
}

func newReplayBody(src io.Reader, limit int) *replayBody {
	return &replayBody{src: src, limit: limit}
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
	b.mu.Lock()
	defer b.mu.Unlock()
	if v.gen != b.gen {
		return 0, io.ErrClosedPipe
	}
	if v.off < len(b.recorded) {
		n := copy(p, b.recorded[v.off:])
		v.off += n
		return n, nil
	}
	if b.srcDone {
		return 0, b.srcErr
	}
	// Reading the source under the lock is fine: only the current try's
	// view reads, and earlier views fail fast above.
	n, err := b.src.Read(p)
	if n > 0 {
		if !b.overflow && len(b.recorded)+n <= b.limit {
			b.recorded = append(b.recorded, p[:n]...)
			v.off += n
		} else {
			b.overflow = true
			b.recorded = nil
			v.off = 0
		}
	}
	if err != nil {
		b.srcDone, b.srcErr = true, err
	}
	if b.overflow {
		// v.off no longer indexes recorded; mark the view as past it.
		v.off = 1 << 62
	}
	return n, err
}

func (v *replayView) Close() error { return nil }
