package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDefaultProfileReads checks default.pgo, the CPU profile `go build`
// optimizes the binary with (make pgo writes it): the tests build with
// -pgo=off (Makefile), so without this a profile Go cannot read would
// first fail a user's `go build`. It must also be a CPU profile of this
// binary's request path, or it optimizes nothing.
func TestDefaultProfileReads(t *testing.T) {
	out, err := exec.Command("go", "tool", "pprof", "-raw", "default.pgo").CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof default.pgo: %v\n%s", err, out)
	}
	text := string(out)
	if !strings.Contains(text, "PeriodType: cpu") {
		t.Errorf("default.pgo is not a CPU profile:\n%.500s", text)
	}
	for _, hot := range []string{"runtime/proxy.(*activeStream).forward", "runtime/http1.ParseRequest"} {
		if !strings.Contains(text, hot) {
			t.Errorf("default.pgo has no samples in %s: not a profile of the request path (make pgo)", hot)
		}
	}
}
