package http2

// bodyBuffer holds a stream's received body bytes until its owner reads
// them (the server's request body, the client's response body): the
// reader goroutine appends, the owner takes, both under the connection's
// mutex. At most the stream's receive window waits here.
type bodyBuffer struct {
	b   []byte // b[off:] is unread
	off int
}

func (r *bodyBuffer) unread() int { return len(r.b) - r.off }

// add appends data, reusing the buffer from its start once all was read.
func (r *bodyBuffer) add(data []byte) {
	if r.off == len(r.b) {
		r.b, r.off = r.b[:0], 0
	}
	r.b = append(r.b, data...)
}

// read copies unread bytes into p.
func (r *bodyBuffer) read(p []byte) int {
	n := copy(p, r.b[r.off:])
	r.off += n
	if r.off == len(r.b) {
		r.b, r.off = r.b[:0], 0
	}
	return n
}

// drop forgets the unread bytes and says how many there were (to be
// credited back to the connection's window).
func (r *bodyBuffer) drop() int {
	n := r.unread()
	r.b, r.off = r.b[:0], 0
	return n
}

// reused is the buffer for the stream's next use from the pool: a large
// body's buffer is not kept.
func (r *bodyBuffer) reused() bodyBuffer {
	if cap(r.b) > 64<<10 {
		return bodyBuffer{}
	}
	return bodyBuffer{b: r.b[:0]}
}
