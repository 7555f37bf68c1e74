//go:build linux

package iohandle

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// The readiness-keeping reads are possible on this Go, on both accepted
// and dialed connections, and a connection starts them (TCP_INQ on) at
// its first read that finds nothing. When a Go release moves the fields
// they depend on, this fails: the connections still work (the fallback),
// but every request pays a read that finds nothing again.
func TestReadinessKeptOnThisGo(t *testing.T) {
	if !layout.ok {
		t.Fatal("net.TCPConn's layout is not the expected one: readiness is not kept")
	}
	c, s := pair(t)
	for _, conn := range []*Conn{c, s} {
		if conn.pd == 0 {
			t.Fatalf("%v: readiness cannot be kept (poll descriptor not found)", conn.LocalAddr())
		}
		if conn.network != "tcp" {
			t.Fatalf("network %q read through the layout; want tcp", conn.network)
		}
		if conn.inq {
			t.Fatal("TCP_INQ on before any read found nothing")
		}
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		s.Write([]byte("hello"))
	}()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if c.tries != 1 || !c.inq || !c.drained {
		t.Fatalf("after a read that waited: %d empty reads, TCP_INQ %v, drained %v; want 1, on, drained", c.tries, c.inq, c.drained)
	}
}

// keptPair is pair with readiness kept from the start.
func keptPair(t *testing.T) (client, server *Conn) {
	c, s := pair(t)
	for _, conn := range []*Conn{c, s} {
		conn.raw.Control(conn.startInq)
		if !conn.inq {
			t.Fatal("TCP_INQ did not turn on")
		}
	}
	return c, s
}

// readinessModes runs a test on a connection that keeps readiness and on
// one that reads as net does (the fallback), which must behave the same.
func readinessModes(t *testing.T, run func(t *testing.T, c, peer *Conn, kept bool)) {
	for _, kept := range []bool{true, false} {
		name := "kept"
		if !kept {
			name = "fallback"
		}
		t.Run(name, func(t *testing.T) {
			c, peer := keptPair(t)
			if !kept {
				c.pd, c.inq = 0, false
			}
			run(t, c, peer, kept)
		})
	}
}

// drain reads msg from c in one short read, leaving the socket empty: in
// the kept mode the next Read then waits before it reads.
func drain(t *testing.T, c, peer *Conn, msg string, kept bool) {
	t.Helper()
	if _, err := peer.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len(msg)+64)
	n, err := io.ReadAtLeast(c, buf, len(msg))
	if err != nil || string(buf[:n]) != msg {
		t.Fatalf("read %q, %v; want %q", buf[:n], err, msg)
	}
	c.SetReadDeadline(time.Time{})
	if kept && !c.drained {
		t.Fatal("a short read did not mark the socket empty")
	}
	if !kept && c.drained {
		t.Fatal("the fallback marked the socket empty")
	}
}

// checkReadErr checks err has the shape net's Read gives it.
func checkReadErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("read error %v; want %v", err, want)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || oe.Net != "tcp" || oe.Source == nil || oe.Addr == nil {
		t.Fatalf("%#v: want a read OpError with both addresses", err)
	}
}

func TestReadinessDeadlineDuringWait(t *testing.T) {
	readinessModes(t, func(t *testing.T, c, peer *Conn, kept bool) {
		drain(t, c, peer, "GET / HTTP/1.1\r\n\r\n", kept)
		c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		n, err := c.Read(make([]byte, 16))
		if n != 0 {
			t.Fatalf("read %d bytes; want none", n)
		}
		checkReadErr(t, err, os.ErrDeadlineExceeded)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("%v is not a timeout", err)
		}
		// The wait ended without data: the next Read still finds what
		// comes later.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		peer.Write([]byte("later"))
		buf := make([]byte, 16)
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "later" {
			t.Fatalf("read after a timeout = %q, %v; want later", buf[:n], err)
		}
	})
}

// What ends a waiting Read from another goroutine: Close, and a deadline
// moved into the past (how runtime/http1 stops its watch of a
// connection). After Close, a Read fails at once the same way.
func TestReadinessInterruptedWait(t *testing.T) {
	for _, tc := range []struct {
		name      string
		interrupt func(c *Conn)
		want      error
	}{
		{"close", func(c *Conn) { c.Close() }, net.ErrClosed},
		{"deadline moved", func(c *Conn) { c.SetReadDeadline(time.Unix(1, 0)) }, os.ErrDeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			readinessModes(t, func(t *testing.T, c, peer *Conn, kept bool) {
				drain(t, c, peer, "x", kept)
				done := make(chan error, 1)
				go func() {
					_, err := c.Read(make([]byte, 1))
					done <- err
				}()
				time.Sleep(10 * time.Millisecond)
				tc.interrupt(c)
				select {
				case err := <-done:
					checkReadErr(t, err, tc.want)
				case <-time.After(5 * time.Second):
					t.Fatal("read still waiting")
				}
				_, err := c.Read(make([]byte, 1))
				checkReadErr(t, err, tc.want)
			})
		})
	}
}

// An expired deadline fails a Read even with data waiting, as net's does.
func TestReadinessExpiredDeadlineWithData(t *testing.T) {
	readinessModes(t, func(t *testing.T, c, peer *Conn, kept bool) {
		drain(t, c, peer, "one", kept)
		peer.Write([]byte("two"))
		waitQueued(t, c, 3)
		c.SetReadDeadline(time.Unix(1, 0))
		_, err := c.Read(make([]byte, 8))
		checkReadErr(t, err, os.ErrDeadlineExceeded)
	})
}

// waitQueued waits until c's socket holds n bytes, looking without taking
// them and without touching the poller's readiness.
func waitQueued(t *testing.T, c *Conn, n int) {
	t.Helper()
	buf := make([]byte, n+1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := -1
		c.raw.Control(func(fd uintptr) { got, _ = Peek(fd, buf) })
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket holds %d bytes; want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Data that arrives between a read that emptied the socket and the next
// Read is not missed: it marked the socket ready, and the wait keeps that
// mark.
func TestReadinessDataBeforeWait(t *testing.T) {
	readinessModes(t, func(t *testing.T, c, peer *Conn, kept bool) {
		drain(t, c, peer, "first", kept)
		peer.Write([]byte("second"))
		waitQueued(t, c, 6)
		time.Sleep(5 * time.Millisecond) // let the poller see the event too
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 16)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "second" {
			t.Fatalf("read %q, %v; want second", buf[:n], err)
		}
	})
}

// Pipelined messages read with a small buffer: full reads leave bytes, so
// no wait comes between them; a read that takes exactly what is there
// leaves the socket empty, and the wait after it ends with the next
// message.
func TestReadinessPipelined(t *testing.T) {
	readinessModes(t, func(t *testing.T, c, peer *Conn, kept bool) {
		msgs := bytes.Repeat([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"), 3)
		peer.Write(msgs)
		waitQueued(t, c, len(msgs))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, 0, len(msgs))
		buf := make([]byte, 8)
		for len(got) < len(msgs) {
			n, err := c.Read(buf[:min(len(buf), len(msgs)-len(got))])
			if err != nil {
				t.Fatalf("after %d bytes: %v", len(got), err)
			}
			got = append(got, buf[:n]...)
			if kept && len(got) < len(msgs) && c.drained {
				t.Fatalf("after %d of %d bytes, the socket was marked empty", len(got), len(msgs))
			}
		}
		if !bytes.Equal(got, msgs) {
			t.Fatalf("read %q; want %q", got, msgs)
		}
		if kept && !c.drained {
			t.Fatal("a read of exactly what was there did not mark the socket empty")
		}
		go func() {
			time.Sleep(10 * time.Millisecond)
			peer.Write([]byte("next"))
		}()
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "next" {
			t.Fatalf("read %q, %v; want next", buf[:n], err)
		}
	})
}

// A peer that sends and half-closes at once: the read that takes the
// bytes leaves no data but the FIN, which brings no further event from
// the poller; the next Read must see EOF at once, not wait. (A short read
// alone, nginx's test without EPOLLRDHUP, would wait here until the
// deadline.)
func TestReadinessHalfClose(t *testing.T) {
	readinessModes(t, func(t *testing.T, c, peer *Conn, kept bool) {
		peer.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		peer.CloseWrite()
		time.Sleep(10 * time.Millisecond) // the bytes and the FIN both in
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil || n != 18 {
			t.Fatalf("read %q, %v; want the request", buf[:n], err)
		}
		if c.drained {
			t.Fatal("the socket was marked empty with a FIN in it")
		}
		for i := 0; i < 2; i++ { // EOF stays EOF
			if n, err := c.Read(buf); n != 0 || err != io.EOF {
				t.Fatalf("read %d after the request = %d, %v; want EOF", i, n, err)
			}
		}
		// The other way still works after the half-close.
		if _, err := c.Write([]byte("HTTP/1.0 200 OK\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
	})
}

// The FIN arriving later, while the Read waits, ends it with EOF.
func TestReadinessHalfCloseDuringWait(t *testing.T) {
	readinessModes(t, func(t *testing.T, c, peer *Conn, kept bool) {
		drain(t, c, peer, "req", kept)
		go func() {
			time.Sleep(10 * time.Millisecond)
			peer.CloseWrite()
		}()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Fatalf("read = %d, %v; want EOF", n, err)
		}
	})
}

// A request and its answer, again and again, as a kept-alive connection
// goes: the server's read after each answer waits for the next request
// instead of trying first. Before readiness was kept, nearly every one of
// those reads found nothing (EAGAIN) and then waited.
func TestReadinessSavesEmptyReads(t *testing.T) {
	c, s := pair(t)
	// As a downstream connection's idle or header timeout does: without
	// a read deadline, reads try first (TestResetWithLastDataEndsTheWait).
	s.SetReadDeadline(time.Now().Add(20 * time.Second))
	const rounds = 200
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for i := 0; i < rounds; i++ {
			if _, err := io.ReadFull(s, buf[:4]); err != nil {
				done <- err
				return
			}
			if _, err := s.Write([]byte("pong")); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 4)
	for i := 0; i < rounds; i++ {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Left-over marks of data already read cost a try now and then.
	if s.tries > rounds/10 || c.tries > rounds/10 {
		t.Fatalf("%d and %d reads found nothing in %d exchanges; want at most %d", s.tries, c.tries, rounds, rounds/10)
	}
}

// Code holding the RawConn (runtime/upstream waits for an answer in one)
// may use up the poller's readiness without reading: the next Read must
// try first, or it would wait for an event that came already.
func TestReadinessRawConnReadUsesItUp(t *testing.T) {
	c, peer := keptPair(t)
	drain(t, c, peer, "x", true)
	sc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		peer.Write([]byte("answer"))
	}()
	woken := false
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := sc.Read(func(uintptr) bool { w := woken; woken = true; return w }); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "answer" {
		t.Fatalf("read %q, %v; want answer", buf[:n], err)
	}
}

// WriteTo (io.Copy from the connection) reads through Read, so it also
// keeps readiness and a later Read is not misled.
func TestReadinessWriteTo(t *testing.T) {
	c, peer := keptPair(t)
	drain(t, c, peer, "x", true)
	go func() {
		peer.Write([]byte("tunnel bytes"))
		time.Sleep(10 * time.Millisecond)
		peer.Write([]byte(" and more"))
		peer.CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var out bytes.Buffer
	if n, err := io.Copy(&out, c); err != nil || out.String() != "tunnel bytes and more" {
		t.Fatalf("copied %d: %q, %v", n, out.String(), err)
	}
	if c.drained {
		t.Fatal("the copy read with net's calls, not the Conn's (the mark of the first read is still there)")
	}
}

// The RawConn given out is the Conn's, so its Read takes turns with the
// Conn's and a Control passes through.
func TestReadinessSyscallConn(t *testing.T) {
	c, _ := keptPair(t)
	sc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sc.(*rawConn); !ok {
		t.Fatalf("SyscallConn gave %T", sc)
	}
	var v int
	var gerr error
	if err := sc.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpINQ)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil || v != 1 {
		t.Fatalf("TCP_INQ = %d, %v; want 1", v, gerr)
	}
}

// BenchmarkReadinessPingPong is a request and its answer on a kept-alive
// loopback connection, the server's side reading as net does (fallback)
// or keeping readiness (kept): the kept side's read after each answer
// waits instead of first finding nothing.
func BenchmarkReadinessPingPong(b *testing.B) {
	for _, kept := range []bool{false, true} {
		name := "fallback"
		if kept {
			name = "kept"
		}
		b.Run(name, func(b *testing.B) {
			t := &testing.T{}
			c, s := pair(t)
			defer c.Close()
			defer s.Close()
			c.pd, c.inq = 0, false // the client side as net reads
			if !kept {
				s.pd, s.inq = 0, false
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 4096)
				for {
					if _, err := s.Read(buf); err != nil {
						return
					}
					if _, err := s.Write([]byte("pong")); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, 4096)
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				c.Write([]byte("ping"))
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			// The process's CPU time, not the wall clock: on a shared
			// machine the latter counts other processes' turns too.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			c.Close()
			<-done
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A reset that arrives with the peer's last data, before the read that
// takes the data, leaves no event for a later wait and no sign in
// TCP_INQ. Without a read deadline (an HTTP/2 upstream's reader), the
// read after must therefore try first and meet the reset, not wait for
// an event that has already been spent.
func TestResetWithLastDataEndsTheWait(t *testing.T) {
	c, peer := keptPair(t)
	buf := make([]byte, 16)
	peer.Write([]byte("a"))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "a" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if !c.drained {
		t.Fatal("the socket was read empty but is not marked so")
	}
	peer.Write([]byte("b"))
	peer.SetLinger(0) // Close sends a reset
	peer.Close()
	time.Sleep(50 * time.Millisecond) // both are in before the next read

	done := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			_, err = c.Read(buf)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.ECONNRESET) && err != io.EOF {
			t.Fatalf("read ended with %v; want the reset", err)
		}
	case <-time.After(5 * time.Second):
		c.Close()
		<-done
		t.Fatal("the read after the last data waited for an event the reset had already spent")
	}
}

// WaitReadable waits, without a buffer, where a Read would wait first (a
// kept connection whose last read left it empty, a read deadline set),
// and the Read after it then reads at once; the deadline and Close end
// it as they end a Read. The fallback does not wait: its Read does.
func TestWaitReadable(t *testing.T) {
	readinessModes(t, func(t *testing.T, c, peer *Conn, kept bool) {
		drain(t, c, peer, "first", kept)
		if c.WaitReadable() {
			t.Fatal("waited without a read deadline")
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		waited := make(chan bool, 1)
		go func() { waited <- c.WaitReadable() }()
		if !kept {
			if <-waited {
				t.Fatal("the fallback waited")
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
		select {
		case <-waited:
			t.Fatal("returned before anything came")
		default:
		}
		peer.Write([]byte("second"))
		if !<-waited {
			t.Fatal("did not wait")
		}
		tries := c.tries
		buf := make([]byte, 16)
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "second" {
			t.Fatalf("read after the wait = %q, %v; want second", buf[:n], err)
		}
		if c.tries != tries {
			t.Fatal("the read after the wait found nothing")
		}

		// The deadline passes during the wait: the Read reports it.
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if !c.WaitReadable() {
			t.Fatal("did not wait")
		}
		_, err := c.Read(buf)
		checkReadErr(t, err, os.ErrDeadlineExceeded)

		// Close from another goroutine during the wait.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		go func() { waited <- c.WaitReadable() }()
		time.Sleep(10 * time.Millisecond)
		c.Close()
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			t.Fatal("still waiting after Close")
		}
		_, err = c.Read(buf)
		checkReadErr(t, err, net.ErrClosed)
	})
}

// Before TCP_INQ is on (a connection whose reads never found nothing,
// such as one that has served one request), WaitReadable peeks: an empty
// socket turns it on and is waited for; bytes there are left to the Read.
func TestWaitReadableBeforeInq(t *testing.T) {
	c, peer := pair(t)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	peer.Write([]byte("queued"))
	time.Sleep(10 * time.Millisecond) // let them arrive: they are what the peek must see
	if c.WaitReadable() {
		t.Fatal("waited with bytes queued")
	}
	buf := make([]byte, 16)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "queued" {
		t.Fatalf("read %q, %v; want queued", buf[:n], err)
	}
	if c.inq {
		t.Fatal("TCP_INQ on before any read or peek found nothing")
	}
	// Nothing comes: the peek finds the socket empty and the wait lasts
	// until the deadline, which the Read then reports.
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if !c.WaitReadable() {
		t.Fatal("did not wait on an empty socket")
	}
	if !c.inq {
		t.Fatal("TCP_INQ still off after a peek found nothing")
	}
	_, err := c.Read(buf)
	checkReadErr(t, err, os.ErrDeadlineExceeded)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	peer.Write([]byte("next"))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "next" {
		t.Fatalf("read %q, %v; want next", buf[:n], err)
	}
}

// Quiet peeks: an empty socket is quiet, and then the next Read, without
// a read deadline, waits before it tries (no read that finds nothing);
// the one after that tries first again. Bytes, the peer's FIN or a reset
// make it not quiet, and leave nothing armed.
func TestQuiet(t *testing.T) {
	readinessModes(t, func(t *testing.T, c, peer *Conn, kept bool) {
		drain(t, c, peer, "first", kept)
		q, ok := Quiet(c)
		if !ok {
			if kept {
				t.Fatal("Quiet did not check a connection that keeps readiness")
			}
			return
		}
		if !kept {
			t.Fatal("Quiet checked a connection without readiness")
		}
		if !q {
			t.Fatal("an empty socket is not quiet")
		}
		go func() {
			time.Sleep(20 * time.Millisecond)
			peer.Write([]byte("answer"))
		}()
		tries := c.tries
		buf := make([]byte, 16)
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "answer" {
			t.Fatalf("read %q, %v; want the answer", buf[:n], err)
		}
		if c.tries != tries {
			t.Fatal("the read after a quiet check tried before it waited")
		}
		if c.replyNext {
			t.Fatal("Quiet's word outlived its Read")
		}

		// Without a deadline and without Quiet, a read tries first.
		go func() {
			time.Sleep(20 * time.Millisecond)
			peer.Write([]byte("more"))
		}()
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "more" {
			t.Fatalf("read %q, %v", buf[:n], err)
		}
		if c.tries != tries+1 {
			t.Fatalf("%d reads found nothing; want the one try without a deadline", c.tries-tries)
		}

		peer.Write([]byte("unasked"))
		waitQueued(t, c, len("unasked"))
		if q, _ := Quiet(c); q || c.replyNext {
			t.Fatal("a socket with bytes is quiet")
		}
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "unasked" {
			t.Fatalf("read %q, %v", buf[:n], err)
		}
		peer.CloseWrite()
		time.Sleep(50 * time.Millisecond) // the FIN is in
		if q, _ := Quiet(c); q {
			t.Fatal("a socket with the peer's FIN is quiet")
		}
	})
}

// A reset is not quiet either: the peek meets it.
func TestQuietReset(t *testing.T) {
	c, peer := keptPair(t)
	peer.SetLinger(0) // Close sends a reset
	peer.Close()
	time.Sleep(50 * time.Millisecond)
	if q, ok := Quiet(c); !ok || q {
		t.Fatalf("Quiet = %v, %v after a reset; want false, true", q, ok)
	}
}

// HoldReads: a Read answers a timeout at once and takes nothing from the
// socket; once released, reads go on as before. crypto/tls takes the
// timeout as temporary, so a TLS connection over a held Conn answers
// from its buffers only, and stays usable.
func TestHoldReads(t *testing.T) {
	c, peer := keptPair(t)
	peer.Write([]byte("kept"))
	waitQueued(t, c, len("kept"))
	if !HoldReads(c, true) {
		t.Fatal("HoldReads did not take a Conn")
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("held read = %d, %v; want 0 and a timeout", n, err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("held read's error %v is not a net.Error timeout", err)
	}
	HoldReads(c, false)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "kept" {
		t.Fatalf("read after release = %q, %v; want the bytes the hold left", buf[:n], err)
	}
	if HoldReads(&net.TCPConn{}, true) {
		t.Fatal("HoldReads took a connection of another kind")
	}
}

// Quiet on a connection whose reads are plain read(2) (TCP_INQ not on,
// so a read does not say whether it left bytes): its word holds for one
// Read, and a later Read with a deadline set still tries first, finding
// what the first one left.
func TestQuietBeforeInq(t *testing.T) {
	c, peer := pair(t)
	if c.pd == 0 || c.inq {
		t.Skip("readiness is not kept here, or TCP_INQ is on already")
	}
	if q, ok := Quiet(c); !q || !ok {
		t.Fatalf("Quiet = %v, %v on a new connection; want true, true", q, ok)
	}
	peer.Write([]byte("0123456789"))
	buf := make([]byte, 4)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "0123" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "4567" {
		t.Fatalf("read %q, %v; want the bytes the first read left", buf[:n], err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the read of bytes already there took %v: it waited for an event", d)
	}
}
