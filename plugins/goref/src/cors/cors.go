// Package cors is the cors plugin (Kong's cors): preflight requests
// answered locally (or passed on), and CORS headers added to responses for
// allowed origins.
package cors

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

// Name is the plugin's root_id.
const Name = "cors"

// Config is Kong's cors schema.
type Config struct {
	// Origins allowed: exact ("https://app.example.com"), "*", or a regular
	// expression matched against the whole Origin. Empty means "*".
	Origins []string `json:"origins"`
	// Methods answered in Access-Control-Allow-Methods. Default Kong's list.
	Methods []string `json:"methods"`
	// Headers for Access-Control-Allow-Headers; empty echoes the preflight's
	// Access-Control-Request-Headers.
	Headers        []string `json:"headers"`
	ExposedHeaders []string `json:"exposed_headers"`
	Credentials    bool     `json:"credentials"`
	// MaxAge in seconds for Access-Control-Max-Age; 0 omits it.
	MaxAge int64 `json:"max_age"`
	// PreflightContinue passes preflights upstream instead of answering.
	PreflightContinue bool `json:"preflight_continue"`
	// PrivateNetwork answers Access-Control-Request-Private-Network.
	PrivateNetwork bool `json:"private_network"`
}

// CORS is a validated configuration.
type CORS struct {
	any       bool
	exact     map[string]bool
	patterns  []*regexp.Regexp
	methods   string
	headers   string
	exposed   string
	creds     bool
	maxAge    string
	cont      bool
	privateNW bool
}

var defaultMethods = []string{"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"}

// Parse validates a configuration.
func Parse(data []byte) (*CORS, error) {
	var c Config
	if err := common.DecodeConfig(data, &c); err != nil {
		return nil, err
	}
	x := &CORS{exact: map[string]bool{}, creds: c.Credentials, cont: c.PreflightContinue, privateNW: c.PrivateNetwork}
	if len(c.Origins) == 0 {
		x.any = true
	}
	for i, o := range c.Origins {
		switch {
		case o == "*":
			x.any = true
		case strings.ContainsAny(o, `\^$*+?()[]{}|`):
			re, err := regexp.Compile("^(?:" + o + ")$")
			if err != nil {
				return nil, fmt.Errorf("config: origins[%d]: %q is not a valid regular expression: %w", i, o, err)
			}
			x.patterns = append(x.patterns, re)
		default:
			x.exact[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
		}
	}
	methods := c.Methods
	if len(methods) == 0 {
		methods = defaultMethods
	}
	for i, m := range methods {
		if m == "" || strings.ToUpper(m) != m {
			return nil, fmt.Errorf("config: methods[%d]: %q must be an upper-case method name", i, m)
		}
	}
	x.methods = strings.Join(methods, ",")
	x.headers = strings.Join(c.Headers, ",")
	x.exposed = strings.Join(c.ExposedHeaders, ",")
	if c.MaxAge < 0 {
		return nil, fmt.Errorf("config: max_age: must not be negative")
	}
	if c.MaxAge > 0 {
		x.maxAge = strconv.FormatInt(c.MaxAge, 10)
	}
	return x, nil
}

// allowOrigin returns the Access-Control-Allow-Origin value for origin, or
// "" if the origin is not allowed.
func (x *CORS) allowOrigin(origin string) string {
	if x.any {
		if x.creds && origin != "" {
			// "*" is not allowed with credentials: echo the origin.
			return origin
		}
		return "*"
	}
	if origin == "" {
		return ""
	}
	if x.exact[strings.ToLower(strings.TrimSuffix(origin, "/"))] {
		return origin
	}
	for _, re := range x.patterns {
		if re.MatchString(origin) {
			return origin
		}
	}
	return ""
}

func (x *CORS) common(origin string) [][2]string {
	var h [][2]string
	allow := x.allowOrigin(origin)
	if allow == "" {
		return nil
	}
	h = append(h, [2]string{"access-control-allow-origin", allow})
	if allow != "*" {
		h = append(h, [2]string{"vary", "Origin"})
	}
	if x.creds {
		h = append(h, [2]string{"access-control-allow-credentials", "true"})
	}
	return h
}

// Preflight decides what to do with a request: a non-nil reply answers it
// (a preflight), nil lets it through.
func (x *CORS) Preflight(headers [][2]string) *common.Reply {
	method, _ := common.Header(headers, ":method")
	reqMethod, isPreflight := common.Header(headers, "access-control-request-method")
	if method != "OPTIONS" || !isPreflight || reqMethod == "" || x.cont {
		return nil
	}
	origin, _ := common.Header(headers, "origin")
	h := x.common(origin)
	if h != nil {
		h = append(h, [2]string{"access-control-allow-methods", x.methods})
		allowHeaders := x.headers
		if allowHeaders == "" {
			allowHeaders, _ = common.Header(headers, "access-control-request-headers")
		}
		if allowHeaders != "" {
			h = append(h, [2]string{"access-control-allow-headers", allowHeaders})
		}
		if x.maxAge != "" {
			h = append(h, [2]string{"access-control-max-age", x.maxAge})
		}
		if v, _ := common.Header(headers, "access-control-request-private-network"); x.privateNW && v == "true" {
			h = append(h, [2]string{"access-control-allow-private-network", "true"})
		}
	}
	return &common.Reply{Status: 200, Headers: h}
}

// ResponseHeaders are the CORS headers for the response to a request that
// came with origin.
func (x *CORS) ResponseHeaders(origin string) [][2]string {
	h := x.common(origin)
	if h != nil && x.exposed != "" {
		h = append(h, [2]string{"access-control-expose-headers", x.exposed})
	}
	return h
}
