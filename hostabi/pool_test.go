package hostabi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPoolGrowsAndShrinks: while every instance has a stream the pool
// grows (up to Instances), new streams go to the idle instance, and idle
// instances beyond the first are closed.
func TestPoolGrowsAndShrinks(t *testing.T) {
	// The new instance must get stream c before it has been idle for
	// IdleTimeout: long enough for a test goroutine on a busy machine.
	p := load(t, "rawabi", PluginConfig{Instances: 2, IdleTimeout: 250 * time.Millisecond})
	ctx := context.Background()
	a, err := p.NewHTTPStream(ctx, newTestStream())
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.NewHTTPStream(ctx, newTestStream())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second instance", func() bool { return p.Stats().Instances == 2 })
	c, err := p.NewHTTPStream(ctx, newTestStream())
	if err != nil {
		t.Fatal(err)
	}
	if c.in == a.in {
		t.Error("new stream was not placed on the idle instance")
	}
	d, err := p.NewHTTPStream(ctx, newTestStream())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if n := p.Stats().Instances; n != 2 {
		t.Errorf("instances = %d, limit is 2", n)
	}
	if st := p.Stats(); st.ActiveStreams != 4 {
		t.Errorf("active streams = %d", st.ActiveStreams)
	}
	for _, s := range []*HTTPStream{a, b, c, d} {
		if err := s.OnDone(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the idle instance to close", func() bool { return p.Stats().Instances == 1 })
}

// growToTwo opens two streams on p, whose pool may have two instances:
// the second finds the first busy, and the pool grows. It returns once
// the second instance is there.
func growToTwo(t *testing.T, p *Plugin) []*HTTPStream {
	t.Helper()
	var streams []*HTTPStream
	for range 2 {
		s, err := p.NewHTTPStream(context.Background(), newTestStream())
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	waitFor(t, "a second instance", func() bool { return p.Stats().Instances == 2 })
	return streams
}

// TestGrownInstanceIdleFromJoining: a new instance is idle from when it
// joins the pool, not from when its creation began. Before, its idle
// clock started before its start-up ran, so an instance whose start-up
// took longer than IdleTimeout (under the race detector a Go guest's
// takes about 60 ms) was closed by the janitor's next round, before any
// stream could reach it, and the pool shrank back as it grew; that was
// TestPoolGrowsAndShrinks' flake ("timed out waiting for a second
// instance"). The guest logs a line from its proxy_on_configure, the last
// of its start-up; the instance's idle clock must not start before it.
func TestGrownInstanceIdleFromJoining(t *testing.T) {
	p := load(t, "rawabi", PluginConfig{Instances: 2, IdleTimeout: time.Hour,
		PluginConfig: []byte("configure: log 2 configured")})
	streams := growToTwo(t, p)
	p.vm.mu.Lock()
	second := p.vm.insts[1]
	p.vm.mu.Unlock()
	// The second instance's configure logged last.
	var configured time.Time
	for _, e := range testLogs.FilterField(zap.String("plugin", p.Name())).FilterMessage("configured").All() {
		configured = e.Time
	}
	if configured.IsZero() {
		t.Fatal("the guest logged no \"configured\" line")
	}
	idleFrom := monoEpoch.Add(time.Duration(second.lastUsed.Load()))
	if idleFrom.Before(configured) {
		t.Errorf("the new instance counts as idle from %v before the end of its start-up", configured.Sub(idleFrom))
	}
	for _, s := range streams {
		if err := s.OnDone(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIdleInstanceKeptForItsCallout: the janitor does not close an idle
// instance whose root context waits for an http_call's answer (a jwt
// plugin's JWKS fetch on its timer): the answer reaches it, and the
// instance goes once idle without one. Before, the answer was dropped and
// the fetch made again.
func TestIdleInstanceKeptForItsCallout(t *testing.T) {
	answer := make(chan struct{})
	answerNow := sync.OnceFunc(func() { close(answer) })
	var calls, answered atomic.Int32
	cluster := "idp-" + t.Name()
	testCaller.addCluster(t, cluster, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			return // the first instance's root context: answered at once
		}
		select {
		case <-answer:
			answered.Add(1)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(answerNow) // before the upstream's server closes
	const idle = 20 * time.Millisecond
	p := load(t, "rawabi", PluginConfig{Instances: 2, IdleTimeout: idle,
		PluginConfig: []byte(fmt.Sprintf("configure: http_call %s :method=GET,:path=/jwks,:authority=idp - 60000\n", cluster))})
	ctx := context.Background()
	// Two streams on the first instance make the pool grow; a third
	// goes to the new one.
	streams := growToTwo(t, p)
	c, err := p.NewHTTPStream(ctx, newTestStream())
	if err != nil {
		t.Fatal(err)
	}
	streams = append(streams, c)
	second := c.in
	if second == streams[0].in {
		t.Fatal("the third stream did not go to the new instance")
	}
	waitFor(t, "the second instance's http_call", func() bool { return calls.Load() == 2 })
	for _, s := range streams {
		if err := s.OnDone(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * idle) // many janitor rounds with the second instance idle
	if open, _, _ := instanceState(second); !open || p.Stats().Instances != 2 {
		t.Fatalf("the idle instance was closed (open %v, instances %d) with its root context's http_call in flight", open, p.Stats().Instances)
	}
	answerNow()
	waitFor(t, "the answer", func() bool { return answered.Load() == 1 })
	waitFor(t, "the idle instance to close after its answer", func() bool { return p.Stats().Instances == 1 })
	if open, _, _ := instanceState(second); open {
		t.Error("the instance the janitor let go is still open")
	}
}

// TestCloseDrains: Close waits for in-flight streams (hot reload keeps them
// on the old generation), still serves a stream that picked the old
// generation late, and refuses streams once closed.
func TestCloseDrains(t *testing.T) {
	old := load(t, "rawabi", PluginConfig{PluginConfig: []byte("request_headers: hdr_add 0 x-gen old")})
	s := newTestStream()
	hs, err := old.NewHTTPStream(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	// A new generation loads while the stream is in flight.
	next := load(t, "rawabi", PluginConfig{Name: old.Name(), PluginConfig: []byte("request_headers: hdr_add 0 x-gen new")})
	closed := make(chan error, 1)
	go func() { closed <- old.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned with a stream in flight: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	late, err := old.NewHTTPStream(context.Background(), newTestStream())
	if err != nil {
		t.Fatalf("a late stream on the draining generation was refused: %v", err)
	}
	if err := late.OnDone(); err != nil {
		t.Fatal(err)
	}
	if _, err := hs.OnRequestHeaders(true); err != nil {
		t.Fatalf("in-flight stream broke during drain: %v", err)
	}
	if err := hs.OnDone(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the stream ended")
	}
	if !strings.Contains(s.pairs(RequestHeaders), "x-gen=old") {
		t.Errorf("in-flight stream headers: %s", s.pairs(RequestHeaders))
	}
	s2 := newTestStream()
	if err := oneRequest(next, s2); err != nil || !strings.Contains(s2.pairs(RequestHeaders), "x-gen=new") {
		t.Errorf("new generation: %v %s", err, s2.pairs(RequestHeaders))
	}
	if st := old.Stats(); st.Instances != 0 {
		t.Errorf("old generation still has %d instances", st.Instances)
	}
	if _, err := old.NewHTTPStream(context.Background(), newTestStream()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("closed generation served a stream: %v", err)
	}
}

func TestCloseGivesUpAtDeadline(t *testing.T) {
	p := load(t, "rawabi", PluginConfig{})
	hs, err := p.NewHTTPStream(context.Background(), newTestStream())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); err == nil || !strings.Contains(err.Error(), "1 streams still open") {
		t.Errorf("Close = %v", err)
	}
	// The straggler ends without touching the closed instance.
	if _, err := hs.OnRequestHeaders(true); err == nil {
		t.Error("callback on a closed instance succeeded")
	}
	if err := hs.OnDone(); err != nil {
		t.Error(err)
	}
}

// TestPoolHammer: many goroutines open streams on a small pool while the
// janitor shrinks it; every stream succeeds and the books balance.
func TestPoolHammer(t *testing.T) {
	p := load(t, "rawabi", PluginConfig{Instances: 2, IdleTimeout: 10 * time.Millisecond,
		PluginConfig: []byte("request_headers: hdr_add 0 x-ok 1\nrequest_body: buf_set 0 0 100 done")})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				s := newTestStream()
				hs, err := p.NewHTTPStream(context.Background(), s)
				if err != nil {
					errs <- err
					return
				}
				_, err = hs.OnRequestHeaders(false)
				var body []byte
				if err == nil {
					body, _, err = hs.OnRequestBody([]byte("x"), true)
				}
				if derr := hs.OnDone(); err == nil {
					err = derr
				}
				if err == nil && (string(body) != "done" || !strings.Contains(s.pairs(RequestHeaders), "x-ok=1")) {
					err = fmt.Errorf("stream %d: body %q headers %s", i, body, s.pairs(RequestHeaders))
				}
				if err != nil {
					errs <- err
					return
				}
				if i%5 == 0 {
					time.Sleep(15 * time.Millisecond) // let the janitor shrink meanwhile
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := p.Stats()
	if st.ActiveStreams != 0 || st.Instances < 1 || st.Instances > 2 || st.Failures != 0 {
		t.Errorf("stats after hammer: %+v", st)
	}
}
