package http2

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// decodeBoth decodes blocks with x/net's decoder and with hpackDecoder,
// and fails when they disagree: on whether a block is valid, or on the
// fields of a valid one.
func decodeBoth(t *testing.T, maxStr int, blocks [][]byte) {
	t.Helper()
	var want []string
	xd := hpack.NewDecoder(headerTableSize, func(f hpack.HeaderField) { want = append(want, f.Name+": "+f.Value) })
	xd.SetMaxStringLength(maxStr)
	ours := newHPACKDecoder(maxStr)
	var got []string
	for i, b := range blocks {
		want, got = want[:0], got[:0]
		_, xerr := xd.Write(b)
		if xerr == nil {
			xerr = xd.Close()
		}
		err := ours.decode(b, func(name, value []byte) { got = append(got, string(name)+": "+string(value)) })
		if (err == nil) != (xerr == nil) {
			t.Fatalf("block %d %x: x/net's error %v, ours %v", i, b, xerr, err)
		}
		if err != nil {
			return // the connection would end here
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("block %d %x:\n x/net %q\n ours  %q", i, b, want, got)
		}
	}
}

// TestHPACKDecoderMatchesXNet: thousands of blocks from x/net's encoder
// (indexed and literal fields, Huffman or not, values that repeat and
// values that do not, table size changes) decode to the same fields with
// both decoders: the dynamic table's eviction and its arena's compaction
// follow x/net's.
func TestHPACKDecoderMatchesXNet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	names := []string{":method", ":path", "content-type", "x-request-id", "cookie", "user-agent", "x-long", "date"}
	var blocks [][]byte
	for i := range 4000 {
		buf.Reset()
		if i%500 == 499 {
			enc.SetMaxDynamicTableSize(uint32(rng.IntN(headerTableSize + 1)))
		}
		for range 1 + rng.IntN(12) {
			name := names[rng.IntN(len(names))]
			value := fmt.Sprintf("v%d", rng.IntN(50))
			switch rng.IntN(4) {
			case 0:
				value = string(bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, rng.IntN(3000)))
			case 1:
				value = fmt.Sprintf("%x", rng.Uint64())
			}
			enc.WriteField(hpack.HeaderField{Name: name, Value: value, Sensitive: rng.IntN(10) == 0})
		}
		blocks = append(blocks, bytes.Clone(buf.Bytes()))
	}
	decodeBoth(t, 1<<20, blocks)
}

// TestHPACKDecoderAllocs: once its table's arena has grown, decoding
// allocates nothing, Huffman-coded literals and new entries included.
func TestHPACKDecoderAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	d := newHPACKDecoder(1 << 20)
	n := 0
	block := func() []byte {
		n++
		buf.Reset()
		enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
		enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "text/plain"})
		enc.WriteField(hpack.HeaderField{Name: "x-request-id", Value: fmt.Sprintf("%032d", n)})             // a new entry each time
		enc.WriteField(hpack.HeaderField{Name: "x-trace", Value: fmt.Sprintf("%016d", n), Sensitive: true}) // a literal
		return buf.Bytes()
	}
	emit := func(name, value []byte) {}
	for range 1000 {
		if err := d.decode(block(), emit); err != nil {
			t.Fatal(err)
		}
	}
	blocks := make([][]byte, 1000)
	for i := range blocks {
		blocks[i] = bytes.Clone(block())
	}
	i := 0
	allocs := testing.AllocsPerRun(len(blocks)-1, func() {
		if err := d.decode(blocks[i], emit); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs > 0 {
		t.Fatalf("%.2f allocations a block", allocs)
	}
}

// FuzzHPACKDecoder: for any sequence of blocks, hpackDecoder accepts what
// x/net's decoder accepts, with the same fields, and refuses what it
// refuses. Input: blocks, each prefixed by its length in two bytes.
func FuzzHPACKDecoder(f *testing.F) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	seed := func(fields ...string) []byte {
		buf.Reset()
		for i := 0; i+1 < len(fields); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return bytes.Clone(buf.Bytes())
	}
	frame := func(blocks ...[]byte) []byte {
		var out []byte
		for _, b := range blocks {
			out = append(out, byte(len(b)>>8), byte(len(b)))
			out = append(out, b...)
		}
		return out
	}
	b1 := seed(":method", "GET", ":path", "/", ":authority", "example.com", "x-a", "1")
	b2 := seed(":method", "GET", ":path", "/", ":authority", "example.com", "x-a", "2")
	enc.SetMaxDynamicTableSize(100)
	b3 := seed("x-b", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "x-c", "c")
	f.Add(frame(b1, b2, b3))
	f.Add(frame([]byte{0x3f, 0xe1, 0x1f}, b1))                                             // size update to 4096 first
	f.Add(frame(b1, append(bytes.Clone(b1), 0x20)))                                        // size update after a field
	f.Add(frame([]byte{0x80}))                                                             // index 0
	f.Add(frame([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})) // varint overflow
	f.Add(frame([]byte{0x40, 0x83, 0xff, 0xff, 0xff, 0x01, 'a'}))                          // bad Huffman
	f.Add(frame([]byte{0x00, 0x7f, 0x80, 0x08}))                                           // string past the limit
	f.Fuzz(func(t *testing.T, data []byte) {
		var blocks [][]byte
		for len(data) >= 2 {
			n := min(int(data[0])<<8|int(data[1]), len(data)-2)
			blocks = append(blocks, data[2:2+n])
			data = data[2+n:]
		}
		decodeBoth(t, 512, blocks)
	})
}
