package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"math/big"
)

// key is one verification key: an HMAC secret or a public key.
type key struct {
	kid    string
	alg    string // "" when the key does not pin one (JWKS without alg)
	secret []byte
	pub    crypto.PublicKey
}

var errBadSignature = errors.New("Invalid signature")

func hashFor(alg string) (crypto.Hash, func() hash.Hash, bool) {
	switch alg[2:] {
	case "256":
		return crypto.SHA256, sha256.New, true
	case "384":
		return crypto.SHA384, sha512.New384, true
	case "512":
		return crypto.SHA512, sha512.New, true
	}
	return 0, nil, false
}

// Algorithms are the supported JWS algorithms.
var Algorithms = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"}

func supported(alg string) bool {
	for _, a := range Algorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// verify checks sig over signingInput with k under alg.
func (k *key) verify(alg string, signingInput, sig []byte) error {
	if k.alg != "" && k.alg != alg {
		return fmt.Errorf("algorithm %s does not match the key's %s", alg, k.alg)
	}
	switch alg {
	case "HS256", "HS384", "HS512":
		if k.secret == nil {
			return errors.New("an HMAC token needs a secret")
		}
		_, h, _ := hashFor(alg)
		m := hmac.New(h, k.secret)
		m.Write(signingInput)
		if !hmac.Equal(m.Sum(nil), sig) {
			return errBadSignature
		}
		return nil
	case "RS256", "RS384", "RS512":
		pub, ok := k.pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("an RS token needs an RSA key")
		}
		ch, h, _ := hashFor(alg)
		d := h()
		d.Write(signingInput)
		if rsa.VerifyPKCS1v15(pub, ch, d.Sum(nil), sig) != nil {
			return errBadSignature
		}
		return nil
	case "ES256", "ES384":
		pub, ok := k.pub.(*ecdsa.PublicKey)
		if !ok {
			return errors.New("an ES token needs an EC key")
		}
		size := (pub.Curve.Params().BitSize + 7) / 8
		if (alg == "ES256") != (size == 32) || len(sig) != 2*size {
			return errBadSignature
		}
		_, h, _ := hashFor(alg)
		d := h()
		d.Write(signingInput)
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(pub, d.Sum(nil), r, s) {
			return errBadSignature
		}
		return nil
	case "EdDSA":
		pub, ok := k.pub.(ed25519.PublicKey)
		if !ok {
			return errors.New("an EdDSA token needs an Ed25519 key")
		}
		if !ed25519.Verify(pub, signingInput, sig) {
			return errBadSignature
		}
		return nil
	}
	return fmt.Errorf("algorithm %q is not supported", alg)
}

// parsePEM reads a PEM public key (PKIX "PUBLIC KEY" or PKCS#1 "RSA PUBLIC
// KEY") or a certificate.
func parsePEM(s string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("not PEM")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return c.PublicKey, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a public key", block.Type)
}

// jwk is one JSON Web Key (RFC 7517/7518/8037).
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	K   string `json:"k"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(trimPad(s)) }

func trimPad(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}

// parseJWKS reads a JWK Set; keys for other uses or of unknown types are
// skipped, as RFC 7517 asks.
func parseJWKS(b []byte) ([]*key, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	var out []*key
	for i, j := range set.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		k, err := j.key()
		if err != nil {
			return nil, fmt.Errorf("JWKS keys[%d] (kid %q): %w", i, j.Kid, err)
		}
		if k != nil {
			out = append(out, k)
		}
	}
	return out, nil
}

func (j jwk) key() (*key, error) {
	k := &key{kid: j.Kid, alg: j.Alg}
	switch j.Kty {
	case "oct":
		s, err := b64(j.K)
		if err != nil {
			return nil, err
		}
		k.secret = s
	case "RSA":
		n, err := b64(j.N)
		if err != nil {
			return nil, err
		}
		e, err := b64(j.E)
		if err != nil {
			return nil, err
		}
		if len(e) > 4 {
			return nil, errors.New("RSA exponent too large")
		}
		ei := 0
		for _, c := range e {
			ei = ei<<8 | int(c)
		}
		k.pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ei}
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		default:
			return nil, nil
		}
		x, err := b64(j.X)
		if err != nil {
			return nil, err
		}
		y, err := b64(j.Y)
		if err != nil {
			return nil, err
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return nil, errors.New("EC coordinates of the wrong size")
		}
		// Validate the point through the uncompressed encoding, which
		// ecdh/ecdsa parsers check to be on the curve.
		raw := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
		if err != nil {
			return nil, err
		}
		k.pub = pub
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, nil
		}
		x, err := b64(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		k.pub = ed25519.PublicKey(x)
	default:
		return nil, nil
	}
	return k, nil
}
