#!/usr/bin/env bash
# The credential broker's cost: wif-serve handing out a cached downscoped token (--policy, a
# rule with a Credential Access Boundary, wif-emulate as STS, the ledger written to a file)
# against the same build serving the token as it is (no policy), in one run: full mTLS
# handshakes (TLS 1.3, P-256), one GET per connection. The broker is warmed first, so every
# measured request is a cache hit; the emulator's log confirms that STS was called once.
#
# usage: scripts/bench/broker.sh [--bin-dir DIR] [--loadgen BIN] [--runs N] [--duration SECS]
#                                [--concurrency N]
#   --bin-dir DIR     where the release binaries are (default ${CARGO_TARGET_DIR:-target}/release)
#   --loadgen BIN     wif-loadgen (default: beside them, or scripts/bench/loadgen/target/release)
#   --runs N          runs per server, interleaved; the median is shown (default 5)
#   --duration SECS   measured seconds per run, after 1 s of warm-up (default 5)
#   --concurrency N   connections the load generator keeps busy (default 16)
# Build first: cargo build --release; (cd scripts/bench/loadgen && cargo build --release).
# Servers run on CPU 0 and the load generator on CPU 1 (taskset); compare medians.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH="$ROOT/scripts/bench"
# shellcheck source=scripts/bench/workdir.sh
. "$BENCH/workdir.sh"
bindir="${CARGO_TARGET_DIR:-$ROOT/target}/release" lg='' runs=5 duration=5 concurrency=16
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bindir="${2:?}"; shift ;;
    --loadgen) lg="${2:?}"; shift ;;
    --runs) runs="${2:?}"; shift ;;
    --duration) duration="${2:?}"; shift ;;
    --concurrency) concurrency="${2:?}"; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "broker.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for tool in wif-sign wif-azure wif-sts wif-impersonate wif-serve wif-emulate; do
  [ -x "$bindir/$tool" ] || { echo "broker.sh: no $tool in $bindir (cargo build --release, or --bin-dir)" >&2; exit 2; }
done
[ -n "$lg" ] || lg="$bindir/wif-loadgen"
[ -x "$lg" ] || lg="$BENCH/loadgen/target/release/wif-loadgen"
[ -x "$lg" ] || { echo "broker.sh: build the load generator first: (cd scripts/bench/loadgen && cargo build --release)" >&2; exit 2; }

bench_workdir
cd "$WORK"

# The emulator: examples/emulator.json plus a bucket the service account may read.
python3 - "$ROOT/examples/emulator.json" "$WORK/emulator.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
sa = "serviceAccount:wif-demo@wif-demo.iam.gserviceaccount.com"
config["google"].setdefault("storage", {"buckets": []})["buckets"].append({
    "name": "bench-bucket", "iam": [{"role": "roles/storage.objectViewer", "members": [sa]}],
    "objects": [{"name": "data/one.csv", "content": "a\n"}]})
json.dump(config, open(sys.argv[2], "w"))
PY
"$bindir/wif-emulate" --config emulator.json --listen 127.0.0.1:0 > emulator.log 2> emulator.err &
PIDS+=("$!")
for _ in $(seq 100); do [ -s emulator.log ] && break; sleep 0.1; done
emu=$(sed -n '1s/.*"url":"\([^"]*\)".*/\1/p' emulator.log)
[ -n "$emu" ] || { echo "broker.sh: the emulator did not start: $(cat emulator.err)" >&2; exit 1; }

# A real service-account token from the pipeline (the emulator downscopes only its own).
"$bindir/wif-sign" --authority "$emu" --tenant-id 7a1c9e4b-0d2f-4c3a-9b8e-1f2a3b4c5d6e \
    --client-id 0b6f3d2a-5c4e-4f1a-8e7d-9a0b1c2d3e4f --key "$PKI/app-rsa.key" --cert "$PKI/app-rsa.crt" \
  | "$bindir/wif-azure" --scope api://wif-gcp/.default \
  | "$bindir/wif-sts" --token-url "$emu/v1/token" \
      --audience //iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/wif-pool/providers/azure \
  | "$bindir/wif-impersonate" --endpoint "$emu" --service-account wif-demo@wif-demo.iam.gserviceaccount.com \
      --token-out "$WORK/wif_token.txt" > /dev/null

cat > policy.json <<'JSON'
{ "version": 1, "rules": [ { "name": "bench", "match": { "any": true }, "access_boundary": { "accessBoundaryRules": [ {
  "availableResource": "//storage.googleapis.com/projects/_/buckets/bench-bucket",
  "availablePermissions": ["inRole:roles/storage.objectViewer"],
  "availabilityCondition": { "expression": "resource.name.startsWith('projects/_/buckets/bench-bucket/objects/data/')" } } ] } } ] }
JSON

names=() urls=() spids=()
start_serve() { # start_serve NAME EXTRA...
  local name=$1 port
  shift
  port=$(free_port)
  taskset -c 0 "$bindir/wif-serve" --listen "127.0.0.1:$port" --cert "$PKI/server-chain.crt" --key "$PKI/server.key" \
    --client-ca "$PKI/ca-chain.crt" --token "$WORK/wif_token.txt" "$@" > "$WORK/$name.log" 2> "$WORK/$name.err" &
  PIDS+=("$!"); spids+=("$!"); names+=("$name"); urls+=("https://127.0.0.1:$port/get_wif_token")
  wait_port "$port" || { echo "broker.sh: $name did not start: $(cat "$WORK/$name.err")" >&2; exit 1; }
}
start_serve single-token
start_serve broker --policy policy.json --sts-endpoint "$emu/v1/token" --ledger "$WORK/ledger.jsonl"

# Warm the broker: one request makes the STS call; every measured request is a cache hit.
warm=$(taskset -c 1 "$lg" --url "${urls[1]}" --cert "$PKI/client.crt" --key "$PKI/client.key" --ca "$PKI/ca-chain.crt" \
  --concurrency 1 --duration 1 --warmup 0 --mode new --tls13)
case "$warm" in *'"errors":0'*) ;; *) echo "broker.sh: warming the broker failed: $warm $(cat "$WORK/broker.err")" >&2; exit 1 ;; esac

RES="$WORK/results.jsonl"
: > "$RES"
for run in $(seq "$runs"); do
  for i in "${!names[@]}"; do
    printf 'broker.sh: run %s/%s %s\n' "$run" "$runs" "${names[$i]}" >&2
    line=$(taskset -c 1 "$lg" --url "${urls[$i]}" --cert "$PKI/client.crt" --key "$PKI/client.key" \
      --ca "$PKI/ca-chain.crt" --concurrency "$concurrency" --duration "$duration" --warmup 1 --mode new --tls13 \
      --server-pid "${spids[$i]}")
    printf '{"server":"%s","report":%s}\n' "${names[$i]}" "$line" >> "$RES"
  done
done
downscopes=$(grep -c '"path":"/v1/token"' emulator.log || true)
issued=$(wc -l < ledger.jsonl)
cache_hits=$(grep -c '"via":"cache"' ledger.jsonl || true)

python3 - "$RES" "$runs" "$duration" "$concurrency" "$downscopes" "$issued" "$cache_hits" <<'PY'
import json, statistics, sys
res, runs, duration, conc, sts, issued, hits = sys.argv[1:8]
rows = [json.loads(l) for l in open(res)]
def med(server, key):
    v = [r["report"].get(key) for r in rows if r["server"] == server]
    return statistics.median([x for x in v if x is not None])
def errors(server):
    return sum(r["report"]["errors"] for r in rows if r["server"] == server)
print(f"wif-serve, one token vs. the broker's cached downscoped token: TLS 1.3 P-256, full handshake + GET per "
      f"connection, {conc} connections, median of {runs} runs of {duration} s, server on CPU 0, load generator on CPU 1\n")
print("| server | full handshakes/s | server CPU ms per handshake | p99 ms | errors |")
print("|---|---:|---:|---:|---:|")
for s in ("single-token", "broker"):
    print(f"| {s} | {med(s,'handshakes_per_s'):,.0f} | {med(s,'server_cpu_ms_per_handshake'):.3f} | "
          f"{med(s,'p99_ms'):.1f} | {errors(s)} |")
ratio = med("broker", "handshakes_per_s") / med("single-token", "handshakes_per_s")
print(f"\nbroker / single-token handshakes/s: {100 * ratio:.1f} % (goal: at least 90 %); "
      f"STS requests at the emulator: {sts} (the pipeline's exchange and one downscoping); "
      f"ledger lines: {issued}, of which cache hits: {hits}")
PY
