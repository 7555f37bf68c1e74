// Package responsetransformer is the response-transformer plugin (Kong's):
// headers and JSON body fields of the response removed, renamed, replaced,
// added and appended, in that order, before the client sees it.
package responsetransformer

import (
	"fmt"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
	"github.com/sluice-proxy/sluice/plugins/src/internal/transform"
)

// Name is the plugin's root_id.
const Name = "response-transformer"

// Lists is one of Kong's five operation tables.
type Lists struct {
	Headers   []string `json:"headers"`
	JSON      []string `json:"json"`
	JSONTypes []string `json:"json_types"`
	// Body (replace only) replaces the whole body.
	Body *string `json:"body"`
}

// Config is Kong's response-transformer schema.
type Config struct {
	Remove  Lists `json:"remove"`
	Rename  Lists `json:"rename"`
	Replace Lists `json:"replace"`
	Add     Lists `json:"add"`
	Append  Lists `json:"append"`
}

// Transformer is a validated configuration.
type Transformer struct {
	headers, json transform.Ops
	types         transform.JSONTypes
	body          *string
}

var noRequest = &transform.Request{}

// Parse validates a configuration.
func Parse(data []byte) (*Transformer, error) {
	var c Config
	if err := common.DecodeConfig(data, &c); err != nil {
		return nil, err
	}
	for k, l := range map[string]Lists{"remove": c.Remove, "rename": c.Rename, "add": c.Add, "append": c.Append} {
		if l.Body != nil {
			return nil, fmt.Errorf("config: %s.body: only replace.body exists", k)
		}
	}
	t := &Transformer{body: c.Replace.Body,
		types: transform.JSONTypes{Replace: c.Replace.JSONTypes, Add: c.Add.JSONTypes, Append: c.Append.JSONTypes}}
	var err error
	if t.headers, err = transform.ParseOps("headers", c.Remove.Headers, c.Rename.Headers, c.Replace.Headers, c.Add.Headers, c.Append.Headers); err != nil {
		return nil, err
	}
	for _, n := range append(append([]string(nil), c.Remove.Headers...), c.Add.Headers...) {
		if strings.HasPrefix(n, ":") {
			return nil, fmt.Errorf("config: headers: %q: pseudo-headers cannot be changed", n)
		}
	}
	if t.json, err = transform.ParseOps("json", c.Remove.JSON, c.Rename.JSON, c.Replace.JSON, c.Add.JSON, c.Append.JSON); err != nil {
		return nil, err
	}
	return t, nil
}

// Headers transforms the response headers and says whether the body must
// be buffered and passed to Body.
func (t *Transformer) Headers(h [][2]string) (out [][2]string, changed, transformBody bool) {
	out = t.headers.Headers(h, noRequest)
	changed = len(out) != len(h)
	for i := 0; !changed && i < len(out); i++ {
		changed = out[i] != h[i]
	}
	ct, _ := common.Header(out, "content-type")
	if t.body != nil || (!t.json.Empty() && transform.IsJSON(ct)) {
		transformBody = true
	}
	return out, changed, transformBody
}

// Body transforms the whole response body.
func (t *Transformer) Body(body []byte) ([]byte, bool) {
	if t.body != nil {
		return []byte(*t.body), true
	}
	return t.json.JSON(body, noRequest, t.types)
}
