package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadFileRefusesWhatIsNotASmallRegularFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small.pem")
	os.WriteFile(small, []byte("hello"), 0o644)
	big := filepath.Join(dir, "big.pem")
	os.WriteFile(big, make([]byte, 2048), 0o644)
	zero := filepath.Join(dir, "zero.pem")
	os.Symlink("/dev/zero", zero)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		path string
		want string // "" reads the file
	}{
		"regular":           {small, ""},
		"directory":         {dir, "tls.ca: " + dir + " is a directory, not a file"},
		"/dev/zero":         {"/dev/zero", "tls.ca: /dev/zero is not a regular file (a character device)"},
		"link to /dev/zero": {zero, "tls.ca: " + zero + " is not a regular file (a character device)"},
		"named pipe":        {fifo, "tls.ca: " + fifo + " is not a regular file (a named pipe)"},
		"over the limit":    {big, "tls.ca: " + big + " is 2KiB, more than the limit of 1000 bytes"},
		"missing":           {filepath.Join(dir, "nope"), "tls.ca: cannot read " + filepath.Join(dir, "nope") + ": no such file or directory"},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := ReadFile("tls.ca", tc.path, 1000)
			if tc.want == "" {
				if err != nil || string(b) != "hello" {
					t.Fatalf("ReadFile = %q, %v", b, err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("ReadFile error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestValidateRefusesDevZero: validate (and so start and reload) refuses
// files that are not regular, naming the key, the line and the reason.
func TestValidateRefusesDevZero(t *testing.T) {
	for key, text := range map[string]string{
		"plugins[0].wasm": `
[[plugins]]
name = "p"
wasm = "/dev/zero"
`,
		"clusters[0].endpoints_file": `
[[routes]]
name = "r"
backends = [ { cluster = "c" } ]
[[clusters]]
name = "c"
endpoints_file = "/dev/zero"
`,
	} {
		_, err := Parse("sluice.toml", []byte(text))
		if err == nil || !strings.Contains(err.Error(), key+": /dev/zero is not a regular file (a character device)") {
			t.Errorf("%s: got %v", key, err)
		}
	}
}

func TestMaxModuleBytes(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "f.wasm")
	os.WriteFile(wasm, make([]byte, 3000), 0o644)
	c, err := Parse(filepath.Join(dir, "a.toml"), []byte("[[plugins]]\nname = \"p\"\nwasm = \"f.wasm\"\n"))
	if err != nil || c.Wasm.MaxModuleBytes != DefaultMaxModuleBytes {
		t.Fatalf("default: %v %v", c, err)
	}
	_, err = Parse(filepath.Join(dir, "b.toml"), []byte("[wasm]\nmax_module_bytes = \"2KiB\"\n[[plugins]]\nname = \"p\"\nwasm = \"f.wasm\"\n"))
	if err == nil || !strings.Contains(err.Error(), "b.toml:5: plugins[0].wasm: "+wasm+" is 3000 bytes, more than the limit of 2KiB") {
		t.Fatalf("got %v", err)
	}
}
