package http1

import (
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
