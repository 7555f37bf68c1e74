package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
)

// binaryResidentKiB sums the resident pages of this process's read-only
// mappings of its own binary (from /proc/self/smaps).
func binaryResidentKiB(t *testing.T) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps:", err)
	}
	total, in := 0, false
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		switch {
		case len(f) >= 5 && bytes.Contains(f[0], []byte("-")) && !bytes.HasSuffix(f[0], []byte(":")):
			in = len(f) == 6 && string(f[5]) == exe && f[1][1] == '-'
		case in && len(f) >= 2 && string(f[0]) == "Rss:":
			n, _ := strconv.Atoi(string(f[1]))
			total += n
		}
	}
	return total
}

// runtimeState is written while the test runs: the binary's writable data
// must keep it across the release.
var runtimeState = map[string]int{}

// TestReleaseBinaryPages: after start-up, the binary's code and read-only
// data the process touched are unmapped from it (start-up touched most of
// the binary and little of it runs again), the process's data stays as it
// was, and the code it runs next maps back in.
func TestReleaseBinaryPages(t *testing.T) {
	runtimeState["kept"] = 42
	// Touch a good share of the binary, as start-up does.
	var out bytes.Buffer
	run([]string{"--help"}, &out, &out)
	before := binaryResidentKiB(t)
	dropBinaryPages()
	after := binaryResidentKiB(t)
	t.Logf("binary's read-only pages resident: %d KiB before, %d KiB after", before, after)
	if before < 1024 {
		t.Skipf("only %d KiB of the binary resident to begin with", before)
	}
	if after > before/2 {
		t.Errorf("%d KiB of the binary still resident after the release (%d before)", after, before)
	}
	if runtimeState["kept"] != 42 {
		t.Fatalf("writable data lost: %v", runtimeState)
	}
	b, err := json.Marshal(runtimeState)
	if err != nil || string(b) != `{"kept":42}` {
		t.Fatalf("code after the release: %s, %v", b, err)
	}
}

// TestReleaseBinaryPagesAfterStartedGoroutines: the goroutines start-up
// made runnable (and those they start) have run to their first wait before
// the binary's pages are dropped, even with one processor, where none of
// them runs until the main goroutine yields; else their first steps would
// map the pages straight back in.
func TestReleaseBinaryPagesAfterStartedGoroutines(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var ran atomic.Int32
	wait := make(chan struct{})
	defer close(wait)
	for range 3 {
		go func() {
			// A serve loop that starts its own goroutine, as a
			// listener's does.
			go func() {
				ran.Add(1)
				<-wait
			}()
			ran.Add(1)
			<-wait
		}()
	}
	releaseBinaryPages()
	if n := ran.Load(); n != 6 {
		t.Errorf("%d of 6 started goroutines had run when the pages were dropped", n)
	}
}
