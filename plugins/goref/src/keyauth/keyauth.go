// Package keyauth is the key-auth plugin (Kong's key-auth): an API key in a
// header or query parameter names a consumer; no key or an unknown key is
// a 401 with a JSON message.
package keyauth

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

// Name is the plugin's root_id.
const Name = "key-auth"

// Key is one credential.
type Key struct {
	Key      string `json:"key"`
	Consumer string `json:"consumer"`
}

// Config is Kong's key-auth schema plus the credentials, which Kong keeps
// in its database and sluice takes inline or from a file.
type Config struct {
	// KeyNames are the header and query parameter names searched, in order.
	// Default ["apikey"].
	KeyNames []string `json:"key_names"`
	// KeyInHeader (default true) and KeyInQuery (default true) say where to look.
	KeyInHeader *bool `json:"key_in_header"`
	KeyInQuery  *bool `json:"key_in_query"`
	// KeyInBody is Kong's; sluice does not read bodies for keys and refuses true.
	KeyInBody bool `json:"key_in_body"`
	// HideCredentials removes the key before the request goes upstream.
	HideCredentials bool `json:"hide_credentials"`
	// Anonymous is the consumer used when no key is given; "" means 401.
	Anonymous string `json:"anonymous"`
	// RunOnPreflight (default true): false lets OPTIONS through unchecked.
	RunOnPreflight *bool `json:"run_on_preflight"`
	// Realm goes in WWW-Authenticate. Default "sluice".
	Realm string `json:"realm"`
	// Keys are the credentials inline; KeysFile is a JSON file with the same list.
	Keys     []Key  `json:"keys"`
	KeysFile string `json:"keys_file"`
}

// Auth is a validated configuration.
type Auth struct {
	names                   []string
	inHeader, inQuery, hide bool
	preflight               bool
	anonymous, realm        string
	consumers               map[string]string
}

// Parse validates a configuration; readFile loads keys_file.
func Parse(data []byte, readFile func(key, name string) ([]byte, error)) (*Auth, error) {
	var c Config
	if err := common.DecodeConfig(data, &c); err != nil {
		return nil, err
	}
	if c.KeyInBody {
		return nil, fmt.Errorf("config: key_in_body: not supported by sluice's key-auth; use a header or query parameter")
	}
	a := &Auth{
		names: c.KeyNames, inHeader: boolOr(c.KeyInHeader, true), inQuery: boolOr(c.KeyInQuery, true),
		hide: c.HideCredentials, preflight: boolOr(c.RunOnPreflight, true),
		anonymous: c.Anonymous, realm: c.Realm, consumers: map[string]string{},
	}
	if len(a.names) == 0 {
		a.names = []string{"apikey"}
	}
	if a.realm == "" {
		a.realm = "sluice"
	}
	keys := c.Keys
	if c.KeysFile != "" {
		b, err := readFile("keys_file", c.KeysFile)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		var more []Key
		if err := json.Unmarshal(b, &more); err != nil {
			return nil, fmt.Errorf("config: keys_file %s: want a JSON list of {\"key\",\"consumer\"}: %w", c.KeysFile, err)
		}
		keys = append(keys, more...)
	}
	for i, k := range keys {
		if k.Key == "" || k.Consumer == "" {
			return nil, fmt.Errorf("config: keys[%d]: key and consumer are required", i)
		}
		a.consumers[k.Key] = k.Consumer
	}
	return a, nil
}

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// Result is what to do with a request.
type Result struct {
	// Reply, when Status != 0, answers the request locally.
	Reply common.Reply
	// Consumer is the authenticated (or anonymous) consumer.
	Consumer  string
	Anonymous bool
	// RemoveHeader names a header to strip (hide_credentials).
	RemoveHeader string
	// NewPath replaces :path when the key was in the query and is hidden.
	NewPath string
	// Skip means the request passes untouched (preflight).
	Skip bool
}

// Check authenticates a request from its headers (including :method, :path).
func (a *Auth) Check(headers [][2]string) Result {
	method, _ := common.Header(headers, ":method")
	if method == "OPTIONS" && !a.preflight {
		return Result{Skip: true}
	}
	var key, header, newPath string
	found := false
	if a.inHeader {
		for _, n := range a.names {
			if v, ok := common.Header(headers, n); ok {
				key, header, found = v, n, true
				break
			}
		}
	}
	if !found && a.inQuery {
		p, _ := common.Header(headers, ":path")
		path, rawQuery := common.SplitPath(p)
		if q, err := url.ParseQuery(rawQuery); err == nil {
			for _, n := range a.names {
				if vs, ok := q[n]; ok && len(vs) > 0 {
					key, found = vs[0], true
					q.Del(n)
					newPath = path
					if enc := q.Encode(); enc != "" {
						newPath += "?" + enc
					}
					break
				}
			}
		}
	}
	if !found || key == "" {
		if a.anonymous != "" {
			return Result{Consumer: a.anonymous, Anonymous: true}
		}
		return Result{Reply: a.unauthorized("No API key found in request")}
	}
	consumer, ok := a.consumers[key]
	if !ok {
		if a.anonymous != "" {
			return Result{Consumer: a.anonymous, Anonymous: true}
		}
		return Result{Reply: a.unauthorized("Unauthorized")}
	}
	r := Result{Consumer: consumer}
	if a.hide {
		if header != "" {
			r.RemoveHeader = header
		} else {
			r.NewPath = newPath
		}
	}
	return r
}

func (a *Auth) unauthorized(msg string) common.Reply {
	return common.JSONReply(401, msg, [2]string{"www-authenticate", `Key realm="` + strings.ReplaceAll(a.realm, `"`, `'`) + `"`})
}
