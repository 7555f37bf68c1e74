#!/usr/bin/env bash
# make bench: sluice against nginx as a reverse proxy to the same upstream,
# measured alternately in one run on loopback, with client, proxy and
# upstream pinned to separate cores where the machine has them.
#
# Prints req/s, p50 and p99 for each and the ratio sluice/nginx, and writes
# bench/out/results.md. Timings never gate tests; this is for the README.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/tools.sh bench

DURATION=${BENCH_DURATION:-8s}
ROUNDS=${BENCH_ROUNDS:-2}
OUT=bench/out
mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/*.csv

ncpu=$(nproc)
# Core plan: proxy alone on core 0, upstream and load generator on the
# rest (on 2 cores they share core 1).
PROXY_CPU=0
OTHER_CPU=$(( ncpu > 1 ? 1 : 0 ))
if (( ncpu > 2 )); then OTHER_CPU="1-$((ncpu-1))"; fi
pin() { local cpus=$1; shift; taskset -c "$cpus" "$@"; }

UP_PORT=${UP_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
NGINX_H2_PORT=${NGINX_H2_PORT:-18084}
SLUICE_PORT=${SLUICE_PORT:-18082}
ADMIN_PORT=${ADMIN_PORT:-18083}
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

work=$(mktemp -d)
mkdir -p "$work/nginx-up" "$work/nginx-proxy"

# The upstream: nginx answering a small fixed body, the fastest thing on
# the machine, so the proxies are what is measured.
cat > "$work/nginx-up/nginx.conf" <<CONF
worker_processes 1;
daemon off;
error_log $work/nginx-up/error.log warn;
pid $work/nginx-up/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx-up;
  proxy_temp_path $work/nginx-up;
  fastcgi_temp_path $work/nginx-up;
  uwsgi_temp_path $work/nginx-up;
  scgi_temp_path $work/nginx-up;
  server {
    listen 127.0.0.1:$UP_PORT;
    location / { default_type text/plain; return 200 "hello from upstream\n"; }
  }
}
CONF

# The reference: nginx as a reverse proxy, one worker (sluice gets one
# core too), keep-alive to the upstream, h2c on the same port.
cat > "$work/nginx-proxy/nginx.conf" <<CONF
worker_processes 1;
daemon off;
error_log $work/nginx-proxy/error.log warn;
pid $work/nginx-proxy/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  http2_max_requests 1000000;
  client_body_temp_path $work/nginx-proxy;
  proxy_temp_path $work/nginx-proxy;
  fastcgi_temp_path $work/nginx-proxy;
  uwsgi_temp_path $work/nginx-proxy;
  scgi_temp_path $work/nginx-proxy;
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 256; }
  # nginx serves plaintext HTTP/2 (prior knowledge) only on a port of its
  # own; sluice serves http1 and h2c on one.
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  server {
    listen 127.0.0.1:$NGINX_H2_PORT http2;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF

cat > "$work/sluice.toml" <<CONF
[admin]
address = "127.0.0.1:$ADMIN_PORT"
[server]
watch_config = false
[access_log]
disabled = true
[[listeners]]
name = "bench"
address = "127.0.0.1:$SLUICE_PORT"
protocols = ["http1", "h2c"]
[[routes]]
name = "plain"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["127.0.0.1:$UP_PORT"]
CONF

pin "$OTHER_CPU" nginx -c "$work/nginx-up/nginx.conf" & PIDS+=($!)
pin "$PROXY_CPU" nginx -c "$work/nginx-proxy/nginx.conf" & PIDS+=($!)
GOMAXPROCS=1 pin "$PROXY_CPU" bin/sluice run --config "$work/sluice.toml" --log-level warn & PIDS+=($!)

wait_port() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; echo "port $1 did not come up" >&2; return 1; }
wait_port "$UP_PORT"; wait_port "$NGINX_PORT"; wait_port "$SLUICE_PORT"

# wrk: HTTP/1.1 keep-alive, 64 connections. Prints "rps p50_ms p99_ms".
run_wrk() {
  local port=$1 log=$2
  pin "$OTHER_CPU" wrk -t1 -c64 -d"$DURATION" --latency "http://127.0.0.1:$port/" > "$log"
  awk '
    /Requests\/sec/ { rps=$2 }
    $1=="50%" { p50=$2 } $1=="99%" { p99=$2 }
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    END { printf "%s %.3f %.3f\n", rps, ms(p50), ms(p99) }' "$log"
}

# h2load: HTTP/2 (h2c prior knowledge), 16 connections x 10 streams; the
# per-request log gives the percentiles h2load does not print.
run_h2load() {
  local port=$1 log=$2
  pin "$OTHER_CPU" h2load -c16 -m10 -D "${DURATION%s}" --log-file="$log.req" "http://127.0.0.1:$port/" > "$log"
  local rps
  rps=$(awk '/^finished in/ { for (i=1;i<=NF;i++) if ($i ~ /req\/s/) { gsub(",","",$(i-1)); print $(i-1) } }' "$log")
  local pcts
  pcts=$(awk '{ print $3 }' "$log.req" | sort -n | awk '{ a[NR]=$1 } END { if (NR==0) { print "0 0"; exit } printf "%.3f %.3f\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000 }')
  echo "$rps $pcts"
}

echo "warming up"
pin "$OTHER_CPU" wrk -t1 -c64 -d2s "http://127.0.0.1:$SLUICE_PORT/" >/dev/null
pin "$OTHER_CPU" wrk -t1 -c64 -d2s "http://127.0.0.1:$NGINX_PORT/" >/dev/null

for round in $(seq "$ROUNDS"); do
  for target in sluice nginx; do
    port=$SLUICE_PORT; [[ $target == nginx ]] && port=$NGINX_PORT
    echo "round $round: $target http1"
    echo "http1 $target $(run_wrk "$port" "$OUT/wrk-$target-$round.log")" >> "$OUT/raw.csv"
    echo "round $round: $target h2"
    h2port=$SLUICE_PORT; [[ $target == nginx ]] && h2port=$NGINX_H2_PORT
    echo "h2 $target $(run_h2load "$h2port" "$OUT/h2load-$target-$round.log")" >> "$OUT/raw.csv"
  done
done

# Best round of each (the machine's noise only ever slows a run down).
python3 - "$OUT/raw.csv" > "$OUT/results.md" <<'PY'
import sys, collections
best = collections.defaultdict(lambda: None)
for line in open(sys.argv[1]):
    proto, target, rps, p50, p99 = line.split()
    row = (float(rps), float(p50), float(p99))
    if best[(proto, target)] is None or row[0] > best[(proto, target)][0]:
        best[(proto, target)] = row
print("| protocol | sluice req/s | nginx req/s | ratio | sluice p50 ms | nginx p50 ms | sluice p99 ms | nginx p99 ms | p99 ratio |")
print("|---|---|---|---|---|---|---|---|---|")
for proto in ("http1", "h2"):
    s, n = best[(proto, "sluice")], best[(proto, "nginx")]
    if not s or not n:
        continue
    print(f"| {proto} | {s[0]:.0f} | {n[0]:.0f} | {s[0]/n[0]:.2f} | {s[1]:.3f} | {n[1]:.3f} | {s[2]:.3f} | {n[2]:.3f} | {s[2]/n[2] if n[2] else 0:.2f} |")
PY
cat "$OUT/results.md"
