package upstream

import (
	"context"
	"errors"
	"testing"
	"time"
)

// connSlots behaves as the buffered channel of tokens it replaces: free
// slots are taken at once, waiters are handed slots in arrival order, a
// waiter whose context ends leaves the queue, and the count balances.
func TestConnSlots(t *testing.T) {
	s := newConnSlots(2)
	if !s.tryTake() || !s.tryTake() {
		t.Fatal("two free slots not taken")
	}
	if s.tryTake() {
		t.Fatal("a third slot taken of two")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := func(i int, ctx context.Context) chan error {
		done := make(chan error, 1)
		go func() {
			done <- s.take(ctx)
		}()
		// Wait until it is queued, so the arrival order is known.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			s.mu.Lock()
			n := len(s.waiters)
			s.mu.Unlock()
			if n == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiter %d not queued", i)
			}
		}
		return done
	}
	w0 := start(0, context.Background())
	w1 := start(1, ctx)
	w2 := start(2, context.Background())
	if s.tryTake() {
		t.Fatal("a slot taken past waiters")
	}
	cancel() // waiter 1 leaves the queue
	if err := <-w1; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled waiter: %v, want context.Canceled", err)
	}
	s.give() // to waiter 0, the first in the queue
	if err := <-w0; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-w2:
		t.Fatalf("waiter 2 done (%v) with one slot given back, to waiter 0", err)
	case <-time.After(20 * time.Millisecond):
	}
	s.give()
	if err := <-w2; err != nil {
		t.Fatal(err)
	}
	if n := s.len(); n != 2 {
		t.Fatalf("%d slots held, want 2", n)
	}
	s.give()
	s.give()
	if n := s.len(); n != 0 {
		t.Fatalf("%d slots held after every give, want 0", n)
	}
	if !s.tryTake() {
		t.Fatal("a free slot not taken")
	}
}
