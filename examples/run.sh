#!/usr/bin/env bash
# `make run-kong`, `make run-istio`: an example config and what it needs on
# this machine: a demo upstream for every cluster endpoint the config
# names, redis-server when its [shared_store] is Redis, and sluice.
#
#   examples/run.sh kong|istio
#
# Addresses come from the config; EXAMPLE_CONFIG runs another copy of it
# (the tests use one with free ports). Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
sluice=${SLUICE:-bin/sluice}
demo=${DEMO_UPSTREAM:-bin/demo-upstream}
example=${1:-}
case $example in
kong) config=${EXAMPLE_CONFIG:-examples/kong-migration.toml} ;;
istio) config=${EXAMPLE_CONFIG:-examples/istio-canary.toml} ;;
*)
  echo "usage: $0 kong|istio" >&2
  exit 2
  ;;
esac

# section_address SECTION: the first `address = "..."` under that table
# header ("[admin]", "[[listeners]]").
section_address() {
  awk -v want="$1" '/^\[/ { in_s = ($0 == want) } in_s && /^address *=/ {
    sub(/^address *= *"/, ""); sub(/".*/, ""); print; exit }' "$config"
}
# cluster_endpoints: "CLUSTER ADDRESS VERSION" for every loopback endpoint
# under [[clusters]] (VERSION is the endpoint's version label, or -).
cluster_endpoints() {
  awk '/^\[/ { in_c = ($0 == "[[clusters]]"); name = "" }
    in_c && /^name *=/ { name = $0; sub(/^name *= *"/, "", name); sub(/".*/, "", name); next }
    in_c { line = $0
      while (match(line, /(127\.0\.0\.1|\[::1\]):[0-9]+/)) {
        addr = substr(line, RSTART, RLENGTH); line = substr(line, RSTART + RLENGTH)
        v = "-"; rest = line; sub(/}.*/, "", rest)
        if (match(rest, /version *= *"[^"]*"/)) { v = substr(rest, RSTART, RLENGTH); sub(/^version *= *"/, "", v); sub(/"$/, "", v) }
        print name, addr, v } }' "$config"
}
admin=$(section_address "[admin]")
public=$(section_address "[[listeners]]")
redis=$(sed -n 's/^redis *= *{ *address *= *"\([^"]*\)".*/\1/p' "$config" | head -n 1)
grep -q '^kind *= *"redis"' "$config" || redis=

. examples/processes.sh

# answers HOST:PORT: something accepts connections there.
answers() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

if [[ -n $redis ]]; then
  if answers "$redis"; then
    echo "run-$example: using the Redis already listening on $redis"
  elif ! command -v redis-server >/dev/null; then
    echo "run-$example: the Redis policy needs redis-server on $redis: apt-get install redis-server (make tools installs it), or set policy = \"local\" in $config" >&2
    exit 1
  else
    # In memory only: the example's counters need no disk.
    redis-server --bind "${redis%:*}" --port "${redis##*:}" --save "" --appendonly no --loglevel warning & pids+=($!)
  fi
fi

while read -r cluster addr version; do
  args=(-addr "$addr" -name "$cluster")
  [[ $version == - ]] || args=(-addr "$addr" -name "$cluster $version")
  # The Kong example's user-service reports what each answer used, as an
  # upstream written for Kong's response-ratelimiting does.
  [[ $example == kong && $cluster == user-service ]] && args+=(-header "X-Kong-Limit: sms=1")
  "$demo" "${args[@]}" 2>/dev/null & pids+=($!)
done < <(cluster_endpoints)

"$sluice" run --config "$config" --log-level warn & pids+=($!)

if command -v curl >/dev/null; then
  for _ in $(seq 150); do
    curl -sf -o /dev/null "http://$admin/ready" && break
    sleep 0.2
  done
fi
case $example in
kong)
  cat <<MSG
sluice Kong example ($config) on $public, upstreams order-service and user-service${redis:+, Redis on $redis}.
Try:
  curl -si 'http://$public/api/v2/users/1?apikey=change-me'   # key-auth; each answer uses one of 10 SMS a minute (X-RateLimit-Remaining-Sms-Minute)
  curl -si 'http://$public/api/v2/users/1'                    # 401: no key
  curl -si -X OPTIONS http://$public/api/v2/orders -H 'Origin: https://app.example.com' -H 'Access-Control-Request-Method: PUT'   # CORS preflight
  curl -si http://$public/api/v2/orders                       # 401: orders wants a JWT (docs/from-kong.md)
Dashboard: http://$admin/   Ctrl-C stops it all.
MSG
  ;;
istio)
  cat <<MSG
sluice Istio example ($config) on $public, order-service v1 and v2 behind it.
Try:
  curl -s http://$public/api/v2/orders                     # 90% v1, 10% v2 ("upstream" in the answer)
  curl -s -H 'x-canary: true' http://$public/api/v2/orders # always v2
Dashboard: http://$admin/   Ctrl-C stops it all.
MSG
  ;;
esac
wait_for_any "run-$example"
