package hostabi

import (
	"context"
	"testing"
	"time"
)

type testConn struct {
	props   map[string][]byte
	resumed chan StreamType
	closed  []StreamType
}

func (c *testConn) Resume(t StreamType) { c.resumed <- t }
func (c *testConn) Close(t StreamType)  { c.closed = append(c.closed, t) }
func (c *testConn) Property(path []string) ([]byte, bool) {
	v, ok := c.props[path[0]]
	return v, ok
}
func (c *testConn) SetProperty(path []string, v []byte) error {
	c.props[path[0]] = v
	return nil
}

func TestNetworkStream(t *testing.T) {
	p := load(t, "rawabi", PluginConfig{PluginConfig: []byte(
		"new_connection: prop_get peer | hdr_get 0 x | local 403 no - - -1 | ret 0\n" +
			"downstream_data: buf_get 2 0 100 | buf_set 2 0 0 [ | buf_set 2 100 0 ] | buf_status 2 | continue 0 | ret 1\n" +
			"upstream_data: buf_get 3 0 100 | buf_get 0 0 1 | close 3\n" +
			"downstream_close: log 2 closed\n" +
			"tick: effective | continue 2 | tick 0\n")})
	c := &testConn{props: map[string][]byte{"peer": []byte("10.0.0.1")}, resumed: make(chan StreamType, 4)}
	n, err := p.NewNetworkStream(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := n.OnNewConnection(); err != nil || a != Continue {
		t.Fatalf("new connection: %v %v", a, err)
	}
	out, a, err := n.OnDownstreamData([]byte("hello"), false)
	if err != nil || a != Pause || string(out) != "[hello]" {
		t.Fatalf("downstream data: %q %v %v", out, a, err)
	}
	// Closing a half stops iteration, as a local reply does.
	out, a, err = n.OnUpstreamData([]byte("reply"), true)
	if err != nil || a != Pause || string(out) != "reply" {
		t.Fatalf("upstream data: %q %v %v", out, a, err)
	}
	if err := n.OnDownstreamClose(PeerRemote); err != nil {
		t.Fatal(err)
	}
	if err := n.OnUpstreamClose(PeerLocal); err != nil {
		t.Fatal(err)
	}
	wantLogs(t, p.Name(),
		"new_connection prop_get: status=0 10.0.0.1",
		"new_connection hdr_get: status=2 ", // no header maps on a connection
		"new_connection local: status=1",    // nor local replies
		"downstream_data size=5 eos=0",
		"downstream_data buf_get: status=0 hello",
		"downstream_data buf_status: status=0 size=7 flags=0",
		"downstream_data continue: status=2", // HTTP halves do not apply
		"upstream_data size=5 eos=1",
		"upstream_data buf_get: status=0 reply",
		"upstream_data buf_get: status=1 ",
		"upstream_data close: status=0",
		"downstream_close peer=2", "closed", "upstream_close peer=1")
	if len(c.closed) != 1 || c.closed[0] != StreamUpstream {
		t.Errorf("closed = %v", c.closed)
	}
	if err := n.OnDone(); err != nil {
		t.Fatal(err)
	}
}

func TestNetworkStreamResumeFromTick(t *testing.T) {
	p := load(t, "rawabi", PluginConfig{PluginConfig: []byte(
		"downstream_data: tick 5 | ret 1\ntick: effective | continue 2 | tick 0\n")})
	c := &testConn{props: map[string][]byte{}, resumed: make(chan StreamType, 4)}
	n, err := p.NewNetworkStream(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer n.OnDone()
	if _, a, err := n.OnDownstreamData([]byte("x"), false); err != nil || a != Pause {
		t.Fatalf("%v %v", a, err)
	}
	select {
	case d := <-c.resumed:
		if d != StreamDownstream {
			t.Errorf("resumed %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not resumed")
	}
}
