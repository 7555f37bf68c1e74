package signature

import (
	"errors"
	"testing"

	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

func TestVerifySignatureEncoding(t *testing.T) {
	want := "\x05\x00\x00\x00RS256\x03\x00\x00\x00key\x03\x00\x00\x00msg\x01\x00\x00\x00s"
	if got := signatureArgs("RS256", []byte("key"), []byte("msg"), []byte("s")); string(got) != want {
		t.Errorf("args %q, want %q", got, want)
	}
	for _, tc := range []struct {
		out   []byte
		err   error
		valid bool
		want  string
	}{
		{out: []byte{1}, valid: true},
		{out: []byte{0}},
		{out: []byte("\x02RSA key too small"), want: "unusable key: RSA key too small"},
		{err: types.ErrorStatusNotFound, want: types.ErrorStatusNotFound.Error()},
		{out: nil, want: types.ErrorStatusInternalFailure.Error()},
		{out: []byte{1, 1}, want: types.ErrorStatusInternalFailure.Error()},
	} {
		valid, err := signatureResult(tc.out, tc.err)
		if valid != tc.valid || (err == nil) != (tc.want == "") || (err != nil && err.Error() != tc.want) {
			t.Errorf("host %q %v: %v %v, want %v %q", tc.out, tc.err, valid, err, tc.valid, tc.want)
		}
	}
	var uk *UnusableKeyError
	if _, err := signatureResult([]byte("\x02x"), nil); !errors.As(err, &uk) || uk.Reason != "x" {
		t.Errorf("not an UnusableKeyError: %v", err)
	}
	// Natively the hostcalls are stubs: the call reaches them.
	if _, err := Verify("RS256", nil, nil, nil); err == nil {
		t.Error("no error from the native stub")
	}
}
