package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

var enc = base64.RawURLEncoding

func noFile(string, string) ([]byte, error) { return nil, errors.New("no files") }

func sign(t *testing.T, alg, kid string, claims map[string]any, k any) string {
	t.Helper()
	h := map[string]string{"alg": alg, "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(claims)
	input := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	var err error
	switch key := k.(type) {
	case []byte:
		m := hmac.New(sha256.New, key)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	case *ecdsa.PrivateKey:
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, key, sum[:])
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	case ed25519.PrivateKey:
		sig = ed25519.Sign(key, []byte(input))
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc.EncodeToString(sig)
}

func pemOf(t *testing.T, pub any) string {
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: b}))
}

func req(token string) [][2]string {
	return [][2]string{{":method", "GET"}, {":path", "/api/v2/orders"}, {"authorization", "Bearer " + token}}
}

func mustParse(t *testing.T, cfg any) *Verifier {
	t.Helper()
	b, _ := json.Marshal(cfg)
	v, err := Parse(b, noFile)
	if err != nil {
		t.Fatalf("Parse(%s): %v", b, err)
	}
	return v
}

func TestHS256AndClaims(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	secret := []byte("s3cret")
	v := mustParse(t, map[string]any{
		"claims_to_verify": []string{"exp", "nbf"}, "clock_skew": 30,
		"credentials":       []map[string]string{{"key": "https://id.example.com", "secret": "s3cret", "consumer": "orders-app"}},
		"claims_to_headers": map[string]string{"sub": "X-User", "scope": "x-scope"},
	})
	good := map[string]any{"iss": "https://id.example.com", "sub": "u1", "exp": now.Unix() + 60, "nbf": now.Unix() - 1, "scope": "read"}
	tests := []struct {
		name   string
		hdrs   [][2]string
		status uint32
		msg    string
	}{
		{"valid", req(sign(t, "HS256", "", good, secret)), 0, ""},
		{"no token", [][2]string{{":path", "/"}}, 401, "Unauthorized"},
		{"garbage", req("a.b"), 401, "Bad token"},
		{"wrong secret", req(sign(t, "HS256", "", good, []byte("nope"))), 401, "Invalid signature"},
		{"expired", req(sign(t, "HS256", "", with(good, "exp", now.Unix()-31), secret)), 401, "token expired"},
		{"expired within skew", req(sign(t, "HS256", "", with(good, "exp", now.Unix()-29), secret)), 0, ""},
		{"no exp", req(sign(t, "HS256", "", with(good, "exp", nil), secret)), 401, "token expired"},
		{"not yet", req(sign(t, "HS256", "", with(good, "nbf", now.Unix()+31), secret)), 401, "not valid yet"},
		{"unknown iss", req(sign(t, "HS256", "", with(good, "iss", "other"), secret)), 401, "No credentials found for given 'iss'"},
		{"no iss", req(sign(t, "HS256", "", with(good, "iss", nil), secret)), 401, "No mandatory 'iss'"},
		{"alg none", req(strings.Replace(sign(t, "HS256", "", good, secret), enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)), enc.EncodeToString([]byte(`{"alg":"none"}`)), 1)), 401, "Invalid algorithm"},
		{"query param", [][2]string{{":path", "/x?jwt=" + sign(t, "HS256", "", good, secret)}}, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := v.Check(tc.hdrs, now)
			if r.Reply.Status != tc.status {
				t.Fatalf("status = %d (%s), want %d", r.Reply.Status, r.Reply.Body, tc.status)
			}
			if tc.status == 0 {
				if r.Consumer != "orders-app" {
					t.Errorf("consumer = %q", r.Consumer)
				}
				return
			}
			if !strings.Contains(string(r.Reply.Body), tc.msg) {
				t.Errorf("body = %s, want %q", r.Reply.Body, tc.msg)
			}
			auth, _ := common.Header(r.Reply.Headers, "www-authenticate")
			if !strings.HasPrefix(auth, `Bearer realm="sluice"`) {
				t.Errorf("WWW-Authenticate = %q", auth)
			}
			if tc.name == "no token" && strings.Contains(auth, "error=") {
				t.Errorf("RFC 6750: no error code without a token, got %q", auth)
			}
			if tc.name != "no token" && !strings.Contains(auth, `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate = %q, want error=\"invalid_token\"", auth)
			}
		})
	}
	r := v.Check(req(sign(t, "HS256", "", good, secret)), now)
	want := [][2]string{{"x-scope", "read"}, {"x-user", "u1"}}
	if fmt.Sprint(r.SetHeaders) != fmt.Sprint(want) {
		t.Errorf("claims to headers = %q, want %q", r.SetHeaders, want)
	}
}

func with(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for a, b := range m {
		out[a] = b
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestPublicKeyAlgorithms(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	claims := map[string]any{"iss": "issuer", "aud": []string{"orders"}, "sub": "u9"}
	for _, tc := range []struct {
		alg   string
		priv  any
		pub   any
		wrong any
	}{
		{"RS256", rk, &rk.PublicKey, ek},
		{"ES256", ek, &ek.PublicKey, rk},
		{"EdDSA", edk, edk.Public(), ek},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			v := mustParse(t, map[string]any{"audiences": []string{"orders"}, "issuer": "issuer",
				"credentials": []map[string]string{{"key": "issuer", "algorithm": tc.alg, "public_key": pemOf(t, tc.pub)}}})
			if r := v.Check(req(sign(t, tc.alg, "", claims, tc.priv)), now); r.Reply.Status != 0 {
				t.Errorf("valid token refused: %s", r.Reply.Body)
			}
			if tc.alg != "EdDSA" {
				// signed by another key of another type
				if r := v.Check(req(sign(t, tc.alg, "", claims, tc.wrong)), now); r.Reply.Status != 401 {
					t.Error("token signed with the wrong key accepted")
				}
			}
			if r := v.Check(req(sign(t, tc.alg, "", with(claims, "aud", "billing"), tc.priv)), now); r.Reply.Status != 401 {
				t.Error("wrong audience accepted")
			}
		})
	}
}

func TestJWKS(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks := fmt.Sprintf(`{"keys":[
		{"kty":"EC","kid":"ec1","crv":"P-256","x":%q,"y":%q},
		{"kty":"RSA","kid":"rsa1","alg":"RS256","n":%q,"e":"AQAB"},
		{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}]}`,
		enc.EncodeToString(ek.X.FillBytes(make([]byte, 32))), enc.EncodeToString(ek.Y.FillBytes(make([]byte, 32))),
		enc.EncodeToString(rk.N.Bytes()))
	v := mustParse(t, map[string]any{"jwks": json.RawMessage(jwks), "issuer": "https://id.example.com"})
	claims := map[string]any{"iss": "https://id.example.com", "sub": "alice"}
	if r := v.Check(req(sign(t, "ES256", "ec1", claims, ek)), now); r.Reply.Status != 0 || r.Consumer != "alice" {
		t.Errorf("ES256 via JWKS: %d %s consumer %q", r.Reply.Status, r.Reply.Body, r.Consumer)
	}
	if r := v.Check(req(sign(t, "RS256", "rsa1", claims, rk)), now); r.Reply.Status != 0 {
		t.Errorf("RS256 via JWKS: %s", r.Reply.Body)
	}
	if r := v.Check(req(sign(t, "RS256", "ec1", claims, rk)), now); r.Reply.Status != 401 {
		t.Error("kid pointing at another key accepted")
	}
	if r := v.Check(req(sign(t, "ES256", "", with(claims, "iss", "evil"), ek)), now); r.Reply.Status != 401 {
		t.Error("wrong issuer accepted")
	}

	// Fetched keys: requests wait until the JWKS arrives.
	f := mustParse(t, map[string]any{"jwks_uri": "https://id.example.com/.well-known/jwks.json", "jwks_cluster": "idp"})
	if f.JWKSPath != "/.well-known/jwks.json" || f.JWKSAuthority != "id.example.com" || f.JWKSRefresh != 5*time.Minute {
		t.Errorf("jwks fetch = %q %q %v", f.JWKSPath, f.JWKSAuthority, f.JWKSRefresh)
	}
	if r := f.Check(req(sign(t, "ES256", "ec1", claims, ek)), now); !r.NeedKeys {
		t.Error("no NeedKeys before the JWKS arrived")
	}
	if err := f.SetJWKS([]byte(jwks)); err != nil {
		t.Fatal(err)
	}
	if r := f.Check(req(sign(t, "ES256", "ec1", claims, ek)), now); r.Reply.Status != 0 || r.NeedKeys {
		t.Errorf("after SetJWKS: %+v", r)
	}
	if err := f.SetJWKS([]byte(`{"keys":[]}`)); err == nil {
		t.Error("an empty JWKS was accepted")
	}
}

func TestAnonymousAndParseErrors(t *testing.T) {
	v := mustParse(t, map[string]any{"anonymous": "guest"})
	if r := v.Check([][2]string{{":path", "/"}}, time.Now()); !r.Anonymous || r.Consumer != "guest" {
		t.Errorf("anonymous: %+v", r)
	}
	for _, cfg := range []string{
		`{"claims_to_verify":["iat"]}`, `{"credentials":[{"key":"a","algorithm":"HS999","secret":"x"}]}`,
		`{"credentials":[{"key":"a"}]}`, `{"credentials":[{"key":"a","algorithm":"RS256","public_key":"nope"}]}`,
		`{"jwks_uri":"https://x/jwks"}`, `{"jwks_uri":"/relative","jwks_cluster":"c"}`, `{"jwks_cluster":"c"}`,
		`{"jwks":{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}}`, `{"maximum_expiration":60}`, `{"jwks_file":"x.json"}`,
		`{"issuers":"x"}`,
	} {
		if _, err := Parse([]byte(cfg), noFile); err == nil {
			t.Errorf("Parse(%s) succeeded", cfg)
		}
	}
}

func TestParsePEMForms(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	ek384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ek224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk.PublicKey)}))
	tests := []struct {
		name string
		pem  string
		ok   bool
	}{
		{"pkcs1", pkcs1, true},
		{"p384", pemOf(t, &ek384.PublicKey), true},
		{"p224", pemOf(t, &ek224.PublicKey), false},
		{"rsa 1024", pemOf(t, &small.PublicKey), false},
		{"private", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})), false},
		{"junk", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}})), false},
	}
	for _, tc := range tests {
		pub, err := parsePEM(tc.pem)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok %v", tc.name, err, tc.ok)
		}
		if tc.name == "pkcs1" && err == nil {
			if k, ok := pub.(*rsa.PublicKey); !ok || k.N.Cmp(rk.N) != 0 || k.E != rk.E {
				t.Errorf("pkcs1: parsed %v", pub)
			}
		}
	}
}
