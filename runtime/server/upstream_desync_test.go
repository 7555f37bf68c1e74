package server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// injected is a whole response a hostile upstream smuggles after its real
// answer: a proxy that reuses the connection hands it to the next client.
const injected = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Injected: 1\r\n\r\nINJECTED"

// hostileUpstream is a raw HTTP/1.1 server on 127.0.0.1. A request for
// /attack gets the test case's answer; any other request gets its own
// answer naming its path, so a client can tell its response from another's.
type hostileUpstream struct {
	addr string
	// quiet is closed by the test when the first client has its answer;
	// an attack that writes late waits for it.
	quiet chan struct{}
	// wrote gets a value once a late attack has written its bytes.
	wrote chan struct{}
}

func startHostileUpstream(t *testing.T, attack func(h *hostileUpstream, c net.Conn)) *hostileUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileUpstream{addr: ln.Addr().String(), quiet: make(chan struct{}), wrote: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if req.URL.Path == "/attack" {
						attack(h, c)
						continue
					}
					own := "own " + req.URL.Path
					if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(own))+"\r\n\r\n"+own); err != nil {
						return
					}
				}
			}()
		}
	}()
	return h
}

func writeAll(c net.Conn, s string) { io.WriteString(c, s) }

// TestUpstreamResponseDesync: whatever a hostile upstream sends after (or
// instead of) a well-framed answer to the first client, the second client
// gets its own response, never the injected one.
func TestUpstreamResponseDesync(t *testing.T) {
	endless100 := bytes.Repeat([]byte("HTTP/1.1 100 Continue\r\n\r\n"), 2048)
	tests := []struct {
		name       string
		method     string
		attack     func(h *hostileUpstream, c net.Conn)
		wantStatus int  // of the first client
		late       bool // the attack writes after the first client got its answer
	}{
		{"extra bytes after content-length body", "GET", func(h *hostileUpstream, c net.Conn) {
			writeAll(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"+injected)
		}, 200, false},
		{"body on 204", "GET", func(h *hostileUpstream, c net.Conn) {
			writeAll(c, "HTTP/1.1 204 No Content\r\n\r\n"+injected)
		}, 204, false},
		{"body on 304", "GET", func(h *hostileUpstream, c net.Conn) {
			writeAll(c, "HTTP/1.1 304 Not Modified\r\n\r\n"+injected)
		}, 304, false},
		{"body on HEAD response", "HEAD", func(h *hostileUpstream, c net.Conn) {
			writeAll(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n"+injected)
		}, 200, false},
		{"204 body in a later segment", "GET", func(h *hostileUpstream, c net.Conn) {
			writeAll(c, "HTTP/1.1 204 No Content\r\n\r\n")
			<-h.quiet
			writeAll(c, injected)
			h.wrote <- struct{}{}
		}, 204, true},
		{"late bytes while idle", "GET", func(h *hostileUpstream, c net.Conn) {
			writeAll(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
			<-h.quiet
			writeAll(c, injected)
			h.wrote <- struct{}{}
		}, 200, true},
		{"endless 100 continue", "GET", func(h *hostileUpstream, c net.Conn) {
			for {
				if _, err := c.Write(endless100); err != nil {
					return
				}
			}
		}, 502, false},
		{"unsolicited 101", "GET", func(h *hostileUpstream, c net.Conn) {
			writeAll(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: evil\r\n\r\n"+injected)
		}, 502, false},
		{"content-length and chunked", "GET", func(h *hostileUpstream, c net.Conn) {
			writeAll(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"+injected)
		}, 200, false},
		{"differing content-lengths", "GET", func(h *hostileUpstream, c net.Conn) {
			writeAll(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\nhello"+injected)
		}, 502, false},
		{"chunked body then extra bytes", "GET", func(h *hostileUpstream, c net.Conn) {
			writeAll(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"+injected)
		}, 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startHostileUpstream(t, tt.attack)
			ts := startServer(t, baseConfig(`
[[routes]]
name = "r"
backends = [ { cluster = "hostile" } ]

[[clusters]]
name = "hostile"
endpoints = ["`+up.addr+`"]
`))
			// Two clients, each on a connection of its own.
			first := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			second := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

			resp, err := first.Do(mustReq(t, tt.method, ts.url("/attack"), nil))
			if err != nil {
				t.Fatalf("first client: %v", err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				// A 101's body is a raw tunnel no timeout covers.
				io.Copy(io.Discard, resp.Body)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("first client: status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			close(up.quiet)
			if tt.late {
				<-up.wrote
				// Loopback delivers within the write; a moment more so the
				// bytes are surely in the proxy's socket.
				time.Sleep(20 * time.Millisecond)
			}

			for i := 0; i < 2; i++ {
				resp, err = second.Do(mustReq(t, "GET", ts.url("/second"), nil))
				if err != nil {
					t.Fatalf("second client, request %d: %v", i, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "own /second" || resp.Header.Get("X-Injected") != "" {
					t.Fatalf("second client, request %d: got %d %q (injected %q), want its own answer", i, resp.StatusCode, b, resp.Header.Get("X-Injected"))
				}
			}
		})
	}
}

// TestUpstreamCloseMidBody: an upstream that closes after the response
// headers but before the end of the body cuts the client's stream as
// Envoy does: the client gets the headers and the partial body, then an
// error (HTTP/1.1: the connection closes; HTTP/2: RST_STREAM), never a
// response that looks complete nor an empty reply.
func TestUpstreamCloseMidBody(t *testing.T) {
	bodies := []struct {
		name, wire string
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n"},
	}
	clients := []struct {
		name   string
		c      *http.Client
		wantEr func(error) bool
	}{
		{"http1", &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
			func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"h2c", h2cClient(), func(err error) bool {
			var se http2.StreamError
			return errors.As(err, &se)
		}},
	}
	for _, b := range bodies {
		for _, cl := range clients {
			t.Run(b.name+"/"+cl.name, func(t *testing.T) {
				up := startHostileUpstream(t, func(h *hostileUpstream, c net.Conn) {
					writeAll(c, b.wire)
					c.(*net.TCPConn).CloseWrite()
				})
				ts := startServer(t, baseConfig(`
[[routes]]
name = "r"
backends = [ { cluster = "hostile" } ]

[[clusters]]
name = "hostile"
endpoints = ["`+up.addr+`"]
`))
				resp, err := cl.c.Do(mustReq(t, "GET", ts.url("/attack"), nil))
				if err != nil {
					t.Fatalf("no response head at all (an empty reply): %v", err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(got) != "partial" {
					t.Errorf("got %d %q, want 200 and the partial body", resp.StatusCode, got)
				}
				if err == nil || !cl.wantEr(err) {
					t.Errorf("body ended with %v, want the stream cut", err)
				}
				second := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				resp, err = second.Get(ts.url("/second"))
				if err != nil {
					t.Fatal(err)
				}
				own, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(own) != "own /second" {
					t.Errorf("second client got %q", own)
				}
			})
		}
	}
}
