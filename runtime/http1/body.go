package http1

import (
	"bytes"
	"io"
	"net/http"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// maxChunkLine bounds a chunk-size line with its extensions.
const maxChunkLine = 4 << 10

type bodyState uint8

const (
	stateData     bodyState = iota // reading data; remaining bytes left
	stateSize                      // at a chunk-size line
	stateDataCRLF                  // at the CRLF after a chunk's data
	stateTrailers                  // in the trailer section
	stateDone
)

// bodyReader reads one message body from the connection's buffer, by
// Content-Length or chunked (RFC 9112 section 7.1). A framing error is an
// *Error (400): sticky, and the connection cannot be used again.
type bodyReader struct {
	c         *connReader
	lim       Limits
	chunked   bool
	state     bodyState
	remaining int64
	err       error
	trailer   stream.HeaderMap
	fields    int
	// beforeRead runs once, before the first read that needs the client
	// (the server sends 100 Continue there).
	beforeRead func()
}

func (b *bodyReader) reset(c *connReader, req *Request, lim Limits) {
	b.start(c, lim, req.Chunked)
	switch {
	case req.Chunked:
		b.state = stateSize
	case req.ContentLength > 0:
		b.remaining = req.ContentLength
	default:
		b.state = stateDone
	}
}

// start makes b a reader of a new body, keeping the trailer map's
// storage. Field by field: "*b = bodyReader{..., trailer: b.trailer}"
// built a whole reader on the stack and copied it over, some four cache
// lines of code a request (TestBodyReaderStart holds it to every field).
func (b *bodyReader) start(c *connReader, lim Limits, chunked bool) {
	b.trailer.Reset()
	b.c, b.lim, b.chunked = c, lim, chunked
	b.state, b.remaining, b.err, b.fields, b.beforeRead = 0, 0, nil, 0, nil
}

// Done says the body was read to its end (trailers included).
func (b *bodyReader) Done() bool { return b.state == stateDone }

// Trailer is the trailer section of a chunked body, once Done.
func (b *bodyReader) Trailer() *stream.HeaderMap { return &b.trailer }

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	for {
		switch b.state {
		case stateDone:
			return 0, io.EOF
		case stateData:
			if len(p) == 0 {
				return 0, nil
			}
			if b.remaining == 0 {
				if b.chunked {
					b.state = stateDataCRLF
					continue
				}
				b.state = stateDone
				return 0, io.EOF
			}
			if int64(len(p)) > b.remaining {
				p = p[:b.remaining]
			}
			b.wait()
			n, err := b.c.read(p)
			b.remaining -= int64(n)
			if n > 0 {
				if b.remaining == 0 && (!b.chunked || b.advanceBuffered()) {
					// The end of the body comes with its last bytes when
					// it is known without waiting (net/http's readers do
					// the same, and a stream's last data is end_of_stream).
					b.state = stateDone
					return n, io.EOF
				}
				return n, nil
			}
			return 0, b.fail(err)
		default:
			if err := b.stepLine(); err != nil {
				return 0, err
			}
		}
	}
}

// stepLine reads one line of chunked framing (a chunk size, the CRLF after
// a chunk's data, or a trailer field) and moves the state on; io.EOF when
// it ended the body.
func (b *bodyReader) stepLine() error {
	switch b.state {
	case stateSize:
		line, err := b.line(maxChunkLine)
		if err != nil {
			return b.fail(err)
		}
		n, err := parseChunkSize(line)
		if err != nil {
			return b.fail(err)
		}
		if n == 0 {
			b.state = stateTrailers
		} else {
			b.state, b.remaining = stateData, n
		}
	case stateDataCRLF:
		line, err := b.line(2)
		if err != nil {
			return b.fail(err)
		}
		if len(line) != 0 {
			return b.fail(refuse(http.StatusBadRequest, "chunk data not followed by CRLF"))
		}
		b.state = stateSize
	case stateTrailers:
		line, err := b.line(b.lim.headerBytes())
		if err != nil {
			return b.fail(err)
		}
		if len(line) == 0 {
			b.state = stateDone
			return io.EOF
		}
		b.fields++
		if b.fields > b.lim.headers() {
			return b.fail(refuse(http.StatusRequestHeaderFieldsTooLarge, "too many trailer fields"))
		}
		name, value, err := parseField(line)
		if err != nil {
			return b.fail(err)
		}
		if !framingField(name) {
			b.trailer.AddBytes(name, value)
		}
	}
	return nil
}

// advanceBuffered moves a chunked body past a finished chunk as far as the
// buffered bytes go (CRLF, the last chunk, the trailers), without reading;
// true when that reaches the end. A framing error found on the way is kept
// for the next Read.
func (b *bodyReader) advanceBuffered() bool {
	b.state = stateDataCRLF
	for {
		switch {
		case b.state == stateDone:
			return true
		case b.state == stateData || bytes.IndexByte(b.c.buffered(), '\n') < 0:
			return false
		}
		if err := b.stepLine(); err == io.EOF {
			return true
		} else if err != nil {
			return false
		}
	}
}

func (b *bodyReader) wait() {
	if b.beforeRead != nil && b.c.r == b.c.w {
		f := b.beforeRead
		b.beforeRead = nil
		f()
	}
}

// line returns the next CRLF-ended line (consumed), reading more as
// needed; a line longer than max is refused.
func (b *bodyReader) line(max int) ([]byte, error) {
	scanned := 0 // bytes known to hold no LF: each byte is looked at once
	for {
		buf := b.c.buffered()
		if nl := bytes.IndexByte(buf[scanned:], '\n'); nl >= 0 {
			nl += scanned
			if nl == 0 || buf[nl-1] != '\r' {
				return nil, refuse(http.StatusBadRequest, "chunked line not ended by CRLF")
			}
			if nl-1 > max {
				return nil, refuse(http.StatusBadRequest, "chunked line too long")
			}
			b.c.consume(nl + 1)
			return buf[:nl-1], nil
		}
		if len(buf) > max+1 {
			return nil, refuse(http.StatusBadRequest, "chunked line too long")
		}
		scanned = len(buf)
		b.wait()
		if err := b.c.fill(max + 2); err != nil {
			return nil, err
		}
	}
}

func (b *bodyReader) fail(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	b.err = err
	return err
}

// parseChunkSize reads chunk-size [chunk-ext]: 1*HEXDIG, at most 15 digits
// (no overflow), then nothing or extensions after optional whitespace and
// ';'. "0x5", a sign, junk, or an empty size is refused.
func parseChunkSize(line []byte) (int64, error) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i >= 15 {
			return 0, refuse(http.StatusBadRequest, "chunk size too large")
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, refuse(http.StatusBadRequest, "invalid chunk size")
	}
	rest := line[i:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) > 0 {
		if rest[0] != ';' {
			return 0, refuse(http.StatusBadRequest, "invalid chunk size")
		}
		for _, c := range rest {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return 0, refuse(http.StatusBadRequest, "invalid chunk extension")
			}
		}
	}
	return n, nil
}

// framingField names the fields a trailer may not carry (RFC 9110 section
// 6.5.1: framing, routing and connection control); they are dropped, so
// no later hop can merge them into the header section.
func framingField(name []byte) bool {
	switch string(name) {
	case "content-length", "transfer-encoding", "trailer", "host", "connection", "keep-alive", "te", "upgrade", "expect", "proxy-connection":
		return true
	}
	return false
}
