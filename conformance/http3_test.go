package conformance

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

func TestHTTP3(t *testing.T) {
	report.Suite(SuiteHTTP3, "quic-go's HTTP/3 client (`github.com/quic-go/quic-go/http3`, the version in go.mod) against a TLS listener with `protocols = [\"http1\", \"h2\", \"h3\"]` (a certificate from a CA generated for the run), routed to an HTTP/1.1 upstream. Trailers: RFC 9114 section 4.1 allows a trailing HEADERS frame on requests and responses.")
	up := startUpstream(t)
	p := newPKI(t)
	s := startSluice(t, base+`
[[listeners]]
name = "l"
address = "127.0.0.1:0"
protocols = ["http1", "h2", "h3"]
tls = { cert = "`+p.CertFile+`", key = "`+p.KeyFile+`" }

[[routes]]
name = "all"
match = { path_prefix = "/" , hosts = ["127.0.0.1", "localhost"] }
backends = [ { cluster = "up" } ]

[[clusters]]
name = "up"
endpoints = ["`+up+`"]
`)
	addr := s.ListenerAddr("l")
	url := "https://" + addr
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: p.Pool}}
	t.Cleanup(func() { tr.Close() })
	h3 := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	echo := func(resp *http.Response) (echoReply, error) {
		var e echoReply
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return e, err
		}
		if err := json.Unmarshal(b, &e); err != nil {
			return e, fmt.Errorf("decoding %q: %w", tail(string(b), 200), err)
		}
		return e, nil
	}
	cases := []struct {
		name string
		run  func() error
	}{
		{"GET over HTTP/3", func() error {
			resp, err := h3.Get(url + "/get?x=1")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			e, err := echo(resp)
			if err != nil {
				return err
			}
			if resp.StatusCode != 200 || resp.ProtoMajor != 3 || e.Method != "GET" || e.Path != "/get?x=1" {
				return fmt.Errorf("status %d over %s; upstream saw %s %s", resp.StatusCode, resp.Proto, e.Method, e.Path)
			}
			if e.Header["X-Forwarded-Proto"] == nil || e.Header["X-Forwarded-Proto"][0] != "https" {
				return fmt.Errorf("upstream saw x-forwarded-proto %v", e.Header["X-Forwarded-Proto"])
			}
			return nil
		}},
		{"HEAD over HTTP/3", func() error {
			resp, err := h3.Head(url + "/big?n=1234")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || len(b) != 0 || resp.ContentLength != 1234 {
				return fmt.Errorf("status %d, %d body bytes, content-length %d; want 200, 0, 1234", resp.StatusCode, len(b), resp.ContentLength)
			}
			return nil
		}},
		{"POST with a 1 MiB body", func() error {
			body := pattern(1 << 20)
			resp, err := h3.Post(url+"/post", "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			e, err := echo(resp)
			if err != nil {
				return err
			}
			if resp.StatusCode != 200 || e.Method != "POST" || e.Body != string(body) {
				return fmt.Errorf("status %d; upstream saw %s with %d body bytes, want 1 MiB intact", resp.StatusCode, e.Method, len(e.Body))
			}
			return nil
		}},
		{"POST with a streamed body of unknown length", func() error {
			pr, pw := io.Pipe()
			go func() {
				for i := 0; i < 64; i++ {
					pw.Write(pattern(1000))
				}
				pw.Close()
			}()
			req, _ := http.NewRequest("POST", url+"/post", pr)
			resp, err := h3.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			e, err := echo(resp)
			if err != nil {
				return err
			}
			if want := strings.Repeat(string(pattern(1000)), 64); e.Body != want {
				return fmt.Errorf("upstream saw %d body bytes, want 64000 intact", len(e.Body))
			}
			return nil
		}},
		{"8 MiB response", func() error {
			const n = 8 << 20
			resp, err := h3.Get(url + fmt.Sprintf("/big?n=%d", n))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if resp.StatusCode != 200 || !bytes.Equal(b, pattern(n)) {
				return fmt.Errorf("status %d, %d bytes; want 200 and 8 MiB intact", resp.StatusCode, len(b))
			}
			return nil
		}},
		{"response trailers", func() error {
			resp, err := h3.Get(url + "/trailers")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if string(b) != "body before trailers" || resp.Trailer.Get("X-Upstream-Trailer") != "done" {
				return fmt.Errorf("body %q, trailers %v; want the upstream's trailer x-upstream-trailer: done", b, resp.Trailer)
			}
			return nil
		}},
		{"request trailers", func() error {
			req, _ := http.NewRequest("POST", url+"/post", io.NopCloser(strings.NewReader("with trailers")))
			req.ContentLength = -1
			req.Trailer = http.Header{"X-Client-Trailer": {"sent"}}
			resp, err := h3.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			e, err := echo(resp)
			if err != nil {
				return err
			}
			if e.Body != "with trailers" || e.Trailer["X-Client-Trailer"] == nil {
				return fmt.Errorf("upstream saw body %q, trailers %v; want the client's trailer x-client-trailer", e.Body, e.Trailer)
			}
			return nil
		}},
		{"upstream status and body passed through (503)", func() error {
			resp, err := h3.Get(url + "/status/503")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 503 || string(b) != "status body" {
				return fmt.Errorf("status %d body %q", resp.StatusCode, b)
			}
			return nil
		}},
		{"no route: 404 from sluice", func() error {
			req, _ := http.NewRequest("GET", url+"/x", nil)
			req.Host = "unrouted.example"
			resp, err := h3.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != 404 {
				return fmt.Errorf("status %d, want 404", resp.StatusCode)
			}
			return nil
		}},
		{"100 concurrent streams on one connection", func() error {
			var wg sync.WaitGroup
			errs := make(chan error, 100)
			for i := 0; i < 100; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := h3.Get(url + fmt.Sprintf("/big?n=%d", 1000+i))
					if err != nil {
						errs <- err
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if len(b) != 1000+i {
						errs <- fmt.Errorf("stream %d: %d bytes", i, len(b))
					}
				}()
			}
			wg.Wait()
			close(errs)
			return <-errs
		}},
		{"Alt-Svc advertises h3 over HTTP/1.1 and h2", func() error {
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.Pool}, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
			defer c.CloseIdleConnections()
			resp, err := c.Get(url + "/")
			if err != nil {
				return err
			}
			resp.Body.Close()
			_, port, _ := strings.Cut(addr, ":")
			if !strings.Contains(resp.Header.Get("Alt-Svc"), `h3=":`+port+`"`) {
				return fmt.Errorf("Alt-Svc %q over %s does not advertise h3 on port %s", resp.Header.Get("Alt-Svc"), resp.Proto, port)
			}
			return nil
		}},
	}
	for _, tc := range cases {
		err := tc.run()
		row := Row{Case: tc.name, Pass: err == nil}
		if err != nil {
			row.Note = err.Error()
		}
		record(t, SuiteHTTP3, row)
	}
	record(t, SuiteHTTP3, curlHTTP3Row(url))
}

// curlHTTP3Row runs curl --http3 when the installed curl supports it;
// Debian 12's curl 7.88.1 is built without HTTP/3, and the row says so.
func curlHTTP3Row(url string) Row {
	row := Row{Case: "curl --http3 GET"}
	curl, err := exec.LookPath("curl")
	if err != nil {
		row.Skipped, row.Note = true, "curl is not installed"
		return row
	}
	v, _ := exec.Command(curl, "--version").Output()
	first, _, _ := strings.Cut(string(v), "\n")
	if !strings.Contains(string(v), "HTTP3") {
		row.Skipped, row.Note = true, "the installed curl has no HTTP3 feature ("+strings.TrimSpace(first)+"); Debian's curl is built without it"
		return row
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "-sS", "-k", "--http3-only", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", url+"/").CombinedOutput()
	if err != nil || string(out) != "200 3" {
		row.Note = fmt.Sprintf("curl: %v: %s", err, out)
		return row
	}
	row.Pass, row.Note = true, strings.TrimSpace(first)
	return row
}
