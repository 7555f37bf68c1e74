package lazytimer

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// owner is a connection as the codecs use the timer: a lock, the number
// of the request that waits (0: none) and the requests acted on.
type owner struct {
	mu      sync.Mutex
	t       Timer
	pending bool
	current int
	acted   []int
	at      []time.Duration
	start   time.Time
}

const delay = 100 * time.Millisecond

func (o *owner) begin(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.current, o.pending = n, true
	if !o.t.Inited() {
		o.t.Init(o.fire)
	}
	o.t.Begin(delay)
}

func (o *owner) end() {
	o.mu.Lock()
	o.pending = false
	o.mu.Unlock()
}

func (o *owner) fire() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.t.Fired(delay, o.pending) {
		o.acted = append(o.acted, o.current)
		o.at = append(o.at, time.Since(o.start))
		o.pending = false
	}
}

// Requests shorter than the delay start the timer about once a delay,
// not once each, and are never acted on; a request that lasts is acted
// on between one and two delays after it began.
func TestOneTimerServesManyRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &owner{start: time.Now()}
		for i := 1; i <= 50; i++ {
			o.begin(i)
			time.Sleep(10 * time.Millisecond)
			o.end()
		}
		synctest.Wait()
		if len(o.acted) != 0 {
			t.Fatalf("short requests acted on: %v", o.acted)
		}
		if s := o.t.Starts(); s > 6 {
			t.Fatalf("timer started %d times for 50 requests of a tenth of its delay; want about 5", s)
		}

		begun := time.Since(o.start)
		o.begin(51)
		time.Sleep(3 * delay)
		synctest.Wait()
		if len(o.acted) != 1 || o.acted[0] != 51 {
			t.Fatalf("acted on %v; want the long request 51 once", o.acted)
		}
		if after := o.at[0] - begun; after < delay || after > 2*delay {
			t.Fatalf("acted %v after the request began; want between %v and %v", after, delay, 2*delay)
		}
		o.mu.Lock()
		o.t.Stop()
		o.mu.Unlock()
	})
}

// With nothing pending when it fires, the timer stays stopped until the
// next Begin, which starts it again.
func TestIdleTimerStaysStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &owner{start: time.Now()}
		o.begin(1)
		o.end()
		time.Sleep(5 * delay)
		synctest.Wait()
		if s := o.t.Starts(); s != 1 {
			t.Fatalf("timer started %d times with nothing pending; want 1", s)
		}
		o.begin(2)
		time.Sleep(2 * delay)
		synctest.Wait()
		if s := o.t.Starts(); s != 2 || len(o.acted) != 1 || o.acted[0] != 2 {
			t.Fatalf("starts %d, acted %v; want 2 starts and request 2 acted on", s, o.acted)
		}
	})
}
