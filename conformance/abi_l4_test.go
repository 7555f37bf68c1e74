package conformance

import (
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// l4Cases drive a TCP listener (protocols = ["tcp"]) with a network
// filter; each starts its own sluice with that listener.
func l4Cases() []abiCase {
	script := `new_connection: log 2 l4-new-connection
downstream_data: buf_get 2 0 100 | buf_set 2 0 0 [
upstream_data: buf_get 3 0 100 | buf_set 3 0 0 <
downstream_close: log 2 l4-downstream-closed
upstream_close: log 2 l4-upstream-closed`
	return []abiCase{
		{
			name: "L4: proxy_on_new_connection, downstream/upstream data with buffers 2 and 3 read and rewritten, both close callbacks",
			ref:  refEnvoy + " (Context::onNewConnection, onData, onWrite, onEvent -> onDownstreamConnectionClose / onUpstreamConnectionClose; getBuffer DownstreamData, UpstreamData)",
			run: func(e *abiEnv) error {
				echo, err := tcpEcho(e)
				if err != nil {
					return err
				}
				s, err := trySluice(e.t, base+`
[[listeners]]
name = "tcp"
address = "127.0.0.1:0"
protocols = ["tcp"]
cluster = "echo"
plugins = ["p"]

[[clusters]]
name = "echo"
endpoints = ["`+echo+`"]
`+plugin("p", "rawabi", script, ""))
				if err != nil {
					return fmt.Errorf("starting sluice with a tcp listener: %w", err)
				}
				l4 := &abiEnv{t: e.t, s: s}
				c, err := net.DialTimeout("tcp", s.ListenerAddr("tcp"), 5*time.Second)
				if err != nil {
					return err
				}
				defer c.Close()
				buf, err := echoRoundTrip(c, "ping", 6)
				if err != nil {
					return err
				}
				if string(buf) != "<[ping" {
					return fmt.Errorf("client got %q, want \"<[ping\" (the filter prefixes each direction)", buf)
				}
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
				return all(l4.ordered("p", "l4-new-connection", "downstream_data size=4 eos=0", "downstream_data buf_get: status=0 ping",
					"upstream_data buf_get: status=0 [ping"),
					l4.wantLogs("p", "l4-downstream-closed", "l4-upstream-closed"))
			},
		},
	}
}

// echoRoundTrip writes msg on a connection to the echo (through sluice)
// and reads n bytes back, within 10s.
func echoRoundTrip(c net.Conn, msg string, n int) ([]byte, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		return buf, fmt.Errorf("reading the echo: %v (got %q)", err, buf)
	}
	return buf, nil
}

// tcpEcho runs a TCP echo server until the test ends.
func tcpEcho(e *abiEnv) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	e.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String(), nil
}

// lifecycleExtras are proxy_done and grpc_send, which answer NotFound
// outside the state they belong to.
func lifecycleExtras() []abiCase {
	return []abiCase{
		{
			name:   "proxy_done from a root context that is not waiting to be done is NotFound",
			ref:    refCPPHWasm + " (WasmBase::done: NotFound unless the root context's proxy_on_done returned false)",
			script: "configure: done",
			run: func(e *abiEnv) error {
				return e.expectLine("p", "configure done", "configure done: status=1")
			},
		},
		{
			name:   "grpc_send on an unknown stream is NotFound",
			ref:    refEnvoy + " (Context::grpcSend: stream token not found -> NotFound)",
			script: `request_headers: grpc_send 4242 msg 0`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/g")); err != nil {
					return err
				}
				return e.expectLine("p", "request_headers grpc_send", "request_headers grpc_send: status=1")
			},
		},
	}
}

var _ = strings.Contains
