package proxy

import (
	"errors"
	"io"
	"net/http"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// readChunk returns the next piece of the request body: from the client,
// or from the body feed that a pause in the request headers started.
// err is io.EOF at the end.
func (x *activeStream) readChunk(buf []byte) ([]byte, error) {
	if f := x.fm.feed; f != nil {
		if f.finished {
			if f.err != nil {
				return nil, f.err
			}
			return nil, io.EOF
		}
		select {
		case c := <-f.ch:
			switch {
			case c.err != nil:
				f.finished, f.err = true, c.err
				return c.data, c.err
			case c.eos:
				f.finished = true
				return c.data, io.EOF
			}
			return c.data, nil
		case <-x.s.ctx.Done():
			return nil, x.s.ctx.Err()
		}
	}
	n, err := x.body.Read(buf)
	// Atomic, as in receivedCounter: the upstream's body writer may still
	// read here when the response is done and the access log reads it.
	x.bodyRead.Add(int64(n))
	return buf[:n], err
}

// requestPump is the request body's pump: from the client (or the feed a
// paused headers callback started) through the chain.
func (x *activeStream) requestPump() *bodyPump {
	return &bodyPump{
		fm:   x.fm,
		d:    filter.Request,
		read: x.readChunk,
		trailers: func() bool {
			if !x.hasTrailers() {
				return false
			}
			x.s.reqTrailers = x.ss.RequestTrailers()
			return true
		},
		afterTrailers: func() {
			// What the filters left is what goes upstream.
			if x.s.reqTrailers != nil {
				copyFields(&x.reqTrailers, x.s.reqTrailers)
			}
		},
	}
}

// filterRequestBody runs the request body through the chain. It reads
// ahead until the whole body is known (a filter buffered it, or it was
// small) or a chunk passed every filter (streaming); in the first case the
// upstream gets an exact Content-Length.
func (x *activeStream) filterRequestBody() (io.Reader, int64, *filter.LocalReply) {
	p := x.requestPump()
	var out []byte
	if f := x.fm.feed; f != nil {
		// What passed the first filters during the header pause goes
		// through the rest of the chain first.
		if f.err != nil {
			return nil, 0, downstreamReadError()
		}
		pass, _, lrep, _ := p.pass(f.early, f.earlyEOS, f.upTo)
		f.early = nil
		if lrep != nil {
			return nil, 0, lrep
		}
		out = append(out, pass...)
		if f.earlyEOS {
			return bytesReader(out), int64(len(out)), nil
		}
	}
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	out, complete, lrep, err := p.readAhead(*bufp, out, false)
	switch {
	case err != nil:
		return nil, 0, downstreamReadError()
	case lrep != nil:
		return nil, 0, lrep
	case complete:
		return bytesReader(out), int64(len(out)), nil
	}
	// Streaming: nobody buffers, so the rest goes chunk by chunk and the
	// length is no longer known up front.
	return io.MultiReader(bytesReader(out), &pumpReader{p: p, s: x.s}), -1, nil
}

func downstreamReadError() *filter.LocalReply {
	return &filter.LocalReply{Status: http.StatusBadRequest, Body: []byte("error reading request body\n"), Details: "downstream_read_error"}
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

var errFilterReplied = errors.New("a filter answered the request locally")

// receivedCounter counts the request body bytes read from the client for
// the access log when no filter reads them (readChunk counts those).
type receivedCounter struct {
	r io.Reader
	x *activeStream
}

func (c *receivedCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	// Atomic: the transport reads the body on a goroutine of its own,
	// which may still run when the response is done.
	c.x.bodyRead.Add(int64(n))
	return n, err
}
