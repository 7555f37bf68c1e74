package proxy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// A stream's context ends with its parent (the codec's) and with its own
// cancel, and reports its own cause (the HTTP/2 client cancels an
// upstream stream with context.Cause(ctx)), not the live parent's.
func TestStreamContextEnds(t *testing.T) {
	t.Run("own cancel, own cause", func(t *testing.T) {
		parent, cancelParent := context.WithCancel(context.Background())
		defer cancelParent()
		var c streamContext
		c.begin(parent, time.Time{})
		c.Cancel(context.DeadlineExceeded)
		waitDone(t, c.Done())
		if c.Err() != context.DeadlineExceeded || context.Cause(&c) != context.DeadlineExceeded {
			t.Errorf("Err %v, Cause %v; want DeadlineExceeded for both", c.Err(), context.Cause(&c))
		}
		if parent.Err() != nil {
			t.Error("the stream's end ended its parent")
		}
	})
	t.Run("parent's end", func(t *testing.T) {
		parent, cancelParent := context.WithCancel(context.Background())
		var c streamContext
		c.begin(parent, time.Time{})
		child, cancelChild := context.WithCancel(&c) // as a per-try context
		defer cancelChild()
		cancelParent()
		waitDone(t, c.Done())
		waitDone(t, child.Done())
		if c.Err() != context.Canceled || child.Err() != context.Canceled {
			t.Errorf("Err %v, child's %v; want Canceled", c.Err(), child.Err())
		}
	})
	t.Run("deadline and values", func(t *testing.T) {
		type key struct{}
		parent, cancelParent := context.WithDeadline(context.WithValue(context.Background(), key{}, "v"), time.Now().Add(time.Hour))
		defer cancelParent()
		var c streamContext
		route := time.Now().Add(time.Minute)
		c.begin(parent, route)
		if d, ok := c.Deadline(); !ok || !d.Equal(route) {
			t.Errorf("Deadline %v %v, want the route's %v", d, ok, route)
		}
		if c.Value(key{}) != "v" {
			t.Error("the parent's value is not seen")
		}
	})
}

// release keeps a context for reuse only when nothing waits on it; a
// stop func from an earlier stream cannot remove a later registration.
func TestStreamContextRelease(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	var c streamContext
	c.begin(parent, time.Time{})
	stop := c.AfterFunc(func() {})
	if c.release(true, false) {
		t.Fatal("kept with an AfterFunc registered")
	}
	waitDone(t, c.Done())
	if stop() {
		t.Error("stop after the end reported it stopped the func")
	}

	var r streamContext
	r.begin(parent, time.Time{})
	staleStop := r.AfterFunc(func() {})
	if !staleStop() || !r.release(true, false) {
		t.Fatal("a context nothing waits on was not kept")
	}
	r.begin(parent, time.Time{})
	ran := make(chan struct{})
	r.AfterFunc(func() { close(ran) })
	if staleStop() {
		t.Error("the earlier stream's stop removed a later registration")
	}
	r.Cancel(errors.New("end"))
	waitDone(t, ran)
}

func waitDone(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("not done")
	}
}

// codecContext stands for a codec's stream context: a stream.Watchable
// context.
type codecContext struct{ stream.Cancellable }

func (*codecContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*codecContext) Value(any) any               { return nil }

// TestStreamContextOnEndedParentNotKept: a codec context that had ended
// when the stream began (a client's RST_STREAM first) has Watch start the
// registered function on a goroutine, which may run after the stream.
// release must not keep the context for another stream then, or that late
// call cancels a stream it was never about (gRPC interop's
// cancel_after_first_response saw "upstream reset before response").
func TestStreamContextOnEndedParentNotKept(t *testing.T) {
	parent := new(codecContext)
	parent.Cancel(context.Canceled)
	late := make(chan struct{})
	ran := make(chan struct{})
	var c streamContext
	c.parentDone = func() { <-late; close(ran) } // the goroutine has not run yet
	c.begin(parent, time.Time{})
	if c.release(true, false) {
		t.Error("kept for another stream while the ended parent's callback is still to run")
	}
	close(late)
	<-ran
}
