package keyauth

import (
	"errors"
	"strings"
	"testing"
)

func noFile(string, string) ([]byte, error) { return nil, errors.New("no files here") }

func TestCheck(t *testing.T) {
	const cfg = `{"key_names":["apikey","x-api-key"],"keys":[{"key":"k1","consumer":"alice"},{"key":"k2","consumer":"bob"}]}`
	const hidden = `{"hide_credentials":true,"keys":[{"key":"k1","consumer":"alice"}]}`
	const anon = `{"anonymous":"guest","keys":[{"key":"k1","consumer":"alice"}]}`
	const noPreflight = `{"run_on_preflight":false,"keys":[{"key":"k1","consumer":"alice"}]}`
	tests := []struct {
		name      string
		cfg       string
		headers   [][2]string
		status    uint32
		msg       string
		consumer  string
		anonymous bool
		removeHdr string
		newPath   string
		skip      bool
	}{
		{name: "no key", cfg: cfg, headers: h("GET", "/"), status: 401, msg: "No API key found in request"},
		{name: "wrong key", cfg: cfg, headers: h("GET", "/", "apikey", "nope"), status: 401, msg: "Unauthorized"},
		{name: "header key", cfg: cfg, headers: h("GET", "/", "ApiKey", "k1"), consumer: "alice"},
		{name: "second name", cfg: cfg, headers: h("GET", "/", "x-api-key", "k2"), consumer: "bob"},
		{name: "query key", cfg: cfg, headers: h("GET", "/a?x=1&apikey=k2"), consumer: "bob"},
		{name: "empty key", cfg: cfg, headers: h("GET", "/", "apikey", ""), status: 401, msg: "No API key"},
		{name: "hide header", cfg: hidden, headers: h("GET", "/", "apikey", "k1"), consumer: "alice", removeHdr: "apikey"},
		{name: "hide query", cfg: hidden, headers: h("GET", "/a?apikey=k1&b=2"), consumer: "alice", newPath: "/a?b=2"},
		{name: "hide only query", cfg: hidden, headers: h("GET", "/a?apikey=k1"), consumer: "alice", newPath: "/a"},
		{name: "anonymous", cfg: anon, headers: h("GET", "/"), consumer: "guest", anonymous: true},
		{name: "anonymous wrong key", cfg: anon, headers: h("GET", "/", "apikey", "x"), consumer: "guest", anonymous: true},
		{name: "preflight skipped", cfg: noPreflight, headers: h("OPTIONS", "/"), skip: true},
		{name: "preflight checked", cfg: cfg, headers: h("OPTIONS", "/"), status: 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse([]byte(tc.cfg), noFile)
			if err != nil {
				t.Fatal(err)
			}
			r := a.Check(tc.headers)
			if r.Reply.Status != tc.status {
				t.Fatalf("status = %d, want %d", r.Reply.Status, tc.status)
			}
			if tc.status != 0 {
				if !strings.Contains(string(r.Reply.Body), tc.msg) {
					t.Errorf("body = %s, want it to contain %q", r.Reply.Body, tc.msg)
				}
				if !hasHeader(r.Reply.Headers, "www-authenticate", `Key realm="sluice"`) {
					t.Errorf("no WWW-Authenticate in %q", r.Reply.Headers)
				}
				return
			}
			if r.Consumer != tc.consumer || r.Anonymous != tc.anonymous || r.RemoveHeader != tc.removeHdr ||
				r.NewPath != tc.newPath || r.Skip != tc.skip {
				t.Errorf("result = %+v", r)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]string{
		"body":          `{"key_in_body":true}`,
		"missing":       `{"keys":[{"key":"k"}]}`,
		"unknown field": `{"key_name":["a"]}`,
		"file":          `{"keys_file":"/nope.json"}`,
	}
	for name, cfg := range tests {
		if _, err := Parse([]byte(cfg), noFile); err == nil {
			t.Errorf("%s: Parse(%s) succeeded", name, cfg)
		}
	}
	a, err := Parse([]byte(`{"keys_file":"k.json"}`), func(string, string) ([]byte, error) {
		return []byte(`[{"key":"fk","consumer":"carol"}]`), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := a.Check(h("GET", "/", "apikey", "fk")); r.Consumer != "carol" {
		t.Errorf("key from file: consumer = %q, want carol", r.Consumer)
	}
}

func h(method, path string, kv ...string) [][2]string {
	out := [][2]string{{":method", method}, {":path", path}, {":authority", "example.com"}}
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, [2]string{kv[i], kv[i+1]})
	}
	return out
}

func hasHeader(hs [][2]string, k, v string) bool {
	for _, kv := range hs {
		if strings.EqualFold(kv[0], k) && kv[1] == v {
			return true
		}
	}
	return false
}
