package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `sluice validate` on the config bombs of the hardening report (4,000 and
// 20,000 nested inline tables; the parser alone took 905 MB for the first
// and never finished the second) exits 1 at once with the file and line,
// and on a file over the size cap names the file.
func TestValidateRefusesConfigBombs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildSluice(t)
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	inline := func(n int) string {
		return "mode = \"edge\"\nx = " + strings.Repeat("{a=", n) + "1" + strings.Repeat("}", n) + "\n"
	}
	for _, c := range []struct{ path, want string }{
		{write("bomb4000.toml", inline(4000)), ":2: tables, arrays and dotted keys nest more than 64 deep"},
		{write("bomb20000.toml", inline(20000)), ":2: tables, arrays and dotted keys nest more than 64 deep"},
		{write("big.toml", strings.Repeat("# padding\n", 500_000)), ": the file is larger than 4 MiB, the most a config may be"},
	} {
		// The deadline only keeps a regression from hanging the suite.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, "validate", "--config", c.path)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		cancel()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("%s: %v, want exit 1; stderr %q", c.path, err, stderr.String())
			continue
		}
		if !strings.Contains(stderr.String(), c.path+c.want) {
			t.Errorf("%s: stderr %q lacks %q", c.path, stderr.String(), c.path+c.want)
		}
	}
}
