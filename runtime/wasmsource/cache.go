package wasmsource

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// cache keeps fetched modules by their SHA-256 and what each reference
// resolved to, on disk when it has a directory and in memory otherwise.
// Files are written to a temporary name and renamed, so a crash or a
// second process never leaves a half-written module under a digest.
//
//	DIR/modules/sha256/HEX.wasm   a module, by its own digest
//	DIR/refs/HEX                  a reference (tag, image digest, URL) by
//	                              its name's digest: what it resolved to
type cache struct {
	dir   string
	limit int64

	mu   sync.Mutex
	mods map[string][]byte // without a directory
	refs map[string]string
}

func newCache(dir string, limit int64) (*cache, error) {
	c := &cache{dir: dir, limit: limit, mods: map[string][]byte{}, refs: map[string]string{}}
	if dir == "" {
		return c, nil
	}
	for _, sub := range []string{"modules/sha256", "refs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("wasm module cache: %w", err)
		}
	}
	return c, nil
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// module returns the cached module with that digest, checked against it
// (a corrupted file is a miss, and is removed).
func (c *cache) module(digest string) ([]byte, bool) {
	if c.dir == "" {
		c.mu.Lock()
		defer c.mu.Unlock()
		b, ok := c.mods[digest]
		return b, ok
	}
	path := filepath.Join(c.dir, "modules", "sha256", digest+".wasm")
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, c.limit+1))
	if err != nil || int64(len(b)) > c.limit || sum(b) != digest {
		os.Remove(path)
		return nil, false
	}
	return b, true
}

// putModule stores b under its digest and returns the digest.
func (c *cache) putModule(b []byte) (string, error) {
	d := sum(b)
	if c.dir == "" {
		c.mu.Lock()
		c.mods[d] = b
		c.mu.Unlock()
		return d, nil
	}
	return d, c.write(filepath.Join(c.dir, "modules", "sha256", d+".wasm"), b)
}

// ref returns what key last resolved to.
func (c *cache) ref(key string) (string, bool) {
	if c.dir == "" {
		c.mu.Lock()
		defer c.mu.Unlock()
		v, ok := c.refs[key]
		return v, ok
	}
	b, err := os.ReadFile(filepath.Join(c.dir, "refs", sum([]byte(key))))
	if err != nil {
		return "", false
	}
	// The file holds the key too, so a (theoretical) collision is a miss.
	k, v, ok := strings.Cut(string(b), "\n")
	if !ok || k != key || v == "" {
		return "", false
	}
	return v, true
}

func (c *cache) putRef(key, value string) error {
	if strings.Contains(key, "\n") || strings.Contains(value, "\n") {
		return errors.New("newline in a cache key")
	}
	if c.dir == "" {
		c.mu.Lock()
		c.refs[key] = value
		c.mu.Unlock()
		return nil
	}
	return c.write(filepath.Join(c.dir, "refs", sum([]byte(key))), []byte(key+"\n"+value))
}

// write replaces path atomically: a temporary file in the cache's own
// tmp directory (same file system), synced, then renamed.
func (c *cache) write(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "part-*")
	if err != nil {
		return fmt.Errorf("wasm module cache: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("wasm module cache: %w", err)
	}
	return nil
}
