package http2

import (
	"errors"
	"unsafe"

	"golang.org/x/net/http2/hpack"
)

// hpackDecoder decodes header blocks (RFC 7541) into byte slices for the
// connection's reader, which copies each field into a stream's header
// map: x/net's hpack.Decoder makes a string of every literal it decodes
// (an allocation per field the peer does not index, such as every field
// nginx sends and the request id a proxy stamps), only for the map to copy
// it again. Here literals are slices of the block, Huffman-coded ones are
// decoded into a scratch buffer, and the dynamic table keeps its entries'
// bytes in one arena: a warm connection decodes without allocating.
//
// It accepts and refuses what x/net's decoder does (FuzzHPACKDecoder
// compares the two), with Huffman decoding itself left to x/net.
type hpackDecoder struct {
	table  dynamicTable
	maxStr int // the longest string (name or value) accepted
	block  []byte
	scr    []byte // decoded Huffman strings of the field being decoded
}

var (
	errHPACK          = errors.New("hpack: invalid header block")
	errHPACKStringLen = errors.New("hpack: string past the length limit")
)

func newHPACKDecoder(maxStr int) *hpackDecoder {
	d := &hpackDecoder{maxStr: maxStr}
	d.table.maxSize, d.table.allowed = headerTableSize, headerTableSize
	return d
}

// decode decodes one whole header block, calling emit with each field in
// order; the slices are valid during the call only. An error leaves the
// decoder's table unusable: it is a connection error (COMPRESSION_ERROR).
func (d *hpackDecoder) decode(p []byte, emit func(name, value []byte)) error {
	first := true
	for len(p) > 0 {
		b := p[0]
		var err error
		switch {
		case b&0x80 != 0: // indexed (6.1)
			var idx uint64
			if idx, p, err = readVarInt(7, p); err != nil {
				return err
			}
			name, value, ok := d.at(idx)
			if !ok {
				return errHPACK
			}
			if err := d.emit(name, value, emit); err != nil {
				return err
			}
		case b&0xc0 == 0x40: // literal with incremental indexing (6.2.1)
			p, err = d.literal(6, true, p, emit)
		case b&0xf0 == 0x00, b&0xf0 == 0x10: // literal without indexing, never indexed (6.2.2, 6.2.3)
			p, err = d.literal(4, false, p, emit)
		case b&0xe0 == 0x20: // dynamic table size update (6.3)
			// At the start of a block (4.2); x/net also lets one through
			// while the table is empty, and so does this decoder.
			if !first && d.table.size > 0 {
				return errHPACK
			}
			var size uint64
			if size, p, err = readVarInt(5, p); err != nil {
				return err
			}
			if size > uint64(d.table.allowed) {
				return errHPACK
			}
			d.table.setMaxSize(uint32(size))
		default:
			return errHPACK
		}
		if err != nil {
			return err
		}
		first = false
	}
	return nil
}

func (d *hpackDecoder) emit(name, value []byte, emit func(name, value []byte)) error {
	if len(name) > d.maxStr || len(value) > d.maxStr {
		return errHPACKStringLen
	}
	emit(name, value)
	return nil
}

// literal decodes a literal field whose name index has an n-bit prefix.
func (d *hpackDecoder) literal(n byte, index bool, p []byte, emit func(name, value []byte)) ([]byte, error) {
	nameIdx, p, err := readVarInt(n, p)
	if err != nil {
		return nil, err
	}
	d.scr = d.scr[:0]
	var name []byte
	if nameIdx > 0 {
		var ok bool
		if name, _, ok = d.at(nameIdx); !ok {
			return nil, errHPACK
		}
	} else if name, p, err = d.readString(p); err != nil {
		return nil, err
	}
	value, p, err := d.readString(p)
	if err != nil {
		return nil, err
	}
	if err := d.emit(name, value, emit); err != nil {
		return nil, err
	}
	if index {
		d.table.add(name, value)
	}
	return p, nil
}

// readString reads a string literal (5.2): a slice of p, or of scr once
// Huffman-decoded (scr is appended to, so a name decoded before the
// value stays valid).
func (d *hpackDecoder) readString(p []byte) (s, rest []byte, err error) {
	if len(p) == 0 {
		return nil, nil, errHPACK
	}
	huff := p[0]&0x80 != 0
	n, p, err := readVarInt(7, p)
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(d.maxStr) {
		return nil, nil, errHPACKStringLen
	}
	if uint64(len(p)) < n {
		return nil, nil, errHPACK // truncated
	}
	s, rest = p[:n], p[n:]
	if !huff {
		return s, rest, nil
	}
	start := len(d.scr)
	w := appendWriter{&d.scr}
	if _, err := hpack.HuffmanDecode(w, s); err != nil {
		return nil, nil, err
	}
	if len(d.scr)-start > d.maxStr {
		return nil, nil, errHPACKStringLen
	}
	return d.scr[start:len(d.scr):len(d.scr)], rest, nil
}

// appendWriter appends what is written to a slice.
type appendWriter struct{ b *[]byte }

func (w appendWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

// at is the field at index i (2.3.3): the static table, then the dynamic
// one, newest first.
func (d *hpackDecoder) at(i uint64) (name, value []byte, ok bool) {
	if i == 0 {
		return nil, nil, false
	}
	if i <= uint64(len(staticTable)) {
		f := &staticTable[i-1]
		return f[0], f[1], true
	}
	return d.table.at(i - uint64(len(staticTable)))
}

// readVarInt reads an integer with an n-bit prefix (5.1), as x/net does
// (an integer of more than 63 bits is an error).
func readVarInt(n byte, p []byte) (uint64, []byte, error) {
	if len(p) == 0 {
		return 0, nil, errHPACK
	}
	i := uint64(p[0]) & (1<<n - 1)
	if i < 1<<n-1 {
		return i, p[1:], nil
	}
	p = p[1:]
	var m uint64
	for len(p) > 0 {
		b := p[0]
		p = p[1:]
		i += uint64(b&127) << m
		if b&128 == 0 {
			return i, p, nil
		}
		m += 7
		if m >= 63 {
			return 0, nil, errHPACK
		}
	}
	return 0, nil, errHPACK // truncated
}

// dynamicTable is the decoder's dynamic table (2.3.2, 4): entries oldest
// first, their bytes in one arena that is compacted in place when full,
// so that adding an entry allocates nothing once the arena has grown.
type dynamicTable struct {
	ents    []tableEntry // ents[head:] are live, oldest first
	head    int
	arena   []byte
	size    uint32 // RFC 7541 4.1's size of the live entries
	maxSize uint32 // the size the peer set (at most allowed)
	allowed uint32 // SETTINGS_HEADER_TABLE_SIZE we announced
	tmp     []byte
}

type tableEntry struct {
	off        int
	nlen, vlen int
}

func entrySize(nlen, vlen int) uint32 { return uint32(nlen + vlen + 32) }

func (t *dynamicTable) len() int { return len(t.ents) - t.head }

// at is the i-th newest entry, from 1.
func (t *dynamicTable) at(i uint64) (name, value []byte, ok bool) {
	if i > uint64(t.len()) {
		return nil, nil, false
	}
	e := t.ents[len(t.ents)-int(i)]
	mid := e.off + e.nlen
	return t.arena[e.off:mid:mid], t.arena[mid : mid+e.vlen : mid+e.vlen], true
}

// add inserts a field as the newest entry, then evicts the oldest ones
// until the table fits its size (an entry larger than the table leaves
// it empty, 4.4). name and value may be slices of the arena.
func (t *dynamicTable) add(name, value []byte) {
	if entrySize(len(name), len(value)) > t.maxSize {
		// Larger than the table: it empties (4.4), and the arena never
		// holds more than twice the table's bytes.
		t.ents, t.head, t.arena, t.size = t.ents[:0], 0, t.arena[:0], 0
		return
	}
	need := len(name) + len(value)
	if len(t.arena)+need > cap(t.arena) && cap(t.arena) >= 2*int(t.allowed) {
		// The arena is full of evicted bytes: move the live ones to its
		// start, the new entry's first (they may be among them).
		t.tmp = append(append(t.tmp[:0], name...), value...)
		name, value = t.tmp[:len(name)], t.tmp[len(name):]
		t.compact()
	}
	off := len(t.arena)
	t.arena = append(t.arena, name...)
	t.arena = append(t.arena, value...)
	t.ents = append(t.ents, tableEntry{off: off, nlen: len(name), vlen: len(value)})
	t.size += entrySize(len(name), len(value))
	t.evict()
}

func (t *dynamicTable) setMaxSize(n uint32) {
	t.maxSize = n
	t.evict()
}

func (t *dynamicTable) evict() {
	for t.size > t.maxSize && t.len() > 0 {
		e := t.ents[t.head]
		t.size -= entrySize(e.nlen, e.vlen)
		t.head++
	}
	if t.len() == 0 {
		t.ents, t.head, t.arena = t.ents[:0], 0, t.arena[:0]
	} else if t.head > 64 && t.head > t.len() {
		t.ents = t.ents[:copy(t.ents, t.ents[t.head:])]
		t.head = 0
	}
}

// compact moves the live entries' bytes to the arena's start, in order
// (each moves down, so a forward copy never overwrites bytes still to be
// moved).
func (t *dynamicTable) compact() {
	live := t.ents[t.head:]
	n := 0
	for i := range live {
		e := &live[i]
		l := e.nlen + e.vlen
		copy(t.arena[n:n+l], t.arena[e.off:e.off+l])
		e.off = n
		n += l
	}
	t.arena = t.arena[:n]
	t.ents = t.ents[:copy(t.ents, live)]
	t.head = 0
}

// staticTable is RFC 7541 Appendix A.
var staticTable = func() [][2][]byte {
	pairs := [...][2]string{
		{":authority", ""},
		{":method", "GET"},
		{":method", "POST"},
		{":path", "/"},
		{":path", "/index.html"},
		{":scheme", "http"},
		{":scheme", "https"},
		{":status", "200"},
		{":status", "204"},
		{":status", "206"},
		{":status", "304"},
		{":status", "400"},
		{":status", "404"},
		{":status", "500"},
		{"accept-charset", ""},
		{"accept-encoding", "gzip, deflate"},
		{"accept-language", ""},
		{"accept-ranges", ""},
		{"accept", ""},
		{"access-control-allow-origin", ""},
		{"age", ""},
		{"allow", ""},
		{"authorization", ""},
		{"cache-control", ""},
		{"content-disposition", ""},
		{"content-encoding", ""},
		{"content-language", ""},
		{"content-length", ""},
		{"content-location", ""},
		{"content-range", ""},
		{"content-type", ""},
		{"cookie", ""},
		{"date", ""},
		{"etag", ""},
		{"expect", ""},
		{"expires", ""},
		{"from", ""},
		{"host", ""},
		{"if-match", ""},
		{"if-modified-since", ""},
		{"if-none-match", ""},
		{"if-range", ""},
		{"if-unmodified-since", ""},
		{"last-modified", ""},
		{"link", ""},
		{"location", ""},
		{"max-forwards", ""},
		{"proxy-authenticate", ""},
		{"proxy-authorization", ""},
		{"range", ""},
		{"referer", ""},
		{"refresh", ""},
		{"retry-after", ""},
		{"server", ""},
		{"set-cookie", ""},
		{"strict-transport-security", ""},
		{"transfer-encoding", ""},
		{"user-agent", ""},
		{"vary", ""},
		{"via", ""},
		{"www-authenticate", ""},
	}
	t := make([][2][]byte, len(pairs))
	for i, p := range pairs {
		t[i] = [2][]byte{[]byte(p[0]), []byte(p[1])}
	}
	return t
}()

// fieldView is a decoded field as the hpack.HeaderField the field checks
// take, its strings views of the decoder's bytes: valid only during the
// emit call, which copies what it keeps into a header map.
func fieldView(name, value []byte) hpack.HeaderField {
	return hpack.HeaderField{Name: viewString(name), Value: viewString(value)}
}

// viewString is b's bytes as a string, without a copy: for a string that
// is read and dropped before b changes (a field being checked, or one the
// HPACK encoder reads and does not keep).
func viewString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
