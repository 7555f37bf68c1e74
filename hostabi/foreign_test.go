package hostabi

import "testing"

func TestForeignFunctions(t *testing.T) {
	p, _, _ := runHeaders(t, `request_headers: ffi_roundtrip hello\sworld | ffi nope x | ffi uncompress garbage | ffi declare_property x`, newTestStream())
	wantLogs(t, p.Name(),
		"request_headers ffi_roundtrip: status=0 status=0 hello world",
		`request_headers ffi: status=1 len=0 ""`,
		`request_headers ffi: status=3 len=0 ""`,
		`request_headers ffi: status=0 len=0 ""`)
}
