package upstream

import (
	"math/rand/v2"
	"slices"
	"strconv"
)

// vnodesPerWeight is the number of ring points per unit of weight. It is
// fixed, not derived from the host count (as Envoy's minimum_ring_size
// scaling is), so an endpoint keeps exactly its points when others come
// and go: only keys on the changed endpoint move. 160 is ketama's figure;
// it spreads keys within a few percent.
const vnodesPerWeight = 160

// maxRingSize bounds memory for very large weights; past it every
// endpoint's points are scaled down alike.
const maxRingSize = 1 << 20

// ringHash is a consistent hash ring (Envoy's ring_hash, Karger et al.).
// Each endpoint gets virtual nodes in proportion to its weight, placed by
// hashing its address, so adding or removing one endpoint only moves the
// keys that land on its nodes. An empty key picks at random, as Envoy does
// when the hash policy yields nothing.
type ringHash struct {
	hosts []*endpoint
	ring  []ringEntry
}

type ringEntry struct {
	hash uint64
	host *endpoint
}

func newRingHash(hosts []*endpoint) loadBalancer {
	total := 0
	for _, h := range hosts {
		total += h.weightOr1()
	}
	per := vnodesPerWeight
	if total*per > maxRingSize {
		per = max(1, maxRingSize/total)
	}
	r := &ringHash{hosts: hosts, ring: make([]ringEntry, 0, total*per)}
	buf := make([]byte, 0, 64)
	for _, h := range hosts {
		n := h.weightOr1() * per
		for i := 0; i < n; i++ {
			buf = append(buf[:0], h.addr...)
			buf = append(buf, '_')
			buf = strconv.AppendInt(buf, int64(i), 10)
			r.ring = append(r.ring, ringEntry{hash: hashBytes(buf), host: h})
		}
	}
	slices.SortFunc(r.ring, func(a, b ringEntry) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		// Ties broken by address keep the ring independent of host order.
		if a.host.addr < b.host.addr {
			return -1
		}
		if a.host.addr > b.host.addr {
			return 1
		}
		return 0
	})
	return r
}

func (r *ringHash) pick(key string) *endpoint {
	if key == "" {
		return newRandomPick(r.hosts)
	}
	h := hashString(key)
	lo, hi := 0, len(r.ring)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.ring[mid].hash < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	n := len(r.ring)
	for i := 0; i < n; i++ {
		if e := r.ring[(lo+i)%n].host; e.available() {
			return e
		}
	}
	return r.ring[lo%n].host
}

func newRandomPick(hosts []*endpoint) *endpoint {
	if h := firstAvailable(hosts); h != nil {
		return h
	}
	return hosts[rand.IntN(len(hosts))]
}

// FNV-1a with a murmur3 finalizer: FNV alone clusters similar strings
// ("addr_1", "addr_2") on the ring; the finalizer spreads them. Stable
// across processes, so replicas hash keys the same way.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return fmix64(h)
}

func hashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return fmix64(h)
}

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}
