package hostabi

import (
	"math/rand/v2"
	"testing"
)

// TestStreamTable runs puts and deletes against a map, as an instance
// gives out context ids (one counter) while streams end in any order:
// the table grows past thousands of streams, and a stream that lives
// the whole run holds the slot of every len(slots)-th later id, which
// then goes to the overflow (a long poll among short requests).
func TestStreamTable(t *testing.T) {
	for _, c := range []struct {
		name    string
		live    int     // streams open at once, at most
		endProb float64 // chance that a step ends a stream rather than begins one
		steps   int
	}{
		{"one at a time", 1, 0.5, 2000},
		{"a few", 8, 0.5, 20000},
		{"many, growing", 3000, 0.3, 20000},
		{"many, draining", 3000, 0.7, 20000},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(c.live)))
			var tab streamTable
			model := map[uint32]*HTTPStream{}
			var ids []uint32
			next := uint32(1)
			// A stream that stays the whole run.
			long := &HTTPStream{id: next}
			tab.put(long)
			model[next] = long
			next++
			for step := range c.steps {
				if len(ids) > 0 && (len(ids) >= c.live || r.Float64() < c.endProb) {
					k := r.IntN(len(ids))
					id := ids[k]
					ids[k] = ids[len(ids)-1]
					ids = ids[:len(ids)-1]
					tab.del(id)
					delete(model, id)
				} else {
					s := &HTTPStream{id: next}
					tab.put(s)
					model[next] = s
					ids = append(ids, next)
					next++
				}
				if tab.n != len(model) {
					t.Fatalf("step %d: %d streams, want %d", step, tab.n, len(model))
				}
				// Every live stream is found (all of them now and then,
				// a few at each step); ended and unknown ids are not.
				if step%97 == 0 {
					for id, s := range model {
						if got := tab.get(id); got != s {
							t.Fatalf("step %d: get(%d) = %p, want %p", step, id, got, s)
						}
					}
				}
				probe := []uint32{0, 1, next, next + 1, next - uint32(r.IntN(int(next)))}
				if len(ids) > 0 {
					probe = append(probe, ids[r.IntN(len(ids))], ids[len(ids)-1])
				}
				for _, id := range probe {
					if got, want := tab.get(id), model[id]; got != want {
						t.Fatalf("step %d: get(%d) = %p, want %p", step, id, got, want)
					}
				}
			}
			tab.del(next + 7) // absent: no change
			if tab.n != len(model) {
				t.Fatalf("deleting an absent id changed the count to %d", tab.n)
			}
		})
	}
}

// BenchmarkStreamTable is a stream's put and delete with 64 others open,
// ending in the order they began, as an instance sees them under
// make bench's 64 connections; "map" is the Go map the table replaced.
func BenchmarkStreamTable(b *testing.B) {
	const open = 64
	streams := make([]HTTPStream, open+1)
	b.Run("table", func(b *testing.B) {
		var t streamTable
		id := uint32(1)
		for i := range open {
			streams[i].id = id
			t.put(&streams[i])
			id++
		}
		for i := 0; b.Loop(); i++ {
			s := &streams[(i+open)%len(streams)]
			s.id = id
			t.put(s)
			t.del(id - open)
			if t.get(id) != s {
				b.Fatal("lost a stream")
			}
			id++
		}
	})
	b.Run("map", func(b *testing.B) {
		t := map[uint32]*HTTPStream{}
		id := uint32(1)
		for i := range open {
			streams[i].id = id
			t[id] = &streams[i]
			id++
		}
		for i := 0; b.Loop(); i++ {
			s := &streams[(i+open)%len(streams)]
			s.id = id
			t[id] = s
			delete(t, id-open)
			if t[id] != s {
				b.Fatal("lost a stream")
			}
			id++
		}
	})
}
