#!/usr/bin/env bash
# netpoll-fifo.sh RUNTIME_NETPOLL_EPOLL_GO OUTDIR
#
# Writes OUTDIR/overlay.json, a `go build -overlay` file that makes the Go
# runtime's epoll netpoller hand out the goroutines it finds ready in the
# order the kernel reported them (README: "Ready in the kernel's order").
# The runtime collects them on a list it pushes at the front, so without
# this the socket that became ready last runs first. When this Go's source
# does not have the loop the patch reverses, the overlay is empty (the
# build is the stock runtime's) and a warning says so.
set -euo pipefail
src=$1 out=$2
mkdir -p "$out"
loop='	for i := int32(0); i < n; i++ {'
if [[ -f $src ]] && [[ $(grep -cxF -- "$loop" "$src") == 1 ]] && grep -q 'toRun.push' "${src%/*}/netpoll.go"; then
	# The same loop over the events, from the last to the first.
	sed "s/^	for i := int32(0); i < n; i++ {\$/	for i := n - 1; i >= 0; i-- { \/\/ sluice: push the events last first, so the list is in the kernel's order/" \
		"$src" > "$out/netpoll_epoll.go"
	printf '{"Replace":{"%s":"%s"}}\n' "$src" "$(cd "$out" && pwd)/netpoll_epoll.go" > "$out/overlay.json"
else
	echo "netpoll-fifo: $src has not the loop this patch reverses; building with the stock netpoller" >&2
	echo '{"Replace":{}}' > "$out/overlay.json"
fi
