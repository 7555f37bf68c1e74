package wasmsource

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sluice-proxy/sluice/runtime/pluginsource"
)

// The three ways Wasm images in use carry a module, told apart as Istio's
// fetcher does: by the layers' media types, not the image's name.
const (
	// LayoutArtifact: the Wasm OCI artifact (solo-io's "oci" variant), a
	// layer of this media type holding the raw module.
	LayoutArtifact = "wasm-artifact"
	// LayoutOCIImage: a standard OCI image whose last layer is a
	// tar+gzip holding plugin.wasm ("compat" variant, one layer).
	LayoutOCIImage = "oci-image"
	// LayoutDockerImage: a Docker v2 image (any number of layers, often
	// a base and the module) whose last layer holds plugin.wasm.
	LayoutDockerImage = "docker-image"

	wasmLayerMediaType = "application/vnd.module.wasm.content.layer.v1+wasm"
	// pluginFile is the module's name inside a compat image's layer.
	pluginFile = "plugin.wasm"
)

func (f *Fetcher) fetchOCI(ctx context.Context, src pluginsource.Source) (Module, error) {
	var opts []name.Option
	ref0, err := name.ParseReference(src.Ref)
	if err != nil {
		return Module{}, &Error{CauseFetch, src.URL, err}
	}
	if f.insecure[ref0.Context().RegistryStr()] {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(src.Ref, opts...)
	if err != nil {
		return Module{}, &Error{CauseFetch, src.URL, err}
	}
	desc, err := remote.Get(ref,
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(f.opts.Keychain),
		remote.WithTransport(&httpsOnly{base: f.opts.Transport, insecure: f.insecure}))
	if err != nil {
		return Module{}, &Error{CauseFetch, src.URL, err}
	}
	image := desc.Digest.Hex
	if desc.Digest.Algorithm != "sha256" || src.SHA256 != "" && image != src.SHA256 {
		return Module{}, &Error{CauseVerify, src.URL, fmt.Errorf("the image's manifest digest is %s, not sha256:%s", desc.Digest, src.SHA256)}
	}
	img, err := desc.Image()
	if err != nil {
		return Module{}, &Error{CauseFetch, src.URL, err}
	}
	b, layout, err := extractModule(img, f.opts.MaxModuleBytes)
	if err != nil {
		// The registry's content checks out (go-containerregistry verifies
		// each blob against its digest): this image is not a Wasm image.
		return Module{}, &Error{CauseVerify, src.URL, err}
	}
	return Module{Bytes: b, SHA256: sum(b), ImageDigest: image, Layout: layout}, nil
}

// extractModule finds the module in an image of any of the three layouts.
func extractModule(img v1.Image, limit int64) ([]byte, string, error) {
	manifest, err := img.Manifest()
	if err != nil {
		return nil, "", err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, "", err
	}
	if len(layers) == 0 {
		return nil, "", errors.New("the image has no layers")
	}
	for _, l := range layers {
		mt, err := l.MediaType()
		if err != nil {
			return nil, "", err
		}
		if mt == wasmLayerMediaType {
			// Stored as is, whatever go-containerregistry assumes of a
			// layer: read the blob, not an "uncompressed" view of it.
			b, err := readLayer(l, limit, readRaw)
			return b, LayoutArtifact, err
		}
	}
	last := layers[len(layers)-1]
	mt, err := last.MediaType()
	if err != nil {
		return nil, "", err
	}
	layout := LayoutOCIImage
	switch {
	case manifest.MediaType == types.DockerManifestSchema2 && mt == types.DockerLayer:
		layout = LayoutDockerImage
	case mt == types.OCILayer:
	default:
		return nil, "", fmt.Errorf("not a Wasm image: no %s layer, and the last layer is %s, not a tar+gzip holding %s", wasmLayerMediaType, mt, pluginFile)
	}
	b, err := readLayer(last, limit, readPluginFromTarGz)
	return b, layout, err
}

func readLayer(l v1.Layer, limit int64, read func(io.Reader, int64) ([]byte, error)) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := read(rc, limit)
	if err != nil {
		return nil, err
	}
	// Drain what is left so the digest check at EOF runs.
	if _, err := io.Copy(io.Discard, io.LimitReader(rc, limit)); err != nil {
		return nil, err
	}
	return b, nil
}

func readRaw(r io.Reader, limit int64) ([]byte, error) { return readCapped(r, limit) }

// readPluginFromTarGz returns plugin.wasm from a tar+gzip layer, reading
// at most limit bytes of the uncompressed stream (a gzip bomb stops there).
func readPluginFromTarGz(r io.Reader, limit int64) ([]byte, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("layer is not gzip: %w", err)
	}
	// Headers and padding of the other files count too: allow some slack.
	tr := tar.NewReader(io.LimitReader(gz, 2*limit+1<<20))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("no %s in the image's last layer", pluginFile)
		}
		if err != nil {
			return nil, fmt.Errorf("layer is not a tar: %w", err)
		}
		if path.Base(h.Name) != pluginFile || h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > limit {
			return nil, fmt.Errorf("%s is %d bytes, more than the module limit of %d", pluginFile, h.Size, limit)
		}
		return readCapped(tr, limit)
	}
}

// httpsOnly refuses plain-HTTP requests to registries not listed in
// [wasm] insecure_registries. go-containerregistry falls back to http by
// itself for loopback and private addresses; sluice does not.
type httpsOnly struct {
	base     http.RoundTripper
	insecure map[string]bool
}

func (t *httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" && !t.insecure[r.URL.Host] {
		return nil, fmt.Errorf("%s is not https and %s is not in [wasm] insecure_registries", r.URL.Redacted(), r.URL.Host)
	}
	return t.base.RoundTrip(r)
}
