package hostabi

import (
	"context"
	"sync"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// queues are the process's shared queues, named by (vm_id, name). Every
// instance that registers a queue subscribes to it; an enqueue wakes one
// subscriber's root context (in turn), as Envoy wakes the registering VM.
type queues struct {
	mu     sync.Mutex
	byName map[[2]string]uint32
	byID   map[uint32]*queue
	next   uint32
}

type queue struct {
	items [][]byte
	subs  []subscriber
	turn  int
}

// subscriber is a root context in an instance.
type subscriber struct {
	in   *instance
	root uint32
}

// maxQueueItems bounds a queue nobody drains.
const maxQueueItems = 10000

func newQueues() *queues {
	return &queues{byName: map[[2]string]uint32{}, byID: map[uint32]*queue{}}
}

func (q *queues) register(vmID, name string, sub subscriber) uint32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := [2]string{vmID, name}
	id, ok := q.byName[k]
	if !ok {
		q.next++
		id = q.next
		q.byName[k] = id
		q.byID[id] = &queue{}
	}
	qu := q.byID[id]
	for _, s := range qu.subs {
		if s == sub {
			return id
		}
	}
	qu.subs = append(qu.subs, sub)
	return id
}

func (q *queues) resolve(vmID, name string) (uint32, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	id, ok := q.byName[[2]string{vmID, name}]
	return id, ok
}

func (q *queues) enqueue(id uint32, v []byte) (subscriber, abi.Status) {
	q.mu.Lock()
	defer q.mu.Unlock()
	qu := q.byID[id]
	if qu == nil {
		return subscriber{}, abi.NotFound
	}
	if len(qu.items) >= maxQueueItems {
		return subscriber{}, abi.InternalFailure
	}
	qu.items = append(qu.items, v)
	if len(qu.subs) == 0 {
		return subscriber{}, abi.OK
	}
	qu.turn = (qu.turn + 1) % len(qu.subs)
	return qu.subs[qu.turn], abi.OK
}

func (q *queues) dequeue(id uint32) ([]byte, abi.Status) {
	q.mu.Lock()
	defer q.mu.Unlock()
	qu := q.byID[id]
	if qu == nil {
		return nil, abi.NotFound
	}
	if len(qu.items) == 0 {
		return nil, abi.Empty
	}
	v := qu.items[0]
	qu.items[0] = nil
	qu.items = qu.items[1:]
	return v, abi.OK
}

// unsubscribe forgets a root context (root 0: every root of the
// instance); the queue and its items stay for the next generation.
func (q *queues) unsubscribe(in *instance, root uint32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, qu := range q.byID {
		keep := qu.subs[:0]
		for _, s := range qu.subs {
			if s.in != in || (root != 0 && s.root != root) {
				keep = append(keep, s)
			}
		}
		clear(qu.subs[len(keep):])
		qu.subs = keep
	}
}

func hcRegisterSharedQueue(_ context.Context, in *instance, a []uint64) abi.Status {
	name, err := in.readString(u32(a[0]), u32(a[1]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	if !in.fits(u32(a[2]), 4) {
		return abi.InvalidMemoryAccess
	}
	root := in.rootFor(in.effective)
	if root == 0 {
		return abi.NotFound
	}
	id := in.vm.e.queues.register(in.vm.cfg.VMID, name, subscriber{in, root})
	_ = in.putU32(u32(a[2]), id)
	return abi.OK
}

func hcResolveSharedQueue(_ context.Context, in *instance, a []uint64) abi.Status {
	vmID, err := in.readString(u32(a[0]), u32(a[1]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	name, err := in.readString(u32(a[2]), u32(a[3]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	id, ok := in.vm.e.queues.resolve(vmID, name)
	if !ok {
		return abi.NotFound
	}
	if err := in.putU32(u32(a[4]), id); err != nil {
		return abi.InvalidMemoryAccess
	}
	return abi.OK
}

func hcEnqueueSharedQueue(_ context.Context, in *instance, a []uint64) abi.Status {
	v, err := in.read(u32(a[1]), u32(a[2]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	id := u32(a[0])
	sub, st := in.vm.e.queues.enqueue(id, append([]byte(nil), v...))
	if sub.in != nil {
		// The subscriber may be this very instance, which is busy now.
		go sub.in.queueReady(sub.root, id)
	}
	return st
}

func hcDequeueSharedQueue(ctx context.Context, in *instance, a []uint64) abi.Status {
	v, st := in.vm.e.queues.dequeue(u32(a[0]))
	if st != abi.OK {
		return st
	}
	return in.returnBytes(ctx, v, u32(a[1]), u32(a[2]))
}

func (in *instance) queueReady(root, id uint32) {
	in.mu.Lock()
	if in.broken != nil || in.roots[root] == nil {
		in.mu.Unlock()
		return
	}
	in.effective = root
	_, _ = in.call(cbQueueReady, uint64(root), uint64(id))
	in.unlock()
}
