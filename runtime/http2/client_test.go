package http2

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// xServer is x/net's HTTP/2 server on a loopback listener, h2c (prior
// knowledge) or TLS (ALPN h2).
type xServer struct {
	ln     net.Listener
	useTLS bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startXServer(t testing.TB, useTLS bool, maxStreams uint32, h http.HandlerFunc) *xServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	xs := &xServer{ln: ln, useTLS: useTLS}
	srv := &http2.Server{MaxConcurrentStreams: maxStreams}
	var conf *tls.Config
	if useTLS {
		conf = testTLSConfig(t)
	}
	xs.wg.Add(1)
	go func() {
		defer xs.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			xs.mu.Lock()
			xs.conns = append(xs.conns, c)
			xs.mu.Unlock()
			xs.wg.Add(1)
			go func() {
				defer xs.wg.Done()
				if conf != nil {
					tc := tls.Server(c, conf)
					if tc.Handshake() != nil {
						c.Close()
						return
					}
					c = tc
				}
				srv.ServeConn(c, &http2.ServeConnOpts{Handler: h})
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		xs.closeConns()
		xs.wg.Wait()
	})
	return xs
}

func (xs *xServer) closeConns() {
	xs.mu.Lock()
	defer xs.mu.Unlock()
	for _, c := range xs.conns {
		c.Close()
	}
	xs.conns = nil
}

// dial opens a ClientConn to xs and waits for its SETTINGS.
func (xs *xServer) dial(t testing.TB, opts ClientOptions) *ClientConn {
	t.Helper()
	c, err := net.Dial("tcp", xs.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if xs.useTLS {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		if tc.ConnectionState().NegotiatedProtocol != "h2" {
			t.Fatal("ALPN did not pick h2")
		}
		c = tc
		opts.Scheme = "https"
	}
	cc := NewClientConn(c, opts)
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cc.WaitSettings(ctx); err != nil {
		t.Fatal(err)
	}
	return cc
}

func reqHead(method, path string, fields ...string) *stream.HeaderMap {
	h := new(stream.HeaderMap)
	h.Add(stream.Method, method)
	h.Add(stream.Path, path)
	h.Add(stream.Authority, "example.test")
	for i := 0; i+1 < len(fields); i += 2 {
		h.Add(fields[i], fields[i+1])
	}
	return h
}

// roundTrip sends one request with body and trailers (either may be nil)
// and reads the whole response.
func roundTrip(ctx context.Context, cc *ClientConn, h *stream.HeaderMap, body []byte, trailers *stream.HeaderMap) (status int, head *stream.HeaderMap, got []byte, tr *stream.HeaderMap, err error) {
	s, rest, err := cc.Open(ctx, h, -1, body, trailers == nil)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	defer s.Release()
	werr := make(chan error, 1)
	go func() {
		if len(rest) > 0 {
			if _, err := s.Write(rest); err != nil {
				werr <- err
				return
			}
		}
		werr <- s.CloseSend(trailers)
	}()
	if err := s.AwaitHead(); err != nil {
		<-werr
		return 0, nil, nil, nil, err
	}
	got, err = io.ReadAll(s)
	if werr := <-werr; err == nil {
		err = werr
	}
	head = s.Header().Clone()
	if t := s.Trailers(); t != nil {
		tr = t.Clone()
	}
	return s.Status(), head, got, tr, err
}

// echoHandler answers with the request body, its trailers as response
// trailers (prefixed "echo-") and a few fields.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	for k := range r.Trailer {
		w.Header().Add("Trailer", "Echo-"+k)
	}
	w.Header().Set("X-Method", r.Method)
	w.Header().Set("X-Path", r.URL.RequestURI())
	w.Header().Set("X-Host", r.Host)
	w.Header().Set("X-Scheme", r.URL.Scheme+r.Header.Get("X-Forwarded-Proto"))
	io.Copy(w, r.Body)
	for k, vv := range r.Trailer {
		for _, v := range vv {
			w.Header().Add("Echo-"+k, v)
		}
	}
}

func get(h *stream.HeaderMap, name string) string {
	v, _ := h.Get(name)
	return string(v)
}

// TestClientRoundTrips: requests against x/net's server over h2c and
// TLS: a GET, a 3 MiB upload echoed back (past the server's and our
// windows both ways), trailers both ways.
func TestClientRoundTrips(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(scheme(useTLS), func(t *testing.T) {
			xs := startXServer(t, useTLS, 0, echoHandler)
			cc := xs.dial(t, ClientOptions{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			status, head, body, _, err := roundTrip(ctx, cc, reqHead("GET", "/hello?x=1", "User-Agent", "t", "connection", "close"), nil, nil)
			if err != nil || status != 200 || len(body) != 0 {
				t.Fatalf("GET: %d %q %v", status, body, err)
			}
			if get(head, "x-path") != "/hello?x=1" || get(head, "x-host") != "example.test" || get(head, "x-method") != "GET" {
				t.Fatalf("request as the server saw it: %v", head)
			}

			big := make([]byte, 3<<20)
			rand.Read(big)
			status, _, body, _, err = roundTrip(ctx, cc, reqHead("POST", "/echo"), big, nil)
			if err != nil || status != 200 || !bytes.Equal(body, big) {
				t.Fatalf("3 MiB echo: %d, %d bytes back, %v", status, len(body), err)
			}

			tr := new(stream.HeaderMap)
			tr.Add("grpc-status", "0")
			tr.Add("x-sum", "abc")
			_, head, body, rtr, err := roundTrip(ctx, cc, reqHead("POST", "/echo", "trailer", "grpc-status, x-sum"), []byte("hello"), tr)
			if err != nil || string(body) != "hello" {
				t.Fatalf("trailers: %q %v", body, err)
			}
			if rtr == nil || get(rtr, "echo-grpc-status") != "0" || get(rtr, "echo-x-sum") != "abc" {
				t.Fatalf("response trailers %v (head %v)", rtr, head)
			}
		})
	}
}

// TestClientConcurrentStreamsPastLimit: 60 requests at once on one
// connection whose peer allows 5 streams: Open refuses the sixth with
// ErrConnBusy (nothing sent) and the stream count never passes 5; all
// get through as streams end.
func TestClientConcurrentStreamsPastLimit(t *testing.T) {
	var mu sync.Mutex
	inFlight, peak := 0, 0
	xs := startXServer(t, false, 5, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		io.Copy(w, r.Body)
		mu.Lock()
		inFlight--
		mu.Unlock()
	})
	cc := xs.dial(t, ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	busy := make(chan struct{}, 10000)
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprintf("body %d", i)
			for {
				_, _, body, _, err := roundTrip(ctx, cc, reqHead("POST", "/"), []byte(want), nil)
				if errors.Is(err, ErrConnBusy) {
					busy <- struct{}{}
					time.Sleep(time.Millisecond)
					continue
				}
				if err == nil && string(body) != want {
					err = fmt.Errorf("got %q, want %q", body, want)
				}
				errs <- err
				return
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(busy) == 0 {
		t.Fatal("Open never reported the peer's limit")
	}
	if peak > 5 {
		t.Fatalf("server saw %d streams at once, its limit is 5", peak)
	}
}

// TestClientConcurrentBigBodies: 8 streams at once each echo 1 MiB on one
// connection, so the connection windows both ways (ours 1 MiB, the
// server's) are shared and exhausted many times; every body comes back
// whole and unmixed.
func TestClientConcurrentBigBodies(t *testing.T) {
	xs := startXServer(t, false, 0, echoHandler)
	cc := xs.dial(t, ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := bytes.Repeat([]byte{byte('a' + i)}, 1<<20)
			_, _, got, _, err := roundTrip(ctx, cc, reqHead("POST", "/"), body, nil)
			if err == nil && !bytes.Equal(got, body) {
				err = fmt.Errorf("stream %d: %d bytes back, not its own", i, len(got))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestClientPerRequestFieldsArrive: request ids and trace context (sent
// as literals never indexed, from the caller's bytes without a copy)
// reach the server intact on request after request of one connection,
// the same map's bytes rewritten between them, between fields that are
// indexed.
func TestClientPerRequestFieldsArrive(t *testing.T) {
	xs := startXServer(t, false, 0, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Got-Id", r.Header.Get("X-Request-Id"))
		w.Header().Set("X-Got-Trace", r.Header.Get("Traceparent"))
		w.Header().Set("X-Got-Agent", r.Header.Get("User-Agent"))
	})
	cc := xs.dial(t, ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := reqHead("GET", "/", "user-agent", "t", "X-Request-Id", "id-0", "traceparent", "00-trace-0")
	id, _ := h.Get("x-request-id")
	trace, _ := h.Get("traceparent")
	for i := range 5 {
		id[len(id)-1], trace[len(trace)-1] = byte('0'+i), byte('0'+i)
		status, head, _, _, err := roundTrip(ctx, cc, h, nil, nil)
		if err != nil || status != 200 {
			t.Fatalf("request %d: %d %v", i, status, err)
		}
		if want := fmt.Sprintf("id-%d", i); get(head, "x-got-id") != want {
			t.Fatalf("request %d: the server saw x-request-id %q, want %q", i, get(head, "x-got-id"), want)
		}
		if want := fmt.Sprintf("00-trace-%d", i); get(head, "x-got-trace") != want {
			t.Fatalf("request %d: the server saw traceparent %q, want %q", i, get(head, "x-got-trace"), want)
		}
		if get(head, "x-got-agent") != "t" {
			t.Fatalf("request %d: user-agent %q", i, get(head, "x-got-agent"))
		}
	}
}
