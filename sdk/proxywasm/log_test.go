package proxywasm

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestDecimal(t *testing.T) {
	for _, n := range []uint32{0, 7, 10, 99, 100, 65535, 1<<32 - 1} {
		if got, want := decimal(n), strconv.FormatUint(uint64(n), 10); got != want {
			t.Errorf("decimal(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestQuote(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", `""`},
		{"auth", `"auth"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"line\nforged", `"line\x0aforged"`},
		{"\x7f\xff", `"\x7f\xff"`},
	} {
		if got := quote(c.in); got != c.want {
			t.Errorf("quote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// TestSDKPathsLinkNoFmt builds the benchmark's SDK filter, which formats
// nothing itself, for wasip1 and reads the functions the module has
// (its name section): none of fmt's. fmt.Sprintf on the SDK's own paths
// put fmt's printer and what it needs (0.23 MB of Wasm code) into every
// filter, and 1.5 MiB of compiled code per filter into the host.
func TestSDKPathsLinkNoFmt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasip1 module")
	}
	gotool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gotool); err != nil {
		t.Skip("no go tool:", err)
	}
	out := filepath.Join(t.TempDir(), "sdk.wasm")
	cmd := exec.Command(gotool, "build", "-trimpath", "-buildmode=c-shared", "-o", out, "./testdata/bench/sdk")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	mod, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	names := functionNames(t, mod)
	// Go writes github.com/x/y.F as github.com_x_y.F.
	if !slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, "sdk_proxywasm.") }) {
		t.Fatalf("the module's names do not list the SDK's functions (%d names)", len(names))
	}
	for _, n := range names {
		if strings.HasPrefix(n, "fmt.") {
			t.Errorf("the SDK filter links %s", n)
		}
	}
}

// functionNames reads the function names of a module's name section.
func functionNames(t *testing.T, b []byte) []string {
	t.Helper()
	pos := 8
	u32 := func() int {
		var v, shift int
		for pos < len(b) {
			c := b[pos]
			pos++
			v |= int(c&0x7f) << shift
			if c < 0x80 {
				return v
			}
			shift += 7
		}
		t.Fatal("truncated module")
		return 0
	}
	for pos < len(b) {
		id := b[pos]
		pos++
		size := u32()
		end := pos + size
		if id == 0 {
			n := u32()
			name := string(b[pos : pos+n])
			pos += n
			for name == "name" && pos < end {
				sub := b[pos]
				pos++
				subEnd := u32()
				subEnd += pos
				if sub == 1 {
					var names []string
					for count := u32(); count > 0; count-- {
						u32()
						l := u32()
						names = append(names, string(b[pos:pos+l]))
						pos += l
					}
					return names
				}
				pos = subEnd
			}
		}
		pos = end
	}
	t.Fatal("no function names in the module")
	return nil
}
