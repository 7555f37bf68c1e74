package hostabi

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// sluice_verify_signature is sluice's foreign function that verifies a
// public-key signature with Go's crypto, so a filter needs no RSA, ECDSA
// or Ed25519 code of its own (in a Wasm guest it is large, and slow: the
// jwt built-in's RS256 check is one call here). HMAC stays in the guest:
// it is small and fast there.
//
// The argument is four fields, each a little-endian u32 length and its
// bytes: the algorithm (JWS names: RS256, RS384, RS512, PS256, PS384,
// PS512, ES256, ES384, EdDSA), the public key (PEM "PUBLIC KEY" or "RSA
// PUBLIC KEY", or one JWK as a JSON object), the signed message, and the
// signature (JWS form: r||s for ECDSA). The result is one byte: 1 the
// signature is valid, 0 it is not; or 2 followed by why the key cannot
// verify for that algorithm (an unusable key, or a key of another type).
// A call with an empty signature checks only that the key parses (0 if it
// does), for a filter's configure time, where a key may not be matched to
// an algorithm yet. An argument that does not decode, or an unknown
// algorithm, is BadArgument.
//
// Keys are parsed once: the parsed key (or the reason it is unusable) is
// cached by the key's bytes, so a filter may pass the same key text on
// every request. The cache is bounded (sigCacheMax entries; past it an
// entry is dropped at random). A signature found valid is remembered
// too (verifiedCache): the same token on the next request costs a lookup.
const foreignVerifySignature = "sluice_verify_signature"

// Results of sluice_verify_signature.
const (
	sigInvalid   = 0
	sigValid     = 1
	sigBadKey    = 2
	sigCacheMax  = 1024
	rsaMinPEMLen = 2048 // bits; as the jwt built-in has always required of PEM keys
)

func verifySignature(_ *instance, args []byte) ([]byte, abi.Status) {
	var f [4][]byte
	rest := args
	for i := range f {
		if len(rest) < 4 {
			return nil, abi.BadArgument
		}
		n := binary.LittleEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(n) > uint64(len(rest)) {
			return nil, abi.BadArgument
		}
		f[i], rest = rest[:n], rest[n:]
	}
	if len(rest) != 0 {
		return nil, abi.BadArgument
	}
	alg, ok := sigAlgs[string(f[0])]
	if !ok {
		return nil, abi.BadArgument
	}
	if len(f[3]) > 0 && verified.has(args) {
		return resultValid, abi.OK
	}
	pub, err := publicKeys.get(f[1])
	if err == nil && len(f[3]) > 0 {
		err = alg.fits(pub)
	}
	if err != nil {
		return append([]byte{sigBadKey}, err.Error()...), abi.OK
	}
	if len(f[3]) == 0 {
		return []byte{sigInvalid}, abi.OK
	}
	if alg.verify(pub, f[2], f[3]) {
		verified.add(args)
		return resultValid, abi.OK
	}
	return []byte{sigInvalid}, abi.OK
}

// resultValid is the answer for a valid signature; callers only copy it.
var resultValid = []byte{sigValid}

// verifiedCache holds the arguments of the calls that found their
// signature valid. A client sends the same token on every request until
// it expires, and an RSA check costs tens of microseconds where a lookup
// costs a fraction of one (Envoy's jwt_authn keeps a cache of verified
// tokens for the same reason). The answer is a function of the arguments
// alone (algorithm, key, message, signature), so an entry is exact and
// never goes stale: claims such as exp are the filter's to check on every
// request. Entries are keyed by the whole argument, not a digest of it,
// so two calls can never share one. Only valid signatures are kept: a
// stream of forged tokens cannot push out the real ones faster than it
// costs the caller, nor grow the cache at all.
type verifiedCache struct {
	mu sync.RWMutex
	m  map[string]struct{}
}

const (
	// verifiedMax bounds the cache (past it an entry is dropped at
	// random); verifiedMaxArgs leaves longer calls out of it, so it holds
	// at most verifiedMax*verifiedMaxArgs bytes.
	verifiedMax     = 1024
	verifiedMaxArgs = 4096
)

var verified = verifiedCache{m: map[string]struct{}{}}

func (c *verifiedCache) has(args []byte) bool {
	c.mu.RLock()
	_, ok := c.m[string(args)]
	c.mu.RUnlock()
	return ok
}

func (c *verifiedCache) add(args []byte) {
	if len(args) > verifiedMaxArgs {
		return
	}
	c.mu.Lock()
	if len(c.m) >= verifiedMax {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[string(args)] = struct{}{}
	c.mu.Unlock()
}

// sigAlg is one JWS algorithm.
type sigAlg struct {
	kind string // "RS", "PS", "ES", "EdDSA"
	hash crypto.Hash
	// curve is the ES* curve.
	curve elliptic.Curve
}

var sigAlgs = map[string]sigAlg{
	"RS256": {kind: "RS", hash: crypto.SHA256},
	"RS384": {kind: "RS", hash: crypto.SHA384},
	"RS512": {kind: "RS", hash: crypto.SHA512},
	"PS256": {kind: "PS", hash: crypto.SHA256},
	"PS384": {kind: "PS", hash: crypto.SHA384},
	"PS512": {kind: "PS", hash: crypto.SHA512},
	"ES256": {kind: "ES", hash: crypto.SHA256, curve: elliptic.P256()},
	"ES384": {kind: "ES", hash: crypto.SHA384, curve: elliptic.P384()},
	"EdDSA": {kind: "EdDSA"},
}

// fits says why pub cannot verify under a, or nil.
func (a sigAlg) fits(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if a.kind == "RS" || a.kind == "PS" {
			return nil
		}
	case *ecdsa.PublicKey:
		if a.kind == "ES" {
			if k.Curve != a.curve {
				return fmt.Errorf("an %s signature needs a %s key, not %s", algName(a), a.curve.Params().Name, k.Curve.Params().Name)
			}
			return nil
		}
	case ed25519.PublicKey:
		if a.kind == "EdDSA" {
			return nil
		}
	}
	return fmt.Errorf("a %s key cannot verify %s", keyType(pub), algName(a))
}

func algName(a sigAlg) string {
	for n, x := range sigAlgs {
		if x == a {
			return n
		}
	}
	return a.kind
}

func keyType(pub crypto.PublicKey) string {
	switch pub.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "EC"
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

func (a sigAlg) digest(msg []byte) []byte {
	switch a.hash {
	case crypto.SHA256:
		d := sha256.Sum256(msg)
		return d[:]
	case crypto.SHA384:
		d := sha512.Sum384(msg)
		return d[:]
	default:
		d := sha512.Sum512(msg)
		return d[:]
	}
}

func (a sigAlg) verify(pub crypto.PublicKey, msg, sig []byte) bool {
	switch a.kind {
	case "RS":
		return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), a.hash, a.digest(msg), sig) == nil
	case "PS":
		// RFC 7518 3.5: the salt is as long as the hash.
		return rsa.VerifyPSS(pub.(*rsa.PublicKey), a.hash, a.digest(msg), sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	case "ES":
		size := (a.curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(pub.(*ecdsa.PublicKey), a.digest(msg), r, s)
	case "EdDSA":
		return ed25519.Verify(pub.(ed25519.PublicKey), msg, sig)
	}
	return false
}

// keyCache holds parsed public keys by their bytes.
type keyCache struct {
	mu sync.RWMutex
	m  map[string]parsedKey
}

type parsedKey struct {
	pub crypto.PublicKey
	err error
}

var publicKeys = keyCache{m: map[string]parsedKey{}}

func (c *keyCache) get(material []byte) (crypto.PublicKey, error) {
	c.mu.RLock()
	k, ok := c.m[string(material)]
	c.mu.RUnlock()
	if ok {
		return k.pub, k.err
	}
	k.pub, k.err = parsePublicKey(material)
	c.mu.Lock()
	if len(c.m) >= sigCacheMax {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[string(material)] = k
	c.mu.Unlock()
	return k.pub, k.err
}

// parsePublicKey reads a PEM public key or one JWK.
func parsePublicKey(b []byte) (crypto.PublicKey, error) {
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '{' {
		return parseJWK(t)
	}
	block, _ := pem.Decode(t)
	if block == nil {
		return nil, errors.New("not a PEM public key or a JWK")
	}
	var pub crypto.PublicKey
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("malformed public key: %w", err)
		}
		pub = k
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("malformed RSA public key: %w", err)
		}
		pub = k
	default:
		return nil, fmt.Errorf("PEM block %q is not a public key (want PUBLIC KEY or RSA PUBLIC KEY)", block.Type)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < rsaMinPEMLen {
			return nil, errors.New("RSA key too small or malformed (2048 bits at least)")
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("EC curve %s is not supported (P-256, P-384)", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("a %T key is not supported", pub)
	}
	return pub, nil
}

// parseJWK reads one JSON Web Key (RFC 7517, 7518, 8037): RSA, EC (P-256,
// P-384) or OKP (Ed25519).
func parseJWK(b []byte) (crypto.PublicKey, error) {
	var j struct {
		Kty, Crv, N, E, X, Y string
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("JWK: %w", err)
	}
	b64 := func(name, s string) ([]byte, error) {
		v, err := base64.RawURLEncoding.DecodeString(string(bytes.TrimRight([]byte(s), "=")))
		if err != nil {
			return nil, fmt.Errorf("JWK %s: %w", name, err)
		}
		return v, nil
	}
	switch j.Kty {
	case "RSA":
		n, err := b64("n", j.N)
		if err != nil {
			return nil, err
		}
		e, err := b64("e", j.E)
		if err != nil {
			return nil, err
		}
		if len(e) == 0 || len(e) > 4 || len(n) == 0 {
			return nil, errors.New("RSA modulus or exponent malformed")
		}
		ei := 0
		for _, c := range e {
			ei = ei<<8 | int(c)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ei}, nil
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		default:
			return nil, fmt.Errorf("EC curve %q is not supported (P-256, P-384)", j.Crv)
		}
		x, err := b64("x", j.X)
		if err != nil {
			return nil, err
		}
		y, err := b64("y", j.Y)
		if err != nil {
			return nil, err
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return nil, errors.New("EC coordinates of the wrong size")
		}
		// The uncompressed encoding's parser checks the point is on the curve.
		return ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, fmt.Errorf("OKP curve %q is not supported (Ed25519)", j.Crv)
		}
		x, err := b64("x", j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("JWK kty %q is not supported (RSA, EC, OKP)", j.Kty)
}
