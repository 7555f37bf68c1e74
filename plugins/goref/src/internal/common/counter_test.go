package common

import (
	"errors"
	"testing"
)

func TestIncrementRespectsLimitAndWindows(t *testing.T) {
	s := NewMemStore()
	for i := int64(1); i <= 3; i++ {
		n, ok, err := Increment(s, "k", 60, 1, 3)
		if err != nil || !ok || n != i {
			t.Fatalf("increment %d = %d, %v, %v", i, n, ok, err)
		}
	}
	if n, ok, err := Increment(s, "k", 60, 1, 3); ok || n != 3 || err != nil {
		t.Fatalf("over the limit: %d, %v, %v; want 3, false", n, ok, err)
	}
	if u, _ := Usage(s, "k", 60); u != 3 {
		t.Errorf("usage = %d, want 3", u)
	}
	// A new window starts from zero and reuses the key.
	if n, ok, _ := Increment(s, "k", 120, 1, 3); !ok || n != 1 {
		t.Errorf("new window: %d, %v; want 1, true", n, ok)
	}
	if u, _ := Usage(s, "k", 60); u != 0 {
		t.Errorf("usage of a past window = %d, want 0", u)
	}
	if s.Len() != 1 {
		t.Errorf("store holds %d keys, want 1", s.Len())
	}
}

func TestIncrementRetriesOnCASMismatch(t *testing.T) {
	s := NewMemStore()
	Increment(s, "k", 0, 1, 0)
	// Another writer increments between our read and write.
	s.Interfere = func() { Increment(s, "k", 0, 1, 0) }
	n, ok, err := Increment(s, "k", 0, 1, 0)
	if err != nil || !ok || n != 3 {
		t.Errorf("after interference: %d, %v, %v; want 3, true, nil", n, ok, err)
	}
}

func TestIncrementStoreFailure(t *testing.T) {
	s := NewMemStore()
	s.Fail = errors.New("redis down")
	if _, _, err := Increment(s, "k", 0, 1, 5); err == nil {
		t.Error("no error from a failing store")
	}
	if _, err := Usage(s, "k", 0); err == nil {
		t.Error("no error from Usage on a failing store")
	}
}
