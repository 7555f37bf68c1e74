package upstream

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// protoHandler reports the protocol it was reached over, echoes a request
// header and sends a gRPC-style trailer after the body.
func protoHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Trailer", "grpc-status, grpc-message")
	w.Header().Set("x-proto", r.Proto)
	w.Header().Set("x-authority", r.Host)
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "hello over "+r.Proto)
	w.(http.Flusher).Flush()
	w.Header().Set("grpc-status", "0")
	w.Header().Set("grpc-message", "all good")
}

func TestSendProtocols(t *testing.T) {
	cert, caFile := testCert(t)
	h := http.HandlerFunc(protoHandler)
	tests := []struct {
		protocol  string
		addr      string
		tls       *config.UpstreamTLS
		wantProto string
		trailers  bool
	}{
		{"http1", startHTTP(t, "a", h, false).addr, nil, "HTTP/1.1", true},
		{"h2c", startHTTP(t, "a", h, true).addr, nil, "HTTP/2.0", true},
		{"h2", startH2TLS(t, "a", h, cert).addr, &config.UpstreamTLS{CA: caFile}, "HTTP/2.0", true},
		{"h2", startH2TLS(t, "a", h, cert).addr, &config.UpstreamTLS{InsecureSkipVerify: true, ServerName: "other.name"}, "HTTP/2.0", true},
		{"h3", startH3(t, "a", h, cert).addr, &config.UpstreamTLS{CA: caFile, ServerName: "localhost"}, "HTTP/3.0", true},
	}
	for _, tt := range tests {
		t.Run(tt.protocol, func(t *testing.T) {
			m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: tt.protocol, Endpoints: []string{tt.addr}, TLS: tt.tls})
			c := m.Cluster("c")
			for i := 0; i < 3; i++ { // reuse the pooled connection
				resp, err := send(t, c, &Request{Headers: headers("GET", "/x", "authority.test")})
				if err != nil {
					t.Fatalf("send: %v", err)
				}
				body, err := readAllKeep(resp)
				if err != nil {
					resp.Close()
					t.Fatalf("reading body: %v", err)
				}
				if got := field(resp.Headers(), "x-proto"); got != tt.wantProto {
					t.Errorf("upstream saw %q, want %q", got, tt.wantProto)
				}
				if got := field(resp.Headers(), "x-authority"); got != "authority.test" {
					t.Errorf("upstream saw authority %q", got)
				}
				if !strings.HasPrefix(body, "hello over") {
					t.Errorf("body %q", body)
				}
				if got := resp.Endpoint(); got != tt.addr {
					t.Errorf("Endpoint = %q, want %q", got, tt.addr)
				}
				if tr := resp.Trailers(); tt.trailers && (tr == nil || field(tr, "grpc-status") != "0" || field(tr, "grpc-message") != "all good") {
					t.Errorf("trailers lost: %v", tr)
				}
				resp.Close()
			}
			st := c.Status()
			if st.ActiveRequests != 0 {
				t.Errorf("active requests after all bodies closed: %d", st.ActiveRequests)
			}
			if st.ActiveConnections != 1 {
				t.Errorf("connections = %d, want 1 reused", st.ActiveConnections)
			}
		})
	}
}

func TestH2TLSRefusesUntrustedServer(t *testing.T) {
	cert, _ := testCert(t)
	_, otherCA := testCert(t)
	b := startH2TLS(t, "a", nil, cert)
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2", Endpoints: []string{b.addr}, TLS: &config.UpstreamTLS{CA: otherCA}})
	_, err := get(t, m.Cluster("c"), Pick{})
	if err == nil {
		t.Fatal("round trip to a server signed by another CA succeeded")
	}
	if f := Classify(err); f != ConnectFailure {
		t.Errorf("Classify = %v, want connect_failure (%v)", f, err)
	}
}

// TestH2CStreamingTrailers sends a streamed request body and reads a
// streamed response whose trailers come last, as a gRPC call does.
func TestH2CStreamingTrailers(t *testing.T) {
	b := startHTTP(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "grpc-status")
		w.WriteHeader(200)
		buf := make([]byte, 5)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				break
			}
		}
		w.Header().Set("grpc-status", "7")
	}), true)
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []string{b.addr}})
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := &Request{Headers: headers("POST", "/pkg.Svc/Call", "svc", "content-type", "application/grpc"), BodyStream: pr}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer pw.Close()
		for _, s := range []string{"ping1", "ping2"} {
			pw.Write([]byte(s))
		}
	}()
	resp, err := m.Cluster("c").Send(ctx, req, Pick{})
	if err != nil {
		pr.Close()
		wg.Wait()
		t.Fatal(err)
	}
	defer resp.Close()
	got, err := readAllKeep(resp)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got != "ping1ping2" {
		t.Errorf("echo = %q", got)
	}
	if tr := resp.Trailers(); tr == nil || field(tr, "grpc-status") != "7" {
		t.Errorf("grpc-status trailer = %v, want 7", tr)
	}
}
