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
	if Mono() < b {
		t.Error("Mono went backwards")
	}
	if n := count(); n != 4 {
		t.Errorf("%d readings counted, want 4", n)
	}
	stop()
	Now()
	if n := count(); n != 4 {
		t.Errorf("%d readings counted after stop, want 4", n)
	}
}

// TestMonoScale: Now's readings go on Mono's scale and back.
func TestMonoScale(t *testing.T) {
	n := Now()
	time.Sleep(2 * time.Millisecond)
	m := Mono()
	if d := m - MonoOf(n); d < 2*time.Millisecond || d > time.Minute {
		t.Errorf("Mono() - MonoOf(Now()) = %v after a 2ms sleep", d)
	}
	if d := TimeOf(m).Sub(n); d != m-MonoOf(n) {
		t.Errorf("TimeOf(m).Sub(n) = %v, want %v", d, m-MonoOf(n))
	}
}
