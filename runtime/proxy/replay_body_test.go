package proxy

import (
	"io"
	"strings"
	"testing"
)

func TestReplayBodyRewinds(t *testing.T) {
	b := newReplayBody(strings.NewReader("hello world"), 64)
	v1, ok := b.view()
	if !ok {
		t.Fatal("first view refused")
	}
	buf := make([]byte, 5)
	if n, _ := v1.Read(buf); string(buf[:n]) != "hello" {
		t.Fatalf("first read %q", buf[:n])
	}
	v2, ok := b.view()
	if !ok {
		t.Fatal("second view refused")
	}
	if _, err := v1.Read(buf); err != io.ErrClosedPipe {
		t.Fatalf("old view read: %v, want ErrClosedPipe", err)
	}
	all, err := io.ReadAll(v2)
	if err != nil || string(all) != "hello world" {
		t.Fatalf("replayed %q, %v", all, err)
	}
}

func TestReplayBodyOverflowStopsReplay(t *testing.T) {
	b := newReplayBody(strings.NewReader(strings.Repeat("x", 100)), 10)
	v, _ := b.view()
	all, _ := io.ReadAll(v)
	if len(all) != 100 {
		t.Fatalf("read %d bytes, want 100", len(all))
	}
	if b.replayable() {
		t.Fatal("a body past the limit still claims to be replayable")
	}
	if _, ok := b.view(); ok {
		t.Fatal("a view was given for a body past the limit")
	}
}
