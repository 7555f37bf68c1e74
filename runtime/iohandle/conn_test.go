//go:build linux

package iohandle

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection, each wrapped.
func pair(t *testing.T) (client, server *Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wl := Listener(ln)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := wl.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	c, ok := Wrap(d).(*Conn)
	sc, ok2 := s.(*Conn)
	if !ok || !ok2 {
		t.Fatalf("not wrapped: %T, %T", Wrap(d), s)
	}
	t.Cleanup(func() { c.Close(); sc.Close() })
	return c, sc
}

// Megabytes each way at once: writes fill the socket buffers, so both
// sides go through the poller's waits, and every byte arrives in order.
func TestConnFullDuplexLargeTransfer(t *testing.T) {
	c, s := pair(t)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	s.SetDeadline(time.Now().Add(20 * time.Second))
	payload := make([]byte, 4<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	send := func(w *Conn) {
		defer wg.Done()
		n, err := w.Write(payload)
		if err != nil || n != len(payload) {
			errs <- errors.New("short write")
			return
		}
		errs <- w.CloseWrite()
	}
	recv := func(r *Conn) {
		defer wg.Done()
		got, err := io.ReadAll(r) // small reads; ends on EOF after CloseWrite
		if err != nil {
			errs <- err
			return
		}
		if !bytes.Equal(got, payload) {
			errs <- errors.New("payload differs")
		}
	}
	wg.Add(4)
	go send(c)
	go send(s)
	go recv(c)
	go recv(s)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestConnReadDeadline(t *testing.T) {
	c, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := c.Read(make([]byte, 10))
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read = %d, %v; want a deadline error", n, err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%v is not a net.Error timeout", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("%#v: want a read OpError", err)
	}
}

func TestConnWriteDeadline(t *testing.T) {
	c, _ := pair(t) // the peer never reads: the buffers fill
	big := make([]byte, 64<<20)
	c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := c.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write = %d, %v; want a deadline error", n, err)
	}
	if n <= 0 || n >= 64<<20 {
		t.Fatalf("write reported %d bytes: want what went out before the deadline", n)
	}
}

func TestConnCloseUnblocksRead(t *testing.T) {
	c, _ := pair(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after close: %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read still blocked after Close")
	}
}

func TestConnEOFAndReset(t *testing.T) {
	c, s := pair(t)
	if _, err := s.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "bye" {
		t.Fatalf("read %q, %v; want the bytes then EOF", got, err)
	}

	// Writing to a peer that closed: the first write may land, later
	// ones fail with a reset or a broken pipe, wrapped as net does.
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	for i := 0; ; i++ {
		_, err = c.Write([]byte("more"))
		if err != nil {
			break
		}
		if i > 100 {
			t.Fatal("writes to a closed peer never failed")
		}
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("write error %v; want EPIPE or ECONNRESET", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" || oe.Source == nil {
		t.Fatalf("%#v: want a write OpError with addresses", err)
	}
}

// A read and a write on a connection allocate nothing.
func TestConnNoAllocs(t *testing.T) {
	c, s := pair(t)
	msg := []byte("ping")
	buf := make([]byte, 16)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per write+read; want 0", allocs)
	}
}

// Wrap leaves alone what is not a TCP connection.
func TestWrapOnlyTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("a pipe was wrapped")
	}
}

// Peek: EAGAIN on an empty socket, bytes left in place, 0 after the FIN.
func TestPeek(t *testing.T) {
	c, s := pair(t)
	peek := func() (int, error) {
		var n int
		var perr error
		buf := make([]byte, 4)
		if err := c.raw.Read(func(fd uintptr) bool { n, perr = Peek(fd, buf); return true }); err != nil {
			t.Fatal(err)
		}
		return n, perr
	}
	if n, err := peek(); err != syscall.EAGAIN {
		t.Fatalf("peek on an empty socket = %d, %v; want EAGAIN", n, err)
	}
	s.Write([]byte("ab"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := peek()
		if err == nil && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peek = %d, %v; want the 2 bytes sent", n, err)
		}
		time.Sleep(time.Millisecond)
	}
	buf := make([]byte, 4)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "ab" {
		t.Fatalf("read after peek = %q, %v; want the bytes still there", buf[:n], err)
	}
	s.Close()
	for {
		n, err := peek()
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peek after the peer closed = %d, %v; want 0", n, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// Reads and writes make net's checks before they try, as net's own do
// (the steps run inside Control): a deadline already passed fails a read
// with bytes waiting and a write with room, taking and sending nothing;
// a Close ends a write blocked on a full send buffer with net.ErrClosed.
func TestConnChecksBeforeTrying(t *testing.T) {
	c, s := pair(t)
	if _, err := s.Write([]byte("waiting")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	c.SetReadDeadline(time.Unix(1, 0))
	if n, err := c.Read(make([]byte, 10)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline = %d, %v; want 0 and a deadline error", n, err)
	}
	c.SetReadDeadline(time.Time{})
	b := make([]byte, 10)
	if n, err := c.Read(b); err != nil || string(b[:n]) != "waiting" {
		t.Fatalf("next read = %q, %v; want the bytes waiting", b[:n], err)
	}

	c.SetWriteDeadline(time.Unix(1, 0))
	n, err := c.Write([]byte("late"))
	var oe *net.OpError
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("write past the deadline = %d, %v; want 0 and a write OpError with a deadline error", n, err)
	}
	c.SetWriteDeadline(time.Time{})

	done := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, 64<<20)) // the peer never reads
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after close: %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("write still blocked after Close")
	}
}
