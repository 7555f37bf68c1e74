//go:build linux

package iohandle

import (
	"testing"
	"unsafe"
)

// TestConnLayout keeps Conn at 384 bytes, a size class of its own, so
// that a Conn starts on a 64-byte line and its fields fall in the lines
// Conn's comment gives: what a Read touches in lines 0 and 1 (2 and 3
// with TCP_INQ), a Write in 0, 3 and 4. A field added or grown must find
// room in the line where it is used, or the lines be redone.
func TestConnLayout(t *testing.T) {
	var c Conn
	if s := unsafe.Sizeof(c); s != 384 {
		t.Errorf("Conn is %d bytes, want 384 (6 cache lines, a size class of its own)", s)
	}
	line := func(off uintptr) uintptr { return off / 64 }
	for _, f := range []struct {
		name string
		off  uintptr
		want uintptr
	}{
		{"raw", unsafe.Offsetof(c.raw), 0},
		{"poll", unsafe.Offsetof(c.poll), 0},
		{"rmu", unsafe.Offsetof(c.rmu), 0},
		{"rwait", unsafe.Offsetof(c.rwait), 0},
		{"readCtlFn", unsafe.Offsetof(c.readCtlFn), 0},
		{"rbuf", unsafe.Offsetof(c.rbuf), 1},
		{"rawF", unsafe.Offsetof(c.rawF), 1},
		{"msg", unsafe.Offsetof(c.msg), 2},
		{"cmsg", unsafe.Offsetof(c.cmsg), 3},
		{"wwait", unsafe.Offsetof(c.wwait), 3},
		{"wbuf", unsafe.Offsetof(c.wbuf), 4},
		{"werr", unsafe.Offsetof(c.werr), 4},
	} {
		if got := line(f.off); got != f.want {
			t.Errorf("Conn.%s at offset %d, line %d; want line %d", f.name, f.off, got, f.want)
		}
	}
}
