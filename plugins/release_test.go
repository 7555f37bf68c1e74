package plugins

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

// The modules' bytes read the same after their pages were released: the
// kernel faults them back in from the binary.
func TestReleaseModulePagesKeepsBytes(t *testing.T) {
	before := sha256.Sum256(RustModule("jwt"))
	ReleaseModulePages()
	after := sha256.Sum256(RustModule("jwt"))
	if before != after {
		t.Fatal("module bytes changed after ReleaseModulePages")
	}
	if !bytes.HasPrefix(RustModule("jwt"), []byte("\x00asm")) {
		t.Fatal("not a wasm module")
	}
}
