package hostabi

// streamTable holds an instance's live stream contexts by id. Every
// stream is put in at its start and deleted at its end, and a Go map
// spent about 50 ns a stream on that (hashing, its groups' control
// words), a tenth of a header-only filter's whole stream. Context ids
// come from one counter per instance, so the id's low bits place the
// streams open at once in distinct slots without a hash: a stream sits
// in slot id&mask, and only one whose slot an older stream still holds
// (a long poll while len(slots) later streams went by) goes to the
// overflow map. Open addressing with linear probing was tried: the
// streams open at once have consecutive ids, one run of slots, and
// deleting the oldest scanned the whole run.
type streamTable struct {
	slots    []streamSlot
	overflow map[uint32]*HTTPStream
	n        int // streams in slots and overflow
}

type streamSlot struct {
	id uint32
	s  *HTTPStream // nil: free
}

// minStreamSlots is the table's first size: a pool's instance serves a
// few dozen streams at once under load.
const minStreamSlots = 64

func (t *streamTable) get(id uint32) *HTTPStream {
	if t.n == 0 {
		return nil
	}
	if sl := &t.slots[id&uint32(len(t.slots)-1)]; sl.s != nil && sl.id == id {
		return sl.s
	}
	if len(t.overflow) == 0 {
		return nil
	}
	return t.overflow[id]
}

// put adds s under s.id, which no live stream has. The slots stay at
// least twice the streams, so that streams of consecutive ids rarely
// meet a slot still taken.
func (t *streamTable) put(s *HTTPStream) {
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	t.place(s.id, s)
	t.n++
}

func (t *streamTable) place(id uint32, s *HTTPStream) {
	sl := &t.slots[id&uint32(len(t.slots)-1)]
	if sl.s == nil {
		*sl = streamSlot{id: id, s: s}
		return
	}
	if t.overflow == nil {
		t.overflow = map[uint32]*HTTPStream{}
	}
	t.overflow[id] = s
}

func (t *streamTable) grow() {
	old, over := t.slots, t.overflow
	t.slots, t.overflow = make([]streamSlot, max(minStreamSlots, 2*len(old))), nil
	for _, sl := range old {
		if sl.s != nil {
			t.place(sl.id, sl.s)
		}
	}
	for id, s := range over {
		t.place(id, s)
	}
}

// del removes the stream with id, if there is one.
func (t *streamTable) del(id uint32) {
	if t.n == 0 {
		return
	}
	if sl := &t.slots[id&uint32(len(t.slots)-1)]; sl.s != nil && sl.id == id {
		*sl = streamSlot{}
		t.n--
		return
	}
	if _, ok := t.overflow[id]; ok {
		delete(t.overflow, id)
		t.n--
	}
}
