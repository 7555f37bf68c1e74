package upstream

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// TestHammer drives concurrent tries with early closes, cancels, subsets
// and POST bodies while the endpoints file keeps changing, then checks the
// books balance: no request, pending request or connection slot left held.
func TestHammer(t *testing.T) {
	for _, protocol := range []string{"http1", "h2c"} {
		t.Run(protocol, func(t *testing.T) {
			var bs []backend
			for i := 0; i < 3; i++ {
				name := fmt.Sprint("b", i)
				bs = append(bs, startHTTP(t, name, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body)
					w.Write([]byte(strings.Repeat(name, 1000)))
				}), protocol == "h2c"))
			}
			path := filepath.Join(t.TempDir(), "eps")
			write := func(n int) {
				var b strings.Builder
				for i := 0; i < n; i++ {
					fmt.Fprintf(&b, "%s v=%d\n", bs[i].addr, i%2)
				}
				os.WriteFile(path+".tmp", []byte(b.String()), 0o600)
				os.Rename(path+".tmp", path)
			}
			write(3)
			opts := defaultOptions()
			opts.filePoll = 2 * time.Millisecond
			m, _ := newTestManager(t, opts, config.Cluster{Name: "c", Protocol: protocol, EndpointsFile: path, LB: "least_request",
				Limits:  config.Limits{MaxConnections: 4, MaxPendingRequests: 1000, MaxRequestsPerConnection: 7},
				Outlier: &config.Outlier{Consecutive5xx: 3, BaseEjectionTime: config.Duration(10 * time.Millisecond)}})
			c := m.Cluster("c")
			stop := make(chan struct{})
			var churn sync.WaitGroup
			churn.Add(1)
			go func() {
				defer churn.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						write(3)
						return
					case <-time.After(5 * time.Millisecond):
						write(2 + i%2)
					}
				}
			}()
			var wg sync.WaitGroup
			errs := make(chan error, 1000)
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 60; i++ {
						ctx, cancel := context.WithCancel(context.Background())
						var body io.Reader
						method := http.MethodGet
						if rand.IntN(3) == 0 {
							method, body = http.MethodPost, strings.NewReader(strings.Repeat("x", rand.IntN(40000)))
						}
						req := &Request{Headers: headers(method, "/", "x")}
						if body != nil {
							req.BodyStream = body
						}
						pick := Pick{}
						if rand.IntN(2) == 0 {
							pick.Subset = map[string]string{"v": fmt.Sprint(rand.IntN(2))}
						}
						resp, err := c.Send(ctx, req, pick)
						if err != nil {
							if f := Classify(err); f != NoHealthyUpstream {
								errs <- err
							}
							cancel()
							continue
						}
						switch rand.IntN(4) {
						case 0: // close early
							resp.ReadBody(make([]byte, 10))
						case 1: // cancel mid-body
							resp.ReadBody(make([]byte, 10))
							cancel()
							io.Copy(io.Discard, resp.Body())
						default:
							if _, err := io.Copy(io.Discard, resp.Body()); err != nil {
								errs <- err
							}
						}
						resp.Close()
						cancel()
					}
				}()
			}
			wg.Wait()
			close(stop)
			churn.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("unexpected failure: %v", err)
			}
			st := c.Status()
			if st.ActiveRequests != 0 || st.PendingRequests != 0 || c.slots.len() != 0 {
				t.Errorf("books do not balance: active %d pending %d slots %d", st.ActiveRequests, st.PendingRequests, c.slots.len())
			}
			for _, e := range st.Endpoints {
				if e.ActiveRequests != 0 {
					t.Errorf("endpoint %s still has %d active", e.Address, e.ActiveRequests)
				}
			}
			if n := c.limiter.active.Load(); n > 4 {
				t.Errorf("%d connections open, max_connections 4", n)
			}
		})
	}
}
