#!/usr/bin/env bash
# `make run-mesh`: two sidecars on this machine, web's and orders', with
# certificates from `sluice ca`, and the demo upstream as the orders app.
#
#   web (curl) -> web's outbound 127.0.0.1:15001 -> mTLS -> orders' inbound
#   127.0.0.1:15006 -> orders app 127.0.0.1:9100
#
# Addresses come from the two configs; MESH_DIR runs another copy of them
# (the tests use one with free ports). Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${MESH_DIR:-examples/mesh}
sluice=${SLUICE:-bin/sluice}
demo=${DEMO_UPSTREAM:-bin/demo-upstream}
domain=example.local

# value FILE KEY: the first `KEY = "value"` line's value.
value() { sed -n "s/^$2 *= *\"\\(.*\\)\"/\\1/p" "$1" | head -n 1; }
app=$(value "$dir/orders-sidecar.toml" app)
outbound=$(value "$dir/web-sidecar.toml" outbound)
inbound=$(value "$dir/orders-sidecar.toml" inbound)

# A trust root once; workload certificates (24h) at every start, so a
# stale one never stops the example.
if [[ ! -f $dir/certs/ca.crt ]]; then
  "$sluice" ca init --dir "$dir/certs" --trust-domain "$domain"
fi
for w in web orders; do
  "$sluice" ca issue --dir "$dir/certs" --id "spiffe://$domain/ns/default/sa/$w" --out "$dir/certs/$w" >/dev/null
done

. examples/processes.sh

"$demo" -addr "$app" -name orders & pids+=($!)
"$sluice" run --config "$dir/orders-sidecar.toml" --log-level warn & pids+=($!)
"$sluice" run --config "$dir/web-sidecar.toml" --log-level warn & pids+=($!)

if command -v curl >/dev/null; then
  for _ in $(seq 150); do
    curl -sf -o /dev/null -H "Host: orders" "http://$outbound/" && break
    sleep 0.2
  done
fi
cat <<MSG
sluice mesh example: web's sidecar on $outbound, orders' sidecar in front of the orders app ($app).
Try:
  curl -s -H 'Host: orders' http://$outbound/items      # through both sidecars; see x-forwarded-client-cert
  curl -s -X POST -H 'Host: orders' http://$outbound/items  # 403: orders lets web only read
  curl -sk https://$inbound/                             # refused: orders' inbound wants a client certificate
Ctrl-C stops it.
MSG
wait_for_any "run-mesh"
