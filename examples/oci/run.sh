#!/usr/bin/env bash
# `make run-oci`: a registry on 127.0.0.1:5000 (go-containerregistry's, in
# process) with the header-rust example filter pushed to it, the demo
# upstream on 127.0.0.1:9000, and sluice pulling the filter by digest
# (docs/plugin-sources.md). Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
sluice=${SLUICE:-bin/sluice}
demo=${DEMO_UPSTREAM:-bin/demo-upstream}
registry=${OCI_REGISTRY:-bin/oci-registry}
config=bin/oci-sluice.toml

. examples/processes.sh

rm -f "$config"
"$demo" -addr 127.0.0.1:9000 2>/dev/null & pids+=($!)
"$registry" -addr 127.0.0.1:5000 -out "$config" & pids+=($!)
# The registry writes the config once the image is pushed.
for _ in $(seq 100); do
  [[ -f $config ]] && break
  sleep 0.1
done
[[ -f $config ]] || { echo "run-oci: the registry did not start" >&2; exit 1; }
"$sluice" run --config "$config" --log-level warn & pids+=($!)
cat <<MSG
sluice with its filter pulled by digest from the registry on 127.0.0.1:5000.
Try:
  curl -si localhost:8080/hello      # x-filter: header-rust; the upstream saw x-hello: rust
  curl -s localhost:9901/plugins     # source, digest, layout, state, load time
Ctrl-C stops it all.
MSG
wait_for_any run-oci
