//go:build linux

package iohandle

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestNetpollFIFOOverlay: the runtime's netpoller runs the goroutines one
// poll found ready last-ready first, and netpoll-fifo.sh's overlay makes
// it run them in the kernel's order. The probe (testdata/netpollorder)
// readies 32 readers in order 0..31 for one poll and prints the order
// they ran in; built with the overlay it must print 0..31. It also fails
// when this Go's runtime no longer has the loop the script patches, so
// the loss shows (the build then falls back to the stock netpoller).
func TestNetpollFIFOOverlay(t *testing.T) {
	src := filepath.Join(runtime.GOROOT(), "src", "runtime", "netpoll_epoll.go")
	dir := t.TempDir()
	out, err := exec.Command("bash", "netpoll-fifo.sh", src, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("netpoll-fifo.sh: %v\n%s", err, out)
	}
	if len(out) > 0 {
		t.Fatalf("netpoll-fifo.sh did not patch this Go's runtime:\n%s", out)
	}
	want := make([]string, 32)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	probe := func(overlay bool) string {
		bin := filepath.Join(dir, "probe")
		args := []string{"build", "-o", bin}
		if overlay {
			bin += "-fifo"
			args = []string{"build", "-overlay", filepath.Join(dir, "overlay.json"), "-o", bin}
		}
		args = append(args, "./testdata/netpollorder")
		if out, err := exec.Command(goTool(), args...).CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("probe: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	t.Logf("stock runtime: %s", probe(false))
	// A busy machine can split the probe's one poll in two (its writing
	// loop descheduled long enough for the runtime's monitor to poll in
	// between), which mixes the order whatever the loop's direction; so
	// a few tries, and one in the kernel's order shows the overlay. A
	// stock loop never gives it: it reverses every poll's batch.
	var got []string
	for range 5 {
		got = append(got, probe(true))
		if got[len(got)-1] == strings.Join(want, " ") {
			return
		}
	}
	t.Errorf("with the overlay the readers ran in the orders\n%s\nwant the kernel's\n%s", strings.Join(got, "\n"), strings.Join(want, " "))
}

func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
