package http2

import (
	"bufio"
	"io"

	"golang.org/x/net/http2"
)

// frameReader reads one connection's frames for its reader goroutine
// (both sides). The Framer reads every frame header (its checks of frame
// size and of HEADERS/CONTINUATION order stay in force) and the payload
// of every frame but HEADERS and CONTINUATION, which frameReader reads
// into a buffer of its own: the Framer allocates a frame struct for each
// of those (it reuses only DATA frames), and a request or a response
// costs one HEADERS at least.
type frameReader struct {
	br      *bufio.Reader
	fr      *http2.Framer
	payload []byte
	headers headersFrame // the last HEADERS
	cont    headersFrame // the last CONTINUATION: the HEADERS stays as it was
}

func (r *frameReader) init(br *bufio.Reader) {
	r.br = br
	r.fr = http2.NewFramer(nil, br)
	r.fr.SetReuseFrames()
	r.fr.SetMaxReadFrameSize(defaultFrameSize)
}

// headersFrame is a HEADERS or CONTINUATION frame as frameReader parses
// it. Its fragment is valid until the next read; a HEADERS frame's other
// fields until the next HEADERS.
type headersFrame struct {
	http2.FrameHeader
	Priority http2.PriorityParam
	frag     []byte
}

func (f *headersFrame) StreamEnded() bool  { return f.Flags.Has(http2.FlagHeadersEndStream) }
func (f *headersFrame) HeadersEnded() bool { return f.Flags.Has(http2.FlagHeadersEndHeaders) }
func (f *headersFrame) HasPriority() bool  { return f.Flags.Has(http2.FlagHeadersPriority) }

// HeaderBlockFragment is the frame's part of the header block, padding
// and priority removed.
func (f *headersFrame) HeaderBlockFragment() []byte { return f.frag }

// next reads one frame: a HEADERS or CONTINUATION frame comes back as hf
// (f nil), any other as the Framer's frame. Errors are the Framer's: an
// http2.ConnectionError, http2.StreamError, http2.ErrFrameTooLarge, or
// the read's.
func (r *frameReader) next() (f http2.Frame, hf *headersFrame, err error) {
	fh, err := r.fr.ReadFrameHeader()
	if err != nil {
		return nil, nil, err
	}
	if fh.Type == http2.FrameHeaders || fh.Type == http2.FrameContinuation {
		hf, err = r.readHeaders(fh)
		return nil, hf, err
	}
	f, err = r.fr.ReadFrameForHeader(fh)
	return f, nil, err
}

// frameBuffered reports whether a whole frame is buffered: next will not
// wait for the peer.
func (r *frameReader) frameBuffered() bool {
	n := r.br.Buffered()
	if n < 9 {
		return false
	}
	h, _ := r.br.Peek(9)
	return n >= 9+(int(h[0])<<16|int(h[1])<<8|int(h[2]))
}

// readHeaders reads the payload of a HEADERS or CONTINUATION frame whose
// header the Framer has read and checked (RFC 9113 6.2, 6.10).
func (r *frameReader) readHeaders(fh http2.FrameHeader) (*headersFrame, error) {
	if cap(r.payload) < int(fh.Length) {
		r.payload = make([]byte, fh.Length)
	}
	p := r.payload[:fh.Length]
	if _, err := io.ReadFull(r.br, p); err != nil {
		return nil, err
	}
	hf := &r.headers
	if fh.Type == http2.FrameContinuation {
		hf = &r.cont
	}
	*hf = headersFrame{FrameHeader: fh}
	if fh.StreamID == 0 {
		return nil, http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if fh.Type == http2.FrameContinuation {
		hf.frag = p
		return hf, nil
	}
	pad := 0
	if fh.Flags.Has(http2.FlagHeadersPadded) {
		if len(p) < 1 {
			return nil, http2.ConnectionError(http2.ErrCodeFrameSize) // too short for its fields (4.2)
		}
		pad, p = int(p[0]), p[1:]
	}
	if fh.Flags.Has(http2.FlagHeadersPriority) {
		if len(p) < 5 {
			return nil, http2.ConnectionError(http2.ErrCodeFrameSize)
		}
		v := uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
		hf.Priority = http2.PriorityParam{StreamDep: v & (1<<31 - 1), Exclusive: v>>31 == 1, Weight: p[4]}
		p = p[5:]
	}
	if pad > len(p) {
		// Padding at least as long as the rest of the payload: a
		// connection error (6.2), since the block cannot be decoded.
		return nil, http2.ConnectionError(http2.ErrCodeProtocol)
	}
	hf.frag = p[:len(p)-pad]
	return hf, nil
}
