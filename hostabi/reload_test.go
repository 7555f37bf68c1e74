package hostabi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHotSwapUnderLoad: generations of a plugin are swapped while
// concurrent streams run; in-flight streams finish on the generation they
// started with, old generations close once drained, and no request fails.
func TestHotSwapUnderLoad(t *testing.T) {
	gen := func(i int) *Plugin {
		p, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name(), Instances: 2, Wasm: testGuests["rawabi"],
			CallTimeout: 2 * time.Second, PluginConfig: []byte(fmt.Sprintf("request_headers: hdr_replace 0 x-gen %d", i))})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var cur atomic.Pointer[Plugin]
	cur.Store(gen(0))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				p := cur.Load()
				s := newTestStream()
				hs, err := p.NewHTTPStream(context.Background(), s)
				if errors.Is(err, ErrClosed) {
					// Picked just before the swap and closed just after:
					// the proxy retries with the current generation.
					continue
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				_, err = hs.OnRequestHeaders(true)
				if derr := hs.OnDone(); err == nil {
					err = derr
				}
				if err == nil && !strings.Contains(s.pairs(RequestHeaders), "x-gen=") {
					err = fmt.Errorf("header missing: %s", s.pairs(RequestHeaders))
				}
				if errors.Is(err, ErrClosed) {
					// Picked just before the swap and closed just after:
					// the proxy retries with the current generation.
					continue
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	for i := 1; i <= 3; i++ {
		time.Sleep(30 * time.Millisecond)
		old := cur.Swap(gen(i))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := old.Close(ctx); err != nil {
			t.Errorf("closing generation %d: %v", i-1, err)
		}
		cancel()
		if st := old.Stats(); st.Instances != 0 {
			t.Errorf("generation %d kept %d instances", i-1, st.Instances)
		}
	}
	time.Sleep(30 * time.Millisecond)
	close(stop)
	wg.Wait()
	cur.Load().Close(context.Background())
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed; first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	if ok.Load() == 0 {
		t.Error("no request ran")
	}
}
