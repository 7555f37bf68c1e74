package http1

import (
	"io"
	"sync"
)

// bufSize is a connection's read buffer: most request heads fit; a larger
// one grows it up to the header limit for that request only.
const bufSize = 4 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// connReader is a connection's read buffer. Within one request, bytes
// already handed out (the head the Request's slices point at) are never
// overwritten: when the buffer runs out of room, the unread bytes move to
// a fresh buffer and the old one is kept until the request ends. Only
// startRequest compacts in place.
type connReader struct {
	rd   io.Reader
	buf  []byte
	r, w int
	// retired is the buffer this request's head lives in after a swap;
	// pooled again at the next request.
	retired *[]byte
	pooled  *[]byte
	// reads counts the reads of the connection, so that a caller can
	// tell bytes that came with an earlier read from new ones (Reads).
	reads uint32
}

func (c *connReader) init(rd io.Reader) {
	c.rd = rd
	c.pooled = bufPool.Get().(*[]byte)
	c.buf = *c.pooled
	c.r, c.w = 0, 0
}

func (c *connReader) release() {
	c.releaseRetired()
	if c.pooled != nil {
		bufPool.Put(c.pooled)
		c.pooled = nil
	}
	c.buf = nil
}

func (c *connReader) releaseRetired() {
	if c.retired != nil {
		bufPool.Put(c.retired)
		c.retired = nil
	}
}

func (c *connReader) buffered() []byte { return c.buf[c.r:c.w] }

func (c *connReader) consume(n int) { c.r += n }

// startRequest is a request boundary: nothing of the previous request is
// referenced any more, so unread (pipelined) bytes move to the front.
func (c *connReader) startRequest() {
	c.releaseRetired()
	if c.pooled == nil && c.w-c.r <= bufSize {
		// A large head grew the buffer; go back to a pooled one.
		c.pooled = bufPool.Get().(*[]byte)
		n := copy(*c.pooled, c.buf[c.r:c.w])
		c.buf, c.r, c.w = *c.pooled, 0, n
		return
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
		return
	}
	if c.r > 0 {
		n := copy(c.buf, c.buf[c.r:c.w])
		c.r, c.w = 0, n
	}
}

// fill reads more bytes after the buffered ones, making room first (up to
// max bytes buffered in all). It returns io.ErrShortBuffer when max is
// reached.
func (c *connReader) fill(max int) error {
	if c.w == len(c.buf) {
		if err := c.grow(max); err != nil {
			return err
		}
	}
	c.reads++
	n, err := c.rd.Read(c.buf[c.w:])
	c.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// grow makes room in a full buffer before fill reads (up to max bytes
// buffered in all), or returns io.ErrShortBuffer. Out of line: a request
// or response head nearly always fits the buffer it is read into, and
// inlined (into the server's loop) its values made that frame, at the
// bottom of every connection goroutine's stack, larger.
//
//go:noinline
func (c *connReader) grow(max int) error {
	unread := c.w - c.r
	if unread >= max {
		return io.ErrShortBuffer
	}
	size := len(c.buf)
	if unread*2 > size { // more than half full of unread bytes: grow
		size = min(2*size, max+bufSize)
	}
	var nb []byte
	var pooled *[]byte
	if size == bufSize {
		pooled = bufPool.Get().(*[]byte)
		nb = *pooled
	} else {
		nb = make([]byte, size)
	}
	copy(nb, c.buf[c.r:c.w])
	if c.pooled != nil {
		if c.retired == nil {
			c.retired = c.pooled // may hold this request's head
		} else {
			// A second swap: the head is in the retired buffer, and
			// what was read from this one was copied out already.
			bufPool.Put(c.pooled)
		}
	}
	c.pooled, c.buf = pooled, nb
	c.r, c.w = 0, unread
	return nil
}

// read serves a body read: buffered bytes first, then (for a large p and
// an empty buffer) straight from the connection.
func (c *connReader) read(p []byte) (int, error) {
	if c.r < c.w {
		n := copy(p, c.buf[c.r:c.w])
		c.r += n
		return n, nil
	}
	if len(p) >= len(c.buf)-c.w || c.w == len(c.buf) {
		c.reads++
		return c.rd.Read(p)
	}
	if err := c.fill(len(c.buf)); err != nil {
		return 0, err
	}
	n := copy(p, c.buf[c.r:c.w])
	c.r += n
	return n, nil
}
