#!/usr/bin/env bash
# Installs what `make test` (or `make bench`) needs, idempotently: each tool
# is installed only when it is missing. Debian packages via apt-get (root),
# waiting for another apt or dpkg run to finish; Go tools from modules that
# pin them and their dependencies.
#
#   tools.sh test|bench   what those targets need
#   tools.sh rust         the Rust toolchain the built-in plugins need
#   tools.sh apt PKG...   install these Debian packages (the same locking)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}

# How long to wait for the dpkg / apt locks another process holds (a fresh
# machine often runs unattended-upgrades or a provisioning apt at first).
lock_wait=${TOOLS_LOCK_WAIT:-600}
lock_poll=${TOOLS_LOCK_POLL:-5}

# apt_get runs apt-get, waiting while another process holds apt's or
# dpkg's lock: apt-get itself waits for the dpkg frontend lock
# (DPkg::Lock::Timeout), and a failure that names a lock (the lists lock
# of `apt-get update` is not covered by that option on every release) is
# retried until lock_wait seconds have passed. Any other failure is final.
apt_get() {
  local deadline=$((SECONDS + lock_wait)) out rc
  while :; do
    rc=0
    out=$(apt-get -o DPkg::Lock::Timeout="$lock_wait" "$@" 2>&1) || rc=$?
    if ((rc == 0)); then
      return 0
    fi
    if ! grep -qiE 'could not get lock|unable to acquire the dpkg|unable to lock' <<<"$out"; then
      printf '%s\n' "$out" >&2
      return "$rc"
    fi
    if ((SECONDS >= deadline)); then
      printf '%s\n' "$out" >&2
      echo "tools: apt is still locked by another process after ${lock_wait}s; run again once it is done" >&2
      return "$rc"
    fi
    echo "tools: waiting for another apt/dpkg run to release its lock ..." >&2
    sleep "$lock_poll"
  done
}

apt_install() {
  if [[ $(id -u) != 0 ]]; then
    echo "tools: need root to install: $*" >&2
    exit 1
  fi
  echo "tools: installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt_get update -qq >/dev/null
  apt_get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [[ $what == apt ]]; then
  shift
  apt_install "$@"
  exit 0
fi

need_apt=()
want() { command -v "$1" >/dev/null 2>&1 || need_apt+=("$2"); }
# The built-in plugins ported to Rust (plugins/rust) and the Rust SDK's
# example build with Debian's rustc for wasm32; rust-lld comes from lld.
# (rustup's rustc, if present, has no wasm32 target, so look for Debian's.)
# `tools.sh rust` installs only these (plugins/Makefile runs it).
[[ -x /usr/bin/rustc ]] || need_apt+=(rustc)
[[ -d /usr/lib/rustlib/wasm32-unknown-unknown ]] || need_apt+=(libstd-rust-dev-wasm32)
[[ -x /usr/bin/ld.lld-14 || -x /usr/lib/llvm-14/bin/ld.lld ]] || need_apt+=(lld-14)
# Debian's crate sources the built-ins use, offline (plugins/rust/crates.sh).
for c in hmac sha2 regex; do
  compgen -G "/usr/share/cargo/registry/$c-[0-9]*" >/dev/null || need_apt+=("librust-$c-dev")
done
if [[ $what == rust ]]; then
  if ((${#need_apt[@]})); then
    apt_install "${need_apt[@]}"
  fi
  exit 0
fi
want curl curl
want redis-server redis-server
# The admin dashboard's test drives a real headless browser (chromedp).
want chromium chromium
if [[ $what == bench ]]; then
  want nginx nginx
  want wrk wrk
  want h2load nghttp2-client
fi
if ((${#need_apt[@]})); then
  apt_install "${need_apt[@]}"
fi

# h2spec, built from conformance/h2spec, whose go.mod and go.sum pin it
# and every dependency. An h2spec built otherwise (say `go install
# ...@v2.2.1` with floating dependencies) is replaced by the pinned one.
gobin=$(go env GOBIN)
[[ -n $gobin ]] || gobin=$(go env GOPATH | cut -d: -f1)/bin
pinned=$(go -C conformance/h2spec list -m -f '{{if not .Main}}{{.Path}} {{.Version}}{{end}}' all | sort)
built=$( (go version -m "$gobin/h2spec" 2>/dev/null || true) | awk '$1 == "mod" || $1 == "dep" {print $2, $3}' | sort)
if [[ $built != "$(comm -12 <(echo "$built") <(echo "$pinned"))" || -z $built ]]; then
  echo "tools: installing h2spec (pinned in conformance/h2spec)"
  GOFLAGS= GOBIN=$gobin go -C conformance/h2spec install tool
fi
