package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestSidecarServicesLeastRequest: a sidecar's [[services]] clusters
// balance by least requests (Istio's default) unless lb says otherwise,
// as the admin dumps show; with one endpoint holding a request, every
// next request goes to the idle one (round robin would send every other
// one to the busy endpoint, where it would hang past the client's
// timeout).
func TestSidecarServicesLeastRequest(t *testing.T) {
	release := make(chan struct{})
	held := make(chan struct{}, 16)
	slow := startEcho(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		held <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	fast := startEcho(t, "fast", nil)
	ts := startServer(t, fmt.Sprintf(`
mode = "sidecar"
[admin]
address = "127.0.0.1:0"
[server]
watch_config = false
drain_timeout = "5s"
[sidecar]
app = "127.0.0.1:1"
peer_authentication = "disable"
inbound = "127.0.0.1:0"
outbound = "127.0.0.2:0"

[[services]]
name = "svc"
endpoints = [%q, %q]
timeout = "30s"

[[services]]
name = "svc-rr"
endpoints = [%q, %q]
lb = "round_robin"
`, slow.addr, fast.addr, slow.addr, fast.addr))
	t.Cleanup(func() { close(release) }) // before the server drains

	var clusters []struct {
		Name string `json:"name"`
		LB   string `json:"lb"`
	}
	resp, err := http.Get("http://" + ts.AdminAddr() + "/clusters")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&clusters)
	resp.Body.Close()
	lbs := map[string]string{}
	for _, c := range clusters {
		lbs[c.Name] = c.LB
	}
	if lbs["outbound|svc"] != "least_request" || lbs["outbound|svc-rr"] != "round_robin" {
		t.Fatalf("admin /clusters lb: %v", lbs)
	}

	url := "http://" + ts.ListenerAddr("outbound") + "/"
	bg := &http.Client{Timeout: 30 * time.Second}
	// Park one request on the slow endpoint: the first pick between two
	// idle endpoints is a coin toss, so send until one lands there.
	for parked := false; !parked; {
		done := make(chan struct{})
		go func() {
			defer close(done)
			req, _ := http.NewRequest("GET", url, nil)
			req.Host = "svc"
			if resp, err := bg.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		select {
		case <-held:
			parked = true
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("no request reached either endpoint")
		}
	}
	c := &http.Client{Timeout: 5 * time.Second}
	for i := range 20 {
		if _, e := get(t, c, url, map[string]string{"Host": "svc"}); e.Name != "fast" {
			t.Fatalf("request %d went to %q while slow is busy", i, e.Name)
		}
	}
}
