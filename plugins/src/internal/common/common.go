// Package common holds what several built-in plugins share: strict config
// decoding, header lookups, Kong-style JSON replies and the shared-data
// counter behind the rate limiters.
package common

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
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
		return fmt.Errorf("config: %w", err)
	}
	return nil
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
