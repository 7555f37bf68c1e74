package http1

import (
	"fmt"
	"net/http"
	"testing"
)

// TestAppendCleanWritesControlsAsSpaces: a field's control characters
// (CR, LF, NUL, DEL; HTAB kept) become spaces wherever they are, and
// clean text is copied as it is, for both argument types.
func TestAppendCleanWritesControlsAsSpaces(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"text/plain; charset=utf-8", "text/plain; charset=utf-8"},
		{"a\tb", "a\tb"},
		{"\r\nX-Injected: 1", "  X-Injected: 1"},
		{"v\r\n\r\nHTTP/1.1 200 OK", "v    HTTP/1.1 200 OK"},
		{"end\x00", "end "},
		{"del\x7fx\x01", "del x "},
	} {
		if got := string(appendCleanString([]byte("p:"), tc.in)); got != "p:"+tc.want {
			t.Errorf("string %q: got %q, want %q", tc.in, got, "p:"+tc.want)
		}
		if got := string(appendClean([]byte("p:"), []byte(tc.in))); got != "p:"+tc.want {
			t.Errorf("bytes %q: got %q, want %q", tc.in, got, "p:"+tc.want)
		}
	}
}

// TestAppendStatusLine: the status line of common and uncommon codes.
func TestAppendStatusLine(t *testing.T) {
	for code, want := range map[int]string{
		http.StatusOK:       "HTTP/1.1 200 OK\r\n",
		http.StatusNotFound: "HTTP/1.1 404 Not Found\r\n",
		599:                 "HTTP/1.1 599 \r\n",
	} {
		if got := string(AppendStatusLine(nil, code)); got != want {
			t.Errorf("%d: got %q, want %q", code, got, want)
		}
	}
}

// TestForEachToken: a list's elements without their optional whitespace
// (SP and HTAB only), empty ones skipped.
func TestForEachToken(t *testing.T) {
	for in, want := range map[string]string{
		"keep-alive":          "[keep-alive]",
		" close ,\tUpgrade\t": "[close][Upgrade]",
		",, a ,,b,":           "[a][b]",
		"\t \t":               "",
		"x-a\x0b, y":          "[x-a\x0b][y]", // VT is not whitespace here
		"gzip,  chunked  ,":   "[gzip][chunked]",
		"":                    "",
	} {
		got := ""
		forEachToken([]byte(in), func(tok []byte) { got += "[" + string(tok) + "]" })
		if got != want {
			t.Errorf("%q: got %s, want %s", in, got, want)
		}
	}
}

// TestParseResponseFast holds parseResponse's common head to the long
// way (parseResponseSlow): the same response or the same error for heads
// near the common one, every one-byte change of them and every cut.
func TestParseResponseFast(t *testing.T) {
	heads := []string{
		"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 06 Dec 2026 17:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: keep-alive\r\n\r\nbody",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close, x\r\n\r\n",
		"HTTP/1.0 204 No Content\r\nX: a\tb\r\nContent-Lengtx: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX:  spaced  \r\n\r\n",
	}
	check := func(head string, lim Limits) {
		var fast, slow Response
		nF, errF := parseResponse([]byte(head), &fast, lim)
		nS, errS := parseResponseSlow([]byte(head), &slow, lim)
		if nF != nS || fmt.Sprint(errF) != fmt.Sprint(errS) {
			t.Fatalf("%q: %d %v, the long way %d %v", head, nF, errF, nS, errS)
		}
		if errS != nil {
			return
		}
		if fast.Status != slow.Status || fast.Minor != slow.Minor || fast.hasCL != slow.hasCL || fast.cl != slow.cl ||
			fast.hasTE != slow.hasTE || fast.closeTok != slow.closeTok || fast.keepAliveTok != slow.keepAliveTok ||
			fast.Header.Len() != slow.Header.Len() {
			t.Fatalf("%q: %+v, the long way %+v", head, fast, slow)
		}
		sameFields(t, head, &fast.Header, &slow.Header)
	}
	for _, head := range heads {
		for _, lim := range []Limits{{}, {MaxHeaders: 2}, {MaxHeaderBytes: 40}} {
			nearHeads(head, []byte{' ', ':', '\r', '\n', '\t', 'A', '1', 0x7f, ','}, func(h string) { check(h, lim) })
		}
	}
}
