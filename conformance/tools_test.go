package conformance

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/conformance/h2spectest"
)

// TestToolsWaitForAptLock runs .ci/tools.sh's apt path against a stand-in
// apt-get that reports the dpkg lock held by another process: the script
// waits and retries until the lock is free, and gives up with a clear
// message when it stays held past the bound. (A new machine's first `make
// test` used to fail at once on a provisioning apt's lock.)
func TestToolsWaitForAptLock(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script, _ := filepath.Abs(filepath.Join("..", ".ci", "tools.sh"))
	for _, tc := range []struct {
		name      string
		busyCalls int // apt-get calls that find the lock held
		wait      string
		wantOK    bool
		wantMsg   string
	}{
		{name: "lock freed", busyCalls: 2, wait: "30", wantOK: true, wantMsg: "waiting for another apt/dpkg run"},
		{name: "lock kept", busyCalls: 1000, wait: "1", wantOK: false, wantMsg: "still locked by another process"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := t.TempDir()
			calls := filepath.Join(fake, "calls")
			// apt-get: the first busyCalls calls fail as apt does when
			// another process holds /var/lib/dpkg/lock-frontend.
			os.WriteFile(filepath.Join(fake, "apt-get"), []byte(`#!/bin/sh
echo "$*" >> `+calls+`
n=$(wc -l < `+calls+`)
if [ "$n" -le `+strconv.Itoa(tc.busyCalls)+` ]; then
  echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)" >&2
  exit 100
fi
exit 0
`), 0o755)
			os.WriteFile(filepath.Join(fake, "id"), []byte("#!/bin/sh\necho 0\n"), 0o755)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bash, script, "apt", "some-package")
			cmd.Env = append(os.Environ(), "PATH="+fake+string(os.PathListSeparator)+os.Getenv("PATH"),
				"TOOLS_LOCK_WAIT="+tc.wait, "TOOLS_LOCK_POLL=0.05")
			out, err := cmd.CombinedOutput()
			if (err == nil) != tc.wantOK {
				t.Fatalf("tools.sh apt: err %v, want ok=%v\n%s", err, tc.wantOK, out)
			}
			if !strings.Contains(string(out), tc.wantMsg) {
				t.Errorf("output lacks %q:\n%s", tc.wantMsg, out)
			}
			log, _ := os.ReadFile(calls)
			lines := strings.Split(strings.TrimSpace(string(log)), "\n")
			if tc.wantOK {
				// update retried past the lock, then install.
				last := lines[len(lines)-1]
				if len(lines) != tc.busyCalls+2 || !strings.Contains(last, "install") || !strings.Contains(last, "some-package") {
					t.Errorf("apt-get calls:\n%s", log)
				}
			}
			for _, l := range lines {
				if !strings.Contains(l, "DPkg::Lock::Timeout=") {
					t.Errorf("apt-get called without DPkg::Lock::Timeout: %s", l)
				}
			}
		})
	}
}

// TestH2specIsThePinnedBuild: the h2spec the suites run was built from
// conformance/h2spec, with the module versions its go.sum pins (as
// .ci/tools.sh installs it), not one whose dependencies floated.
func TestH2specIsThePinnedBuild(t *testing.T) {
	bin := h2spectest.Binary()
	if bin == "" {
		t.Skip("h2spec not installed (make tools installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	info, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err != nil {
		t.Skipf("%s carries no Go build info: %v", bin, err)
	}
	list := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{if not .Main}}{{.Path}} {{.Version}}{{end}}", "all")
	list.Dir = "h2spec"
	pinned, err := list.Output()
	if err != nil {
		t.Fatalf("go list -m all in conformance/h2spec: %v", err)
	}
	want := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(pinned)), "\n") {
		want[strings.TrimSpace(l)] = true
	}
	built := 0
	for _, l := range strings.Split(string(info), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && (f[0] == "mod" || f[0] == "dep") {
			built++
			if !want[f[1]+" "+f[2]] {
				t.Errorf("%s was built with %s %s, which conformance/h2spec does not pin; run .ci/tools.sh to replace it", bin, f[1], f[2])
			}
		}
	}
	if built == 0 {
		t.Errorf("%s lists no modules in its build info", bin)
	}
}
