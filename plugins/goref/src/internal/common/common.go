// Package common holds what several built-in plugins share: strict config
// decoding, header lookups, Kong-style JSON replies and the shared-data
// counter behind the rate limiters.
package common

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"

	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// DecodeConfig reads a plugin's JSON configuration into v, which holds the
// defaults. Unknown keys are errors, so a misspelt key is caught when the
// plugin loads rather than silently ignored.
func DecodeConfig(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
			if s := suggestKey(m[1], jsonKeys(reflect.TypeOf(v), nil, map[reflect.Type]bool{})); s != "" {
				return fmt.Errorf("config: %w; did you mean %q?", err, s)
			}
		}
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// unknownField finds the key in encoding/json's "unknown field" error.
var unknownField = regexp.MustCompile(`^json: unknown field "([^"]+)"`)

// jsonKeys lists the JSON keys of t's structs, nested ones too: the
// decoder's error does not say at which depth the unknown key was.
func jsonKeys(t reflect.Type, keys []string, seen map[reflect.Type]bool) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return keys
	}
	seen[t] = true
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		keys = append(keys, name)
		keys = jsonKeys(f.Type, keys, seen)
	}
	return keys
}

// suggestKey returns the key closest to k by edit distance when it is
// close enough to be a misspelling, by the host's config check's rule
// (runtime/config.Suggest; a guest module cannot import the host's
// packages, hence the copy).
func suggestKey(k string, keys []string) string {
	best, bestD := "", len(k)+1
	for _, name := range keys {
		if d := editDistance(strings.ToLower(k), strings.ToLower(name)); d < bestD {
			best, bestD = name, d
		}
	}
	if bestD <= 2 || bestD <= len(k)/3 {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Header returns the first value of a header, matched case-insensitively.
func Header(h [][2]string, name string) (string, bool) {
	for _, kv := range h {
		if strings.EqualFold(kv[0], name) {
			return kv[1], true
		}
	}
	return "", false
}

// JSONMessage is Kong's error body: {"message":"..."}.
func JSONMessage(msg string) []byte {
	b, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	return b
}

// Reply is a local response a plugin decided on; Status 0 means none.
type Reply struct {
	Status  uint32
	Headers [][2]string
	Body    []byte
}

// JSONReply builds a Kong-style JSON error reply.
func JSONReply(status uint32, msg string, extra ...[2]string) Reply {
	h := append([][2]string{{"content-type", "application/json; charset=utf-8"}}, extra...)
	return Reply{Status: status, Headers: h, Body: JSONMessage(msg)}
}

// Send sends the reply as a local response, logging a failure; the caller
// returns ActionPause either way.
func (r Reply) Send() {
	if err := proxywasm.SendHttpResponse(r.Status, r.Headers, r.Body, -1); err != nil {
		proxywasm.LogErrorf("sending local response %d: %v", r.Status, err)
	}
}

// SplitPath splits ":path" into the path and the raw query (without "?").
func SplitPath(p string) (path, query string) {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return p, ""
}

// Cookie returns a cookie's value from a Cookie header.
func Cookie(cookieHeader, name string) (string, bool) {
	for _, part := range strings.Split(cookieHeader, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && k == name {
			return v, true
		}
	}
	return "", false
}

// ClientIP is the downstream peer's IP, from the source.address property.
func ClientIP() string {
	ip, err := proxywasm.GetSourceIP()
	if err != nil {
		return ""
	}
	return ip
}

// NowNanos is the host's clock.
func NowNanos() int64 {
	t, err := proxywasm.GetCurrentTimeNanoseconds()
	if err != nil {
		proxywasm.LogWarnf("reading host time: %v", err)
	}
	return t
}

// LoadConfig reads the plugin configuration in OnPluginStart and decodes it
// with parse; on failure it logs why, and the caller refuses the start.
func LoadConfig(plugin string, parse func([]byte) error) bool {
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil && err != types.ErrorStatusNotFound && err != types.ErrorStatusEmpty {
		proxywasm.LogCriticalf("%s: reading configuration: %v", plugin, err)
		return false
	}
	if err := parse(data); err != nil {
		proxywasm.LogCriticalf("%s: %v", plugin, err)
		return false
	}
	return true
}

// ReadFile reads a file named by a *_file key. The file is read through
// WASI, so it works only where the host has pre-opened its directory.
func ReadFile(key, name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (the host must pre-open its directory; inline the value instead)", key, err)
	}
	return b, nil
}

// RequestHeaders reads the request headers, logging a failure.
func RequestHeaders(plugin string) [][2]string {
	h, err := proxywasm.GetHttpRequestHeaders()
	if err != nil {
		proxywasm.LogErrorf("%s: reading request headers: %v", plugin, err)
	}
	return h
}

// ResponseHeaders reads the response headers, logging a failure.
func ResponseHeaders(plugin string) [][2]string {
	h, err := proxywasm.GetHttpResponseHeaders()
	if err != nil {
		proxywasm.LogErrorf("%s: reading response headers: %v", plugin, err)
	}
	return h
}

// Must logs a failed hostcall; plugins use it where the error changes
// nothing but deserves a line.
func Must(plugin, what string, err error) {
	if err != nil {
		proxywasm.LogErrorf("%s: %s: %v", plugin, what, err)
	}
}

// ConsumerProperty is the stream property key-auth and jwt set to the
// authenticated consumer, and the rate limiters read. A property, unlike
// the X-Consumer-Username header, cannot be sent by a client, so limits by
// consumer cannot be dodged by inventing one.
const ConsumerProperty = "sluice.consumer"

// SetConsumer records the authenticated consumer for later filters.
func SetConsumer(plugin, consumer string) {
	Must(plugin, "setting "+ConsumerProperty, proxywasm.SetProperty([]string{ConsumerProperty}, []byte(consumer)))
}

// Consumer is the consumer an earlier auth filter set, or "".
func Consumer() string {
	v, err := proxywasm.GetProperty([]string{ConsumerProperty})
	if err != nil {
		return ""
	}
	return string(v)
}

// HostRequest answers questions about the current request with hostcalls,
// one at a time, for logic that needs only a header or two.
type HostRequest struct{}

func (HostRequest) Header(name string) (string, bool) {
	v, err := proxywasm.GetHttpRequestHeader(name)
	return v, err == nil
}
func (HostRequest) Consumer() string { return Consumer() }
func (HostRequest) ClientIP() string { return ClientIP() }

// HeaderRequest answers from a header list, for tests and for code that
// already read every header.
type HeaderRequest struct {
	Headers      [][2]string
	ConsumerName string
	IP           string
}

func (r HeaderRequest) Header(name string) (string, bool) { return Header(r.Headers, name) }
func (r HeaderRequest) Consumer() string                  { return r.ConsumerName }
func (r HeaderRequest) ClientIP() string                  { return r.IP }
