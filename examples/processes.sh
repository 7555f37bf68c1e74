# Sourced by the examples' run scripts (make run-mesh, run-kong,
# run-istio): what they start in the background goes into pids, and the
# script's end (Ctrl-C, or any exit) stops each of them by PID.
#
#   some-server & pids+=($!)
#   ...
#   wait_for_any NAME   # returns only by exiting
pids=()
stop() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 0' INT TERM

# wait_for_any NAME: until a signal, or until one of the processes exits
# on its own (then say so, and stop the others).
wait_for_any() {
  wait -n "${pids[@]}" || true
  echo "$1: a process exited; stopping the others" >&2
  exit 1
}
