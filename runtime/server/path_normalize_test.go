package server

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// rawGet sends target verbatim in an HTTP/1.1 request line on conn (so no
// client library cleans it) and returns the status, the body and the
// Location header.
func rawGet(t *testing.T, conn net.Conn, host, target string) (int, string, string) {
	t.Helper()
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Location")
}

// requestURIApp answers with the request-target exactly as it arrived.
func requestURIApp(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name+" "+r.RequestURI)
	}
}

// TestMeshAuthorizationPathSpellings: a mesh peer with a valid certificate
// sends each spelling of a protected path straight to a sidecar's inbound
// side. With DENY /admin, /admin/* none reaches the app; with ALLOW
// /public/* only paths that are really under /public do; and what the app
// sees is the normalized path, the query as sent.
func TestMeshAuthorizationPathSpellings(t *testing.T) {
	pki := newMeshPKI(t, "example.org")
	app := startEcho(t, "app", requestURIApp("app"))
	sCert, sKey := pki.issue("payments", idPayments, time.Time{}, time.Hour)
	cCert, cKey := pki.issue("orders", idOrders, time.Time{}, time.Hour)
	sidecars := map[string]*testServer{
		"deny": startServer(t, sidecarConfig(sCert, sKey, pki.bundle(), app.addr, "strict", `
[[authorization]]
action = "DENY"
to = { paths = ["/admin", "/admin/*"] }
`)),
		"allow": startServer(t, sidecarConfig(sCert, sKey, pki.bundle(), app.addr, "strict", `
[[authorization]]
action = "ALLOW"
to = { paths = ["/public/*"] }
`)),
	}
	const denied = 403
	tests := []struct {
		policy, target string
		status         int
		app            string // what the app saw, when status is 200
	}{
		// The issue's spellings.
		{"deny", "/admin", denied, ""},
		{"deny", "//admin", denied, ""},
		{"deny", "///admin/x", denied, ""},
		{"deny", "/./admin", denied, ""},
		{"deny", "/public/../admin", denied, ""},
		{"deny", "/public/%2e%2e/admin", denied, ""},
		{"deny", "/admin;x", denied, ""},
		{"allow", "/public/../admin", denied, ""},
		{"allow", "/public/..;/admin", denied, ""},
		// More.
		{"deny", "/public/%2E%2E/admin", denied, ""},
		{"deny", "/%61dmin", denied, ""},
		{"deny", "/admin/.", denied, ""},
		{"deny", "/admin/", denied, ""},
		{"deny", "/admin//x", denied, ""},
		{"deny", "/admin/x/../y", denied, ""},
		{"deny", "/admin?x=..", denied, ""},
		{"deny", "/admin;jsessionid=1/x", denied, ""},
		{"deny", `/public\..\admin`, denied, ""},
		{"deny", "/admin%2Fx", denied, ""}, // kept escaped, but routing and authorization see /admin/x
		{"deny", "/admin%2fx", denied, ""},
		{"deny", "/admin%5Cx", 200, "app /admin%5Cx"}, // an escaped backslash is not a separator here
		{"deny", "/public/..%2Fadmin", 400, ""},
		{"deny", "/public/..%2fadmin", 400, ""},
		{"deny", "/public/..%5Cadmin", 400, ""},
		{"deny", "/%2Fadmin", 400, ""},
		{"deny", "/..", 400, ""},
		{"deny", "/public/../../admin", 400, ""},
		{"deny", "/admin%00", 400, ""},
		{"deny", "/adm%zzin", 400, ""},
		{"deny", "/ADMIN", 200, "app /ADMIN"}, // paths are case-sensitive
		{"deny", "/Admin/x", 200, "app /Admin/x"},
		{"deny", "/administrator", 200, "app /administrator"},
		{"deny", "/public/x", 200, "app /public/x"},
		{"deny", "/public/./x//y/?q=/../admin&r=%2e", 200, "app /public/x/y/?q=/../admin&r=%2e"},
		{"deny", "/public/x;jsessionid=1", 200, "app /public/x"},
		{"deny", "/public/a%3bb", 200, "app /public/a%3Bb"},
		{"deny", "/public/caf%c3%a9", 200, "app /public/caf%C3%A9"},
		{"allow", "/public/x", 200, "app /public/x"},
		{"allow", "/public//x", 200, "app /public/x"},
		{"allow", "//public/x", 200, "app /public/x"},
		{"allow", "/public/y/../x", 200, "app /public/x"},
		{"allow", "/public/%2e%2e/admin", denied, ""},
		{"allow", "/public/%2e%2E/%2e%2e/admin", 400, ""},
		{"allow", "/public/..%2Fadmin", 400, ""},
		{"allow", "/public%2F..%2Fadmin", 400, ""},
		{"allow", "/public", denied, ""},
		{"allow", "/admin", denied, ""},
	}
	tlsCfg := pki.clientTLS(cCert, cKey)
	tlsCfg.NextProtos = []string{"http/1.1"}
	for _, tt := range tests {
		t.Run(tt.policy+" "+tt.target, func(t *testing.T) {
			conn, err := tls.Dial("tcp", sidecars[tt.policy].ListenerAddr("inbound"), tlsCfg)
			if err != nil {
				t.Fatal(err)
			}
			status, body, _ := rawGet(t, conn, "payments", tt.target)
			switch {
			case status != tt.status:
				t.Errorf("status %d (%q), want %d", status, body, tt.status)
			case status == denied && body != "RBAC: access denied":
				t.Errorf("denied with %q, want the RBAC body", body)
			case status == 200 && body != tt.app:
				t.Errorf("app saw %q, want %q", body, tt.app)
			}
		})
	}

	// HTTP/2 peers' :path goes through the same normalization.
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{TLSClientConfig: pki.clientTLS(cCert, cKey)}}
	for _, tt := range []struct{ target, want string }{
		{"/public/../admin", "403"},
		{"/public/%2e%2e/admin", "403"},
		{"/public/x/../y", "200 app /public/y"},
	} {
		req := &http.Request{Method: "GET", Host: "payments", Header: http.Header{},
			URL: &url.URL{Scheme: "https", Host: sidecars["deny"].ListenerAddr("inbound"), Opaque: tt.target}}
		resp, err := h2.Do(req)
		if err != nil {
			t.Fatalf("h2 %s: %v", tt.target, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := fmt.Sprint(resp.StatusCode)
		if resp.StatusCode == 200 {
			got += " " + string(b)
		}
		if got != tt.want || resp.ProtoMajor != 2 {
			t.Errorf("h2 %s: %s over HTTP/%d, want %s over HTTP/2", tt.target, got, resp.ProtoMajor, tt.want)
		}
	}
}

// TestMeshPairPathSpelling goes through both sidecars: the calling side
// normalizes too, and the callee's DENY still holds.
func TestMeshPairPathSpelling(t *testing.T) {
	m := startTwoSidecarsApp(t, requestURIApp("app"), `
[[authorization]]
action = "DENY"
to = { paths = ["/admin", "/admin/*"] }
`, "")
	for _, tt := range []struct {
		target string
		status int
		app    string
	}{
		{"//admin", 403, ""},
		{"/public/%2e%2e/admin", 403, ""},
		{"/admin;x", 403, ""},
		{"/public/..%2Fadmin", 400, ""},
		{"/public/./x?y=..", 200, "app /public/x?y=.."},
	} {
		conn, err := net.Dial("tcp", m.a.ListenerAddr("outbound"))
		if err != nil {
			t.Fatal(err)
		}
		status, body, _ := rawGet(t, conn, "payments", tt.target)
		if status != tt.status || tt.status == 200 && body != tt.app {
			t.Errorf("%s: %d %q, want %d %q", tt.target, status, body, tt.status, tt.app)
		}
	}
}

// TestEdgeRoutePathSpellings: an edge route sends /admin to its own
// cluster; every spelling of /admin is routed there, with the normalized
// path, never to the catch-all route's cluster. Listeners with other path
// options show what each does.
func TestEdgeRoutePathSpellings(t *testing.T) {
	admin := startEcho(t, "admin", requestURIApp("admin"))
	app := startEcho(t, "app", requestURIApp("app"))
	ts := startServer(t, baseConfig(fmt.Sprintf(`
[[listeners]]
name = "none"
address = "127.0.0.1:0"
path_normalization = "NONE"

[[listeners]]
name = "base"
address = "127.0.0.1:0"
path_normalization = "BASE"
path_parameters = "KEEP"

[[listeners]]
name = "decode"
address = "127.0.0.1:0"
path_normalization = "DECODE_AND_MERGE_SLASHES"

[[listeners]]
name = "redirect"
address = "127.0.0.1:0"
path_with_escaped_slashes = "UNESCAPE_AND_REDIRECT"
path_parameters = "REJECT"

[[routes]]
name = "admin"
match = { path_prefix = "/admin" }
backends = [ { cluster = "admin" } ]

[[routes]]
name = "app"
match = { path_prefix = "/" }
backends = [ { cluster = "app" } ]

[[clusters]]
name = "admin"
endpoints = [%q]

[[clusters]]
name = "app"
endpoints = [%q]
`, admin.addr, app.addr)))
	tests := []struct {
		listener, target string
		want             string // "STATUS" or "200 UPSTREAM PATH"
	}{
		{"public", "/admin/x", "200 admin /admin/x"},
		{"public", "//admin", "200 admin /admin"},
		{"public", "///admin/x", "200 admin /admin/x"},
		{"public", "/./admin", "200 admin /admin"},
		{"public", "/public/../admin", "200 admin /admin"},
		{"public", "/public/%2e%2e/admin", "200 admin /admin"},
		{"public", "/admin;x", "200 admin /admin"},
		{"public", "/public/..;/admin", "200 admin /admin"},
		{"public", "/%61dmin?q=%2e", "200 admin /admin?q=%2e"},
		{"public", "/admin%2Fx", "200 admin /admin%2Fx"},
		{"public", "/public/..%2Fadmin", "400"},
		{"public", "/public/../../admin", "400"},
		{"public", "/ADMIN", "200 app /ADMIN"},
		{"public", "/public/x", "200 app /public/x"},
		// NONE: the path as received, routed on its decoded form.
		{"none", "//admin", "200 app //admin"},
		{"none", "/public/../admin", "200 app /public/../admin"},
		// BASE keeps "//" and, with path_parameters = "KEEP", ";".
		{"base", "//admin", "200 app //admin"},
		{"base", "/public/../admin", "200 admin /admin"},
		{"base", "/public/..;/admin", "200 app /public/..;/admin"},
		// DECODE_AND_MERGE_SLASHES: %2F is a slash.
		{"decode", "/public/..%2Fadmin", "200 admin /admin"},
		{"decode", "/admin%2f%2Fx", "200 admin /admin/x"},
		// UNESCAPE_AND_REDIRECT and path_parameters = "REJECT".
		{"redirect", "/public/..%2Fadmin?q=1", "307 /admin?q=1"},
		{"redirect", "/admin;x", "400"},
	}
	for _, tt := range tests {
		t.Run(tt.listener+" "+tt.target, func(t *testing.T) {
			conn, err := net.Dial("tcp", ts.ListenerAddr(tt.listener))
			if err != nil {
				t.Fatal(err)
			}
			status, body, loc := rawGet(t, conn, "example.com", tt.target)
			got := fmt.Sprint(status)
			switch status {
			case 200:
				got += " " + body
			case 307:
				got += " " + loc
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	// The access log names the refused path's reason, as Envoy's details.
	conn, err := net.Dial("tcp", ts.ListenerAddr("public"))
	if err != nil {
		t.Fatal(err)
	}
	rawGet(t, conn, "example.com", "/a/%00")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(fmt.Sprint(ts.logs.All()), "path_normalization_failed") {
		if time.Now().After(deadline) {
			t.Fatal("no access log line with path_normalization_failed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFiltersSeeNormalizedPath: a Wasm filter's ":path" is the normalized
// path, as on Envoy, since normalization runs before the filter chain.
func TestFiltersSeeNormalizedPath(t *testing.T) {
	app := startEcho(t, "app", requestURIApp("app"))
	ts := startServer(t, baseConfig(fmt.Sprintf(`
[[plugins]]
name = "peek"
wasm = %q
config_raw = "request_headers: hdr_get 0 :path\n"

[[routes]]
name = "app"
plugins = ["peek"]
backends = [ { cluster = "app" } ]

[[clusters]]
name = "app"
endpoints = [%q]
`, rawabiWasm(t), app.addr)))
	conn, err := net.Dial("tcp", ts.ListenerAddr("public"))
	if err != nil {
		t.Fatal(err)
	}
	if status, body, _ := rawGet(t, conn, "example.com", "//x/./y/..;p/%7Ez?q=/../"); status != 200 || body != "app /x/~z?q=/../" {
		t.Fatalf("%d %q", status, body)
	}
	const want = "request_headers hdr_get: status=0 /x/~z?q=/../"
	deadline := time.Now().Add(5 * time.Second)
	for {
		var msgs []string
		for _, e := range ts.logs.All() {
			msgs = append(msgs, e.Message)
		}
		all := strings.Join(msgs, "\n")
		if strings.Contains(all, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the filter's :path is not %q; log:\n%s", want, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
