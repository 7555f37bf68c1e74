# Sluice: `make run` starts the quickstart (`make run-mesh` two sidecars,
# `make run-kong` and `make run-istio` the migration examples),
# `make test` installs what the tests need and runs them all, `make bench`
# measures against nginx.
SHELL := /bin/bash
GO ?= go
BIN := bin
export GOFLAGS := -buildvcs=false
# One compilation cache for every test binary and run: compiling a Go
# .wasm costs wazero seconds, loading it from the cache milliseconds.
export SLUICE_WASM_CACHE ?= $(HOME)/.cache/sluice-wasm

# The race detector runs where the host's concurrency is: runtime, hostabi,
# cmd. The plugins' tests drive the built-in guests through that same host
# one stream at a time; under -race they took 6 minutes of a 13-minute
# make test on a loaded 2-core machine and have nothing of their own to race.
RACE_PKGS := ./runtime/... ./hostabi/... ./cmd/... ./docs/...
PLAIN_PKGS := ./plugins/...

.PHONY: all build run test tools lint plugins plugins-check test-go test-sdk bench conformance conformance-report clean fuzz

all: build

# Built without cgo: a static binary maps no libc and loader (1.3-1.5 MiB
# of resident memory, measured by bench/memory.sh) and makes no C malloc
# arenas; sluice needs nothing from C (Go's own DNS resolver, and its
# /etc/passwd reader for os/user).
#
# The netpoller runs the goroutines one poll finds ready in the kernel's
# order (runtime/iohandle/README.md: the stock runtime runs the last-ready
# first, a latency tail under load), through a build overlay; with a Go
# whose runtime the overlay does not fit, the stock one with a warning.
# Its directory starts with "_" so that ./... patterns (go vet, go test)
# do not take the patched runtime file for a package of ours.
build:
	bash runtime/iohandle/netpoll-fifo.sh "$$($(GO) env GOROOT)/src/runtime/netpoll_epoll.go" $(BIN)/_netpoll-fifo
	CGO_ENABLED=0 $(GO) build -overlay $(BIN)/_netpoll-fifo/overlay.json -o $(BIN)/sluice ./cmd/sluice

$(BIN)/demo-upstream: examples/demo-upstream/main.go
	$(GO) build -o $@ ./examples/demo-upstream

# The quickstart: a demo upstream on 127.0.0.1:9000 and sluice on
# 127.0.0.1:8080 in front of it, with the built-in add-header filter.
run: build $(BIN)/demo-upstream
	@$(BIN)/demo-upstream -addr 127.0.0.1:9000 & demo=$$!; \
	trap "kill $$demo 2>/dev/null" EXIT INT TERM; \
	echo "sluice quickstart: try  curl -s localhost:8080/hello  (admin on 127.0.0.1:9901)"; \
	$(BIN)/sluice run --config examples/quickstart.toml

# The mesh example (examples/mesh, docs/mesh.md): two sidecars with
# certificates from `sluice ca`, and the demo upstream as the app behind
# one of them.
.PHONY: run-mesh
run-mesh: build $(BIN)/demo-upstream
	@bash examples/mesh/run.sh

# The Kong and Istio examples (examples/*.toml, docs/from-kong.md,
# docs/from-istio.md) with demo upstreams for their clusters, and
# redis-server for the Kong example's Redis counters.
.PHONY: run-kong run-istio
run-kong: build $(BIN)/demo-upstream
	@bash examples/run.sh kong

run-istio: build $(BIN)/demo-upstream
	@bash examples/run.sh istio

$(BIN)/oci-registry: examples/oci/main.go runtime/wasmsource/wasmsourcetest/registry.go
	$(GO) build -o $@ ./examples/oci

# The quickstart with its filter from an OCI registry: a registry on
# 127.0.0.1:5000 (in-process, go-containerregistry's), the header-rust
# example pushed to it, and sluice pulling it by digest.
.PHONY: run-oci
run-oci: build $(BIN)/demo-upstream $(BIN)/oci-registry
	@bash examples/oci/run.sh

# Everything the tests need, installed only when missing.
tools:
	@bash .ci/tools.sh test

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	cd sdk && $(GO) vet ./... && GOOS=wasip1 GOARCH=wasm $(GO) vet ./...

plugins:
	$(MAKE) -C plugins build

# Fails when plugins/builtin.wasm is not what its source builds.
plugins-check:
	$(MAKE) -C plugins check

test-go:
	$(GO) test -race -timeout 15m $(RACE_PKGS)
	$(GO) test -timeout 10m $(PLAIN_PKGS)

# The SDK and the plugins' source are modules of their own, which
# `go test ./...` at the top does not enter.
test-sdk:
	$(MAKE) -C plugins test

# The conformance suites (h2spec, gRPC interop, HTTP/3, proxy-wasm ABI,
# AssemblyScript SDK); fails on any failure that conformance/known.go does
# not list as a known difference. The run's report goes to
# conformance/work/REPORT.md (ignored), so `make test` leaves the checkout
# clean; `make conformance-report` regenerates the tracked
# conformance/REPORT.md (commit it), which TestTrackedReportIsCurrent
# checks against the code.
conformance: tools
	$(GO) test -count=1 -timeout 10m ./conformance/...

conformance-report: tools
	SLUICE_CONFORMANCE_REPORT=$(CURDIR)/conformance/REPORT.md $(GO) test -count=1 -timeout 10m ./conformance/...

# The example filters (examples/filters): their unit tests, the committed
# .wasm files rebuilt and compared, and each run through a real sluice;
# the mesh example (examples/mesh) validated and run with `make run-mesh`;
# make run-kong and make run-istio run and answered; `make run-oci` done
# by its test (examples/oci).
.PHONY: examples-check
examples-check:
	$(MAKE) -C examples/filters test check
	$(GO) test -count=1 ./examples/ ./examples/filters/ ./examples/mesh/ ./examples/oci/

test: tools lint test-go test-sdk conformance examples-check
	@echo "make test: all suites passed"

# The tests build sluice without profile-guided optimization: PGO does
# not change what the code does, and building the packages a second
# time with the profile (once more under -race) cost CI about 3.5
# minutes of CPU. `make build` and `go build ./cmd/sluice` use it.
test test-go test-sdk conformance conformance-report examples-check: export GOFLAGS += -pgo=off

# The plugin reload soak: SOAK_RELOADS (default 10,000) reloads of one
# plugin under light load, with the process's RSS, Go heap, goroutines and
# open plugin versions every tenth; fails on a failed request, a version
# left open, goroutines that grow or RSS that drifts over 2 % after the
# first tenth. Minutes long, so not part of `make test` (which runs the
# short TestReloadsCloseEveryOldInstance).
SOAK_RELOADS ?= 10000
.PHONY: soak
soak:
	cd runtime/server && SLUICE_SOAK_RELOADS=$(SOAK_RELOADS) nice -n 10 $(GO) test -run 'TestPluginReloadSoak$$' -count=1 -v -timeout 60m .

# Every fuzz target for FUZZTIME each (default 60s); `make test` runs their
# seed corpora only.
fuzz:
	@bash .ci/fuzz.sh

bench: build
	@bash bench/run.sh

# Where sluice's resident memory goes: the quickstart and the bench config
# with every plugin (and without its Go SDK filters, its built-ins, any
# plugin), split by smaps and the Go heap; writes bench/out/memory.md.
.PHONY: memory
memory: build
	@bash bench/memory.sh

# Regenerates cmd/sluice/default.pgo, the profile Go's profile-guided
# optimization builds the binary with (bench/pgo.sh says which load).
.PHONY: pgo
pgo: build
	@bash bench/pgo.sh

clean:
	rm -rf $(BIN)
