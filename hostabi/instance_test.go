package hostabi

import (
	"testing"
)

// TestInstanceLooksUpWhatItCalls: wazero gives every export the host looks
// up its own call engine and stack (about 10 KiB), so an instance looks up
// a callback when it first calls it and lets start-up's go once start-up
// is over. After a stream, it holds the stream's callbacks and none of the
// ones nothing called (timers, queues, gRPC, network filters).
func TestInstanceLooksUpWhatItCalls(t *testing.T) {
	p := load(t, "rawabi", PluginConfig{PluginConfig: []byte("quiet:\nrequest_headers: ret 0")})
	if err := oneRequest(p, newTestStream()); err != nil {
		t.Fatal(err)
	}
	p.vm.mu.Lock()
	insts := append([]*instance(nil), p.vm.insts...)
	p.vm.mu.Unlock()
	if len(insts) == 0 {
		t.Fatal("no instance")
	}
	called := 0
	for _, in := range insts {
		in.mu.Lock()
		for cb, f := range in.fns {
			switch callback(cb) {
			case cbMemoryAllocate, cbRequestHeaders, cbContextCreate, cbDone, cbDelete, cbLog:
				if f != nil {
					called++
				}
			default:
				if f != nil {
					t.Errorf("instance %d holds %s, which the stream did not call (or start-up only did)", in.seq, callbackNames[cb])
				}
			}
		}
		for _, cb := range []callback{cbMemoryAllocate, cbRequestHeaders, cbTick, cbGRPCReceive, cbNewConnection} {
			if !in.has(cb) {
				t.Errorf("instance %d: the guest exports %s, but has says it does not", in.seq, callbackNames[cb])
			}
		}
		in.mu.Unlock()
	}
	if called == 0 {
		t.Error("no instance kept the stream's callbacks it called")
	}
}
