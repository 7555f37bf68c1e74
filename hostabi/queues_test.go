package hostabi

import (
	"fmt"
	"sync"
	"testing"
)

func TestSharedQueues(t *testing.T) {
	// The plugin registers a queue at configure time; a stream resolves it
	// by vm_id and name and enqueues; the root context is woken and drains.
	vm := "vm-" + t.Name()
	s := newTestStream()
	p := load(t, "rawabi", PluginConfig{VMID: vm, PluginConfig: []byte(fmt.Sprintf(
		"configure: q_register jobs | q_dequeue 99999\n"+
			"request_headers: q_resolve %s jobs | q_resolve %s nope | q_resolve other-vm jobs\n"+
			"queue_ready: q_dequeue | q_dequeue\n", vm, vm))})
	wantLogs(t, p.Name(), "configure q_dequeue: status=1 ")
	var id int
	for _, l := range logsOf(p.Name()) {
		if n, _ := fmt.Sscanf(l, "configure q_register: status=0 id=%d", &id); n == 1 {
			break
		}
	}
	if id == 0 {
		t.Fatalf("no queue id in %q", logsOf(p.Name()))
	}
	// Enqueue from a stream: the script needs the id, so run a second
	// plugin generation that knows it (ids are stable per vm_id and name).
	p2 := load(t, "rawabi", PluginConfig{Name: t.Name() + "-producer", VMID: vm, PluginConfig: []byte(fmt.Sprintf(
		"request_headers: q_resolve %s jobs | q_enqueue %d hello | q_enqueue 99999 x", vm, id))})
	hs, err := p2.NewHTTPStream(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.OnDone()
	if _, err := hs.OnRequestHeaders(true); err != nil {
		t.Fatal(err)
	}
	wantLogs(t, p2.Name(), fmt.Sprintf("request_headers q_resolve: status=0 id=%d", id),
		"request_headers q_enqueue: status=0", "request_headers q_enqueue: status=1")
	waitLog(t, p.Name(), fmt.Sprintf("queue_ready qid=%d", id))
	waitLog(t, p.Name(), "queue_ready q_dequeue: status=0 hello")
	waitLog(t, p.Name(), "queue_ready q_dequeue: status=7 ")
}

func TestQueuesHammer(t *testing.T) {
	q := newQueues()
	id := q.register("vm", "q", subscriber{})
	const workers, each = 4, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, st := q.enqueue(id, []byte(fmt.Sprint(w, i))); st != 0 {
					t.Errorf("enqueue: %v", st)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range each {
				q.dequeue(id)
			}
		}()
	}
	wg.Wait()
	n := 0
	for {
		if _, st := q.dequeue(id); st != 0 {
			break
		}
		n++
	}
	if n > workers*each {
		t.Errorf("dequeued more than enqueued: %d", n)
	}
}
