#!/usr/bin/env bash
# Two wif-serve builds side by side, with nginx as the fixed baseline, in one run: full mTLS
# handshakes (TLS 1.3, P-256) and kept-alive requests. For checking that a change does not
# slow the handshake path ("before" and "after" built from two commits).
#
# usage: scripts/bench/compare-serve.sh --before BIN --after BIN [--runs N] [--duration SECS]
#                                       [--concurrency N] [--no-nginx]
#   --before BIN, --after BIN  the two wif-serve binaries (release builds)
#   --runs N          runs per server and case, interleaved; the median is shown (default 5)
#   --duration SECS   measured seconds per run, after 1 s of warm-up (default 5)
#   --concurrency N   connections the load generator keeps busy (default 16)
#   --no-nginx        leave the baseline out
# Servers run on CPU 0 and the load generator on CPU 1 (taskset); numbers from a shared
# machine move by a few percent between runs, so compare medians, not single runs. Needs
# the load generator built: (cd scripts/bench/loadgen && cargo build --release).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH="$ROOT/scripts/bench"
# shellcheck source=scripts/bench/nginx-conf.sh
. "$BENCH/nginx-conf.sh"
# shellcheck source=scripts/bench/workdir.sh
. "$BENCH/workdir.sh"
before='' after='' runs=5 duration=5 concurrency=16 nginx=1
while [ $# -gt 0 ]; do
  case "$1" in
    --before) before="${2:?}"; shift ;;
    --after) after="${2:?}"; shift ;;
    --runs) runs="${2:?}"; shift ;;
    --duration) duration="${2:?}"; shift ;;
    --concurrency) concurrency="${2:?}"; shift ;;
    --no-nginx) nginx=0 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare-serve.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ ! -x "$before" ] || [ ! -x "$after" ]; then echo "compare-serve.sh: give --before and --after wif-serve binaries" >&2; exit 2; fi
LG="${CARGO_TARGET_DIR:-$BENCH/loadgen/target}/release/wif-loadgen"
[ -x "$LG" ] || LG="$BENCH/loadgen/target/release/wif-loadgen"
[ -x "$LG" ] || { echo "compare-serve.sh: build the load generator first: (cd scripts/bench/loadgen && cargo build --release)" >&2; exit 2; }
if [ "$nginx" = 1 ] && ! command -v nginx >/dev/null; then
  echo "compare-serve.sh: nginx not found (apt-get install nginx-light), or --no-nginx" >&2; exit 2
fi

bench_workdir
TOKEN="$WORK/wif_token.txt"
exp=$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%SZ)
"$after" --version >/dev/null
python3 - "$TOKEN" "$exp" <<'PY'
import hashlib, json, os, sys, time
path, exp = sys.argv[1], sys.argv[2]
token = "ya29." + "b" * 1200
meta = {"expires_at": exp, "token_type": "access_token",
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "written_by": "compare-serve.sh",
        "bytes": len(token), "sha256": hashlib.sha256(token.encode()).hexdigest()}
with open(path + ".meta.json", "w") as f:
    json.dump(meta, f)
with open(path, "w") as f:
    f.write(token)
os.chmod(path, 0o600)
PY


names=() urls=() spids=()
start_wif() { # start_wif NAME BIN
  local port
  port=$(free_port)
  taskset -c 0 "$2" --listen "127.0.0.1:$port" --cert "$PKI/server-chain.crt" --key "$PKI/server.key" \
    --client-ca "$PKI/ca-chain.crt" --token "$TOKEN" > /dev/null 2> "$WORK/$1.err" &
  PIDS+=("$!"); spids+=("$!"); names+=("$1"); urls+=("https://127.0.0.1:$port/get_wif_token")
  wait_port "$port"
}
start_wif before "$before"
start_wif after "$after"
if [ "$nginx" = 1 ]; then
  port=$(free_port)
  write_nginx_conf "$WORK/nginx" "$port" "$PKI" "$TOKEN"
  taskset -c 0 nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
  PIDS+=("$!")
  wait_port "$port"
  worker=$(pgrep -P "$!" | head -1)
  names+=(nginx); urls+=("https://127.0.0.1:$port/get_wif_token"); spids+=("$!,$worker")
fi

RES="$WORK/results.jsonl"
: > "$RES"
for run in $(seq "$runs"); do
  for case in new keepalive; do
    for i in "${!names[@]}"; do
      extra=(--mode new --tls13)
      [ "$case" = keepalive ] && extra=(--mode keepalive --tls13 --requests-per-conn 100)
      printf 'compare-serve.sh: run %s/%s %s %s\n' "$run" "$runs" "${names[$i]}" "$case" >&2
      line=$(taskset -c 1 "$LG" --url "${urls[$i]}" --cert "$PKI/client.crt" --key "$PKI/client.key" \
        --ca "$PKI/ca-chain.crt" --concurrency "$concurrency" --duration "$duration" --warmup 1 "${extra[@]}" \
        --server-pid "${spids[$i]}")
      printf '{"server":"%s","case":"%s","report":%s}\n' "${names[$i]}" "$case" "$line" >> "$RES"
    done
  done
done

python3 - "$RES" "$runs" "$duration" "$concurrency" <<'PY'
import json, statistics, sys
res, runs, duration, conc = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = [json.loads(l) for l in open(res)]
servers = list(dict.fromkeys(r["server"] for r in rows))
def med(server, case, key):
    v = [r["report"].get(key) for r in rows if r["server"] == server and r["case"] == case]
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else float("nan")
def errors(server):
    return sum(r["report"]["errors"] for r in rows if r["server"] == server)
print(f"wif-serve before/after, nginx as the baseline: TLS 1.3 P-256, {conc} connections, "
      f"median of {runs} runs of {duration} s, server on CPU 0, load generator on CPU 1\n")
print("| server | full handshakes/s | server CPU ms per handshake | p99 ms | kept-alive requests/s | server CPU ms per request | errors |")
print("|---|---:|---:|---:|---:|---:|---:|")
for s in servers:
    print(f"| {s} | {med(s,'new','handshakes_per_s'):,.0f} | {med(s,'new','server_cpu_ms_per_handshake'):.3f} | "
          f"{med(s,'new','p99_ms'):.1f} | {med(s,'keepalive','requests_per_s'):,.0f} | "
          f"{med(s,'keepalive','server_cpu_ms_per_request'):.4f} | {errors(s)} |")
b, a = med("before", "new", "server_cpu_ms_per_handshake"), med("after", "new", "server_cpu_ms_per_handshake")
print(f"\nafter vs before: CPU per handshake {100 * (a - b) / b:+.1f} %, "
      f"handshakes/s {100 * (med('after','new','handshakes_per_s') / med('before','new','handshakes_per_s') - 1):+.1f} %, "
      f"CPU per kept-alive request {100 * (med('after','keepalive','server_cpu_ms_per_request') / med('before','keepalive','server_cpu_ms_per_request') - 1):+.1f} %")
PY
