#!/usr/bin/env bash
# The two-hop mesh path against a direct call, as Istio measures it: a
# fixed 1,000 requests/s over 16 keep-alive connections with 1 KB
# responses. Prints added p50/p90/p99 latency, CPU seconds per 1,000
# requests and RSS of each sidecar. Called by bench/run.sh; needs
# bin/sluice (or SLUICE=path), nginx and Go.
#
# Method: one load generator (bench/meshload) for both paths, in the same
# run, alternating direct and mesh rounds so both see the same machine.
# meshload spreads each connection's sends over the period (1,000 req/s
# arrive one per millisecond); h2load --rps fires all 16 connections at
# once every 16 ms, and its figures were mostly the queueing of those
# bursts (direct p50 0.85 ms against 0.13 ms spread). Latency percentiles
# are over all rounds pooled; the per-round lines show how noisy it was.
# CPU is utime+stime of each sidecar over the mesh rounds only.
#
# Pinned as a mesh runs: each workload shares its cores with its own
# sidecar, the calling pod (the load generator and sidecar A) on core 0,
# the called pod (sidecar B and the app) on core 1 (more cores: split in
# halves). Unpinned, the scheduler placed the four processes differently
# from run to run, and one binary's figure for A swung between 0.093 and
# 0.135 vCPU on a 2-core VM; pinned, 0.081 to 0.083. MESH_PIN=0 runs
# unpinned.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out
mkdir -p "$OUT"
DURATION=${BENCH_MESH_SECONDS:-10}
ROUNDS=${BENCH_MESH_ROUNDS:-3}
SLUICE=${SLUICE:-bin/sluice}
# The services' protocol between the sidecars: empty for the default (h2,
# one multiplexed connection per peer), or e.g. "downstream".
PROTOCOL=${MESH_PROTOCOL:-}
ncpu=$(nproc)
if [[ ${MESH_PIN:-1} != 0 ]] && (( ncpu > 1 )); then
  half=$(( ncpu / 2 ))
  CALLER_CPUS=0-$(( half - 1 )) CALLED_CPUS=$half-$(( ncpu - 1 ))
else
  CALLER_CPUS=0-$(( ncpu - 1 )) CALLED_CPUS=0-$(( ncpu - 1 ))
fi
work=$(mktemp -d)
chmod 755 "$work"  # nginx workers run as nobody
source bench/pids.sh
cleanup() {
  stop_pids
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

go build -o "$work/meshload" ./bench/meshload

APP_PORT=${APP_PORT:-18180}
mkdir -p "$work/app"
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/app/1k"
cat > "$work/app/nginx.conf" <<CONF
worker_processes 1;
daemon off;
error_log $work/app/error.log warn;
pid $work/app/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/app; proxy_temp_path $work/app; fastcgi_temp_path $work/app;
  uwsgi_temp_path $work/app; scgi_temp_path $work/app;
  server { listen 127.0.0.1:$APP_PORT; root $work/app; location / { try_files /1k =404; } }
}
CONF
taskset -c "$CALLED_CPUS" nginx -c "$work/app/nginx.conf" & PIDS+=($!)

"$SLUICE" ca init --dir "$work/ca" --trust-domain bench.local >/dev/null
"$SLUICE" ca issue --dir "$work/ca" --id spiffe://bench.local/ns/default/sa/client --out "$work/a" >/dev/null
"$SLUICE" ca issue --dir "$work/ca" --id spiffe://bench.local/ns/default/sa/app --out "$work/b" >/dev/null

sidecar() { # name cert app inbound outbound admin extra
  cat > "$work/$1.toml" <<CONF
mode = "sidecar"
[admin]
address = "127.0.0.1:$6"
[server]
watch_config = false
[access_log]
disabled = true
[identity]
cert = "$2.crt"
key = "$2.key"
trust_bundle = "$work/ca/ca.crt"
[sidecar]
app = "$3"
inbound = "127.0.0.1:$4"
outbound = "127.0.0.1:$5"
peer_authentication = "strict"
$7
CONF
}
sidecar b "$work/b" "127.0.0.1:$APP_PORT" 18181 18182 18183 ""
sidecar a "$work/a" "127.0.0.1:1" 18184 18185 18186 "[[services]]
name = \"app\"
endpoints = [\"127.0.0.1:18181\"]
identity = \"spiffe://bench.local/ns/default/sa/app\"
${PROTOCOL:+protocol = \"$PROTOCOL\"}"
GOMAXPROCS=1 taskset -c "$CALLED_CPUS" "$SLUICE" run --config "$work/b.toml" --log-level info 2>"$work/b.log" & PIDS+=($!); B=$!
GOMAXPROCS=1 taskset -c "$CALLER_CPUS" "$SLUICE" run --config "$work/a.toml" --log-level info 2>"$work/a.log" & PIDS+=($!); A=$!
for _ in $(seq 300); do curl -s -o /dev/null -H "Host: app" http://127.0.0.1:18185/ && break; sleep 0.1; done
curl -sf -o /dev/null -H "Host: app" http://127.0.0.1:18185/ || { echo "mesh path did not come up" >&2; tail -n 5 "$work/a.log" >&2; tail -n 5 "$work/b.log" >&2; curl -s -i -H "Host: app" http://127.0.0.1:18185/ >&2; exit 1; }

cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }   # utime+stime, clock ticks
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
tick=$(getconf CLK_TCK)

# Results go to files, not $(...): a command substitution's subshell would
# run the EXIT trap and stop the servers.
load() { # name address seconds
  GOMAXPROCS=1 taskset -c "$CALLER_CPUS" "$work/meshload" -addr "$2" -host app -rate 1000 -c 16 -d "${3}s" -name "$1" -raw "$work/$1.raw" >> "$work/rounds"
}
load warmup 127.0.0.1:18185 2
rm -f "$work/warmup.raw"; : > "$work/rounds"; cpu_a=0; cpu_b=0
for _ in $(seq "$ROUNDS"); do
  load direct "127.0.0.1:$APP_PORT" "$DURATION"
  a0=$(cpu $A); b0=$(cpu $B)
  load mesh 127.0.0.1:18185 "$DURATION"
  a1=$(cpu $A); b1=$(cpu $B)
  cpu_a=$((cpu_a + a1 - a0)); cpu_b=$((cpu_b + b1 - b0))
done
rss $A > "$work/rss_a"; rss $B > "$work/rss_b"
python3 - "$work" "$cpu_a" "$cpu_b" "$tick" "$(cat "$work/rss_a")" "$(cat "$work/rss_b")" "${PROTOCOL:-h2 (default)}" "$CALLER_CPUS" "$CALLED_CPUS" <<'PY' | tee "$OUT/mesh-${PROTOCOL:-default}.md"
import sys
work = sys.argv[1]
cpu_a, cpu_b, tick = map(float, sys.argv[2:5])
rss_a, rss_b = float(sys.argv[5]) / 1024, float(sys.argv[6]) / 1024
def pcts(name):
    v = sorted(int(x) for x in open(f"{work}/{name}.raw"))
    return len(v), [v[min(len(v) - 1, int(len(v) * p))] / 1000 for p in (0.5, 0.9, 0.99)]
nd, d = pcts("direct"); nm, m = pcts("mesh")
rounds = [l.split() for l in open(f"{work}/rounds")]
errors = sum(int(r[5]) for r in rounds); late = sum(int(r[6]) for r in rounds if r[0] == "mesh")
pinning = "unpinned" if sys.argv[8] == sys.argv[9] else f"client and A on CPU {sys.argv[8]}, B and app on CPU {sys.argv[9]}"
print(f"| two-hop mesh at 1,000 req/s (16 connections, 1 KB; {len(rounds)//2} rounds pooled; between sidecars: {sys.argv[7]}; {pinning}) | p50 ms | p90 ms | p99 ms |")
print("|---|---|---|---|")
print(f"| direct | {d[0]:.3f} | {d[1]:.3f} | {d[2]:.3f} |")
print(f"| client -> sidecar A -> mTLS -> sidecar B -> app | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} |")
print(f"| added by both hops | {m[0]-d[0]:.3f} | {m[1]-d[1]:.3f} | {m[2]-d[2]:.3f} |")
print()
per = []
for dr, mr in zip(rounds[0::2], rounds[1::2]):
    per.append(" / ".join(f"{float(mr[i])-float(dr[i]):.2f}" for i in (2, 3, 4)))
print("Added p50 / p90 / p99 ms per round: " + "; ".join(per) + f". Errors: {errors}; mesh sends late (answer took over half a period): {late}.")
print(f"CPU per 1,000 requests: sidecar A {cpu_a/tick/nm*1000:.3f} s, sidecar B {cpu_b/tick/nm*1000:.3f} s "
      f"(at 1,000 req/s that is the vCPU each uses); RSS: A {rss_a:.1f} MiB, B {rss_b:.1f} MiB.")
PY
