package hostabi

import (
	"errors"
	"testing"
)

func TestPairsRoundTrip(t *testing.T) {
	for _, pairs := range [][][2]string{
		nil,
		{{"a", "b"}},
		{{":path", "/x"}, {"empty", ""}, {"", "no-key"}, {"dup", "1"}, {"dup", "2"}},
	} {
		got, err := deserializePairs(serializePairs(pairs))
		if err != nil || len(got) != len(pairs) {
			t.Fatalf("%v: %v %v", pairs, got, err)
		}
		for i := range got {
			if got[i] != pairs[i] {
				t.Errorf("pair %d = %v, want %v", i, got[i], pairs[i])
			}
		}
	}
}

func TestDeserializePairsRejectsMalformed(t *testing.T) {
	tests := map[string][]byte{
		"short header":     {1, 0},
		"count past end":   {5, 0, 0, 0, 1, 0, 0, 0},
		"lengths past end": {1, 0, 0, 0, 9, 0, 0, 0, 9, 0, 0, 0, 'a', 0},
		"huge count":       {0xff, 0xff, 0xff, 0x7f},
		"huge length":      {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0},
		"too many pairs":   append([]byte{0x01, 0x04, 0, 0}, make([]byte, 8*1025+2*1025)...),
	}
	for name, b := range tests {
		if _, err := deserializePairs(b); !errors.Is(err, errSerialization) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if p, err := deserializePairs([]byte{0}); err != nil || p != nil {
		t.Errorf("single NUL is the empty map: %v %v", p, err)
	}
}

func TestLimitedMemoryRefusesPastLimit(t *testing.T) {
	m := &limitedMemory{limit: 3 * 65536}
	(&memoryLimiter{mem: m}).Allocate(65536, 1<<32)
	if b := m.Reallocate(2 * 65536); len(b) != 2*65536 {
		t.Fatalf("grow within limit: %d", len(b))
	}
	if b := m.Reallocate(4 * 65536); b != nil || !m.refused.Load() {
		t.Fatal("grow past the limit was allowed")
	}
	if m.size.Load() != 2*65536 {
		t.Errorf("size = %d", m.size.Load())
	}
}
