#!/usr/bin/env bash
# The two-hop mesh path against a direct call, as Istio measures it: a
# fixed 1,000 requests/s over 16 connections with 1 KB responses. Prints
# added p50/p90/p99 latency, CPU seconds per 1,000 requests and RSS of each
# sidecar. Called by bench/run.sh; needs bin/sluice, nginx and h2load.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out
DURATION=${BENCH_MESH_SECONDS:-10}
work=$(mktemp -d)
chmod 755 "$work"  # nginx workers run as nobody
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

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
  client_body_temp_path $work/app; proxy_temp_path $work/app; fastcgi_temp_path $work/app;
  uwsgi_temp_path $work/app; scgi_temp_path $work/app;
  server { listen 127.0.0.1:$APP_PORT; root $work/app; location / { try_files /1k =404; } }
}
CONF
nginx -c "$work/app/nginx.conf" & PIDS+=($!)

bin/sluice ca init --dir "$work/ca" --trust-domain bench.local >/dev/null
bin/sluice ca issue --dir "$work/ca" --id spiffe://bench.local/ns/default/sa/client --out "$work/a" >/dev/null
bin/sluice ca issue --dir "$work/ca" --id spiffe://bench.local/ns/default/sa/app --out "$work/b" >/dev/null

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
identity = \"spiffe://bench.local/ns/default/sa/app\""
GOMAXPROCS=1 bin/sluice run --config "$work/b.toml" --log-level info 2>"$work/b.log" & PIDS+=($!); B=$!
GOMAXPROCS=1 bin/sluice run --config "$work/a.toml" --log-level info 2>"$work/a.log" & PIDS+=($!); A=$!
for _ in $(seq 300); do curl -s -o /dev/null -H "Host: app" http://127.0.0.1:18185/ && break; sleep 0.1; done
curl -sf -o /dev/null -H "Host: app" http://127.0.0.1:18185/ || { echo "mesh path did not come up" >&2; tail -n 5 "$work/a.log" >&2; tail -n 5 "$work/b.log" >&2; curl -s -i -H "Host: app" http://127.0.0.1:18185/ >&2; exit 1; }

cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }   # utime+stime, clock ticks
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
tick=$(getconf CLK_TCK)

# h2load over HTTP/1.1: 16 clients at 62.5 requests/s each = 1,000/s.
# Results go to files, not $(...): a command substitution's subshell would
# run the EXIT trap and stop the servers.
run() { # name address host: connect to address, send Host: host
  h2load --h1 -c16 --rps=62.5 -n $((DURATION * 1000)) -H ":authority: $3" --log-file="$work/$1.req" "http://$2/" > "$work/$1.out" || true
  awk '{ print $3 }' "$work/$1.req" | sort -n | awk -v n="$1" '{ a[NR]=$1 } END { printf "%s %d %.3f %.3f %.3f\n", n, NR, a[int(NR*0.5)]/1000, a[int(NR*0.9)]/1000, a[int(NR*0.99)]/1000 }' > "$work/$1.res"
}
h2load --h1 -c16 --rps=62.5 -n 2000 -H ":authority: app" http://127.0.0.1:18185/ >/dev/null  # warm up
run direct "127.0.0.1:$APP_PORT" "app"
cpu $A > "$work/a0"; cpu $B > "$work/b0"
run mesh "127.0.0.1:18185" "app"
cp "$work/mesh.out" "$OUT/mesh-h2load.txt"
cpu $A > "$work/a1"; cpu $B > "$work/b1"
rss $A > "$work/rss_a"; rss $B > "$work/rss_b"
python3 - "$(cat "$work/direct.res")" "$(cat "$work/mesh.res")" "$(cat "$work/a0")" "$(cat "$work/a1")" "$(cat "$work/b0")" "$(cat "$work/b1")" "$tick" "$(cat "$work/rss_a")" "$(cat "$work/rss_b")" <<'PY' | tee "$OUT/mesh.md"
import sys
d = sys.argv[1].split(); m = sys.argv[2].split()
a0, a1, b0, b1, tick = map(float, sys.argv[3:8])
rss_a, rss_b = float(sys.argv[8]) / 1024, float(sys.argv[9]) / 1024
n = float(m[1])
print("| two-hop mesh at 1,000 req/s (16 connections, 1 KB) | p50 ms | p90 ms | p99 ms |")
print("|---|---|---|---|")
print(f"| direct | {d[2]} | {d[3]} | {d[4]} |")
print(f"| client -> sidecar A -> mTLS h2 -> sidecar B -> app | {m[2]} | {m[3]} | {m[4]} |")
print(f"| added by both hops | {float(m[2])-float(d[2]):.3f} | {float(m[3])-float(d[3]):.3f} | {float(m[4])-float(d[4]):.3f} |")
print()
print(f"CPU per 1,000 requests: sidecar A {(a1-a0)/tick/n*1000:.3f} s, sidecar B {(b1-b0)/tick/n*1000:.3f} s "
      f"(at 1,000 req/s that is the vCPU each uses); RSS: A {rss_a:.1f} MiB, B {rss_b:.1f} MiB.")
PY
