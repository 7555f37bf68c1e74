package proxy

import (
	"io"
	"sync/atomic"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// bodyFeed reads the request body in the background while a filter holds
// the request headers, so the filters up to the paused one still get their
// body callbacks: a filter can decide on headers and body together. Envoy
// holds the body back instead (proxy-wasm-cpp-host#143); sluice does not.
type bodyFeed struct {
	ch   chan bodyChunk
	read atomic.Int64 // bytes read from the client

	// early is the body that already passed filters [0, upTo) during the
	// pause; the rest of the chain gets it first once the headers go on.
	early    []byte
	upTo     int
	earlyEOS bool
	finished bool
	err      error
}

type bodyChunk struct {
	data []byte
	eos  bool
	err  error
}

// startBodyFeed starts reading body until its end or done closes.
func startBodyFeed(body io.Reader, done <-chan struct{}) *bodyFeed {
	f := &bodyFeed{ch: make(chan bodyChunk, 1)}
	go func() {
		for {
			buf := make([]byte, 32<<10)
			n, err := body.Read(buf)
			f.read.Add(int64(n))
			c := bodyChunk{data: buf[:n], eos: err == io.EOF}
			if err != nil && err != io.EOF {
				c.err = err
			}
			select {
			case f.ch <- c:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return f
}

// waitFeeding waits for filter i to resume the paused request headers while
// delivering body chunks to filters [0, i]. It returns a local reply if one
// was sent (or the wait ran out).
func (fm *filterManager) waitFeeding(i int, hasTrailers func() bool) *filter.LocalReply {
	s, feed := fm.s, fm.feed
	feed.upTo = i + 1
	for {
		done, wake := s.resumedOrLocal(filter.Request)
		if done {
			return s.takeLocal()
		}
		var ch chan bodyChunk
		if !feed.finished {
			ch = feed.ch
		}
		select {
		case <-wake:
		case <-s.ctx.Done():
			return pauseTimeoutReply()
		case c := <-ch:
			if c.err != nil {
				feed.finished, feed.err = true, c.err
				continue
			}
			// With trailers to come, the last chunk is not the end of the
			// stream for the body callbacks; trailers follow later.
			eos := c.eos && !hasTrailers()
			out, lr := fm.dataRange(filter.Request, c.data, eos, 0, i+1)
			if lr != nil {
				return lr
			}
			feed.early = append(feed.early, out...)
			if c.eos {
				feed.finished, feed.earlyEOS = true, true
			}
		}
	}
}
