package http1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// rawUpstream answers every request on 127.0.0.1 with head and sends the
// request heads it read on heads.
func rawUpstream(t *testing.T, head string) (addr string, heads <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 16)
	acceptEach(t, ln, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var b strings.Builder
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			b.WriteString(line)
			if err != nil || line == "\r\n" {
				break
			}
		}
		got <- b.String()
		io.WriteString(c, head)
	})
	return ln.Addr().String(), got
}

// A field our parser checked is written without a second check only while
// it is unchanged: a value a filter (Set) or the Wasm host (SetBytes)
// changed to hold CR/LF is refused when the request head is written
// upstream, and written with spaces for the CTLs in a response head, so
// neither can start a field of its own.
func TestParsedFieldChangedIsCheckedOnWrite(t *testing.T) {
	const evil = "a\r\nx-injected: 1"
	edits := map[string]func(h *stream.HeaderMap, name string){
		"none":     func(*stream.HeaderMap, string) {},
		"set":      func(h *stream.HeaderMap, name string) { h.Set(name, evil) },
		"setbytes": func(h *stream.HeaderMap, name string) { h.SetBytes([]byte(name), []byte(evil)) },
	}
	upAddr, upHeads := rawUpstream(t, "HTTP/1.1 200 OK\r\nx-up: 1\r\nContent-Length: 0\r\n\r\n")
	writeErrs := make(chan error, 16)
	_, addr := startStreamServer(t, streamFunc(func(s stream.ServerStream) {
		p, _ := s.RequestHeaders().Get(stream.Path)
		reqEdit, respEdit, _ := strings.Cut(strings.TrimPrefix(string(p), "/"), "/")
		req := s.RequestHeaders()
		edits[reqEdit](req, "x-a")
		nc, err := net.Dial("tcp", upAddr)
		if err != nil {
			s.Reset(stream.ResetProtocol)
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		var cc ClientConn
		cc.Init(nc, Limits{})
		defer cc.Release()
		_, err = cc.WriteRequest(req, RequestFraming{}, nil, nil)
		writeErrs <- err
		if err != nil {
			s.WriteHeaders(headers("502"), true)
			return
		}
		resp, err := cc.ReadResponse(false)
		if err != nil {
			s.Reset(stream.ResetProtocol)
			return
		}
		edits[respEdit](&resp.Header, "x-up")
		s.WriteHeaders(&resp.Header, true)
	}))

	for _, tt := range []struct {
		reqEdit, respEdit string
		upstreamSees      string // a line of the head upstream, "" for none sent
		clientSees        string // x-up downstream
	}{
		{"none", "none", "x-a: 1\r\n", "1"},
		{"set", "none", "", ""},
		{"setbytes", "none", "", ""},
		{"none", "set", "x-a: 1\r\n", "a  x-injected: 1"},
		{"none", "setbytes", "x-a: 1\r\n", "a  x-injected: 1"},
	} {
		c, br := dial(t, addr)
		io.WriteString(c, "GET /"+tt.reqEdit+"/"+tt.respEdit+" HTTP/1.1\r\nHost: h\r\nx-a: 1\r\n\r\n")
		resp, _ := readResponse(t, br, "GET")
		err := <-writeErrs
		var he *HeadError
		if tt.upstreamSees == "" {
			if !errors.As(err, &he) || resp.StatusCode != 502 {
				t.Errorf("%s/%s: request written upstream with %v, status %d; want a HeadError", tt.reqEdit, tt.respEdit, err, resp.StatusCode)
			}
			if head := <-upHeads; head != "" {
				t.Errorf("%s/%s: upstream read %q from a refused head", tt.reqEdit, tt.respEdit, head)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s/%s: writing upstream: %v", tt.reqEdit, tt.respEdit, err)
		}
		if head := <-upHeads; !strings.Contains(head, tt.upstreamSees) || strings.Contains(head, "x-injected") {
			t.Errorf("%s/%s: upstream read %q", tt.reqEdit, tt.respEdit, head)
		}
		if got := resp.Header.Get("X-Up"); got != tt.clientSees || resp.Header.Get("X-Injected") != "" {
			t.Errorf("%s/%s: client read x-up %q, header %v; want x-up %q and no x-injected", tt.reqEdit, tt.respEdit, got, resp.Header, tt.clientSees)
		}
	}
}
