package config

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// MaxNamedFileBytes caps every file a config names other than .wasm
// modules (certificates, keys, trust bundles, endpoints files): far above
// any real one, and small enough that a wrong path cannot exhaust memory.
const MaxNamedFileBytes = 16 << 20

// ReadFile reads a file the config names under key (as in
// "clusters[0].endpoints_file"). It must be a regular file, not a
// directory, device or pipe (/dev/zero never ends), of at most limit
// bytes; the errors name the key (unless it is "") and the path. The size
// is checked on the opened file and again while reading, so a file that
// grows meanwhile is refused too.
func ReadFile(key, path string, limit int64) ([]byte, error) {
	b, err := readRegular(path, limit)
	if err != nil && key != "" {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return b, err
}

func readRegular(path string, limit int64) ([]byte, error) {
	// Stat first: opening a named pipe would wait for a writer.
	if err := StatFile(path, limit); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, unwrapPathErr(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, unwrapPathErr(err))
	}
	if err := checkFileInfo(fi, path, limit); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, unwrapPathErr(err))
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s grew past the limit of %s while being read", path, sizeString(limit))
	}
	return b, nil
}

// Problem is a problem with key found outside Validate (by a check that
// needs more than the config, such as reading a plugin's module), placed
// at the key's line like Validate's own.
func (c *Config) Problem(key, msg string) Problem {
	return Problem{File: c.Path, Line: c.src.Line(key), Key: key, Msg: msg}
}

// StatFile checks what ReadFile would without reading: `sluice validate`
// and the config check use it.
func StatFile(path string, limit int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, unwrapPathErr(err))
	}
	return checkFileInfo(fi, path, limit)
}

func checkFileInfo(fi fs.FileInfo, path string, limit int64) error {
	switch {
	case fi.IsDir():
		return fmt.Errorf("%s is a directory, not a file", path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file (%s)", path, fileKind(fi.Mode()))
	case fi.Size() > limit:
		return fmt.Errorf("%s is %s, more than the limit of %s", path, sizeString(fi.Size()), sizeString(limit))
	}
	return nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return m.Type().String()
}

func sizeString(n int64) string {
	b, _ := Size(n).MarshalText()
	if s := string(b); s != fmt.Sprint(n) {
		return s
	}
	return fmt.Sprintf("%d bytes", n)
}
