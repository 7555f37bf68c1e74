package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/config"
)

func TestClassifyErrors(t *testing.T) {
	tests := []struct {
		err  error
		want Failure
	}{
		{nil, Other},
		{errors.New("something"), Other},
		{&Error{Failure: Overflow, Err: ErrOverflow}, Overflow},
		{fmt.Errorf("wrapped: %w", &Error{Failure: RefusedStream, Err: errors.New("x")}), RefusedStream},
		{ErrNoHealthyUpstream, NoHealthyUpstream},
		{context.DeadlineExceeded, Timeout},
		{fmt.Errorf("x: %w", context.Canceled), Canceled},
		{&dialError{err: errors.New("boom")}, ConnectFailure},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, ConnectFailure},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, Reset},
		{io.ErrUnexpectedEOF, Reset},
		{fmt.Errorf("net/http: %w", io.EOF), Reset},
		{http2.StreamError{StreamID: 1, Code: http2.ErrCodeRefusedStream}, RefusedStream},
		{http2.StreamError{StreamID: 1, Code: http2.ErrCodeInternal}, Reset},
		{http2.GoAwayError{LastStreamID: 1, ErrCode: http2.ErrCodeNo}, RefusedStream},
		{os.ErrDeadlineExceeded, Timeout},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestFailureString(t *testing.T) {
	for f := Other; f <= Canceled; f++ {
		if s := f.String(); s == "" || s == "unknown" {
			t.Errorf("Failure(%d) has no name", f)
		}
	}
	if Failure(99).String() != "unknown" {
		t.Error("out-of-range Failure")
	}
}

func TestClassifyConnectFailure(t *testing.T) {
	for _, protocol := range []string{"http1", "h2c", "h2", "h3"} {
		t.Run(protocol, func(t *testing.T) {
			addr := closedAddr(t)
			var tlsCfg *config.UpstreamTLS
			if protocol == "h2" || protocol == "h3" {
				tlsCfg = &config.UpstreamTLS{InsecureSkipVerify: true}
			}
			m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: protocol, Endpoints: []string{addr}, TLS: tlsCfg,
				ConnectTimeout: config.Duration(300 * time.Millisecond)})
			_, err := get(t, m.Cluster("c"), Pick{})
			if Classify(err) != ConnectFailure {
				t.Fatalf("err %v classified %v, want connect_failure", err, Classify(err))
			}
			var ue *Error
			if !errors.As(err, &ue) || ue.Endpoint != addr || ue.Cluster != "c" {
				t.Errorf("error does not name the endpoint: %#v", err)
			}
		})
	}
}

// hijackServer reads a request then drops the connection without a
// response.
func hijackServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			http.ReadRequest(bufio.NewReader(c))
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // RST, not FIN
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

func TestClassifyReset(t *testing.T) {
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Endpoints: []string{hijackServer(t)}})
	_, err := send(t, m.Cluster("c"), &Request{Headers: headers("POST", "/", "x")})
	if Classify(err) != Reset {
		t.Fatalf("err %v classified %v, want reset", err, Classify(err))
	}
}

func TestClassifyTimeout(t *testing.T) {
	g := newGate()
	b := startHTTP(t, "a", g, false)
	defer close(g.release)
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Endpoints: addrs(b)})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := m.Cluster("c").Send(ctx, &Request{Headers: headers("GET", "/", "x")}, Pick{})
	if Classify(err) != Timeout {
		t.Fatalf("err %v classified %v, want timeout", err, Classify(err))
	}
}

// rawH2Server speaks just enough HTTP/2 (prior knowledge) to answer every
// request stream with RST_STREAM code, or with GOAWAY when goAway is set.
func rawH2Server(t *testing.T, code http2.ErrCode, goAway bool) string {
	addr, _ := startScriptedH2(t, func(fr *http2.Framer, c net.Conn, id uint32) {
		if goAway {
			fr.WriteGoAway(0, code, nil)
		} else {
			fr.WriteRSTStream(id, code)
		}
	})
	return addr
}

func TestClassifyH2StreamErrors(t *testing.T) {
	tests := []struct {
		name   string
		code   http2.ErrCode
		goAway bool
		want   Failure
	}{
		{"refused stream", http2.ErrCodeRefusedStream, false, RefusedStream},
		{"internal error", http2.ErrCodeInternal, false, Reset},
		{"goaway before processing", http2.ErrCodeNo, true, RefusedStream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []string{rawH2Server(t, tt.code, tt.goAway)}})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := m.Cluster("c").Send(ctx, &Request{Headers: headers("GET", "/", "x")}, Pick{})
			if Classify(err) != tt.want {
				t.Fatalf("err %v classified %v, want %v", err, Classify(err), tt.want)
			}
		})
	}
}
