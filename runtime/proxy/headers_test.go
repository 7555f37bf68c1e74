package proxy

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

func TestSanitizeRequestHeaders(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      http.Header
		upgrade bool
		ok      bool
		want    http.Header
	}{
		{"nominated header removed, Connection keeps the rest",
			http.Header{"Connection": {"keep-alive, X-Foo"}, "X-Foo": {"1"}, "X-Bar": {"2"}}, false, true,
			http.Header{"Connection": {"keep-alive"}, "X-Bar": {"2"}}},
		{"only nominations: Connection goes too",
			http.Header{"Connection": {"x-foo", "x-bar"}, "X-Foo": {"1"}, "X-Bar": {"2"}}, false, true,
			http.Header{}},
		{"TE is left for the hop-by-hop pass",
			http.Header{"Connection": {"te"}, "Te": {"trailers"}}, false, true,
			http.Header{"Connection": {"te"}, "Te": {"trailers"}}},
		{"an upgrade keeps only its token",
			http.Header{"Connection": {"Upgrade, x-request-id"}, "Upgrade": {"websocket"}, "X-Request-Id": {"c"}}, true, true,
			http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}},
		{"internal headers removed",
			http.Header{"X-Sluice-Subset": {"v2"}, "X-Sluice-Limit": {"a=1"}, "X-Sluicey": {"kept"}, "X-Sluice-": {"gone"}}, false, true,
			http.Header{"X-Sluicey": {"kept"}}},
		{"request id and grpc-timeout kept", http.Header{"X-Request-Id": {"a"}, "Grpc-Timeout": {"1S"}, "X-Sluice-Grpc": {"x"}}, false, true,
			http.Header{"X-Request-Id": {"a"}, "Grpc-Timeout": {"1S"}}},
		{"request id and grpc-timeout nominated", http.Header{"Connection": {"x-request-id, grpc-timeout"}, "X-Request-Id": {"a"}, "Grpc-Timeout": {"1S"}}, false, true,
			http.Header{}},
		{"trailer kept", http.Header{"Trailer": {"x-sum"}, "Te": {"trailers"}}, false, true,
			http.Header{"Trailer": {"x-sum"}, "Te": {"trailers"}}},
		{"hop-by-hop and forwarded fields noted",
			http.Header{"Connection": {"keep-alive, x-a, transfer-encoding"}, "X-A": {"1"}, "Keep-Alive": {"t"}, "Transfer-Encoding": {"chunked"},
				"Proxy-Connection": {"x"}, "Proxy-Authorization": {"y"}, "Upgrade": {"h2c"},
				"X-Forwarded-For": {"192.0.2.1"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"a.example"}}, false, true,
			http.Header{"Connection": {"keep-alive"}, "Keep-Alive": {"t"}, "Proxy-Connection": {"x"}, "Proxy-Authorization": {"y"}, "Upgrade": {"h2c"},
				"X-Forwarded-For": {"192.0.2.1"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"a.example"}}},
		{"X-Forwarded-For refused", http.Header{"Connection": {"X-Forwarded-For"}}, false, false, nil},
		{"pseudo-header refused", http.Header{"Connection": {":path"}}, false, false, nil},
		{"ten options refused", http.Header{"Connection": {"a,b,c,d,e", "f,g,h,i,j"}}, false, false, nil},
		{"kept options of several fields joined, nominations in any field removed",
			http.Header{"Connection": {"Keep-Alive, x-a", "close", "X-B", "te", " , upgrade"}, "X-A": {"1"}, "X-B": {"2"}, "X-C": {"3"}}, false, true,
			http.Header{"Connection": {"Keep-Alive, close, te, upgrade"}, "X-C": {"3"}}},
		{"nine options pass", http.Header{"Connection": {"a,b,c,d,e,f,g,h,close"}}, false, true, http.Header{"Connection": {"close"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m stream.HeaderMap
			for k, vs := range tc.in {
				for _, v := range vs {
					m.Add(k, v)
				}
			}
			if got := upgradeOf(&m) != ""; got != tc.upgrade {
				t.Fatalf("the case asks for an upgrade: %v, the map: %v", tc.upgrade, got)
			}
			ok, seen, mask := sanitizeRequestHeaders(&m)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			// A field it says the request lacks is not in the map: its
			// lookup is skipped.
			if ok && (seen&seenRequestID == 0 && m.Has("x-request-id") || seen&seenGRPCTimeout == 0 && m.Has("grpc-timeout") ||
				seen&seenTrailer == 0 && m.Has("trailer")) {
				t.Fatalf("seen %b, but the map has x-request-id %v, grpc-timeout %v, trailer %v", seen, m.Has("x-request-id"), m.Has("grpc-timeout"), m.Has("trailer"))
			}
			// Its mask has every bit requestMask finds in the map it
			// leaves, and the X-Forwarded-* bits exactly.
			if after := requestMask(&m); ok && (after&^mask != 0 || (after^mask)&(fwdFor|fwdProto|fwdHost) != 0) {
				t.Fatalf("mask %b, requestMask of the map left %b", mask, after)
			}
			got := http.Header{}
			for name, value := range m.All() {
				got.Add(string(name), string(value))
			}
			if ok && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("headers %v, want %v", got, tc.want)
			}
		})
	}
}

// TestHopHeadersRemoved: the request's and the response's hop-by-hop
// fields go (found in one pass over the map), whatever their case and
// place, with what each direction keeps: TE "trailers" and an upgrade's
// Connection and Upgrade on a request, Trailer and the fields Connection
// does not nominate on a response.
func TestHopHeadersRemoved(t *testing.T) {
	all := [][2]string{{":method", "GET"}, {":path", "/"}, {"Connection", "keep-alive, X-Nominated"}, {"Proxy-Connection", "x"},
		{"Keep-Alive", "timeout=5"}, {"Proxy-Authenticate", "Basic"}, {"Proxy-Authorization", "Basic x"}, {"TE", "gzip, Trailers"},
		{"Trailer", "x-sum"}, {"Transfer-Encoding", "chunked"}, {"Upgrade", "websocket"}, {"X-Nominated", "1"}, {"X-Kept", "2"}}
	for _, tc := range []struct {
		name     string
		in       [][2]string
		response bool
		upgrade  bool
		want     []string
	}{
		{"request, every hop field", all, false, false, []string{":method: GET", ":path: /", "x-nominated: 1", "x-kept: 2", "te: trailers"}},
		{"request, upgrade", all, false, true, []string{":method: GET", ":path: /", "connection: keep-alive, X-Nominated", "upgrade: websocket", "x-nominated: 1", "x-kept: 2", "te: trailers"}},
		{"request, TE without trailers", [][2]string{{"te", "gzip"}, {"x-kept", "2"}}, false, false, []string{"x-kept: 2"}},
		{"request, none", [][2]string{{":method", "GET"}, {"x-kept", "2"}}, false, false, []string{":method: GET", "x-kept: 2"}},
		{"response, every hop field", all, true, false, []string{":method: GET", ":path: /", "trailer: x-sum", "x-kept: 2"}},
		{"response, upgrade", all, true, true, []string{":method: GET", ":path: /", "connection: keep-alive, X-Nominated", "trailer: x-sum", "upgrade: websocket", "x-kept: 2"}},
		{"response, Connection alone", [][2]string{{":status", "200"}, {"connection", "close"}, {"x-kept", "2"}}, true, false, []string{":status: 200", "x-kept: 2"}},
		{"response, nominations in several fields", [][2]string{{":status", "200"}, {"connection", "X-A"}, {"connection", "keep-alive, x-b"},
			{"x-a", "1"}, {"connection", "close"}, {"connection", ","}, {"connection", "x-c"}, {"x-b", "2"}, {"x-c", "3"}, {"x-kept", "2"}}, true, false,
			[]string{":status: 200", "x-kept: 2"}},
		{"response, none", [][2]string{{":status", "200"}, {"x-kept", "2"}}, true, false, []string{":status: 200", "x-kept: 2"}},
		// Nominated hop-by-hop names, present or not (nginx's
		// "Connection: keep-alive" has no Keep-Alive field to remove).
		{"response, nominated hop names present and absent", [][2]string{{":status", "200"}, {"connection", "keep-alive, TE, upgrade, x-a"}, {"te", "trailers"},
			{"x-a", "1"}, {"upgrade", "h2c"}, {"x-kept", "2"}}, true, false, []string{":status: 200", "x-kept: 2"}},
		{"response, nginx's keep-alive", [][2]string{{":status", "200"}, {"content-length", "5"}, {"Connection", "Keep-Alive"}, {"x-kept", "2"}}, true, false,
			[]string{":status: 200", "content-length: 5", "x-kept: 2"}},
		{"response, keep-alive nominated and present", [][2]string{{":status", "200"}, {"connection", "keep-alive"}, {"keep-alive", "timeout=5"}, {"x-kept", "2"}}, true, false,
			[]string{":status: 200", "x-kept: 2"}},
		{"response, close nominates a field called close", [][2]string{{":status", "200"}, {"connection", "close"}, {"close", "1"}, {"x-kept", "2"}}, true, false,
			[]string{":status: 200", "x-kept: 2"}},
		{"response, upgrade, Connection nominating itself", [][2]string{{":status", "101"}, {"connection", "upgrade, connection, keep-alive"},
			{"upgrade", "websocket"}, {"keep-alive", "timeout=5"}, {"x-kept", "2"}}, true, true, []string{":status: 101", "upgrade: websocket", "x-kept: 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m stream.HeaderMap
			for _, f := range tc.in {
				m.Add(f[0], f[1])
			}
			if tc.response {
				trailer := m.Has("trailer")
				if got := removeHopHeaders(&m, tc.upgrade); got != trailer {
					t.Fatalf("removeHopHeaders says trailer %v, the map had one: %v", got, trailer)
				}
			} else {
				removeFixedHopHeaders(&m, hopMask(&m), tc.upgrade)
			}
			var got []string
			for name, value := range m.All() {
				got = append(got, string(name)+": "+string(value))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestSetForwarded: the client's address is appended to the
// X-Forwarded-For the request came with (its fields joined into one, in
// the first one's place), the scheme set, the host added when absent.
func TestSetForwarded(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       [][2]string
		clientIP string
		want     []string
	}{
		{"none before", [][2]string{{":authority", "h"}, {"x-a", "1"}}, "10.0.0.1",
			[]string{":authority: h", "x-a: 1", "x-forwarded-for: 10.0.0.1", "x-forwarded-proto: http", "x-forwarded-host: h"}},
		{"appended to the fields before", [][2]string{{"x-forwarded-for", "203.0.113.7"}, {"x-a", "1"}, {"X-Forwarded-For", "198.51.100.2, 192.0.2.1"}, {"x-forwarded-host", "orig"}}, "10.0.0.1",
			[]string{"x-forwarded-for: 203.0.113.7, 198.51.100.2, 192.0.2.1, 10.0.0.1", "x-a: 1", "x-forwarded-host: orig", "x-forwarded-proto: http"}},
		{"a long chain", [][2]string{{"x-forwarded-for", strings.Repeat("192.0.2.1, ", 40) + "192.0.2.2"}}, "10.0.0.1",
			[]string{"x-forwarded-for: " + strings.Repeat("192.0.2.1, ", 40) + "192.0.2.2, 10.0.0.1", "x-forwarded-proto: http"}},
		{"no client address", [][2]string{{"x-forwarded-for", "203.0.113.7"}}, "",
			[]string{"x-forwarded-for: 203.0.113.7", "x-forwarded-proto: http"}},
		{"a proto and a host before", [][2]string{{":authority", "h"}, {"X-Forwarded-Proto", "https"}, {"x-a", "1"}, {"x-forwarded-proto", "ftp"}, {"x-forwarded-host", "orig"}}, "10.0.0.1",
			[]string{":authority: h", "x-forwarded-proto: http", "x-a: 1", "x-forwarded-host: orig", "x-forwarded-for: 10.0.0.1"}},
		{"no host", [][2]string{{"x-a", "1"}}, "",
			[]string{"x-a: 1", "x-forwarded-proto: http"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m stream.HeaderMap
			for _, f := range tc.in {
				m.Add(f[0], f[1])
			}
			host, _ := m.Get(stream.Authority)
			setForwarded(&m, tc.clientIP, "http", host)
			var got []string
			for name, value := range m.All() {
				got = append(got, string(name)+": "+string(value))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestOwnFieldsChecked: the fields the proxy adds marked checked
// (stream.HeaderMap.AddChecked: a writer copies them without looking)
// are those whose bytes it made: a new x-request-id (its form is
// TestFormatRequestID's) and an X-Forwarded-Proto of http or https. Any
// other scheme is added unmarked and checked when written. X-Forwarded-For
// and -Host are marked only when their values hold no CTL.
func TestOwnFieldsChecked(t *testing.T) {
	checkedOf := func(m *stream.HeaderMap, name string) (checked, found bool) {
		for i := range m.Len() {
			if n, _ := m.At(i); string(n) == name {
				return m.Checked(i), true
			}
		}
		return false, false
	}
	for _, tc := range []struct {
		scheme  string
		checked bool
	}{{"http", true}, {"https", true}, {"HTTP", false}, {"ht\rtp", false}, {"http ", false}} {
		var m stream.HeaderMap
		m.Add("x-a", "1")
		setForwarded(&m, "", tc.scheme, nil)
		v, _ := m.Get("x-forwarded-proto")
		if c, ok := checkedOf(&m, "x-forwarded-proto"); !ok || c != tc.checked || string(v) != tc.scheme {
			t.Errorf("scheme %q: x-forwarded-proto %q present %v checked %v, want checked %v", tc.scheme, v, ok, c, tc.checked)
		}
	}
	// X-Forwarded-For (without one before it) and X-Forwarded-Host are
	// marked when their values are clean (stream.HeaderMap.AddClean); a
	// host with a CTL is added unmarked, for the writer to refuse.
	for _, tc := range []struct {
		host    string
		checked bool
	}{{"h.example:8080", true}, {"h\tx", true}, {"h\r\nx-evil: 1", false}, {"h\x7f", false}} {
		var m stream.HeaderMap
		m.Add("x-a", "1")
		setForwarded(&m, "2001:db8::1", "http", []byte(tc.host))
		xff, _ := m.Get("x-forwarded-for")
		if c, ok := checkedOf(&m, "x-forwarded-for"); !ok || !c || string(xff) != "2001:db8::1" {
			t.Errorf("x-forwarded-for %q present %v checked %v, want checked", xff, ok, c)
		}
		xfh, _ := m.Get("x-forwarded-host")
		if c, ok := checkedOf(&m, "x-forwarded-host"); !ok || c != tc.checked || string(xfh) != tc.host {
			t.Errorf("host %q: x-forwarded-host %q present %v checked %v, want checked %v", tc.host, xfh, ok, c, tc.checked)
		}
	}
	var x activeStream
	var m stream.HeaderMap
	x.setRequestID(&m, true)
	if c, ok := checkedOf(&m, "x-request-id"); !ok || !c {
		t.Errorf("new x-request-id: present %v checked %v", ok, c)
	}
	var client stream.HeaderMap
	client.Add("x-request-id", "")
	x.setRequestID(&client, true)
	if c, ok := checkedOf(&client, "x-request-id"); !ok || c {
		t.Errorf("x-request-id set over a client's empty one: present %v checked %v", ok, c)
	}
}

// TestRequestMask: requestMask's hop-by-hop bits are hopMask's, and its
// X-Forwarded-* bits mark exactly the fields the request has.
func TestRequestMask(t *testing.T) {
	names := append(slices.Clone(hopHeaders), "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "host", "x-forwarded", "tee")
	for i, name := range names {
		var m stream.HeaderMap
		m.Add("accept", "*/*")
		m.Add(name, "v")
		got := requestMask(&m)
		if got&hopBits != hopMask(&m) {
			t.Errorf("%s: requestMask's hop bits %b, hopMask %b", name, got&hopBits, hopMask(&m))
		}
		want := uint16(0)
		if i < len(hopHeaders) {
			want = 1 << i
		} else if i < len(hopHeaders)+3 {
			want = fwdFor << (i - len(hopHeaders))
		}
		if got != want {
			t.Errorf("%s: requestMask %b, want %b", name, got, want)
		}
	}
}

// TestRemoveResponseHopsStreaming: the streaming type removeResponseHops
// finds in its walk is isStreamingType's of the map.
func TestRemoveResponseHopsStreaming(t *testing.T) {
	for _, fields := range [][][2]string{
		{{":status", "200"}, {"content-type", "application/grpc+proto"}},
		{{":status", "200"}, {"Content-Type", "text/event-stream; charset=utf-8"}, {"connection", "keep-alive"}},
		{{":status", "200"}, {"content-type", "text/plain"}},
		{{":status", "200"}, {"content-type", "text/plain"}, {"content-type", "application/grpc"}},
		{{":status", "200"}, {"content-type", "application/grpc"}, {"content-type", "text/plain"}},
		{{":status", "200"}, {"content-length", "5"}},
		{{":status", "200"}, {"x-content-type", "application/grpc"}},
	} {
		var m stream.HeaderMap
		for _, f := range fields {
			m.Add(f[0], f[1])
		}
		want := isStreamingType(&m)
		if _, got := removeResponseHops(&m, false); got != want {
			t.Errorf("%v: streaming %v, isStreamingType %v", fields, got, want)
		}
	}
}
