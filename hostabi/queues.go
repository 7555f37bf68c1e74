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
	subs  []*instance
	turn  int
}

// maxQueueItems bounds a queue nobody drains.
const maxQueueItems = 10000

func newQueues() *queues {
	return &queues{byName: map[[2]string]uint32{}, byID: map[uint32]*queue{}}
}

func (q *queues) register(vmID, name string, in *instance) uint32 {
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
		if s == in {
			return id
		}
	}
	qu.subs = append(qu.subs, in)
	return id
}

func (q *queues) resolve(vmID, name string) (uint32, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	id, ok := q.byName[[2]string{vmID, name}]
	return id, ok
}

func (q *queues) enqueue(id uint32, v []byte) (*instance, abi.Status) {
	q.mu.Lock()
	defer q.mu.Unlock()
	qu := q.byID[id]
	if qu == nil {
		return nil, abi.NotFound
	}
	if len(qu.items) >= maxQueueItems {
		return nil, abi.InternalFailure
	}
	qu.items = append(qu.items, v)
	if len(qu.subs) == 0 {
		return nil, abi.OK
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

// unsubscribe forgets a closed instance; the queue and its items stay for
// the next generation of the plugin.
func (q *queues) unsubscribe(in *instance) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, qu := range q.byID {
		for i, s := range qu.subs {
			if s == in {
				qu.subs = append(qu.subs[:i:i], qu.subs[i+1:]...)
				break
			}
		}
	}
}

func hcRegisterSharedQueue(_ context.Context, in *instance, a []uint64) abi.Status {
	name, err := readString(in.mem, u32(a[0]), u32(a[1]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	if _, ok := in.mem.Read(u32(a[2]), 4); !ok {
		return abi.InvalidMemoryAccess
	}
	id := in.p.e.queues.register(in.p.cfg.VMID, name, in)
	in.mem.WriteUint32Le(u32(a[2]), id)
	return abi.OK
}

func hcResolveSharedQueue(_ context.Context, in *instance, a []uint64) abi.Status {
	vmID, err := readString(in.mem, u32(a[0]), u32(a[1]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	name, err := readString(in.mem, u32(a[2]), u32(a[3]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	id, ok := in.p.e.queues.resolve(vmID, name)
	if !ok {
		return abi.NotFound
	}
	if err := putU32(in.mem, u32(a[4]), id); err != nil {
		return abi.InvalidMemoryAccess
	}
	return abi.OK
}

func hcEnqueueSharedQueue(_ context.Context, in *instance, a []uint64) abi.Status {
	v, err := read(in.mem, u32(a[1]), u32(a[2]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	id := u32(a[0])
	sub, st := in.p.e.queues.enqueue(id, append([]byte(nil), v...))
	if sub != nil {
		// The subscriber may be this very instance, which is busy now.
		go sub.queueReady(id)
	}
	return st
}

func hcDequeueSharedQueue(ctx context.Context, in *instance, a []uint64) abi.Status {
	v, st := in.p.e.queues.dequeue(u32(a[0]))
	if st != abi.OK {
		return st
	}
	return in.returnBytes(ctx, v, u32(a[1]), u32(a[2]))
}

func (in *instance) queueReady(id uint32) {
	in.mu.Lock()
	if in.broken != nil {
		in.mu.Unlock()
		return
	}
	in.effective = in.rootID
	_, _ = in.call(cbQueueReady, uint64(in.rootID), uint64(id))
	in.unlock()
}
