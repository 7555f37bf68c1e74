// Package signature verifies public-key signatures in the host, with
// sluice's foreign function sluice_verify_signature (see the SDK's
// README, "Signatures verified by the host"). Its own package so that a
// filter that does not use it is built exactly as before.
package signature

import (
	"encoding/binary"

	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// UnusableKeyError is Verify's error for a key that cannot
// verify the algorithm: it does not parse, or it is of another type.
type UnusableKeyError struct{ Reason string }

func (e *UnusableKeyError) Error() string { return "unusable key: " + e.Reason }

// Verify verifies a public-key signature in the host, with Go's
// native crypto (sluice's foreign function sluice_verify_signature), so a
// filter carries no RSA, ECDSA or Ed25519 code of its own: alg is a JWS
// name (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA),
// key a PEM public key ("PUBLIC KEY" or "RSA PUBLIC KEY") or one JWK as
// JSON, signature in JWS form (r||s for ECDSA). The host parses a key once
// and caches it by its bytes, so pass the same key every time. An empty
// signature checks the key alone (false, nil if it parses): do that in
// OnPluginStart to refuse a bad key early. A key that cannot verify
// returns an *UnusableKeyError; a host without the function
// types.ErrorStatusNotFound; an unknown algorithm
// types.ErrorStatusBadArgument.
func Verify(alg string, key, message, signature []byte) (bool, error) {
	return signatureResult(proxywasm.CallForeignFunction("sluice_verify_signature", signatureArgs(alg, key, message, signature)))
}

// signatureResult reads the function's answer.
func signatureResult(out []byte, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	switch {
	case len(out) == 1 && out[0] == 1:
		return true, nil
	case len(out) == 1 && out[0] == 0:
		return false, nil
	case len(out) >= 1 && out[0] == 2:
		return false, &UnusableKeyError{Reason: string(out[1:])}
	}
	return false, types.ErrorStatusInternalFailure
}

// signatureArgs encodes the function's argument: each field as a
// little-endian u32 length and its bytes.
func signatureArgs(alg string, key, message, signature []byte) []byte {
	b := make([]byte, 0, 16+len(alg)+len(key)+len(message)+len(signature))
	for _, f := range [][]byte{[]byte(alg), key, message, signature} {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}
