// Command oci-registry is the registry of `make run-oci`: it serves
// go-containerregistry's in-process registry on a loopback address, pushes
// a filter's .wasm as a Wasm image, writes a sluice config that pulls it
// by digest, and serves until it is stopped.
//
//	oci-registry -addr 127.0.0.1:5000 -wasm filter.wasm -template sluice.toml.in -out sluice.toml
//
// In the template, {{REGISTRY}} becomes the registry's host:port and
// {{DIGEST}} the image's manifest digest (hex). The config is written
// (atomically) only once the image is in the registry, so a script can
// wait for the file.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/sluice-proxy/sluice/runtime/wasmsource/wasmsourcetest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "registry address (loopback)")
	wasm := flag.String("wasm", "examples/filters/header-rust/header-rust.wasm", "the module to push")
	repo := flag.String("repo", "filters/header-rust:v1", "repository and tag to push as")
	layout := flag.String("layout", "artifact", "image layout: artifact, oci or docker")
	template := flag.String("template", "examples/oci/sluice.toml.in", "sluice config template")
	out := flag.String("out", "bin/oci-sluice.toml", "where to write the config")
	flag.Parse()
	if err := run(*addr, *wasm, *repo, *layout, *template, *out); err != nil {
		log.Fatalf("oci-registry: %v", err)
	}
}

func run(addr, wasmPath, repo, layout, template, out string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go srv.Serve(ln)
	reg := ln.Addr().String()

	mod, err := os.ReadFile(wasmPath)
	if err != nil {
		return err
	}
	var img v1.Image
	switch layout {
	case "artifact":
		img, err = wasmsourcetest.ArtifactImage(mod)
	case "oci":
		img, err = wasmsourcetest.OCIImage(mod)
	case "docker":
		img, err = wasmsourcetest.DockerImage(mod)
	default:
		err = fmt.Errorf("unknown layout %q", layout)
	}
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(reg+"/"+repo, name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	tmpl, err := os.ReadFile(template)
	if err != nil {
		return err
	}
	cfg := strings.NewReplacer("{{REGISTRY}}", reg, "{{DIGEST}}", digest.Hex).Replace(string(tmpl))
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out+".tmp", []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		return err
	}
	fmt.Printf("registry on %s: pushed %s (%s layout) as oci://%s/%s@%s; config %s\n", reg, wasmPath, layout, reg, strings.Split(repo, ":")[0], digest, out)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	return srv.Close()
}
