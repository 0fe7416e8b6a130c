# shellcheck shell=bash
# What compare-serve.sh and broker.sh share, sourced by both: a temporary work directory
# with a fresh test PKI, the servers they start stopped (and the directory removed) on exit,
# and loopback port helpers.

# bench_workdir: sets WORK (a new temporary directory), PKI ($WORK/pki, made by
# scripts/gen-test-pki.sh) and PIDS (add every started server's pid: killed on exit).
bench_workdir() {
  WORK=$(mktemp -d)
  PIDS=()
  trap bench_cleanup EXIT
  bash "$ROOT/scripts/gen-test-pki.sh" "$WORK/pki" 2>/dev/null
  # shellcheck disable=SC2034  # read by the scripts that source this file
  PKI="$WORK/pki"
}

bench_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

# free_port: a loopback port nobody listens on right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT: waits up to 10 s until something listens on PORT.
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
