#!/bin/bash
# Writes bin/wif-serve.order: the functions wif-serve runs, hottest first, one symbol per
# line, which the release build hands to the linker (build.rs) so that they sit together in
# the binary instead of scattered across its 4.7 MB of code.
#
# Why: the kernel maps a program's code into memory 64 KiB at a time around each page the
# program touches. Scattered, the few hundred KiB of code a handshake runs pulled in most of
# the binary (4.8 MiB resident); together, about 2 MiB (scripts/bench/analysis.md).
#
# How: a release wif-serve, once with a P-256 and once with an RSA-2048 test PKI, serves the
# load generator (new connections over TLS 1.3 and 1.2, kept-alive connections), a client
# without a certificate, a wrong path, the metrics page, a reload (SIGHUP) and a graceful
# stop (SIGTERM), under valgrind's callgrind, which lists every function that ran with its
# instruction count. valgrind hides some CPU features (AVX-512), so the same load also runs
# natively under `perf record` when perf is installed, adding the code only real CPUs take.
# Only names the binary defines are kept.
#
# The names are the compiler's (mangled, with a hash of the toolchain and Cargo.lock): after
# a Rust or dependency upgrade, run this again (names no longer found only lose their place;
# the build never fails over them). scripts/bench/run.sh reports how many are found.
#
# usage: scripts/bench/orderfile.sh [--no-build] [--out FILE]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH="$ROOT/scripts/bench"
# shellcheck source=scripts/bench/workdir.sh
. "$BENCH/workdir.sh"
build=1 out="$ROOT/bin/wif-serve.order"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --out) out="${2:?}"; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "orderfile.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
say() { echo "orderfile.sh: $*" >&2; }

command -v valgrind >/dev/null || {
  say "installing valgrind"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
}
if [ "$build" = 1 ]; then
  say "building wif-serve (release) and the load generator"
  (cd "$ROOT" && cargo build --release --locked --bin wif-serve -q)
  (cd "$BENCH/loadgen" && cargo build --release -q)
fi
target_dir() { # target_dir PACKAGE_DIR
  (cd "$1" && cargo metadata --format-version 1 --no-deps) \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}
SERVE="$(target_dir "$ROOT")/release/wif-serve"
LG="$(target_dir "$BENCH/loadgen")/release/wif-loadgen"

bench_workdir
bash "$ROOT/scripts/gen-test-pki.sh" --rsa "$WORK/pki-rsa" >/dev/null
TOKEN="$WORK/wif_token.txt"
head -c 1200 /dev/urandom | base64 -w0 | sed 's/^/ya29.c./' > "$TOKEN"
printf '{"expires_at":"%s","token_type":"access_token","written_at":"%s","written_by":"orderfile.sh","bytes":%s,"sha256":"%s"}\n' \
  "$(date -u -d '+2 days' +%Y-%m-%dT%H:%M:%SZ)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(stat -c %s "$TOKEN")" \
  "$(sha256sum "$TOKEN" | cut -d' ' -f1)" > "$TOKEN.meta.json"
chmod 600 "$TOKEN" "$TOKEN.meta.json"

# drive PKI PORT METRICS_PORT PID: the load every profile sees.
drive() {
  local pki=$1 port=$2 mport=$3 pid url="https://127.0.0.1:$2/get_wif_token" mode
  pid=$(pgrep -n -P "$4" || echo "$4")  # wif-serve itself, under perf; valgrind runs it in its own process
  local client=(--cert "$pki/client.crt" --key "$pki/client.key" --ca "$pki/ca-chain.crt")
  for mode in "--mode new --tls13" "--mode new --tls12" "--mode keepalive --tls13 --requests-per-conn 50"; do
    # shellcheck disable=SC2086  # the mode is words
    "$LG" --url "$url" "${client[@]}" $mode --concurrency 4 --duration 2 --warmup 0 > /dev/null
  done
  curl -s -o /dev/null --cacert "$pki/ca-chain.crt" "$url" || true
  curl -s -o /dev/null --cacert "$pki/ca-chain.crt" --cert "$pki/client.crt" --key "$pki/client.key" \
    "https://127.0.0.1:$port/nothing-here" || true
  curl -s -o /dev/null "http://127.0.0.1:$mport/metrics" || true
  kill -HUP "$pid"
  sleep 1
  "$LG" --url "$url" "${client[@]}" --mode new --tls13 --concurrency 2 --duration 1 --warmup 0 > /dev/null
  kill -TERM "$pid"
  wait "$4" || true
}

# profile NAME PKI WRAPPER...: runs wif-serve under WRAPPER and drives it.
profile() {
  local name=$1 pki=$2 port mport pid; shift 2
  port=$(free_port) mport=$(free_port)
  say "profiling: $name"
  "$@" "$SERVE" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" --cert "$pki/server-chain.crt" \
    --key "$pki/server.key" --client-ca "$pki/ca-chain.crt" --token "$TOKEN" > "$WORK/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_port "$port" || { say "wif-serve did not start: $(tail -3 "$WORK/$name.log")"; exit 1; }
  drive "$pki" "$port" "$mport" "$pid"
}

for p in ec rsa; do
  pki=$PKI; [ "$p" = rsa ] && pki="$WORK/pki-rsa"
  profile "callgrind.$p" "$pki" valgrind --tool=callgrind --demangle=no --dump-instr=no \
    --callgrind-out-file="$WORK/callgrind.$p.out"
  if command -v perf >/dev/null; then
    profile "perf.$p" "$pki" perf record -q -F 20000 -o "$WORK/perf.$p.data" --
    perf report -i "$WORK/perf.$p.data" --no-demangle --sort sym --stdio -q 2>/dev/null > "$WORK/perf.$p.txt" || true
  else
    say "perf is not installed: only valgrind's view (apt-get install linux-perf to add the native one)"
  fi
done

python3 - "$SERVE" "$out" "$WORK" <<'PY'
import glob, re, subprocess, sys
from collections import Counter
serve, out, work = sys.argv[1:]
defined = {line.split()[-1] for line in subprocess.run(["nm", "--defined-only", serve], capture_output=True,
                                                      text=True, check=True).stdout.splitlines()
           if len(line.split()) == 3 and line.split()[1] in "tTwW"}
cost = Counter()
for f in glob.glob(f"{work}/callgrind.*.out"):
    report = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", f], capture_output=True,
                            text=True, check=True).stdout
    for line in report.splitlines():
        m = re.match(r"^\s*([0-9,]+) \(\s*[0-9.]+%\)\s+\S*?:(\S+) \[", line)
        if m:
            cost[m.group(2)] += int(m.group(1).replace(",", ""))
native = Counter()
for f in glob.glob(f"{work}/perf.*.txt"):
    for line in open(f):
        m = re.match(r"^\s*([0-9.]+)%\s+\[\.\]\s+(\S+)", line)
        if m:
            native[m.group(2)] += float(m.group(1))
# The native-only code first (what valgrind never saw runs hot on real CPUs), then the rest
# by instructions run.
order = [n for n, _ in native.most_common() if n not in cost] + [n for n, _ in cost.most_common()]
order = [n for n in dict.fromkeys(order) if n in defined]
open(out, "w").write("\n".join(order) + "\n")
print(f"orderfile.sh: {len(order)} functions written to {out} "
      f"({sum(1 for n in order if n not in cost)} seen only natively)", file=sys.stderr)
PY
