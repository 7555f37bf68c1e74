#!/usr/bin/env bash
# make memory: where sluice's resident memory goes, in the two setups the
# README states figures for:
#   - the quickstart (`make run`: examples/quickstart.toml, one built-in
#     add-header filter; its ports moved so a running quickstart does not
#     get in the way), and
#   - every bench plugin loaded (bench/sluice-config.sh, the config `make
#     bench` runs, with GOMAXPROCS=1 as there), then the same config
#     without its Go SDK filters, without its built-ins and without any
#     plugin, so each part's share is a difference of whole processes.
# Each is measured after load (ready, compiled code in place, one request
# on each route), and the quickstart and the bench config again after a
# short load (wrk, 64 connections, 2 s a route), which grows the Go heap
# to its collection goal and the plugin pools to their size.
#
# Each row splits RSS (/proc/PID/smaps) into the binary's pages (code and
# read-only data touched since sluice run was ready: it unmaps start-up's
# then; the writable data), shared libraries, compiled Wasm code
# (anonymous executable mappings: wazero's), the Go heap as the runtime
# holds it (in use, and freed but not yet returned; from the admin API's
# /debug/pprof/heap?debug=1), and the rest of the anonymous memory
# (instances' linear memory, the Go runtime's own structures, stacks);
# the plugins' linear memory (sized, from /plugins) is shown beside it.
# Prints a table and writes bench/out/memory.md. A measurement, not a test:
# RSS depends on the machine and the page cache.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out
mkdir -p "$OUT"
export SLUICE_WASM_CACHE=${SLUICE_WASM_CACHE:-$HOME/.cache/sluice-wasm}
LOAD_SECONDS=${MEMORY_LOAD_SECONDS:-2}

make -s build bin/demo-upstream

UP_PORT=${UP_PORT:-18280}
SLUICE_PORT=${SLUICE_PORT:-18282}
ADMIN_PORT=${ADMIN_PORT:-18283}
GRPC_UP_PORT=${GRPC_UP_PORT:-18285}
source bench/pids.sh
cleanup() {
  stop_pids
  rm -rf "$work"
}
work=$(mktemp -d)
trap cleanup EXIT INT TERM

bin/demo-upstream -addr "127.0.0.1:$UP_PORT" >/dev/null 2>&1 & PIDS+=($!)

# The quickstart's config with its ports moved, nothing else changed.
sed -e "s/127.0.0.1:8080/127.0.0.1:$SLUICE_PORT/; s/127.0.0.1:9901/127.0.0.1:$ADMIN_PORT/; s/127.0.0.1:9000/127.0.0.1:$UP_PORT/" \
  examples/quickstart.toml > "$work/quickstart.toml"
source bench/sluice-config.sh
write_sluice_config
# without NAME...: the bench config with those plugins and every route
# that uses one of them left out.
without() {
  python3 - "$work/sluice.toml" "$@" <<'PY'
import re, sys
text, drop = open(sys.argv[1]).read(), set(sys.argv[2:])
blocks = re.split(r'(?m)^(?=\[)', text)
def keep(b):
    if b.startswith("[[plugins]]"):
        return re.search(r'(?m)^name = "([^"]*)"', b).group(1) not in drop
    if b.startswith("[[routes]]"):
        m = re.search(r'(?m)^plugins = \[(.*)\]', b)
        return not m or not drop & set(re.findall(r'"([^"]*)"', m.group(1)))
    return True
sys.stdout.write("".join(b for b in blocks if keep(b)))
PY
}
go_sdk=(sdk-hdr raw-hdr)
builtins=$(sed -n 's/^name = "\(.*\)"$/\1/p' <(awk '/^\[\[plugins\]\]/ { p=1; next } /^\[/ { p=0 } p' "$work/sluice.toml") | grep -v -x -e sdk-hdr -e raw-hdr)
without "${go_sdk[@]}" > "$work/builtins-only.toml"
# shellcheck disable=SC2086
without $builtins > "$work/go-sdk-only.toml"
# shellcheck disable=SC2086
without "${go_sdk[@]}" $builtins > "$work/no-plugins.toml"

# The requests that reach every route of a config once, with what each
# route's plugin needs to pass.
requests() { # config
  python3 - "$1" <<'PY'
import re, sys
for b in re.split(r'(?m)^(?=\[)', open(sys.argv[1]).read()):
    if b.startswith("[[routes]]"):
        m = re.search(r'path_prefix = "([^"]*)"', b)
        if m and not m.group(1).startswith("/grpc"):
            print(m.group(1))
PY
}
curl_route() { # path [wrk]
  local h=()
  case $1 in
    /p/key-auth) h=(-H "apikey: bench-key") ;;
    /p/jwt-rs|/kong) h=(-H "Authorization: Bearer $JWT_RS" -H "Origin: https://app.example.com") ;;
    /p/jwt) h=(-H "Authorization: Bearer $JWT") ;;
  esac
  if [[ ${2:-} == wrk ]]; then
    wrk -t1 -c64 -d"${LOAD_SECONDS}s" "${h[@]}" "http://127.0.0.1:$SLUICE_PORT$1" >/dev/null
  else
    curl -s -o /dev/null "${h[@]}" "http://127.0.0.1:$SLUICE_PORT$1"
  fi
}

# measure LABEL PID: one row of the table.
measure() {
  local label=$1 pid=$2
  cp "/proc/$pid/smaps" "$work/smaps"
  grep -E '^Vm(RSS|HWM)' "/proc/$pid/status" > "$work/status"
  curl -s "http://127.0.0.1:$ADMIN_PORT/debug/pprof/heap?debug=1" | grep -E '^# [A-Za-z]+ = ' > "$work/memstats" || true
  curl -s "http://127.0.0.1:$ADMIN_PORT/plugins" > "$work/plugins.json"
  python3 - "$label" "$work" <<'PY' >> "$work/rows"
import json, re, sys
label, work = sys.argv[1], sys.argv[2]
kib = {"bin": 0, "lib": 0, "exec": 0, "anon": 0}
cur = None
for line in open(f"{work}/smaps"):
    f = line.split()
    if re.match(r"^[0-9a-f]+-[0-9a-f]+$", f[0]):
        path = f[5] if len(f) > 5 else ""
        if path.endswith("/sluice"):
            cur = "bin"
        elif path.startswith("/"):
            cur = "lib"
        elif "x" in f[1] and not path:
            cur = "exec"
        else:
            cur = "anon"
    elif f[0] == "Rss:":
        kib[cur] += int(f[1])
status = dict(l.split(":") for l in open(f"{work}/status"))
rss = int(status["VmRSS"].split()[0])
ms = {}
for l in open(f"{work}/memstats"):
    k, v = l[2:].split(" = ")
    ms[k] = v.strip()
mib = lambda b: b / (1 << 20)
heap_inuse = int(ms.get("HeapInuse", 0))
heap_free = int(ms.get("HeapIdle", 0)) - int(ms.get("HeapReleased", 0))
heap_live = int(ms.get("HeapAlloc", 0))
stacks = int(ms.get("Stack", "0 / 0").split()[0])
linear, seen = 0, set()
for p in json.load(open(f"{work}/plugins.json")) or []:
    r = p.get("runtime") or {}
    key = (r.get("vm_id") or p["name"], r.get("sha256"))
    if key not in seen:
        seen.add(key)
        linear += r.get("memory_bytes", 0)
other = kib["anon"] * 1024 - heap_inuse - heap_free - stacks
print("| " + " | ".join([label, f"**{rss/1024:.1f}** ({rss*1024/1e6:.1f} MB)",
    f"{kib['bin']/1024:.1f}", f"{kib['lib']/1024:.1f}", f"{kib['exec']/1024:.2f}",
    f"{mib(heap_inuse):.1f} ({mib(heap_live):.1f} live)", f"{mib(heap_free):.1f}", f"{mib(stacks):.1f}",
    f"{mib(other):.1f}", f"{mib(linear):.1f}"]) + " |")
PY
  tail -1 "$work/rows"
}

# ready_or_fail CONFIG: the admin API says ready (asked once the row is
# measured), or the run stops.
ready_or_fail() {
  curl -sf -o /dev/null "http://127.0.0.1:$ADMIN_PORT/ready" || { echo "sluice on $1 is not ready" >&2; tail -5 "$work/sluice.log" >&2; exit 1; }
}

# run_case LABEL CONFIG [load]: start sluice on CONFIG, wait until it is
# ready and every plugin runs compiled code, request each route once,
# measure; with load, drive each route with wrk and measure again.
run_case() {
  local label=$1 config=$2 load=${3:-} gomaxprocs=${GOMAXPROCS_CASE:-}
  env ${gomaxprocs:+GOMAXPROCS=$gomaxprocs} bin/sluice run --config "$config" --log-level info > "$work/sluice.log" 2>&1 & PIDS+=($!)
  local pid=$!
  # Ready is read from sluice's log line, not asked of the admin API:
  # sluice drops start-up's binary pages once ready, and a /ready request
  # after that maps the admin server's code back in (net/http's server,
  # about 1.5 MiB of the binary with the kernel's fault-around), which is
  # the measurement's own cost, not the proxy's. The admin API is asked
  # after the measurement (measure, ready_or_fail).
  for _ in $(seq 600); do
    grep -q '"msg":"ready in ' "$work/sluice.log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q '"msg":"ready in ' "$work/sluice.log"; then
    # Say how it ended: a process gone without a log line has only its
    # exit status (or the signal that ended it, 128+N) to tell.
    local how="still running after 60 s"
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"
      how="exited with status $?"
    fi
    echo "sluice did not come up on $config ($how)" >&2
    tail -5 "$work/sluice.log" >&2
    exit 1
  fi
  # A built-in missing from the compile cache serves on wazero's
  # interpreter until its compile is done: wait for that.
  for _ in $(seq 1200); do
    (( $(grep -c "until its compile finishes" "$work/sluice.log") <= $(grep -c "the module is compiled" "$work/sluice.log") )) && break
    sleep 0.1
  done
  local paths
  mapfile -t paths < <(requests "$config")
  for p in "${paths[@]}"; do curl_route "$p"; done
  sleep 1
  measure "$label, after load" "$pid"
  ready_or_fail "$config"
  if [[ -n $load ]] && command -v wrk >/dev/null; then
    for p in "${paths[@]}"; do curl_route "$p" wrk; done
    sleep 1
    measure "$label, after ${LOAD_SECONDS} s of load a route" "$pid"
  fi
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

: > "$work/rows"
echo "MiB unless marked; sluice $(bin/sluice version 2>/dev/null | head -1)"
# `bench/memory.sh quickstart` or `bench/memory.sh bench` runs one half.
if [[ ${1:-all} != bench ]]; then
  run_case "quickstart (add-header)" "$work/quickstart.toml" load
fi
if [[ ${1:-all} != quickstart ]]; then
  GOMAXPROCS_CASE=1
  run_case "bench: every plugin" "$work/sluice.toml" load
  run_case "bench: built-ins only" "$work/builtins-only.toml"
  run_case "bench: the two Go SDK filters only" "$work/go-sdk-only.toml"
  run_case "bench: no plugins" "$work/no-plugins.toml"
fi

{
  echo "| sluice | RSS | binary | libraries | compiled Wasm | Go heap in use | Go heap freed, kept | Go stacks | other anonymous | linear memory (sized) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  cat "$work/rows"
} > "$OUT/memory.md"
echo
cat "$OUT/memory.md"
