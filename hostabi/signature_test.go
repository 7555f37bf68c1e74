package hostabi

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// sigArgs encodes sluice_verify_signature's argument.
func sigArgs(fields ...string) []byte {
	var b []byte
	for _, f := range fields {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

func pemOf(t *testing.T, typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pkix(t *testing.T, pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PUBLIC KEY", der)
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestVerifySignature: every algorithm, valid and tampered, with PEM and
// JWK keys; keys that cannot verify say why; malformed arguments are
// BadArgument.
func TestVerifySignature(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	msg := []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0")

	rsaPEM := pkix(t, &rsaKey.PublicKey)
	rsaPKCS1 := pemOf(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey))
	e := big.NewInt(int64(rsaKey.E)).Bytes()
	rsaJWK := fmt.Sprintf(`{"kty":"RSA","n":%q,"e":%q}`, b64u(rsaKey.N.Bytes()), b64u(e))
	ecJWK := func(k *ecdsa.PrivateKey, crv string, size int) string {
		x, y := make([]byte, size), make([]byte, size)
		k.X.FillBytes(x)
		k.Y.FillBytes(y)
		return fmt.Sprintf(`{"kty":"EC","crv":%q,"x":%q,"y":%q}`, crv, b64u(x), b64u(y))
	}
	edJWK := fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","x":%q}`, b64u(edPub))

	sign := func(alg string) []byte {
		a := sigAlgs[alg]
		var sig []byte
		var err error
		switch a.kind {
		case "RS":
			sig, err = rsa.SignPKCS1v15(rand.Reader, rsaKey, a.hash, a.digest(msg))
		case "PS":
			sig, err = rsa.SignPSS(rand.Reader, rsaKey, a.hash, a.digest(msg), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		case "ES":
			k := p256
			if alg == "ES384" {
				k = p384
			}
			r, s, e := ecdsa.Sign(rand.Reader, k, a.digest(msg))
			size := (a.curve.Params().BitSize + 7) / 8
			sig = append(r.FillBytes(make([]byte, size)), s.FillBytes(make([]byte, size))...)
			err = e
		case "EdDSA":
			sig = ed25519.Sign(edPriv, msg)
		}
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	good := map[string][]string{
		"RS256": {rsaPEM, rsaPKCS1, rsaJWK}, "RS384": {rsaPEM}, "RS512": {rsaJWK},
		"PS256": {rsaPEM, rsaJWK}, "PS384": {rsaPKCS1}, "PS512": {rsaPEM},
		"ES256": {pkix(t, &p256.PublicKey), ecJWK(p256, "P-256", 32)},
		"ES384": {pkix(t, &p384.PublicKey), ecJWK(p384, "P-384", 48)},
		"EdDSA": {pkix(t, edPub), edJWK},
	}
	for alg, keys := range good {
		sig := sign(alg)
		for i, key := range keys {
			for _, tc := range []struct {
				what     string
				msg, sig []byte
				want     []byte
			}{
				{"valid", msg, sig, []byte{sigValid}},
				{"other message", append(msg[:len(msg):len(msg)], 'x'), sig, []byte{sigInvalid}},
				{"short signature", msg, sig[:len(sig)-1], []byte{sigInvalid}},
				{"no signature (a key check)", msg, nil, []byte{sigInvalid}},
			} {
				// Twice: the second call takes the key from the cache.
				for round := 0; round < 2; round++ {
					out, st := verifySignature(nil, sigArgs(alg, key, string(tc.msg), string(tc.sig)))
					if st != abi.OK || string(out) != string(tc.want) {
						t.Errorf("%s key %d %s (round %d): %v %q, want %q", alg, i, tc.what, round, st, out, tc.want)
					}
				}
			}
		}
	}

	bad := []struct {
		alg, key, why string
	}{
		{"RS256", pkix(t, &small.PublicKey), "2048 bits at least"},
		{"RS256", pkix(t, &p256.PublicKey), "a EC key cannot verify RS256"},
		{"ES384", pkix(t, &p256.PublicKey), "needs a P-384 key"},
		{"EdDSA", rsaJWK, "cannot verify EdDSA"},
		{"ES256", "not a key", "not a PEM public key or a JWK"},
		{"RS256", pemOf(t, "PRIVATE KEY", []byte{1}), "is not a public key"},
		{"RS256", `{"kty":"oct","k":"c2VjcmV0"}`, `kty "oct" is not supported`},
		{"ES256", `{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}`, "wrong size"},
		{"RS256", `{"kty":"RSA","n":"!!","e":"AQAB"}`, "JWK n"},
		{"RS256", `{`, "JWK: "},
	}
	for _, tc := range bad {
		out, st := verifySignature(nil, sigArgs(tc.alg, tc.key, string(msg), "sig"))
		if st != abi.OK || len(out) == 0 || out[0] != sigBadKey || !strings.Contains(string(out[1:]), tc.why) {
			t.Errorf("%s with %.30q: %v %q, want 2 and %q", tc.alg, tc.key, st, out, tc.why)
		}
	}

	for _, args := range [][]byte{
		nil,
		sigArgs("RS256", rsaPEM, string(msg)), // three fields
		append(sigArgs("RS256", rsaPEM, string(msg), "s"), 0), // trailing byte
		sigArgs("HS256", "secret", string(msg), "s"),          // HMAC stays in the guest
		sigArgs("none", "", "", ""),
		{255, 255, 255, 255, 1},
	} {
		if out, st := verifySignature(nil, args); st != abi.BadArgument || out != nil {
			t.Errorf("args %q: %v %q, want BadArgument", args, st, out)
		}
	}
}

// TestVerifySignatureCacheBounded: however many keys pass through, the
// cache keeps at most sigCacheMax.
func TestVerifySignatureCacheBounded(t *testing.T) {
	for i := 0; i < sigCacheMax+50; i++ {
		verifySignature(nil, sigArgs("EdDSA", fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","x":"%d"}`, i), "m", ""))
	}
	publicKeys.mu.RLock()
	n := len(publicKeys.m)
	publicKeys.mu.RUnlock()
	if n > sigCacheMax {
		t.Errorf("cache holds %d keys, want <= %d", n, sigCacheMax)
	}
}

// TestVerifySignatureThroughABI: a guest reaches the function through
// proxy_call_foreign_function; a malformed argument is BadArgument there.
func TestVerifySignatureThroughABI(t *testing.T) {
	p, _, _ := runHeaders(t, `request_headers: ffi sluice_verify_signature x`, newTestStream())
	wantLogs(t, p.Name(), `request_headers ffi: status=2 len=0 ""`)
}

// BenchmarkVerifySignature: the host's share of a jwt RS256, ES256 and
// EdDSA check (key from the cache), for a token seen for the first time
// and for one verified before.
func BenchmarkVerifySignature(b *testing.B) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	msg := []byte(strings.Repeat("eyJhbGciOiJSUzI1NiJ9", 10))
	der := func(pub crypto.PublicKey) string {
		d, _ := x509.MarshalPKIXPublicKey(pub)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: d}))
	}
	a := sigAlgs["RS256"]
	rs, _ := rsa.SignPKCS1v15(rand.Reader, rsaKey, a.hash, a.digest(msg))
	r, s, _ := ecdsa.Sign(rand.Reader, p256, sigAlgs["ES256"].digest(msg))
	es := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	for _, c := range []struct {
		alg, key string
		sig      []byte
	}{
		{"RS256", der(&rsaKey.PublicKey), rs},
		{"ES256", der(&p256.PublicKey), es},
		{"EdDSA", der(edPub), ed25519.Sign(edPriv, msg)},
	} {
		for _, cached := range []bool{false, true} {
			name := c.alg
			if cached {
				name += "/cached" // the same token again: verifiedCache
			}
			b.Run(name, func(b *testing.B) {
				args := sigArgs(c.alg, c.key, string(msg), string(c.sig))
				for i := 0; i < b.N; i++ {
					if !cached {
						verified.forget(args)
					}
					if out, _ := verifySignature(nil, args); len(out) != 1 || out[0] != sigValid {
						b.Fatalf("%q", out)
					}
				}
			})
		}
	}
}

// TestVerifySignatureKeyCheck: an empty signature checks that the key
// parses, whatever the algorithm (a filter checks keys at configure time).
func TestVerifySignatureKeyCheck(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key := pkix(t, &p256.PublicKey)
	if out, st := verifySignature(nil, sigArgs("RS256", key, "m", "")); st != abi.OK || string(out) != "\x00" {
		t.Errorf("key check of a parsing key: %v %q", st, out)
	}
	if out, st := verifySignature(nil, sigArgs("RS256", key, "m", "s")); st != abi.OK || out[0] != sigBadKey {
		t.Errorf("an EC key for RS256: %v %q", st, out)
	}
	if out, st := verifySignature(nil, sigArgs("RS256", "junk", "m", "")); st != abi.OK || out[0] != sigBadKey {
		t.Errorf("key check of junk: %v %q", st, out)
	}
}

// forget drops args from the cache (tests and benchmarks).
func (c *verifiedCache) forget(args []byte) {
	c.mu.Lock()
	delete(c.m, string(args))
	c.mu.Unlock()
}

// TestVerifySignatureRemembersValid: a signature found valid is answered
// from the cache the next time, exactly: any other byte of the call is
// checked again. Forged or unusable calls are never kept, and the cache
// stays within its bounds.
func TestVerifySignatureRemembersValid(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	a := sigAlgs["RS256"]
	msg := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYWNoZSJ9"
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, a.hash, a.digest([]byte(msg)))
	if err != nil {
		t.Fatal(err)
	}
	pub := pkix(t, &key.PublicKey)
	valid := sigArgs("RS256", pub, msg, string(sig))
	verified.forget(valid)
	check := func(what string, args []byte, want byte, kept bool) {
		t.Helper()
		out, st := verifySignature(nil, args)
		if st != abi.OK || len(out) == 0 || out[0] != want {
			t.Errorf("%s: %v %q, want %d", what, st, out, want)
		}
		if verified.has(args) != kept {
			t.Errorf("%s: in the cache = %v, want %v", what, !kept, kept)
		}
	}
	check("first check", valid, sigValid, true)
	check("again, from the cache", valid, sigValid, true)
	flipped := append([]byte(nil), sig...)
	flipped[len(flipped)-1] ^= 1
	check("a flipped signature bit", sigArgs("RS256", pub, msg, string(flipped)), sigInvalid, false)
	check("another message", sigArgs("RS256", pub, msg+"x", string(sig)), sigInvalid, false)
	check("another algorithm", sigArgs("RS384", pub, msg, string(sig)), sigInvalid, false)
	check("a key check", sigArgs("RS256", pub, msg, ""), sigInvalid, false)
	check("an unusable key", sigArgs("RS256", "junk", msg, string(sig)), sigBadKey, false)

	long := sigArgs("RS256", pub, msg+strings.Repeat(".", verifiedMaxArgs), string(sig))
	verified.add(long)
	if verified.has(long) {
		t.Errorf("a %d-byte call was kept, past verifiedMaxArgs", len(long))
	}
	for i := range verifiedMax + 10 {
		verified.add(sigArgs("RS256", pub, fmt.Sprint(i), string(sig)))
	}
	verified.mu.RLock()
	n := len(verified.m)
	verified.mu.RUnlock()
	if n > verifiedMax {
		t.Errorf("%d calls kept, want at most %d", n, verifiedMax)
	}
}
