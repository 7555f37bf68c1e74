// Package wasmsourcetest serves Wasm images from go-containerregistry's
// in-process registry on loopback, for tests and the local example: each
// of the three image layouts plugins are published in.
package wasmsourcetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// WasmLayerMediaType is the Wasm OCI artifact's layer.
const WasmLayerMediaType = "application/vnd.module.wasm.content.layer.v1+wasm"

// Registry is a plain-HTTP registry on 127.0.0.1 that counts the manifest
// requests it answers; Down makes it answer 503 to everything.
type Registry struct {
	Server    *httptest.Server
	Host      string // 127.0.0.1:PORT
	Manifests atomic.Int64
	Down      atomic.Bool
}

// Start serves a registry until Close; wrap (if not nil) sees every
// request first, as an auth check would.
func Start(wrap func(http.Handler) http.Handler) *Registry {
	r := &Registry{}
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.Down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if strings.Contains(req.URL.Path, "/manifests/") {
			r.Manifests.Add(1)
		}
		h.ServeHTTP(w, req)
	}))
	r.Host = strings.TrimPrefix(r.Server.URL, "http://")
	return r
}

// Close stops the registry.
func (r *Registry) Close() { r.Server.Close() }

// Push writes img as repoTag ("repo:tag") and returns its manifest
// digest (hex).
func (r *Registry) Push(repoTag string, img v1.Image, opts ...remote.Option) (string, error) {
	ref, err := name.ParseReference(r.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		return "", fmt.Errorf("push %s: %w", repoTag, err)
	}
	d, err := img.Digest()
	return d.Hex, err
}

// TarGz is a tar+gzip layer holding files.
func TarGz(files map[string][]byte) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, b := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		tw.Write(b)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// ArtifactImage is the Wasm OCI artifact: a runtime-config layer and the
// raw module in a layer of its own media type.
func ArtifactImage(wasm []byte) (v1.Image, error) {
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
		mutate.Addendum{Layer: static.NewLayer([]byte(`{"type":"envoy_proxy"}`), "application/vnd.module.wasm.runtime.config.v1+json")},
		mutate.Addendum{Layer: static.NewLayer(wasm, WasmLayerMediaType)})
	if err != nil {
		return nil, err
	}
	return mutate.ConfigMediaType(img, "application/vnd.module.wasm.config.v1+json"), nil
}

// OCIImage is a standard single-layer OCI image whose layer holds
// plugin.wasm (the "compat" variant).
func OCIImage(wasm []byte) (v1.Image, error) {
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
		static.NewLayer(TarGz(map[string][]byte{"plugin.wasm": wasm}), types.OCILayer))
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, map[string]string{"module.wasm.image/variant": "compat"}).(v1.Image), nil
}

// DockerImage is a Docker v2 image of two layers, a base and one holding
// plugin.wasm, as `docker build` from a scratch-like base makes.
func DockerImage(wasm []byte) (v1.Image, error) {
	return mutate.AppendLayers(empty.Image,
		static.NewLayer(TarGz(map[string][]byte{"etc/os-release": []byte("base")}), types.DockerLayer),
		static.NewLayer(TarGz(map[string][]byte{"README": []byte("hi"), "plugin.wasm": wasm}), types.DockerLayer))
}
