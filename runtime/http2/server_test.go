package http2

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/mesh"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// handlerFunc adapts a function to stream.Handler.
type handlerFunc func(s stream.ServerStream)

func (f handlerFunc) ServeStream(s stream.ServerStream) { f(s) }

// echo answers 200 with the request body (or "hello" for a request
// without one), copying the request's trailers back as response trailers.
var echo = handlerFunc(func(s stream.ServerStream) {
	var body []byte
	buf := make([]byte, 16<<10)
	for {
		n, err := s.ReadBody(buf)
		body = append(body, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			return
		}
	}
	if len(body) == 0 {
		body = []byte("hello")
	}
	var h stream.HeaderMap
	h.Add(stream.Status, "200")
	h.Add("content-type", "text/plain")
	h.Add("content-length", strconv.Itoa(len(body)))
	if err := s.WriteHeaders(&h, false); err != nil {
		return
	}
	t := s.RequestTrailers()
	if err := s.WriteBody(body, t == nil); err != nil || t == nil {
		return
	}
	s.WriteTrailers(t)
})

// testServer serves srv on a loopback listener (TLS with ALPN h2 when
// tlsConf is set) until the test ends.
type testServer struct {
	srv  *Server
	ln   net.Listener
	wg   sync.WaitGroup
	errs chan error
	// ended gets a value each time a connection's ServeConn returns.
	ended chan struct{}
}

func startServer(t testing.TB, srv *Server, h stream.Handler, tlsConf *tls.Config) *testServer {
	t.Helper()
	return startServerWith(t, srv, h, tlsConf, nil)
}

// startServerWith is startServer with onAccept, when not nil, seeing each
// accepted connection first; the server serves what it returns.
func startServerWith(t testing.TB, srv *Server, h stream.Handler, tlsConf *tls.Config, onAccept func(net.Conn) net.Conn) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, ln: ln, errs: make(chan error, 1024), ended: make(chan struct{}, 1024)}
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if onAccept != nil {
				c = onAccept(c)
			}
			ts.wg.Add(1)
			go func() {
				defer ts.wg.Done()
				if tlsConf != nil {
					tc := tls.Server(c, tlsConf)
					if err := tc.Handshake(); err != nil {
						c.Close()
						return
					}
					c = tc
				}
				if err := srv.ServeConn(c, h); err != nil {
					select {
					case ts.errs <- err:
					default:
					}
				}
				ts.ended <- struct{}{}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Error(err)
		}
		ts.wg.Wait()
	})
	return ts
}

func (ts *testServer) addr() string { return ts.ln.Addr().String() }

// waitEnded waits (10 s at most) for a connection's ServeConn to return.
func (ts *testServer) waitEnded(t testing.TB) {
	t.Helper()
	select {
	case <-ts.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not closed")
	}
}

// testTLSConfig is a server config with a certificate from a fresh mesh
// CA (the client skips verification), offering only h2 by ALPN.
func testTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	ca, err := mesh.NewCA("example.org", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := mesh.ParseID("spiffe://example.org/ns/default/sa/server")
	certPEM, keyPEM, err := ca.Issue(id, time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}
}
