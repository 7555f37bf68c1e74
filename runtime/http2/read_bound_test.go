package http2

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// deadlineConn records the read deadlines set on a connection.
type deadlineConn struct {
	net.Conn
	mu   sync.Mutex
	sets []time.Time
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.sets = append(c.sets, t)
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineConn) readDeadlines() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.sets...)
}

// TestReadBound: while it serves, the connection's reader keeps a read
// deadline (readBound), so that an iohandle socket waits for the next
// frames before it reads rather than making a read that finds nothing.
// When the bound passes the reader reads on without it, then sets it
// again: a connection quiet for several bounds, and a frame that arrives
// in halves across them, are served as ever; the timeout cuts nothing.
func TestReadBound(t *testing.T) {
	const bound = 30 * time.Millisecond
	conns := make(chan *deadlineConn, 1)
	ts := startServerWith(t, &Server{readBound: bound}, okHandler, nil, func(c net.Conn) net.Conn {
		dc := &deadlineConn{Conn: c}
		conns <- dc
		return dc
	})
	r := dialRaw(t, ts.addr())
	dc := <-conns
	r.request(1, true, "/")
	r.expectStatus(1, "200")
	sets := dc.readDeadlines()
	if len(sets) == 0 || sets[len(sets)-1].IsZero() {
		t.Fatalf("read deadlines set while serving: %v; want the bound's last", sets)
	}

	time.Sleep(4 * bound)
	var frame bytes.Buffer
	http2.NewFramer(&frame, nil).WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndStream: true, EndHeaders: true,
		BlockFragment: r.block(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/")})
	half := frame.Len() / 2
	if _, err := r.c.Write(frame.Bytes()[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * bound)
	if _, err := r.c.Write(frame.Bytes()[half:]); err != nil {
		t.Fatal(err)
	}
	r.expectStatus(3, "200")

	// The bound passed at least once, with no stream cut: cleared for
	// a read that tries first, then set again.
	cleared := false
	for _, d := range dc.readDeadlines()[len(sets):] {
		cleared = cleared || d.IsZero()
	}
	if last := dc.readDeadlines(); !cleared || last[len(last)-1].IsZero() {
		t.Fatalf("read deadlines %v after the first request's: want one cleared, then the bound again", last[len(sets):])
	}
}

// TestClientReadBound is TestReadBound for the client: a response whose
// HEADERS frame arrives in halves, the bound passing between them and
// before, is read whole; the client keeps the bound set while it reads.
func TestClientReadBound(t *testing.T) {
	const bound = 30 * time.Millisecond
	rp := startRawPeer(t, nil, func(p *peerConn) error {
		id, err := p.request()
		if err != nil {
			return err
		}
		time.Sleep(4 * bound)
		var block, frame bytes.Buffer
		hpack.NewEncoder(&block).WriteField(hpack.HeaderField{Name: ":status", Value: "204"})
		http2.NewFramer(&frame, nil).WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: true})
		half := frame.Len() / 2
		if _, err := p.c.Write(frame.Bytes()[:half]); err != nil {
			return err
		}
		time.Sleep(4 * bound)
		if _, err := p.c.Write(frame.Bytes()[half:]); err != nil {
			return err
		}
		return p.drain()
	})
	c, err := net.Dial("tcp", rp.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	dc := &deadlineConn{Conn: c}
	cc := NewClientConn(dc, ClientOptions{readBound: bound})
	defer cc.Close()
	if sets := dc.readDeadlines(); len(sets) != 1 || sets[0].IsZero() {
		t.Fatalf("read deadlines at the start: %v; want the bound", sets)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s := openGET(t, ctx, cc, "/")
	if err := s.AwaitHead(); err != nil || s.Status() != 204 {
		t.Fatalf("response: %v, status %d", err, s.Status())
	}
	sets := dc.readDeadlines()
	cleared := false
	for _, d := range sets {
		cleared = cleared || d.IsZero()
	}
	if !cleared || sets[len(sets)-1].IsZero() {
		t.Fatalf("read deadlines %v: want one cleared, then the bound again", sets)
	}
}
