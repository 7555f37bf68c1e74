package http2

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// TestStreamsOfOneReadStartInOrder: on one core, the requests a client
// sends together (one read) reach their handlers in the order they came,
// each as soon as the one before it waits (on its upstream, here on a
// channel). Handing each stream to a goroutine as it is decoded started
// the last one first and put the others behind everything else runnable,
// which on a busy proxy added a round of the run queue to all but one
// request of each read: the bulk of h2's tail latency.
func TestStreamsOfOneReadStartInOrder(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const n = 8
	var mu sync.Mutex
	var order []string
	started := make(chan struct{}, n)
	release := make(chan struct{})
	ts := startServer(t, &Server{}, handlerFunc(func(s stream.ServerStream) {
		path, _ := s.RequestHeaders().Get(stream.Path)
		mu.Lock()
		order = append(order, string(path))
		mu.Unlock()
		started <- struct{}{}
		<-release // waits, as on an upstream
		okHandler(s)
	}), nil)
	r := dialRaw(t, ts.addr())
	want := requestsInOneWrite(r, n)
	awaitStarted(t, started, n)
	close(release)
	awaitEnded(r, n)
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("handlers started in the order %v, the requests came as %v", order, want)
	}
}

// TestResponsesOfOneRoundShareAWrite: on one core, the responses that
// handlers finish in one round of the run queue (their upstreams answered
// together, here a channel closed) leave in one write, not one each: the
// writer lets the runnable handlers queue theirs before it takes the
// batch. Before, the writer ran right after the first handler and each
// response cost a system call.
func TestResponsesOfOneRoundShareAWrite(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector randomizes the scheduler's order")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const n = 8
	started := make(chan struct{}, n)
	release := make(chan struct{})
	r, cc := serveCounted(t, handlerFunc(func(s stream.ServerStream) {
		started <- struct{}{}
		<-release // waits, as on an upstream
		okHandler(s)
	}))
	r.expect(func(f http2.Frame) bool { // our SETTINGS acknowledged: its write is done
		s, ok := f.(*http2.SettingsFrame)
		return ok && s.IsAck()
	})
	requestsInOneWrite(r, n)
	awaitStarted(t, started, n)
	before := cc.writes.Load()
	close(release)
	awaitEnded(r, n)
	if w := cc.writes.Load() - before; w > 2 {
		t.Fatalf("%d responses finished together took %d writes, want at most 2", n, w)
	}
}

// requestsInOneWrite sends GETs of /1 ... /n on streams 1, 3, ... in one
// write, and returns their paths.
func requestsInOneWrite(r *rawConn, n int) []string {
	r.t.Helper()
	var batch bytes.Buffer
	fr := http2.NewFramer(&batch, nil)
	var paths []string
	for i := range n {
		path := fmt.Sprintf("/%d", i+1)
		paths = append(paths, path)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), EndStream: true, EndHeaders: true,
			BlockFragment: r.block(":method", "GET", ":scheme", "http", ":authority", "x", ":path", path)})
	}
	if _, err := r.c.Write(batch.Bytes()); err != nil {
		r.t.Fatal(err)
	}
	return paths
}

// awaitStarted waits for n handlers to report their start.
func awaitStarted(t *testing.T, started <-chan struct{}, n int) {
	t.Helper()
	for range n {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("handlers did not start")
		}
	}
}

// awaitEnded reads until n responses have ended.
func awaitEnded(r *rawConn, n int) {
	r.t.Helper()
	for range n {
		r.expect(func(f http2.Frame) bool {
			d, ok := f.(*http2.DataFrame)
			return ok && d.StreamEnded()
		})
	}
}

// TestRequestsOfOneRoundShareAWrite is the client's side of
// TestResponsesOfOneRoundShareAWrite: requests that their owners open in
// one round of the run queue (released together, as the streams of a
// downstream read are) leave in one write, not one each.
func TestRequestsOfOneRoundShareAWrite(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector randomizes the scheduler's order")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const n = 8
	ts := startServer(t, &Server{}, okHandler, nil)
	c, err := net.Dial("tcp", ts.addr())
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingConn{Conn: c}
	cc := NewClientConn(counted, ClientOptions{})
	defer cc.Close()
	if err := cc.WaitSettings(context.Background()); err != nil {
		t.Fatal(err)
	}
	oneRequest(t, cc, newRequestFixture()) // the SETTINGS ACK is out
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			req := newRequestFixture()
			s, _, err := cc.Open(context.Background(), req.h, -1, nil, true)
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Release()
			if err := s.AwaitHead(); err != nil {
				t.Error(err)
			}
		}()
	}
	before := counted.writes.Load()
	close(release)
	wg.Wait()
	if w := counted.writes.Load() - before; w > 2 {
		t.Fatalf("%d requests opened together took %d writes, want at most 2", n, w)
	}
}

// TestStreamCountedBeforeQueued: a handler that is running may take the
// next stream off the start queue (startNext) the moment the reader puts
// it there, and that stream's handler may end before the reader goes on.
// The hook plays that interleaving: the stream is taken and served while
// the reader waits right after queueing it. The reader counted the
// handler (handlers.Add) only after queueing, so the handler's Done came
// first and drove the count negative: a panic on a handler goroutine,
// which ended the process (seen in CI under the race detector).
func TestStreamCountedBeforeQueued(t *testing.T) {
	srv := &Server{}
	srv.testHookStreamQueued = func(sc *serverConn) {
		sc.startNext()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			sc.mu.Lock()
			n := len(sc.streams)
			sc.mu.Unlock()
			if n == 0 || time.Now().After(deadline) {
				break
			}
		}
		// The handler's goroutine is past finish; give it the time to
		// reach its handlers.Done.
		time.Sleep(20 * time.Millisecond)
	}
	ts := startServer(t, srv, okHandler, nil)
	r := dialRaw(t, ts.addr())
	r.request(1, true, "/")
	r.expectStatus(1, "200")
	awaitEnded(r, 1)
}
