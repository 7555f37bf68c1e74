package http2

import (
	"bytes"
	"fmt"
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
	var batch bytes.Buffer
	fr := http2.NewFramer(&batch, nil)
	var want []string
	for i := range n {
		path := fmt.Sprintf("/%d", i+1)
		want = append(want, path)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), EndStream: true, EndHeaders: true,
			BlockFragment: r.block(":method", "GET", ":scheme", "http", ":authority", "x", ":path", path)})
	}
	if _, err := r.c.Write(batch.Bytes()); err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("handlers did not start")
		}
	}
	close(release)
	ended := 0
	for ended < n {
		r.expect(func(f http2.Frame) bool {
			d, ok := f.(*http2.DataFrame)
			return ok && d.StreamEnded()
		})
		ended++
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("handlers started in the order %v, the requests came as %v", order, want)
	}
}
