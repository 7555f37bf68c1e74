#!/usr/bin/env bash
# make pgo: regenerates cmd/sluice/default.pgo, the CPU profile `go build`
# uses for profile-guided optimization of the sluice binary (Go inlines
# and devirtualizes the calls the profile shows hot). `go build
# ./cmd/sluice` and `make build` pick the file up by themselves.
#
# The profile is one window over a mixed load on the bench config
# (bench/sluice-config.sh: every built-in plugin loaded), in the
# proportions a gateway's traffic has: mostly plain HTTP/1.1 proxying,
# then HTTP/2 and gRPC, then routes with Wasm filters (the Kong chain, a
# chain of five header filters, jwt). A profile of one route only would
# tune the binary to that benchmark; this one favours the paths every
# request takes, which all of these share.
#
# Regenerate it when the request path changed much (a stale profile
# still builds; Go matches it to the code by function name and line
# offset, and what no longer matches is ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/tools.sh bench

UP_PORT=${UP_PORT:-18380}
SLUICE_PORT=${SLUICE_PORT:-18382}
ADMIN_PORT=${ADMIN_PORT:-18383}
GRPC_UP_PORT=${GRPC_UP_PORT:-18385}
source bench/pids.sh
work=$(mktemp -d)
cleanup() {
  stop_pids
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

make -s build bin/demo-upstream
go build -o "$work/grpcup" ./bench/grpcup
printf '\x00\x00\x00\x00\x02\x10\x14' > "$work/grpc-req.bin"
source bench/sluice-config.sh
write_sluice_config

bin/demo-upstream -addr "127.0.0.1:$UP_PORT" >/dev/null 2>&1 & PIDS+=($!)
"$work/grpcup" -addr "127.0.0.1:$GRPC_UP_PORT" & PIDS+=($!)
# One core, as make bench runs it: the profile then holds the runtime's
# scheduling as it is there.
GOMAXPROCS=1 bin/sluice run --config "$work/sluice.toml" --log-level warn & PIDS+=($!)
for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$SLUICE_PORT/" && break; sleep 0.1; done
for _ in $(seq 600); do "$work/grpcup" -check "127.0.0.1:$SLUICE_PORT" 2>/dev/null && break; sleep 0.1; done
# Warm: compiled Wasm in place, pools grown.
wrk -t1 -c64 -d2s "http://127.0.0.1:$SLUICE_PORT/" >/dev/null

url=http://127.0.0.1:$SLUICE_PORT
seconds=40
curl -sf -o "$work/default.pgo" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$seconds" & prof=$!
sleep 0.5
wrk -t1 -c64 -d14s "$url/" >/dev/null
h2load -c16 -m10 -D 6 "$url/" >/dev/null
h2load -c16 -m10 -D 4 -d "$work/grpc-req.bin" -H "content-type: application/grpc" -H "te: trailers" \
  "$url/grpc.testing.TestService/UnaryCall" >/dev/null
wrk -t1 -c64 -d8s -H "Authorization: Bearer $JWT_RS" -H "Origin: https://app.example.com" "$url/kong" >/dev/null
wrk -t1 -c64 -d4s "$url/five" >/dev/null
wrk -t1 -c64 -d4s -H "Authorization: Bearer $JWT" "$url/p/jwt" >/dev/null
wait "$prof"
# A profile Go cannot read would fail every build: check it first.
go tool pprof -top "$work/default.pgo" >/dev/null
cp "$work/default.pgo" cmd/sluice/default.pgo
echo "wrote cmd/sluice/default.pgo ($(wc -c < cmd/sluice/default.pgo) bytes)"
