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

// TestReplayBodyOnEnd: the mirror's hook fires once, with the whole body
// when it ended within the limit (at the declared length, or at EOF when
// none was declared), with nothing on overflow or a read error.
func TestReplayBodyOnEnd(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src      io.Reader
		length   int64
		limit    int
		readUpTo int // bytes read before the check; -1 all
		want     string
		complete bool
		calls    int
	}{
		{"eof", strings.NewReader("hello"), -1, 64, -1, "hello", true, 1},
		{"declared length, before eof", strings.NewReader("hello"), 5, 64, 5, "hello", true, 1},
		{"not yet", strings.NewReader("hello"), -1, 64, 3, "", false, 0},
		{"overflow", strings.NewReader(strings.Repeat("x", 100)), -1, 10, -1, "", false, 1},
		{"read error", io.MultiReader(strings.NewReader("he"), errReader{}), -1, 64, -1, "", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newReplayBody(tc.src, tc.limit)
			b.length = tc.length
			calls, got, complete := 0, "", false
			b.onEnd = func(body []byte, c bool) { calls++; got, complete = string(body), c }
			v, _ := b.view()
			if tc.readUpTo < 0 {
				io.ReadAll(v)
				io.ReadAll(v) // reads after the end do not call again
			} else {
				io.ReadFull(v, make([]byte, tc.readUpTo))
			}
			if calls != tc.calls || got != tc.want || complete != tc.complete {
				t.Fatalf("onEnd called %d times with %q, %v; want %d, %q, %v", calls, got, complete, tc.calls, tc.want, tc.complete)
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
