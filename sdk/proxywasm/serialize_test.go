package proxywasm

import (
	"bytes"
	"reflect"
	"testing"
)

func TestSerializeMapRoundTrip(t *testing.T) {
	tests := [][][2]string{
		{},
		{{":method", "GET"}},
		{{":path", "/a?b=c"}, {"x-empty", ""}, {"", "v"}, {"k", "v\x00w"}},
	}
	for _, pairs := range tests {
		b := SerializeMap(pairs)
		got := DeserializeMap(b)
		if len(pairs) == 0 && len(got) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, pairs) {
			t.Errorf("round trip of %q = %q", pairs, got)
		}
	}
}

func TestSerializeMapLayout(t *testing.T) {
	got := SerializeMap([][2]string{{"a", "bc"}})
	want := []byte{1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 'a', 0, 'b', 'c', 0}
	if !bytes.Equal(got, want) {
		t.Errorf("SerializeMap = %v, want %v", got, want)
	}
}

func TestDeserializeMapMalformed(t *testing.T) {
	tests := map[string][]byte{
		"nil":             nil,
		"single zero":     {0},
		"count too large": {200, 0, 0, 0, 1, 0, 0, 0},
		"lengths overrun": {1, 0, 0, 0, 9, 0, 0, 0, 9, 0, 0, 0, 'a', 0},
	}
	for name, b := range tests {
		if got := DeserializeMap(b); len(got) != 0 {
			t.Errorf("%s: DeserializeMap = %q, want nothing", name, got)
		}
	}
}

func TestSerializePath(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"plugin_root_id"}, "plugin_root_id"},
		{[]string{"request", "path"}, "request\x00path"},
	}
	for _, tc := range tests {
		if got := string(serializePath(tc.in)); got != tc.want {
			t.Errorf("serializePath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestUint64Codec(t *testing.T) {
	for _, v := range []uint64{0, 1, 443, 1 << 40, ^uint64(0)} {
		got, err := DecodeUint64(EncodeUint64(v))
		if err != nil || got != v {
			t.Errorf("round trip %d = %d, %v", v, got, err)
		}
	}
	if _, err := DecodeUint64([]byte{1, 2, 3}); err == nil {
		t.Error("DecodeUint64 of 3 bytes: no error")
	}
	if got, _ := DecodeUint64([]byte{0xbb, 0x01, 0, 0, 0, 0, 0, 0}); got != 443 {
		t.Errorf("little endian 443 decoded as %d", got)
	}
}

func TestHostOnly(t *testing.T) {
	tests := map[string]string{
		"10.0.0.1:5555":  "10.0.0.1",
		"10.0.0.1":       "10.0.0.1",
		"[::1]:8080":     "::1",
		"::1":            "::1",
		"[fe80::1]":      "fe80::1",
		"example.com:80": "example.com",
	}
	for in, want := range tests {
		if got := HostOnly(in); got != want {
			t.Errorf("HostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}
