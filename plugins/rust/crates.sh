#!/usr/bin/env bash
# Builds the Debian-packaged crates the Rust built-ins use (librust-*-dev,
# sources under /usr/share/cargo/registry) with rustc alone, no cargo:
# each crate with the features cargo would give it here, in dependency
# order, as OUT/libNAME.rlib. Writes OUT/externs, the flags a plugin's
# rustc needs to use them (naming the cache, with SLUICE_RUST_CACHE). The packages are installed by ../../.ci/tools.sh
# rust.
#
#   crates.sh OUT RUSTC [FLAG...]     FLAGs: the target, opt-level, ...
#
# A crate's build script is run by hand where it matters: typenum's
# generates its constants (run natively, into OUT/typenum); generic-array's
# only tells rustc >= 1.41 to use relaxed_coherence.
set -euo pipefail
out=$1
shift
reg=/usr/share/cargo/registry
host_rustc=$1

# SLUICE_RUST_CACHE=DIR keeps the crates built for this rustc, these
# flags and this script in DIR/crates-KEY and reuses them: they are
# Debian's sources, named here by exact version, so the same inputs build
# the same rlibs (their paths are remapped, so the directory does not
# show in them). The freshness check then compiles only the plugins. A
# build goes to a temporary directory and is renamed into place whole.
if [[ -n ${SLUICE_RUST_CACHE:-} ]]; then
  mkdir -p "$SLUICE_RUST_CACHE"
  key=$({ "$host_rustc" -vV; printf '%s\n' "$@"; cat "$0"; } | sha256sum | cut -c1-16)
  cached=$SLUICE_RUST_CACHE/crates-$key
  if [[ ! -f $cached/externs ]]; then
    tmp=$(mktemp -d "$SLUICE_RUST_CACHE/.crates-XXXXXX")
    SLUICE_RUST_CACHE='' bash "$0" "$tmp" "$@"
    sed "s|$tmp|$cached|g" "$tmp/externs" >"$tmp/externs.new" && mv "$tmp/externs.new" "$tmp/externs"
    # Another build may have put the same crates there first.
    mv -T "$tmp" "$cached" 2>/dev/null || rm -rf "$tmp"
  fi
  cp "$cached/externs" "$out/externs"
  exit 0
fi

crate() { # crate NAME DIR EDITION [rustc args...]
  local name=$1 dir=$2 edition=$3
  shift 3
  "$@" --crate-type rlib --crate-name "$name" --edition "$edition" --cap-lints allow \
    -L dependency="$out" --remap-path-prefix="$out"=crates "$reg/$dir/src/lib.rs" -o "$out/lib$name.rlib"
}
ext() { printf -- '--extern %s=%s/lib%s.rlib' "$1" "$out" "$1"; }

mkdir -p "$out/typenum"
"$host_rustc" --edition 2018 --cap-lints allow -C opt-level=0 "$reg/typenum-1.16.0/build/main.rs" -o "$out/typenum/build"
OUT_DIR="$out/typenum" "$out/typenum/build" >/dev/null
# force_unix_path_separator: include the generated files from OUT_DIR (the
# default reads their paths from variables cargo would set).
OUT_DIR="$out/typenum" crate typenum typenum-1.16.0 2018 "$@" --cfg 'feature="force_unix_path_separator"'
crate generic_array generic-array-0.14.4 2015 "$@" --cfg relaxed_coherence --cfg 'feature="more_lengths"' $(ext typenum)
crate crypto_common crypto-common-0.1.3 2018 "$@" $(ext generic_array) $(ext typenum)
crate block_buffer block-buffer-0.10.2 2018 "$@" $(ext generic_array)
crate subtle subtle-2.4.1 2015 "$@"
crate digest digest-0.10.5 2018 "$@" --cfg 'feature="core-api"' --cfg 'feature="mac"' --cfg 'feature="block-buffer"' --cfg 'feature="subtle"' \
  $(ext crypto_common) $(ext block_buffer) $(ext subtle)
crate hmac hmac-0.12.1 2018 "$@" $(ext digest)
crate cfg_if cfg-if-1.0.0 2018 "$@"
crate cpufeatures cpufeatures-0.2.4 2018 "$@"
crate sha2 sha2-0.10.5 2018 "$@" $(ext cfg_if) $(ext digest) $(ext cpufeatures)

# regex for goregexp.rs (Go's regular expressions): case folding (Go's
# (?i)) but no other Unicode tables, and no perf-literal (aho-corasick and
# memchr are not packaged here). Optimized for size (opt-level z, which
# wins over the caller's): the crates are mostly the pattern compiler,
# run at configure time, and their functions keep the size attributes
# through the plugins' LTO link, which makes the module's compiled code
# about 0.3 MiB smaller (a pattern matches header values of tens of
# bytes, where the lazy DFA's loop is not the cost).
crate regex_syntax regex-syntax-0.6.27 2018 "$@" -C opt-level=z --cfg 'feature="unicode-case"'
crate regex regex-1.7.1 2018 "$@" -C opt-level=z --cfg 'feature="std"' --cfg 'feature="unicode-case"' --cfg 'feature="perf-cache"' \
  --cfg 'feature="perf-dfa"' --cfg 'feature="perf-inline"' $(ext regex_syntax)

# What the plugins may use (a plugin that uses none is built as before).
echo "-L dependency=$out $(ext hmac) $(ext sha2) $(ext regex) $(ext regex_syntax)" >"$out/externs"
