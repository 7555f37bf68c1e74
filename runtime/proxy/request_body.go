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
	n, err := x.r.Body.Read(buf)
	x.received += int64(n)
	return buf[:n], err
}

// filterRequestBody runs the request body through the chain. It reads
// ahead until the whole body is known (a filter buffered it, or it was
// small) or a chunk passed every filter (streaming); in the first case the
// upstream gets an exact Content-Length.
func (x *activeStream) filterRequestBody() (io.Reader, int64, *filter.LocalReply) {
	var out []byte
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	buf := *bufp
	if f := x.fm.feed; f != nil {
		// What passed the first filters during the header pause goes
		// through the rest of the chain first.
		if f.err != nil {
			return nil, 0, &filter.LocalReply{Status: http.StatusBadRequest, Body: []byte("error reading request body\n"), Details: "downstream_read_error"}
		}
		withTrailers := f.earlyEOS && len(x.r.Trailer) > 0
		pass, lrep := x.fm.dataRange(filter.Request, f.early, f.earlyEOS && !withTrailers, f.upTo, len(x.fm.filters))
		f.early = nil
		if lrep != nil {
			return nil, 0, lrep
		}
		out = append(out, pass...)
		if withTrailers {
			x.s.reqTrailers = x.ss.RequestTrailers()
			if lrep := x.requestTrailers(); lrep != nil {
				return nil, 0, lrep
			}
			if x.fm.holdingAny(filter.Request) {
				pass, lrep = x.fm.data(filter.Request, nil, true)
				if lrep != nil {
					return nil, 0, lrep
				}
				out = append(out, pass...)
			}
		}
		if f.earlyEOS {
			return bytesReader(out), int64(len(out)), nil
		}
	}
	for {
		chunk, err := x.readChunk(buf)
		n := len(chunk)
		eos := err != nil
		if err != nil && err != io.EOF {
			return nil, 0, &filter.LocalReply{Status: http.StatusBadRequest, Body: []byte("error reading request body\n"), Details: "downstream_read_error"}
		}
		if n == 0 && !eos {
			continue
		}
		if eos && len(x.r.Trailer) > 0 {
			x.s.reqTrailers = x.ss.RequestTrailers()
			// Trailers end the stream: the body callback does not see
			// end_of_stream, the trailers callback follows.
			pass, lrep := x.fm.data(filter.Request, chunk, false)
			if lrep != nil {
				return nil, 0, lrep
			}
			out = append(out, pass...)
			if lrep := x.requestTrailers(); lrep != nil {
				return nil, 0, lrep
			}
			if x.fm.holdingAny(filter.Request) {
				pass, lrep = x.fm.data(filter.Request, nil, true)
				if lrep != nil {
					return nil, 0, lrep
				}
				out = append(out, pass...)
			}
			return bytesReader(out), int64(len(out)), nil
		}
		pass, lrep := x.fm.data(filter.Request, chunk, eos)
		if lrep != nil {
			return nil, 0, lrep
		}
		out = append(out, pass...)
		if eos {
			return bytesReader(out), int64(len(out)), nil
		}
		if pass != nil && !x.fm.holdingAny(filter.Request) {
			// Streaming: nobody buffers, so the rest goes chunk by chunk
			// and the length is no longer known up front.
			return io.MultiReader(bytesReader(out), &filteredReader{x: x}), -1, nil
		}
	}
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

// filteredReader streams the rest of a request body through the chain.
type filteredReader struct {
	x       *activeStream
	pending []byte
	done    bool
}

func (f *filteredReader) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.done {
			return 0, io.EOF
		}
		bufp := chunkPool.Get().(*[]byte)
		chunk, err := f.x.readChunk(*bufp)
		if err != nil && err != io.EOF {
			chunkPool.Put(bufp)
			return 0, err
		}
		eos := err == io.EOF
		pass, lrep := f.x.fm.data(filter.Request, chunk, eos)
		f.pending = append(f.pending[:0], pass...)
		chunkPool.Put(bufp)
		if lrep != nil {
			f.x.s.SendLocalReply(*lrep)
			return 0, errFilterReplied
		}
		f.done = eos
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
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

// requestTrailers runs the request trailers through the chain; what the
// filters leave is what goes upstream.
func (x *activeStream) requestTrailers() *filter.LocalReply {
	if lrep := x.fm.trailers(filter.Request); lrep != nil {
		return lrep
	}
	if x.s.reqTrailers != nil {
		copyFields(&x.reqTrailers, x.s.reqTrailers)
	}
	return nil
}
