// Package jwt is the jwt plugin (Kong's jwt, plus issuer/audience checks,
// JWKS and RS/ES/EdDSA): a bearer token in a header, query parameter or
// cookie is verified, its claims checked, its consumer and selected claims
// passed upstream; otherwise 401 with WWW-Authenticate as RFC 6750 says.
package jwt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

// Name is the plugin's root_id.
const Name = "jwt"

// Credential is a Kong jwt credential: the key claim's value (key), its
// algorithm, and a secret (HS*) or public key in PEM (RS*, ES*, EdDSA).
type Credential struct {
	Key          string `json:"key"`
	Algorithm    string `json:"algorithm"`
	Secret       string `json:"secret"`
	RSAPublicKey string `json:"rsa_public_key"`
	PublicKey    string `json:"public_key"`
	Consumer     string `json:"consumer"`
}

// Config is Kong's jwt schema with sluice's additions.
type Config struct {
	URIParamNames     []string `json:"uri_param_names"`
	CookieNames       []string `json:"cookie_names"`
	HeaderNames       []string `json:"header_names"`
	ClaimsToVerify    []string `json:"claims_to_verify"`
	KeyClaimName      string   `json:"key_claim_name"`
	SecretIsBase64    bool     `json:"secret_is_base64"`
	MaximumExpiration int64    `json:"maximum_expiration"`
	RunOnPreflight    *bool    `json:"run_on_preflight"`
	Anonymous         string   `json:"anonymous"`
	Realm             string   `json:"realm"`

	Credentials []Credential `json:"credentials"`
	// Issuer, when set, must equal the iss claim; Audiences, when set,
	// must include one of the aud claim's values.
	Issuer    string   `json:"issuer"`
	Audiences []string `json:"audiences"`
	// ClockSkew is the leeway in seconds for exp and nbf.
	ClockSkew int64 `json:"clock_skew"`
	// JWKS keys: inline (a JWK Set object), a file, or fetched by http_call
	// from JWKSCluster at JWKSURI and refreshed every JWKSRefresh.
	JWKS        json.RawMessage `json:"jwks"`
	JWKSFile    string          `json:"jwks_file"`
	JWKSURI     string          `json:"jwks_uri"`
	JWKSCluster string          `json:"jwks_cluster"`
	JWKSRefresh string          `json:"jwks_refresh"`
	// ClaimsToHeaders forwards claims upstream: {claim = "header"}.
	ClaimsToHeaders map[string]string `json:"claims_to_headers"`
}

type credential struct {
	key      *key
	alg      string
	consumer string
}

// Verifier is a validated configuration.
type Verifier struct {
	uriParams, cookies, headers []string
	verifyExp, verifyNbf        bool
	keyClaim                    string
	maxExp                      int64
	preflight                   bool
	anonymous, realm            string
	creds                       map[string]credential
	issuer                      string
	audiences                   []string
	skew                        int64
	jwks                        []*key
	// JWKS fetching; see glue.go.
	JWKSCluster, JWKSPath, JWKSAuthority string
	JWKSRefresh                          time.Duration
	claimHeaders                         [][2]string // claim, header; sorted
}

// Parse validates a configuration.
func Parse(data []byte, readFile func(key, name string) ([]byte, error)) (*Verifier, error) {
	var c Config
	if err := common.DecodeConfig(data, &c); err != nil {
		return nil, err
	}
	v := &Verifier{uriParams: c.URIParamNames, cookies: c.CookieNames, headers: c.HeaderNames,
		keyClaim: c.KeyClaimName, maxExp: c.MaximumExpiration, preflight: c.RunOnPreflight == nil || *c.RunOnPreflight,
		anonymous: c.Anonymous, realm: c.Realm, creds: map[string]credential{}, issuer: c.Issuer,
		audiences: c.Audiences, skew: c.ClockSkew}
	if v.uriParams == nil {
		v.uriParams = []string{"jwt"}
	}
	if v.headers == nil {
		v.headers = []string{"authorization"}
	}
	if v.keyClaim == "" {
		v.keyClaim = "iss"
	}
	if v.realm == "" {
		v.realm = "sluice"
	}
	if v.skew < 0 || v.maxExp < 0 {
		return nil, fmt.Errorf("config: clock_skew and maximum_expiration must not be negative")
	}
	for i, cl := range c.ClaimsToVerify {
		switch cl {
		case "exp":
			v.verifyExp = true
		case "nbf":
			v.verifyNbf = true
		default:
			return nil, fmt.Errorf("config: claims_to_verify[%d]: %q is not exp or nbf", i, cl)
		}
	}
	if v.maxExp > 0 && !v.verifyExp {
		return nil, fmt.Errorf("config: maximum_expiration needs \"exp\" in claims_to_verify")
	}
	for i, cr := range c.Credentials {
		where := fmt.Sprintf("config: credentials[%d]", i)
		alg := cr.Algorithm
		if alg == "" {
			alg = "HS256"
		}
		if !supported(alg) {
			return nil, fmt.Errorf("%s.algorithm: %q is not one of %s", where, alg, strings.Join(Algorithms, ", "))
		}
		if cr.Key == "" {
			return nil, fmt.Errorf("%s.key: required (the value of the %q claim)", where, v.keyClaim)
		}
		k := &key{alg: alg}
		if strings.HasPrefix(alg, "HS") {
			if cr.Secret == "" {
				return nil, fmt.Errorf("%s.secret: required for %s", where, alg)
			}
			k.secret = []byte(cr.Secret)
			if c.SecretIsBase64 {
				s, err := base64.StdEncoding.DecodeString(cr.Secret)
				if err != nil {
					return nil, fmt.Errorf("%s.secret: not base64 (secret_is_base64 is set): %w", where, err)
				}
				k.secret = s
			}
		} else {
			p := cr.PublicKey
			if p == "" {
				p = cr.RSAPublicKey
			}
			pub, err := parsePEM(p)
			if err != nil {
				return nil, fmt.Errorf("%s.public_key: %w", where, err)
			}
			k.pub = pub
		}
		v.creds[cr.Key] = credential{key: k, alg: alg, consumer: cr.Consumer}
	}
	if len(c.JWKS) > 0 {
		keys, err := parseJWKS(c.JWKS)
		if err != nil {
			return nil, fmt.Errorf("config: jwks: %w", err)
		}
		v.jwks = keys
	}
	if c.JWKSFile != "" {
		b, err := readFile("jwks_file", c.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		keys, err := parseJWKS(b)
		if err != nil {
			return nil, fmt.Errorf("config: jwks_file %s: %w", c.JWKSFile, err)
		}
		v.jwks = append(v.jwks, keys...)
	}
	if c.JWKSURI != "" {
		u, err := url.Parse(c.JWKSURI)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("config: jwks_uri: %q is not an absolute URL", c.JWKSURI)
		}
		if c.JWKSCluster == "" {
			return nil, fmt.Errorf("config: jwks_uri needs jwks_cluster, the cluster that serves it")
		}
		v.JWKSCluster, v.JWKSAuthority, v.JWKSPath = c.JWKSCluster, u.Host, u.RequestURI()
		v.JWKSRefresh = 5 * time.Minute
		if c.JWKSRefresh != "" {
			d, err := time.ParseDuration(c.JWKSRefresh)
			if err != nil || d < time.Second {
				return nil, fmt.Errorf("config: jwks_refresh: %q is not a duration of at least 1s", c.JWKSRefresh)
			}
			v.JWKSRefresh = d
		}
	} else if c.JWKSCluster != "" || c.JWKSRefresh != "" {
		return nil, fmt.Errorf("config: jwks_cluster and jwks_refresh need jwks_uri")
	}
	for claim, h := range c.ClaimsToHeaders {
		if claim == "" || h == "" || strings.HasPrefix(h, ":") {
			return nil, fmt.Errorf("config: claims_to_headers: %q = %q is not claim = header", claim, h)
		}
		v.claimHeaders = append(v.claimHeaders, [2]string{claim, strings.ToLower(h)})
	}
	sort.Slice(v.claimHeaders, func(i, j int) bool { return v.claimHeaders[i][0] < v.claimHeaders[j][0] })
	return v, nil
}

// SetJWKS replaces the keys fetched from jwks_uri.
func (v *Verifier) SetJWKS(b []byte) error {
	keys, err := parseJWKS(b)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("JWKS has no usable signing keys")
	}
	v.jwks = keys
	return nil
}

// WaitsForJWKS says whether verification needs keys not fetched yet.
func (v *Verifier) WaitsForJWKS() bool { return v.JWKSCluster != "" && len(v.jwks) == 0 }

// Result is what to do with a request.
type Result struct {
	Reply     common.Reply
	Skip      bool
	Consumer  string
	Anonymous bool
	// SetHeaders go upstream (claims_to_headers).
	SetHeaders [][2]string
	// NeedKeys: the token can only be checked once the JWKS arrives.
	NeedKeys bool
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// Check verifies the request's token at time now.
func (v *Verifier) Check(headers [][2]string, now time.Time) Result {
	method, _ := common.Header(headers, ":method")
	if method == "OPTIONS" && !v.preflight {
		return Result{Skip: true}
	}
	token := v.findToken(headers)
	if token == "" {
		return v.fail("", "Unauthorized")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return v.fail("invalid_token", "Bad token; invalid JSON")
	}
	var hdr header
	hb, err1 := b64(parts[0])
	pb, err2 := b64(parts[1])
	sig, err3 := b64(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &hdr) != nil {
		return v.fail("invalid_token", "Bad token; invalid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(pb))
	dec.UseNumber()
	var claims map[string]any
	if dec.Decode(&claims) != nil || claims == nil {
		return v.fail("invalid_token", "Bad token; invalid JSON")
	}
	if !supported(hdr.Alg) {
		return v.fail("invalid_token", "Invalid algorithm")
	}
	signingInput := []byte(token[:len(parts[0])+1+len(parts[1])])

	consumer := ""
	keyClaim, _ := claims[v.keyClaim].(string)
	if cr, ok := v.creds[keyClaim]; ok && keyClaim != "" {
		if cr.alg != hdr.Alg {
			return v.fail("invalid_token", "Invalid algorithm")
		}
		if cr.key.verify(hdr.Alg, signingInput, sig) != nil {
			return v.fail("invalid_token", "Invalid signature")
		}
		consumer = cr.consumer
		if consumer == "" {
			consumer = keyClaim
		}
	} else if len(v.jwks) > 0 || v.JWKSCluster != "" {
		if len(v.jwks) == 0 {
			return Result{NeedKeys: true}
		}
		if !v.verifyJWKS(hdr, signingInput, sig) {
			return v.fail("invalid_token", "Invalid signature")
		}
		consumer, _ = claims["sub"].(string)
	} else {
		if keyClaim == "" {
			return v.fail("invalid_token", "No mandatory '"+v.keyClaim+"' in claims")
		}
		return v.fail("invalid_token", "No credentials found for given '"+v.keyClaim+"'")
	}
	if msg := v.checkClaims(claims, now); msg != "" {
		return v.fail("invalid_token", msg)
	}
	r := Result{Consumer: consumer}
	for _, ch := range v.claimHeaders {
		if s, ok := claimString(claims[ch[0]]); ok {
			r.SetHeaders = append(r.SetHeaders, [2]string{ch[1], s})
		}
	}
	return r
}

func (v *Verifier) verifyJWKS(hdr header, input, sig []byte) bool {
	for _, k := range v.jwks {
		if hdr.Kid != "" && k.kid != "" && k.kid != hdr.Kid {
			continue
		}
		if k.verify(hdr.Alg, input, sig) == nil {
			return true
		}
	}
	return false
}

func (v *Verifier) checkClaims(claims map[string]any, now time.Time) string {
	t := now.Unix()
	if v.verifyExp {
		exp, ok := numeric(claims["exp"])
		if !ok {
			return "token expired" // a token without a numeric exp cannot be shown valid
		}
		if t > int64(exp)+v.skew {
			return "token expired"
		}
		if v.maxExp > 0 && int64(exp)-t > v.maxExp {
			return "The exp claim has a value exceeding the maximum allowed"
		}
	}
	if v.verifyNbf {
		nbf, ok := numeric(claims["nbf"])
		if !ok || t+v.skew < int64(nbf) {
			return "token not valid yet"
		}
	}
	if v.issuer != "" {
		if iss, _ := claims["iss"].(string); iss != v.issuer {
			return "Invalid issuer"
		}
	}
	if len(v.audiences) > 0 {
		var auds []string
		switch a := claims["aud"].(type) {
		case string:
			auds = []string{a}
		case []any:
			for _, x := range a {
				if s, ok := x.(string); ok {
					auds = append(auds, s)
				}
			}
		}
		ok := false
		for _, want := range v.audiences {
			for _, got := range auds {
				ok = ok || got == want
			}
		}
		if !ok {
			return "Invalid audience"
		}
	}
	return ""
}

func numeric(x any) (float64, bool) {
	n, ok := x.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

func claimString(x any) (string, bool) {
	switch c := x.(type) {
	case string:
		return c, true
	case json.Number:
		return c.String(), true
	case bool:
		if c {
			return "true", true
		}
		return "false", true
	case nil:
		return "", false
	}
	b, err := json.Marshal(x)
	return string(b), err == nil
}

func (v *Verifier) findToken(headers [][2]string) string {
	p, _ := common.Header(headers, ":path")
	_, rawQuery := common.SplitPath(p)
	if len(v.uriParams) > 0 && rawQuery != "" {
		if q, err := url.ParseQuery(rawQuery); err == nil {
			for _, n := range v.uriParams {
				if t := q.Get(n); t != "" {
					return t
				}
			}
		}
	}
	if len(v.cookies) > 0 {
		ch, _ := common.Header(headers, "cookie")
		for _, n := range v.cookies {
			if t, ok := common.Cookie(ch, n); ok && t != "" {
				return t
			}
		}
	}
	for _, n := range v.headers {
		h, ok := common.Header(headers, n)
		if !ok {
			continue
		}
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:])
		}
		if !strings.EqualFold(n, "authorization") && h != "" {
			return strings.TrimSpace(h)
		}
	}
	return ""
}

// fail builds the 401, or lets the anonymous consumer through.
func (v *Verifier) fail(errCode, msg string) Result {
	if v.anonymous != "" {
		return Result{Consumer: v.anonymous, Anonymous: true}
	}
	// RFC 6750 section 3: no error code when the request had no token.
	auth := `Bearer realm="` + v.realm + `"`
	if errCode != "" {
		auth += `, error="` + errCode + `", error_description="` + strings.ReplaceAll(msg, `"`, `'`) + `"`
	}
	return Result{Reply: common.JSONReply(401, msg, [2]string{"www-authenticate", auth})}
}
