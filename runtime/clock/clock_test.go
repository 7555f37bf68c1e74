package clock

import (
	"testing"
	"time"
)

func TestCounting(t *testing.T) {
	count, stop := Counting()
	a := Now()
	b := Mono()
	if d := Since(a); d < 0 {
		t.Errorf("Since(Now()) = %v, want >= 0", d)
	}
	if Since(b) < 0 || Mono().Before(b) {
		t.Error("Mono went backwards")
	}
	if n := count(); n != 5 {
		t.Errorf("%d readings counted, want 5", n)
	}
	stop()
	Now()
	if n := count(); n != 5 {
		t.Errorf("%d readings counted after stop, want 5", n)
	}
}

// TestMonoSubtracts: Mono's readings and Now's subtract on the monotonic
// clock, whatever Mono's wall part says.
func TestMonoSubtracts(t *testing.T) {
	n := Now()
	time.Sleep(2 * time.Millisecond)
	m := Mono()
	if d := m.Sub(n); d < 2*time.Millisecond || d > time.Minute {
		t.Errorf("Mono().Sub(Now()) = %v after a 2ms sleep", d)
	}
}
