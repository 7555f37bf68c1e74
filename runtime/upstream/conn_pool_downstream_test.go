package upstream

import (
	"io"
	"net/http"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// TestDownstreamProtocol: a protocol = "downstream" cluster sends an
// HTTP/1.x request over HTTP/1.1 and an HTTP/2 one over h2, on TLS (ALPN)
// and in plain text (h2c); only the http1 requests take a connection slot.
func TestDownstreamProtocol(t *testing.T) {
	proto := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
	cert, ca := testCert(t)
	for _, tc := range []struct {
		name string
		b    backend
		tls  *config.UpstreamTLS
	}{
		{"tls", startH2TLS(t, "a", proto, cert), &config.UpstreamTLS{CA: ca}},
		{"plain", startHTTP(t, "a", proto, true), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "downstream", Endpoints: []string{tc.b.addr}, TLS: tc.tls,
				Limits: config.Limits{MaxConnections: 2}})
			c := m.Cluster("c")
			send := func(major int) Response {
				// The context outlives send: the bodies are read after it.
				resp, err := send(t, c, &Request{Headers: headers("GET", "/", "upstream.test"), ProtoMajor: major})
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}
			// HTTP/2 requests in flight hold no http1 slot: with
			// max_connections = 2 and two of them open (on one
			// connection), http1 requests still get through.
			held, held2 := send(2), send(2)
			for i := range 3 {
				b, _ := readAll(t, send(1))
				if b != "HTTP/1.1" {
					t.Fatalf("http1 request %d arrived as %q", i, b)
				}
			}
			held2.Close()
			b, err := readAll(t, held)
			if err != nil {
				t.Fatal(err)
			}
			if b != "HTTP/2.0" {
				t.Fatalf("HTTP/2 request arrived as %q", b)
			}
			if st := c.Status(); st.ActiveRequests != 0 {
				t.Errorf("active requests after all bodies closed: %d", st.ActiveRequests)
			}
		})
	}
}
