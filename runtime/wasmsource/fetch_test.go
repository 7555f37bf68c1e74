package wasmsource

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sluice-proxy/sluice/runtime/pluginsource"
	"github.com/sluice-proxy/sluice/runtime/wasmsource/wasmsourcetest"
)

type testRegistry = wasmsourcetest.Registry

func startRegistry(t *testing.T, wrap func(http.Handler) http.Handler) *testRegistry {
	t.Helper()
	r := wasmsourcetest.Start(wrap)
	t.Cleanup(r.Close)
	return r
}

// image is img from a builder that cannot fail on these inputs.
func image(img v1.Image, err error) v1.Image {
	if err != nil {
		panic(err)
	}
	return img
}

func push(t *testing.T, r *testRegistry, repoTag string, img v1.Image) string {
	t.Helper()
	d, err := r.Push(repoTag, img)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// module is a stand-in for a .wasm: the fetcher never looks inside.
func module(tag string) []byte { return append([]byte("\x00asm\x01\x00\x00\x00"), tag...) }

func newFetcher(t *testing.T, r *testRegistry, dir string) *Fetcher {
	t.Helper()
	f, err := New(Options{CacheDir: dir, InsecureRegistries: []string{r.Host}, Keychain: authn.NewMultiKeychain(),
		RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxAttempts: 3, AttemptTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustParse(t *testing.T, wasm, sha, policy string) pluginsource.Source {
	t.Helper()
	s, err := pluginsource.Parse(wasm, sha, policy)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOCILayouts pulls each layout by tag and by digest from the
// in-process registry and gets the module back, with its layout named.
func TestOCILayouts(t *testing.T) {
	r := startRegistry(t, nil)
	f := newFetcher(t, r, t.TempDir())
	for _, tc := range []struct {
		layout string
		image  func([]byte) (v1.Image, error)
	}{
		{LayoutArtifact, wasmsourcetest.ArtifactImage},
		{LayoutOCIImage, wasmsourcetest.OCIImage},
		{LayoutDockerImage, wasmsourcetest.DockerImage},
	} {
		t.Run(tc.layout, func(t *testing.T) {
			want := module(tc.layout)
			digest := push(t, r, "filters/"+tc.layout+":v1", image(tc.image(want)))
			for _, url := range []string{
				"oci://" + r.Host + "/filters/" + tc.layout + ":v1",
				"oci://" + r.Host + "/filters/" + tc.layout + "@sha256:" + digest,
			} {
				m, err := f.Fetch(t.Context(), mustParse(t, url, "", ""))
				if err != nil {
					t.Fatalf("%s: %v", url, err)
				}
				if !bytes.Equal(m.Bytes, want) || m.Layout != tc.layout || m.ImageDigest != digest || m.SHA256 != sum(want) || m.Cached {
					t.Fatalf("%s: got %q layout %s image %s", url, m.Bytes, m.Layout, m.ImageDigest)
				}
			}
		})
	}
}

// TestOCIWrongDigestRefused: a sha256 that is not the image's, and a
// reference to a digest the registry does not have, give no module.
func TestOCIWrongDigestRefused(t *testing.T) {
	r := startRegistry(t, nil)
	f := newFetcher(t, r, t.TempDir())
	push(t, r, "filters/a:v1", image(wasmsourcetest.ArtifactImage(module("a"))))
	wrong := strings.Repeat("ab", 32)
	_, err := f.Fetch(t.Context(), mustParse(t, "oci://"+r.Host+"/filters/a:v1", wrong, ""))
	var fe *Error
	if !errors.As(err, &fe) || fe.Cause != CauseVerify || !strings.Contains(err.Error(), "not sha256:"+wrong) {
		t.Fatalf("tag with a wrong sha256: %v", err)
	}
	if _, ok := f.Cached(mustParse(t, "oci://"+r.Host+"/filters/a:v1", wrong, "")); ok {
		t.Fatal("a refused image was cached")
	}
	_, err = f.Fetch(t.Context(), mustParse(t, "oci://"+r.Host+"/filters/a@sha256:"+wrong, "", ""))
	if !errors.As(err, &fe) || fe.Cause != CauseFetch {
		t.Fatalf("unknown digest: %v", err)
	}
	// Not a Wasm image: a layer that is neither the artifact nor plugin.wasm.
	img, _ := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
		static.NewLayer(wasmsourcetest.TarGz(map[string][]byte{"app": []byte("x")}), types.OCILayer))
	push(t, r, "filters/app:v1", img)
	_, err = f.Fetch(t.Context(), mustParse(t, "oci://"+r.Host+"/filters/app:v1", "", ""))
	if !errors.As(err, &fe) || fe.Cause != CauseVerify || !strings.Contains(err.Error(), "no plugin.wasm") {
		t.Fatalf("image without a module: %v", err)
	}
}

// TestPullPolicies: IfNotPresent is served from the disk cache (by a new
// Fetcher, as after a restart) with the registry down; Always goes to the
// registry each time and sees a moved tag.
func TestPullPolicies(t *testing.T) {
	r := startRegistry(t, nil)
	dir := t.TempDir()
	push(t, r, "filters/p:v1", image(wasmsourcetest.OCIImage(module("one"))))
	src := mustParse(t, "oci://"+r.Host+"/filters/p:v1", "", "")
	if src.Policy != pluginsource.IfNotPresent {
		t.Fatalf("default policy %s", src.Policy)
	}
	if _, err := newFetcher(t, r, dir).Fetch(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	r.Down.Store(true)
	m, ok := newFetcher(t, r, dir).Cached(src)
	if !ok || string(m.Bytes) != string(module("one")) || !m.Cached {
		t.Fatalf("IfNotPresent with the registry down: %q %v", m.Bytes, ok)
	}
	if _, err := newFetcher(t, r, dir).Fetch(t.Context(), src); err == nil {
		t.Fatal("a fetch from a registry that is down succeeded")
	}
	r.Down.Store(false)

	always := mustParse(t, "oci://"+r.Host+"/filters/p:v1", "", "Always")
	f := newFetcher(t, r, dir)
	before := r.Manifests.Load()
	push(t, r, "filters/p:v1", image(wasmsourcetest.OCIImage(module("two"))))
	m, err := f.Fetch(t.Context(), always)
	if err != nil || string(m.Bytes) != string(module("two")) {
		t.Fatalf("Always: %q %v", m.Bytes, err)
	}
	if r.Manifests.Load() <= before {
		t.Fatal("Always did not ask the registry")
	}
	// The tag now resolves to the new image in the cache too.
	if m, ok := f.Cached(src); !ok || string(m.Bytes) != string(module("two")) {
		t.Fatalf("cache after Always: %q", m.Bytes)
	}
	if latest := mustParse(t, "oci://"+r.Host+"/filters/p", "", ""); latest.Policy != pluginsource.Always {
		t.Fatalf(":latest defaults to %s, want Always", latest.Policy)
	}
}

// TestInsecureRegistryMustBeListed: a plain-HTTP registry not listed in
// insecure_registries is refused, although it is on loopback.
func TestInsecureRegistryMustBeListed(t *testing.T) {
	r := startRegistry(t, nil)
	push(t, r, "filters/a:v1", image(wasmsourcetest.ArtifactImage(module("a"))))
	f, err := New(Options{Keychain: authn.NewMultiKeychain(), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Fetch(t.Context(), mustParse(t, "oci://"+r.Host+"/filters/a:v1", "", ""))
	if err == nil || !strings.Contains(err.Error(), "not in [wasm] insecure_registries") {
		t.Fatalf("unlisted plain-HTTP registry: %v", err)
	}
}

// TestRegistryCredentialsFromDockerConfig: the default keychain reads
// DOCKER_CONFIG/config.json and the registry (behind basic auth) answers.
func TestRegistryCredentialsFromDockerConfig(t *testing.T) {
	r := startRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if u, p, ok := req.BasicAuth(); !ok || u != "puller" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, req)
		})
	})
	cfgDir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("puller:s3cret"))
	os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"auths":{"`+r.Host+`":{"auth":"`+auth+`"}}}`), 0o600)
	t.Setenv("DOCKER_CONFIG", cfgDir)
	img, _ := wasmsourcetest.ArtifactImage(module("a"))
	if _, err := r.Push("filters/a:v1", img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		t.Fatal(err)
	}
	f, err := New(Options{InsecureRegistries: []string{r.Host}, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.Fetch(t.Context(), mustParse(t, "oci://"+r.Host+"/filters/a:v1", "", ""))
	if err != nil || string(m.Bytes) != string(module("a")) {
		t.Fatalf("with credentials: %q %v", m.Bytes, err)
	}
	os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{}`), 0o600)
	if _, err := f.Fetch(t.Context(), mustParse(t, "oci://"+r.Host+"/filters/a:v1", "", "Always")); err == nil {
		t.Fatal("fetched without credentials")
	}
}

// TestHTTPS fetches from a local TLS server: the right sha256 gives the
// module (cached: served again with the server gone), a wrong one is
// refused without retrying, a server that fails is retried with backoff.
func TestHTTPS(t *testing.T) {
	want := module("https")
	var hits atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/flaky.wasm" && hits.Load() < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write(want)
	}))
	srv.Config.ErrorLog = nilLogger() // the untrusted-certificate case below
	defer srv.Close()
	f, err := New(Options{CacheDir: t.TempDir(), Transport: srv.Client().Transport, RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	src := mustParse(t, srv.URL+"/filter.wasm", sum(want), "")
	m, err := f.FetchRetry(t.Context(), src, nil)
	if err != nil || !bytes.Equal(m.Bytes, want) || m.Digest() != sum(want) {
		t.Fatalf("right sha256: %q %v", m.Bytes, err)
	}
	if c, ok := f.Cached(src); !ok || !bytes.Equal(c.Bytes, want) {
		t.Fatal("not cached")
	}

	hits.Store(0)
	var attempts int
	_, err = f.FetchRetry(t.Context(), mustParse(t, srv.URL+"/filter.wasm", strings.Repeat("0", 64), ""), func(int, error) { attempts++ })
	var fe *Error
	if !errors.As(err, &fe) || fe.Cause != CauseVerify || attempts != 1 || hits.Load() != 1 {
		t.Fatalf("wrong sha256: %v after %d attempts, %d requests", err, attempts, hits.Load())
	}

	hits.Store(0)
	attempts = 0
	m, err = f.FetchRetry(t.Context(), mustParse(t, srv.URL+"/flaky.wasm", sum(want), "Always"), func(int, error) { attempts++ })
	if err != nil || attempts != 2 || !bytes.Equal(m.Bytes, want) {
		t.Fatalf("flaky server: %v after %d failed attempts", err, attempts)
	}
	// Without the test's trust root, the server's certificate is refused.
	plain, _ := New(Options{MaxAttempts: 1})
	if _, err := plain.Fetch(context.Background(), src); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
}

func TestParse(t *testing.T) {
	h := strings.Repeat("a", 64)
	for _, tc := range []struct {
		wasm, sha, policy string
		kind              pluginsource.Kind
		err               string
	}{
		{"builtin:jwt", "", "", pluginsource.Builtin, ""},
		{"/srv/f.wasm", "", "", pluginsource.File, ""},
		{"file:///srv/f.wasm", "", "", pluginsource.File, ""},
		{"file://srv/f.wasm", "", "", "", "absolute path"},
		{"https://example.test/f.wasm", h, "", pluginsource.HTTPS, ""},
		{"https://example.test/f.wasm", "", "", "", "needs sha256"},
		{"http://example.test/f.wasm", h, "", "", "plain http"},
		{"ftp://x/f.wasm", "", "", "", "unknown scheme"},
		{"oci://127.0.0.1:5000/f:v1", "", "", pluginsource.OCI, ""},
		{"oci://127.0.0.1:5000/f@sha256:" + h, "", "", pluginsource.OCI, ""},
		{"oci://127.0.0.1:5000/f@sha256:" + h, strings.Repeat("b", 64), "", "", "does not match"},
		{"oci://127.0.0.1:5000/F:v1", "", "", "", "could not parse reference"},
		{"oci://127.0.0.1:5000/f:v1", "abc", "", "", "64 hex digits"},
		{"oci://127.0.0.1:5000/f:v1", "", "Sometimes", "", "unknown pull_policy"},
	} {
		s, err := pluginsource.Parse(tc.wasm, tc.sha, tc.policy)
		if tc.err == "" && (err != nil || s.Kind != tc.kind) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("pluginsource.Parse(%q, %q, %q) = %+v, %v; want kind %q error %q", tc.wasm, tc.sha, tc.policy, s, err, tc.kind, tc.err)
		}
	}
}
