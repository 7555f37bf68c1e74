# Sourced by the bench scripts: every process a script starts goes into
# PIDS (`cmd & PIDS+=($!)`), and stop_pids ends them by PID, politely
# first (up to 5 s), then with SIGKILL, so a run leaves nothing behind.
PIDS=()
stop_pids() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
