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
	"encoding/asn1"
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

// parsePEM reads a PEM public key: PKIX "PUBLIC KEY" (RSA, EC P-256/P-384,
// Ed25519) or PKCS#1 "RSA PUBLIC KEY". Parsed here with encoding/asn1
// rather than crypto/x509, which would add 0.4 MB to the module for the
// few lines below.
func parsePEM(s string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("not a PEM public key")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return parsePKIX(block.Bytes)
	case "RSA PUBLIC KEY":
		return parsePKCS1(block.Bytes)
	}
	return nil, fmt.Errorf("PEM block %q is not a public key (want PUBLIC KEY or RSA PUBLIC KEY)", block.Type)
}

var (
	oidRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidEC      = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidP256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384    = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}
)

type spki struct {
	Algorithm struct {
		OID    asn1.ObjectIdentifier
		Params asn1.RawValue `asn1:"optional"`
	}
	Key asn1.BitString
}

func parsePKIX(der []byte) (crypto.PublicKey, error) {
	var k spki
	if rest, err := asn1.Unmarshal(der, &k); err != nil || len(rest) > 0 {
		return nil, errors.New("malformed SubjectPublicKeyInfo")
	}
	switch {
	case k.Algorithm.OID.Equal(oidRSA):
		return parsePKCS1(k.Key.RightAlign())
	case k.Algorithm.OID.Equal(oidEC):
		var curveOID asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(k.Algorithm.Params.FullBytes, &curveOID); err != nil {
			return nil, errors.New("EC key without a named curve")
		}
		var curve elliptic.Curve
		switch {
		case curveOID.Equal(oidP256):
			curve = elliptic.P256()
		case curveOID.Equal(oidP384):
			curve = elliptic.P384()
		default:
			return nil, fmt.Errorf("EC curve %v is not supported (P-256, P-384)", curveOID)
		}
		return ecdsa.ParseUncompressedPublicKey(curve, k.Key.RightAlign())
	case k.Algorithm.OID.Equal(oidEd25519):
		b := k.Key.RightAlign()
		if len(b) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		return ed25519.PublicKey(b), nil
	}
	return nil, fmt.Errorf("key algorithm %v is not supported", k.Algorithm.OID)
}

func parsePKCS1(der []byte) (*rsa.PublicKey, error) {
	var k struct {
		N *big.Int
		E int
	}
	if rest, err := asn1.Unmarshal(der, &k); err != nil || len(rest) > 0 {
		return nil, errors.New("malformed RSA public key")
	}
	if k.N.Sign() <= 0 || k.E < 3 || k.N.BitLen() < 2048 {
		return nil, errors.New("RSA key too small or malformed (2048 bits at least)")
	}
	return &rsa.PublicKey{N: k.N, E: k.E}, nil
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
