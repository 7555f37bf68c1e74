package proxy

import (
	"io"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// bodyPump moves one direction's body through the chain, as Envoy's
// decodeData/encodeData and the trailers that end a body: the request
// body on its way upstream and the response body on its way back go
// through the same steps, whether read ahead (readAhead) or streamed
// (next).
//
// At the body's end, trailers (when there are any) end the stream: the
// last body callback does not see end of stream, the trailers callbacks
// follow, and what a filter still holds is flushed through after them.
type bodyPump struct {
	fm *filterManager
	d  filter.Direction
	// read returns the next piece of the source; io.EOF at its end
	// (possibly with the last bytes).
	read func(buf []byte) ([]byte, error)
	// trailers is called once at the body's end: it hands the trailers
	// to the filters' stream and reports whether there are any.
	trailers func() bool
	// afterTrailers, when set, runs once the trailers passed the chain.
	afterTrailers func()
	done          bool
}

// next reads one piece and passes it through the chain: out is what
// passed every filter (nil while a filter holds), eos that the body
// ended; lr is a filter's local reply, err a read error (out then holds
// what passed of the bytes read with it).
func (p *bodyPump) next(buf []byte) (out []byte, eos bool, lr *filter.LocalReply, err error) {
	if p.done {
		return nil, true, nil, nil
	}
	for {
		chunk, rerr := p.read(buf)
		if rerr != nil && rerr != io.EOF {
			// What came before the failure still goes on (a response
			// cut mid-body ends with what arrived).
			out, _, lr, _ := p.pass(chunk, false, 0)
			return out, false, lr, rerr
		}
		if len(chunk) == 0 && rerr == nil {
			continue // nothing to pass on
		}
		return p.pass(chunk, rerr == io.EOF, 0)
	}
}

// pass sends chunk through the filters from position from of the
// direction's order on (a chunk that already passed the first ones during
// a pause starts later).
func (p *bodyPump) pass(chunk []byte, eos bool, from int) ([]byte, bool, *filter.LocalReply, error) {
	withTrailers := eos && p.trailers()
	out, lr := p.fm.dataRange(p.d, chunk, eos && !withTrailers, from, len(p.fm.filters))
	if lr != nil {
		return nil, eos, lr, nil
	}
	if withTrailers {
		if lr := p.fm.trailers(p.d); lr != nil {
			return nil, eos, lr, nil
		}
		if p.afterTrailers != nil {
			p.afterTrailers()
		}
		if p.fm.holdingAny(p.d) {
			rest, lr := p.fm.data(p.d, nil, true)
			if lr != nil {
				return nil, eos, lr, nil
			}
			// A copy: out may be a view of the read buffer.
			out = append(out[:len(out):len(out)], rest...)
		}
	}
	if eos {
		p.done = true
	}
	return out, eos, nil, nil
}

// readAhead reads until the whole body is known (a filter buffered it,
// or it ended) or, unless whole is asked for, until a piece passed every
// filter with none holding (the rest is then streamed). out starts with
// what is given; complete says the body ended.
func (p *bodyPump) readAhead(buf, out []byte, whole bool) (_ []byte, complete bool, lr *filter.LocalReply, err error) {
	for {
		pass, eos, lr, err := p.next(buf)
		if lr != nil || err != nil {
			return nil, false, lr, err
		}
		out = append(out, pass...)
		if eos {
			return out, true, nil, nil
		}
		if pass != nil && !whole && !p.fm.holdingAny(p.d) {
			return out, false, nil, nil
		}
	}
}

// pumpReader streams the rest of a body through the pump as an
// io.Reader (the request body the upstream transport reads). A local
// reply a filter sends is handed to the stream, and the read fails.
type pumpReader struct {
	p       *bodyPump
	s       *filterStream
	pending []byte
}

func (r *pumpReader) Read(b []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.p.done {
			return 0, io.EOF
		}
		bufp := chunkPool.Get().(*[]byte)
		pass, _, lr, err := r.p.next(*bufp)
		r.pending = append(r.pending[:0], pass...)
		chunkPool.Put(bufp)
		if err != nil {
			return 0, err
		}
		if lr == errChainEnded {
			// The stream ended first (the upstream answered before the
			// body's end): the rest is not filtered nor sent.
			return 0, errStreamEnded
		}
		if lr != nil {
			r.s.SendLocalReply(*lr)
			return 0, errFilterReplied
		}
	}
	n := copy(b, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}
