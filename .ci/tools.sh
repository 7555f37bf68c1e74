#!/usr/bin/env bash
# Installs what `make test` (or `make bench`) needs, idempotently: each tool
# is installed only when it is missing. Debian packages via apt-get (root),
# Go tools via `go install` at pinned versions.
set -euo pipefail
what=${1:-test}

need_apt=()
want() { command -v "$1" >/dev/null 2>&1 || need_apt+=("$2"); }
want curl curl
want redis-server redis-server
# The Rust SDK's example builds with Debian's rustc for wasm32; rust-lld
# comes from lld.
# (rustup's rustc, if present, has no wasm32 target, so look for Debian's.)
[[ -x /usr/bin/rustc ]] || need_apt+=(rustc)
[[ -d /usr/lib/rustlib/wasm32-unknown-unknown ]] || need_apt+=(libstd-rust-dev-wasm32)
[[ -x /usr/bin/ld.lld-14 || -x /usr/lib/llvm-14/bin/ld.lld ]] || need_apt+=(lld-14)
if [[ $what == bench ]]; then
  want nginx nginx
  want wrk wrk
  want h2load nghttp2-client
fi
if ((${#need_apt[@]})); then
  if [[ $(id -u) != 0 ]]; then
    echo "tools: need root to install: ${need_apt[*]}" >&2
    exit 1
  fi
  echo "tools: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

gobin=$(go env GOPATH)/bin
if [[ ! -x $gobin/h2spec ]]; then
  echo "tools: installing h2spec"
  GOFLAGS=-mod=mod go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible
fi
