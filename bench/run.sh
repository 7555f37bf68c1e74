#!/usr/bin/env bash
# make bench: sluice against nginx as a reverse proxy to the same upstream
# (HTTP/1.1, h2c, and gRPC unary against nginx's grpc_pass to one gRPC
# upstream), measured alternately in one run on loopback, with client, proxy and
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
GRPC_UP_PORT=${GRPC_UP_PORT:-18085}
NGINX_GRPC_PORT=${NGINX_GRPC_PORT:-18086}
NGINX_HDR_PORT=${NGINX_HDR_PORT:-18087}
SLUICE_PORT=${SLUICE_PORT:-18082}
ADMIN_PORT=${ADMIN_PORT:-18083}
source bench/pids.sh
cleanup() {
  stop_pids
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
  # The same proxy doing the header work sluice does by default (Host
  # kept, a request id, X-Forwarded-For/-Proto/-Host), as a gateway's
  # nginx is usually set up: a second reference for the HTTP/1.1 row, so
  # the ratio can be read at equal work too.
  server {
    listen 127.0.0.1:$NGINX_HDR_PORT;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Request-ID \$request_id;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
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
  # gRPC: h2c in, grpc_pass to the gRPC upstream over kept-alive h2c
  # connections (nginx sends one stream at a time on each).
  upstream grpcup { server 127.0.0.1:$GRPC_UP_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$NGINX_GRPC_PORT http2;
    location / { grpc_pass grpc://grpcup; }
  }
}
CONF

# The gRPC upstream of the gRPC unary row (bench/grpcup: grpc-go's
# interop TestService), and the request h2load sends it: one
# length-prefixed SimpleRequest{response_size: 20} (field 2, varint 20).
go build -o "$work/grpcup" ./bench/grpcup
printf '\x00\x00\x00\x00\x02\x10\x14' > "$work/grpc-req.bin"

# The config (every bench plugin and route) is bench/sluice-config.sh's.
source bench/sluice-config.sh
write_sluice_config

# Started directly (not through a shell function) so $! is the server
# itself and the cleanup reaches it.
taskset -c "$OTHER_CPU" nginx -c "$work/nginx-up/nginx.conf" & PIDS+=($!)
taskset -c "$PROXY_CPU" nginx -c "$work/nginx-proxy/nginx.conf" & PIDS+=($!)
GOMAXPROCS=1 taskset -c "$PROXY_CPU" bin/sluice run --config "$work/sluice.toml" --log-level warn & PIDS+=($!)
taskset -c "$OTHER_CPU" "$work/grpcup" -addr "127.0.0.1:$GRPC_UP_PORT" & PIDS+=($!)

wait_port() { for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; echo "port $1 did not come up" >&2; return 1; }
wait_port "$UP_PORT"; wait_port "$NGINX_PORT"; wait_port "$NGINX_HDR_PORT"; wait_port "$SLUICE_PORT"
# A gRPC server answers no HTTP/1.1 GET: wait for a real unary call, on
# the upstream and then through each proxy (h2load would count a 200 with
# a grpc-status error as a success).
wait_grpc() { for _ in $(seq 600); do "$work/grpcup" -check "127.0.0.1:$1" 2>/dev/null && return 0; sleep 0.1; done; "$work/grpcup" -check "127.0.0.1:$1"; }
wait_grpc "$GRPC_UP_PORT"; wait_grpc "$SLUICE_PORT"; wait_grpc "$NGINX_GRPC_PORT"

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
# Further arguments replace the URL's path and add h2load options (the
# gRPC row's body and headers).
run_h2load() {
  local port=$1 log=$2 path=${3:-/}
  shift $(( $# < 3 ? $# : 3 ))
  # h2load appends to its --log-file: without this, the percentiles
  # would mix this run's requests with every earlier run's.
  rm -f "$log.req"
  pin "$OTHER_CPU" h2load -c16 -m10 -D "${DURATION%s}" --log-file="$log.req" "$@" "http://127.0.0.1:$port$path" > "$log"
  local rps
  rps=$(awk '/^finished in/ { for (i=1;i<=NF;i++) if ($i ~ /req\/s/) { gsub(",","",$(i-1)); print $(i-1) } }' "$log")
  local pcts
  pcts=$(awk '{ print $3 }' "$log.req" | sort -n | awk '{ a[NR]=$1 } END { if (NR==0) { print "0 0"; exit } printf "%.3f %.3f\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000 }')
  echo "$rps $pcts"
}

echo "warming up"
pin "$OTHER_CPU" wrk -t1 -c64 -d2s "http://127.0.0.1:$SLUICE_PORT/" >/dev/null
pin "$OTHER_CPU" wrk -t1 -c64 -d2s "http://127.0.0.1:$NGINX_PORT/" >/dev/null
pin "$OTHER_CPU" wrk -t1 -c64 -d2s "http://127.0.0.1:$NGINX_HDR_PORT/" >/dev/null

for round in $(seq "$ROUNDS"); do
  for target in sluice nginx nginx-headers; do
    port=$SLUICE_PORT; [[ $target == nginx ]] && port=$NGINX_PORT
    [[ $target == nginx-headers ]] && port=$NGINX_HDR_PORT
    echo "round $round: $target http1"
    echo "http1 $target $(run_wrk "$port" "$OUT/wrk-$target-$round.log")" >> "$OUT/raw.csv"
    [[ $target == nginx-headers ]] && continue
    echo "round $round: $target h2"
    h2port=$SLUICE_PORT; [[ $target == nginx ]] && h2port=$NGINX_H2_PORT
    echo "h2 $target $(run_h2load "$h2port" "$OUT/h2load-$target-$round.log")" >> "$OUT/raw.csv"
    # gRPC unary: h2load with a gRPC body, 16 connections x 10 streams,
    # sluice's h2c cluster against nginx's grpc_pass, one gRPC upstream.
    echo "round $round: $target grpc unary"
    grpcport=$SLUICE_PORT; [[ $target == nginx ]] && grpcport=$NGINX_GRPC_PORT
    echo "grpc $target $(run_h2load "$grpcport" "$OUT/grpc-$target-$round.log" /grpc.testing.TestService/UnaryCall \
      -d "$work/grpc-req.bin" -H "content-type: application/grpc" -H "te: trailers")" >> "$OUT/raw.csv"
  done
done

# Wasm filters and plugins: req/s on routes of the same sluice, as ratios
# to the route with no filter, measured in this run (issues 3, 4 and 5).
FILTER_DURATION=${BENCH_FILTER_DURATION:-5s}
run_route() {
  local name=$1 path=$2; shift 2
  pin "$OTHER_CPU" wrk -t1 -c64 -d"$FILTER_DURATION" --latency "$@" "http://127.0.0.1:$SLUICE_PORT$path" > "$OUT/route-$name.log"
  awk -v n="$name" '
    /Requests\/sec/ { rps=$2 }
    /Non-2xx/ { bad=$NF }
    $1=="99%" { p99=$2 }
    END { printf "%s %s %s %s\n", n, rps, p99, bad+0 }' "$OUT/route-$name.log" >> "$OUT/routes.csv"
}
rm -f "$OUT/routes.csv"
echo "filter routes"
# The routes the ratios rest on, interleaved over rounds (the best of each
# kept): a single pass in a fixed order showed the same route 30% apart
# from its start to its end.
for round in $(seq "${BENCH_FILTER_ROUNDS:-3}"); do
  run_route plain /plain
  run_route one /one
  run_route five /five
  run_route raw /raw
  run_route sdk /sdk
done
for p in ip-restriction cors request-transformer response-transformer canary fault rate-limiting response-ratelimiting; do
  run_route "$p" "/p/$p"
done
# The routes whose requests carry a credential or an Origin are also
# compared with the same request on the route without filters, measured
# just before (NAME@plain): a 450-byte token costs the codecs and the
# upstream request something with or without filters, and the ratio to a
# bare GET counts that as the filters' cost.
# Interleaved over rounds like the routes above: one 5 s pass of each
# put the Kong chain anywhere from 0.49 to 0.58 of its pair between runs.
run_pair() {
  local name=$1 path=$2; shift 2
  run_route "$name@plain" /plain "$@"
  run_route "$name" "$path" "$@"
}
for round in $(seq "${BENCH_FILTER_ROUNDS:-3}"); do
  run_pair key-auth /p/key-auth -H "apikey: bench-key"
  run_pair jwt /p/jwt -H "Authorization: Bearer $JWT"
  run_pair jwt-rs /p/jwt-rs -H "Authorization: Bearer $JWT_RS"
  run_pair kong /kong -H "Authorization: Bearer $JWT_RS" -H "Origin: https://app.example.com"
done

# Memory after the load: sluice (every plugin above loaded) and nginx's
# proxy worker.
sluice_pid=${PIDS[2]}
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
nginx_worker=$(pgrep -P "${PIDS[1]}" | head -1)
echo "rss_kb sluice $(rss_kb "$sluice_pid") nginx_worker $(rss_kb "$nginx_worker")" > "$OUT/rss.txt"

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
for proto, label in (("http1", "http1"), ("h2", "h2"), ("grpc", "grpc unary")):
    s, n = best[(proto, "sluice")], best[(proto, "nginx")]
    if not s or not n:
        continue
    print(f"| {label} | {s[0]:.0f} | {n[0]:.0f} | {s[0]/n[0]:.2f} | {s[1]:.3f} | {n[1]:.3f} | {s[2]:.3f} | {n[2]:.3f} | {s[2]/n[2] if n[2] else 0:.2f} |")
    h = best[(proto, "nginx-headers")]
    if h:
        print(f"| {label}, nginx adding sluice's headers | {s[0]:.0f} | {h[0]:.0f} | {s[0]/h[0]:.2f} | {s[1]:.3f} | {h[1]:.3f} | {s[2]:.3f} | {h[2]:.3f} | {s[2]/h[2] if h[2] else 0:.2f} |")
PY
python3 - "$OUT/routes.csv" >> "$OUT/results.md" <<'PY'
import sys
import statistics
best, rounds, plain = {}, {}, None
# A paired route's rounds against the same request on plain, run just
# before it (NAME@plain).
same_plain, same_rounds = {}, {}
for name, r, p99, bad in (l.split() for l in open(sys.argv[1])):
    if name not in best or float(r) > float(best[name][0]):
        best[name] = (r, p99, bad)
    if name.endswith("@plain"):
        same_plain[name[:-len("@plain")]] = float(r)
    elif name in same_plain:
        same_rounds.setdefault(name, []).append(float(r) / same_plain[name])
    # Each interleaved round's routes against that round's plain route:
    # the machine drifts between rounds more than within one.
    if name == "plain":
        plain = float(r)
    if plain and not name.endswith("@plain") and name not in same_plain:
        rounds.setdefault(name, []).append(float(r) / plain)
rps = {name: float(v[0]) for name, v in best.items()}
base = rps.get("plain", 0) or 1
print()
print("| route (sluice, HTTP/1.1, 64 connections) | best req/s | best / best plain | median of per-round ratios (each round) | / the same request on plain (median of rounds) | p99 | non-2xx |")
print("|---|---|---|---|---|---|---|")
for name, (r, p99, bad) in best.items():
    if name.endswith("@plain"):
        continue
    per = rounds.get(name, [])
    med = f"{statistics.median(per):.2f} ({', '.join(f'{x:.2f}' for x in per)})" if len(per) > 1 else "-"
    same = rps.get(name + "@plain")
    per_same = same_rounds.get(name, [])
    if len(per_same) > 1:
        same = f"{statistics.median(per_same):.2f} ({', '.join(f'{x:.2f}' for x in per_same)})"
    else:
        same = f"{float(r)/same:.2f} ({same:.0f})" if same else "-"
    print(f"| {name} | {float(r):.0f} | {float(r)/base:.2f} | {med} | {same} | {p99} | {bad} |")
if "sdk" in rps and "raw" in rps:
    print()
    print(f"SDK / raw ABI req/s: {rps['sdk']/rps['raw']:.3f}")
PY
awk '{ printf "\nRSS after the runs: sluice %.1f MiB (with %s), nginx proxy worker %.1f MiB\n", $3/1024, "every bench plugin loaded", $5/1024 }' "$OUT/rss.txt" >> "$OUT/results.md"
# The sidecar path (issue 7), with the servers above stopped first.
cleanup
PIDS=()
# Both ways between the sidecars: the default (one h2 connection per peer)
# and protocol = "downstream" (the app's HTTP/1.1 kept, pooled).
bash bench/mesh.sh > /dev/null
MESH_PROTOCOL=downstream bash bench/mesh.sh > /dev/null
{ echo; cat "$OUT/mesh-default.md"; echo; cat "$OUT/mesh-downstream.md"; } >> "$OUT/results.md"
cat "$OUT/results.md"
