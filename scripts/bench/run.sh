#!/usr/bin/env bash
# Benchmarks of wif: wif-serve against nginx and the seed's Flask design (full mTLS handshakes
# and keep-alive, P-256 and RSA-2048), the crypto limit of one handshake, and the token
# pipeline's own cost against the emulator (or a tiny double). Writes docs/BENCHMARKS.md and its
# charts (docs/bench/*.svg) from this one run. Never part of the test suite; run it by hand or as
# an optional CI step.
#
# usage: scripts/bench/run.sh [--quick] [--runs N] [--duration SECS] [--concurrency N]
#                             [--out FILE] [--no-install] [--no-build] [--keep]
#   --quick          CI smoke mode: 1 run of 2 s per case, 5 pipeline runs; the report goes to
#                    the work directory unless --out is given (about 1-2 minutes with builds done)
#   --runs N         runs per case; the median is reported (default 3)
#   --duration SECS  measured seconds per run, after 1 s of warm-up (default 10)
#   --concurrency N  connections the load generator keeps busy (default 16)
#   --pipeline-runs N  runs of the token pipeline (default 30)
#   --out FILE       the report (default docs/BENCHMARKS.md); its SVG charts go to bench/ beside it
#   --no-install     do not apt-get/pip install what is missing
#   --no-build       use the release binaries already built (where cargo puts them:
#                    target/release, or CARGO_TARGET_DIR/release)
#   --keep           keep the work directory (logs, raw JSON results)
#   --variant-bin LABEL=DIR  also measure the pipeline tools built in DIR (e.g. built with
#                    AWS_LC_SYS_NO_JITTER_ENTROPY=1 --target-dir DIR/..), shown as "tool [LABEL]"
#   --with-nojitter  also build wif with AWS_LC_SYS_NO_JITTER_ENTROPY=1 (target/bench-nojitter; a
#                    full aws-lc build the first time) and measure its pipeline tools as a variant
#   --only PARTS     comma-separated subset of crypto,servers,scaling,pipeline,profile,fleet
#                    (default: all; profile needs perf, and the pipeline part for the tools' profile)
#   --baseline-serve PATH  a second wif-serve build (e.g. the previous commit's) measured in the
#                    same run: its rows in the server tables and its profile beside the new one
#   --fleet-clients N  simulated clients of the fleet part (default 5000)
#   --sched fifo|nice|none  how the servers and the load generator are scheduled (default: fifo as
#                    root, else none). fifo = chrt -f 10: on a shared machine other work cannot
#                    delay their wake-ups (a single-threaded event loop like nginx's otherwise waits
#                    behind other processes at every wake-up, while a many-threaded server keeps its
#                    core); the kernel's RT throttling still leaves 5% to others. nice = nice -n -15.
#                    The pipeline part always uses nice (JVM and Python threads must not run RT).
#
# The server under test runs on CPU 0 (taskset -c 0), the load generator on CPU 1; the scaling
# part also runs the servers on both CPUs (the load generator then shares them), and the fleet
# part runs wif-fleet (scripts/bench/loadgen) on CPU 1 against wif-serve on CPU 0.
set -euo pipefail

usage() { sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
invocation="scripts/bench/run.sh${*:+ $*}"
BENCH="$ROOT/scripts/bench"
# shellcheck source=scripts/bench/nginx-conf.sh
. "$BENCH/nginx-conf.sh"
quick=0 runs=3 duration=10 concurrency=16 pipeline_runs=30 out='' install=1 build=1 keep=0 only=crypto,servers,scaling,pipeline,profile,fleet
baseline='' fleet_clients=5000
if [ "$(id -u)" = 0 ]; then sched=fifo; else sched=none; fi
variant_bins=() nojitter=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --runs) runs="${2:?}"; shift ;;
    --duration) duration="${2:?}"; shift ;;
    --concurrency) concurrency="${2:?}"; shift ;;
    --pipeline-runs) pipeline_runs="${2:?}"; shift ;;
    --out) out="${2:?}"; shift ;;
    --no-install) install=0 ;;
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    --only) only="${2:?}"; shift ;;
    --sched) sched="${2:?}"; shift ;;
    --variant-bin) variant_bins+=("${2:?}"); shift ;;
    --with-nojitter) nojitter=1 ;;
    --baseline-serve) baseline="${2:?}"; shift ;;
    --fleet-clients) fleet_clients="${2:?}"; shift ;;
    -h|--help) usage 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then
  runs=1 duration=2 pipeline_runs=5 warmup=0.5 crypto_secs=0.3
  # One real second is one simulated minute; 20-minute tokens, 20 s per fleet run.
  fleet_args=(--speed 60 --token-life 20m --min-ttl 5m --duration 20m)
else
  warmup=1 crypto_secs=2
  # One real second is one simulated minute; Google's 60-minute tokens, 2 minutes per fleet run.
  fleet_args=(--speed 60 --token-life 60m --min-ttl 5m --duration 120m)
fi
if [ -n "$baseline" ]; then
  [ -x "$baseline" ] || { echo "run.sh: --baseline-serve $baseline is not an executable" >&2; exit 2; }
  baseline=$(cd "$(dirname "$baseline")" && pwd)/$(basename "$baseline")
fi

case "$sched" in
  fifo) PRIO=(chrt -f 10) ;;
  nice) PRIO=(nice -n -15) ;;
  none) PRIO=() ;;
  *) echo "run.sh: --sched fifo|nice|none" >&2; exit 2 ;;
esac
if [ "$sched" = none ]; then PIPE0=(taskset -c 0) PIPE1=(taskset -c 1); else
  PIPE0=(nice -n -15 taskset -c 0) PIPE1=(nice -n -15 taskset -c 1); fi
ON0=("${PRIO[@]}" taskset -c 0)
ON1=("${PRIO[@]}" taskset -c 1)
on_cpus() { echo "${PRIO[@]}" taskset -c "$1"; }  # the prefix that runs a server on CPUS
want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

WORK=$(mktemp -d /tmp/wif-bench.XXXXXX)
RES="$WORK/results"
mkdir -p "$RES/server" "$RES/scaling" "$RES/fleet" "$WORK/log"
[ -n "$out" ] || { if [ "$quick" = 1 ]; then out="$WORK/BENCHMARKS.md"; else out="$ROOT/docs/BENCHMARKS.md"; fi; }
PIDS=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$keep" = 1 ]; then echo "run.sh: work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
say() { echo "run.sh: $*" >&2; }
cmdlog() { local line="$*"; echo "${line//$ROOT\//}" >> "$RES/commands.txt"; }

# ---- what the benchmark needs ----
need_apt=()
command -v nginx >/dev/null || need_apt+=(nginx-light)
command -v taskset >/dev/null || need_apt+=(util-linux)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  [ "$install" = 1 ] || { say "missing: ${need_apt[*]} (run without --no-install)"; exit 1; }
  say "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! python3 -c 'import flask' 2>/dev/null; then
  [ "$install" = 1 ] || { say "missing: Flask (pip install flask)"; exit 1; }
  say "installing Flask"
  python3 -m pip install -q flask
fi
if [ "$build" = 1 ]; then
  say "building wif (release) and the load generator"
  (cd "$ROOT" && cargo build --release --bins -q)
  (cd "$BENCH/loadgen" && cargo build --release -q)
fi
if [ "$nojitter" = 1 ]; then
  if [ "$build" = 1 ]; then
    say "building wif (release) with AWS_LC_SYS_NO_JITTER_ENTROPY=1 into target/bench-nojitter"
    (cd "$ROOT" && AWS_LC_SYS_NO_JITTER_ENTROPY=1 cargo build --release --bins -q --target-dir target/bench-nojitter)
  fi
  variant_bins+=("built with AWS_LC_SYS_NO_JITTER_ENTROPY=1=$ROOT/target/bench-nojitter/release")
fi
# Where cargo put the binaries: it honours CARGO_TARGET_DIR and .cargo/config.toml.
target_dir() { # target_dir PACKAGE_DIR
  (cd "$1" && cargo metadata --format-version 1 --no-deps 2>/dev/null) \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null || echo "$1/target"
}
BIN="$(target_dir "$ROOT")/release"
LGBIN="$(target_dir "$BENCH/loadgen")/release"
LG="$LGBIN/wif-loadgen"
RUSAGE="$LGBIN/wif-rusage"
CRYPTOSPEED="$LGBIN/wif-cryptospeed"
FLEET="$LGBIN/wif-fleet"
for b in "$BIN/wif-serve" "$LG" "$CRYPTOSPEED" "$RUSAGE" "$FLEET"; do
  [ -x "$b" ] || { say "$b is not built (run without --no-build)"; exit 1; }
done

# ---- machine facts ----
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "cores=$(nproc)"
  echo "kernel=$(uname -sr)"
  echo "os=$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null)"
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "nginx=$(nginx -v 2>&1 | sed 's/.*version: //')"
  echo "openssl=$(openssl version)"
  echo "python=$(python3 --version 2>&1) with $(python3 -c 'import ssl; print(ssl.OPENSSL_VERSION)')"
  echo "flask=$(python3 -c 'import importlib.metadata as m; print(m.version("flask"), "/ werkzeug", m.version("werkzeug"))')"
  echo "google_auth=$(python3 -c 'import importlib.metadata as m; print(m.version("google-auth"))' 2>/dev/null || echo none)"
  echo "rustc=$(rustc --version)"
  echo "java=$(java -version 2>&1 | head -1)"
  echo "wif=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "rustls=$(grep -A1 '^name = "rustls"$' "$ROOT/Cargo.lock" | sed -n 's/version = "\(.*\)"/\1/p')"
  echo "sched=$sched"
  echo "invocation=$invocation"
  echo "mode=$([ "$quick" = 1 ] && echo quick || echo full)"
  echo "runs=$runs"
  echo "duration=$duration"
  echo "warmup=$warmup"
  echo "concurrency=$concurrency"
  echo "pipeline_runs=$pipeline_runs"
  echo "baseline=${baseline:+$(basename "$(dirname "$(dirname "$baseline")")")/$(basename "$(dirname "$baseline")")/$(basename "$baseline")}"
  echo "fleet_clients=$fleet_clients"
  echo "fleet_args=${fleet_args[*]}"
  # How much of bin/wif-serve.order (scripts/bench/orderfile.sh) this build could follow.
  echo "order_file=$(nm --defined-only "$BIN/wif-serve" 2>/dev/null | awk 'NR==FNR {want[$0]; next} ($3 in want) {n++} END {print n+0}' "$ROOT/bin/wif-serve.order" -) of $(grep -c . "$ROOT/bin/wif-serve.order") functions found"
} > "$RES/facts.txt"

# ---- test PKIs and the token ----
say "making the test PKIs (P-256 and RSA-2048) and a 1.5 KB token"
bash "$ROOT/scripts/gen-test-pki.sh" "$WORK/pki-ec" >/dev/null
bash "$ROOT/scripts/gen-test-pki.sh" --rsa "$WORK/pki-rsa" >/dev/null
chmod 755 "$WORK"
TOKEN="$WORK/token/wif_token.txt"
mkdir -p "$WORK/token"
python3 - "$TOKEN" <<'PY'
import base64, datetime, hashlib, json, secrets, sys
path = sys.argv[1]
tok = (b"ya29.c." + base64.urlsafe_b64encode(secrets.token_bytes(1200)).rstrip(b"="))[:1536]
open(path, "wb").write(tok)
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
rfc = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
meta = {"expires_at": rfc(now + datetime.timedelta(days=2)), "token_type": "access_token", "written_at": rfc(now),
        "written_by": "bench", "bytes": len(tok), "sha256": hashlib.sha256(tok).hexdigest()}
open(path + ".meta.json", "w").write(json.dumps(meta, indent=2) + "\n")
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # wait_port PORT
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  say "nothing listens on port $1"; return 1
}

# ---- the servers (all pinned to CPU 0) ----
# Each start_X sets URL and SPIDS (comma-separated server process ids).
# start_wifserve PKI [NAME [CPUS [BINARY [TOKEN [EXTRA...]]]]]: wif-serve (default: this build,
# on CPU 0, serving $TOKEN); also sets METRICS_URL when EXTRA has --metrics-listen.
start_wifserve() {
  local pki=$1 name=${2:-wif-serve} cpus=${3:-0} bin=${4:-$BIN/wif-serve} token=${5:-$TOKEN} log
  shift $(($# < 5 ? $# : 5))
  log="$WORK/log/$name.$(basename "$pki").log"
  : > "$log"  # emptied first: the profile part starts a second server on the same log
  cmdlog "$(on_cpus "$cpus") ${bin//$BIN\//} --listen 127.0.0.1:0 --cert $pki/server-chain.crt --key $pki/server.key --client-ca $pki/ca-chain.crt --token $token $* > access.log"
  # shellcheck disable=SC2046  # the prefix is words
  $(on_cpus "$cpus") "$bin" --listen 127.0.0.1:0 --cert "$pki/server-chain.crt" --key "$pki/server.key" \
    --client-ca "$pki/ca-chain.crt" --token "$token" "$@" > "$log" 2> "$log.err" &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do [ -s "$log" ] && break; sleep 0.1; done
  URL=$(head -1 "$log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
  METRICS_URL=$(head -1 "$log" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("metrics_url", ""))')
  SPIDS=$pid
}

start_nginx() { # start_nginx PKI [WORKERS [CPUS]]
  local pki=$1 workers=${2:-1} cpus=${3:-0} dir port
  dir="$WORK/nginx-$(basename "$1")-$workers"
  port=$(free_port)
  write_nginx_conf "$dir" "$port" "$pki" "$TOKEN" "$workers"
  [ "$workers" = 1 ] && cp "$dir/nginx.conf" "$RES/nginx.conf"
  cmdlog "$(on_cpus "$cpus") nginx -p DIR -c DIR/nginx.conf -e DIR/error.log   # config below$([ "$workers" = 1 ] || echo ", with worker_processes $workers; worker_cpu_affinity auto;")"
  # shellcheck disable=SC2046  # the prefix is words
  $(on_cpus "$cpus") nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
  local pid=$!
  PIDS+=("$pid")
  wait_port "$port"
  local w workers_pids=""
  for _ in $(seq 50); do
    workers_pids=$(pgrep -P "$pid" | paste -sd, -)
    [ "$(echo "$workers_pids" | tr ',' '\n' | grep -c .)" -ge "$workers" ] && break
    sleep 0.1
  done
  w=$workers_pids
  URL="https://127.0.0.1:$port/get_wif_token"
  SPIDS="$pid,$w"
}

start_flask() { # start_flask PKI
  local pki=$1 port
  port=$(free_port)
  cmdlog "${PRIO[*]} taskset -c 0 python3 scripts/bench/flask_server.py PORT $pki/server-chain.crt $pki/server.key $pki/ca-chain.crt $TOKEN 2> access.log"
  "${ON0[@]}" python3 "$BENCH/flask_server.py" "$port" "$pki/server-chain.crt" "$pki/server.key" \
    "$pki/ca-chain.crt" "$TOKEN" > /dev/null 2> "$WORK/log/flask.$(basename "$pki").log" &
  local pid=$!
  PIDS+=("$pid")
  wait_port "$port"
  URL="https://127.0.0.1:$port/get_wif_token"
  SPIDS=$pid
}

# ---- the crypto limit ----
if want crypto; then
say "crypto limit: aws-lc and OpenSSL speed on CPU 0"
cmdlog "${PRIO[*]} taskset -c 0 scripts/bench/loadgen/target/release/wif-cryptospeed $crypto_secs"
"${ON0[@]}" "$CRYPTOSPEED" "$crypto_secs" > "$RES/cryptospeed.json"
cmdlog "${PRIO[*]} taskset -c 0 openssl speed -seconds ${crypto_secs%.*} ecdhx25519 ecdsap256 rsa2048"
"${ON0[@]}" openssl speed -seconds "$(python3 -c "print(max(1, round($crypto_secs)))")" ecdhx25519 ecdsap256 rsa2048 \
  > "$RES/openssl-speed.txt" 2>/dev/null
fi

# ---- server runs ----
loadgen() { # loadgen SERVER PKI CASE RUN URL SPIDS PKIDIR
  local server=$1 pki=$2 case=$3 run=$4 url=$5 spids=$6 dir=$7 extra=()
  case "$case" in
    new-tls13) extra=(--mode new --tls13) ;;
    new-tls12) extra=(--mode new --tls12) ;;
    keepalive-tls13) extra=(--mode keepalive --tls13 --requests-per-conn 100) ;;
  esac
  local f="$RES/server/$server.$pki.$case.$run.json"
  if ! "${ON1[@]}" "$LG" --url "$url" --cert "$dir/client.crt" --key "$dir/client.key" --ca "$dir/ca-chain.crt" \
      --concurrency "$concurrency" --duration "$duration" --warmup "$warmup" "${extra[@]}" \
      --server-pid "$spids" > "$f" 2> "$f.err"; then
    say "loadgen failed for $server $pki $case: $(cat "$f.err")"
    rm -f "$f"
  fi
}
cmdlog "${PRIO[*]} taskset -c 1 wif-loadgen --url URL --cert client.crt --key client.key --ca ca-chain.crt --concurrency $concurrency --duration $duration --warmup $warmup {--mode new --tls13 | --mode new --tls12 | --mode keepalive --tls13 --requests-per-conn 100} --server-pid PIDS"

bench_pki() { # bench_pki ec|rsa CASES...
  local pki=$1; shift
  local dir="$WORK/pki-$pki" urls=() pids=() names=(wif-serve) i
  start_wifserve "$dir"; urls+=("$URL"); pids+=("$SPIDS")
  if [ -n "$baseline" ]; then
    names+=(baseline)
    start_wifserve "$dir" baseline 0 "$baseline"; urls+=("$URL"); pids+=("$SPIDS")
  fi
  names+=(nginx flask)
  start_nginx "$dir"; urls+=("$URL"); pids+=("$SPIDS")
  start_flask "$dir"; urls+=("$URL"); pids+=("$SPIDS")
  # Runs are interleaved (run 1 of every server, then run 2...) so that a noisy neighbour on
  # this machine spreads over all servers instead of hitting one.
  for run in $(seq "$runs"); do
    for case in "$@"; do
      for i in "${!names[@]}"; do
        say "$pki run $run/$runs: ${names[$i]} $case"
        loadgen "${names[$i]}" "$pki" "$case" "$run" "${urls[$i]}" "${pids[$i]}" "$dir"
      done
    done
  done
  for p in "${pids[@]}"; do kill "${p%%,*}" 2>/dev/null || true; done
  sleep 0.5
}
if want servers; then
  bench_pki ec new-tls13 new-tls12 keepalive-tls13
  bench_pki rsa new-tls13
fi

# ---- scaling: one core and two (TLS 1.3, P-256, new connections) ----
# wif-serve on CPU 0, then on CPUs 0 and 1; nginx with one worker on CPU 0, then two workers
# bound one to each CPU. On one core the load generator has CPU 1 to itself; on two it shares
# both with the server (this machine has no third core), so the two-core rate is a floor.
if want scaling; then
  dir="$WORK/pki-ec" surls=() spids=() snames=()
  for cfg in wif-serve.1 wif-serve.2 nginx.1 nginx.2; do
    cores=${cfg#*.} cpus=$([ "${cfg#*.}" = 1 ] && echo 0 || echo 0,1)
    case "$cfg" in
      wif-serve.*) start_wifserve "$dir" "wif-serve-$cores-cores" "$cpus" ;;
      nginx.*) start_nginx "$dir" "$cores" "$cpus" ;;
    esac
    snames+=("$cfg") surls+=("$URL") spids+=("$SPIDS")
  done
  cmdlog "${PRIO[*]} taskset -c {1 | 0,1} wif-loadgen --url URL --cert client.crt --key client.key --ca ca-chain.crt --concurrency {$concurrency | $((2 * concurrency))} --duration $duration --warmup $warmup --mode new --tls13 --server-pid PIDS   # one core | two cores"
  for run in $(seq "$runs"); do
    for i in "${!snames[@]}"; do
      cfg=${snames[$i]} f="$RES/scaling/${snames[$i]}.$run.json"
      if [ "${cfg#*.}" = 1 ]; then lgcpus=1 conc=$concurrency; else lgcpus=0,1 conc=$((2 * concurrency)); fi
      say "scaling run $run/$runs: ${cfg%.*} on ${cfg#*.} core(s)"
      # shellcheck disable=SC2046  # the prefix is words
      if ! $(on_cpus "$lgcpus") "$LG" --url "${surls[$i]}" --cert "$dir/client.crt" --key "$dir/client.key" \
          --ca "$dir/ca-chain.crt" --concurrency "$conc" --duration "$duration" --warmup "$warmup" --mode new --tls13 \
          --server-pid "${spids[$i]}" > "$f" 2> "$f.err"; then
        say "loadgen failed for scaling $cfg: $(cat "$f.err")"
        rm -f "$f"
      fi
    done
  done
  for p in "${spids[@]}"; do kill "${p%%,*}" 2>/dev/null || true; done
  sleep 0.5
fi

# ---- pipeline ----
if want pipeline; then
say "pipeline: $pipeline_runs runs of wif-sign | wif-azure | wif-sts | wif-impersonate"
mkdir -p "$WORK/pipeline" "$WORK/java" "$WORK/emu"
# The identities of wif-emulate's example configuration (the double accepts anything).
TENANT=7a1c9e4b-0d2f-4c3a-9b8e-1f2a3b4c5d6e APP=0b6f3d2a-5c4e-4f1a-8e7d-9a0b1c2d3e4f
AUDIENCE=//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/wif-pool/providers/azure
SA=wif-demo@wif-demo.iam.gserviceaccount.com
if [ -x "$BIN/wif-emulate" ]; then
  backend=wif-emulate
  ln -s "$WORK/pki-ec" "$WORK/emu/pki"
  "$BIN/wif-emulate" --print-example-config > "$WORK/emu/emulator.json"
  cmdlog "${PIPE1[*]} wif-emulate --config emulator.json --listen 127.0.0.1:0   # its example configuration"
  "${PIPE1[@]}" "$BIN/wif-emulate" --config "$WORK/emu/emulator.json" --listen 127.0.0.1:0 > "$WORK/log/emulator.log" 2>&1 &
else
  backend=double
  cmdlog "${PIPE1[*]} python3 scripts/bench/double.py   # wif-emulate not built: canned answers"
  "${PIPE1[@]}" python3 "$BENCH/double.py" > "$WORK/log/emulator.log" 2>&1 &
fi
PIDS+=("$!")
for _ in $(seq 100); do [ -s "$WORK/log/emulator.log" ] && break; sleep 0.1; done
BASE=$(head -1 "$WORK/log/emulator.log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
java_dir=()
if command -v javac >/dev/null; then
  printf 'public class Hello { public static void main(String[] a) { System.out.println("hello"); } }\n' \
    > "$WORK/java/Hello.java"
  javac -d "$WORK/java" "$WORK/java/Hello.java" && java_dir=(--java-dir "$WORK/java")
fi
variants=()
for v in "${variant_bins[@]}"; do variants+=(--variant "$v"); done
cmdlog "nice -n -15 taskset -c 0 python3 scripts/bench/measure.py --bin target/release --backend $backend --base URL --runs $pipeline_runs --rusage scripts/bench/loadgen/target/release/wif-rusage ${variants[*]}"
"${PIPE0[@]}" python3 "$BENCH/measure.py" --bin "$BIN" --pki "$WORK/pki-ec" --base "$BASE" --tenant "$TENANT" \
  --client-id "$APP" --audience "$AUDIENCE" --service-account "$SA" --scope api://wif-gcp/.default \
  --runs "$pipeline_runs" --work "$WORK/pipeline" --out "$RES/pipeline.json" --backend "$backend" \
  --rusage "$RUSAGE" "${java_dir[@]}" "${variants[@]}"
fi

# ---- profile of wif-serve and of the pipeline tools (perf with a software clock; strace) ----
if want profile && command -v perf >/dev/null && perf record -e cpu-clock -o /dev/null -- true 2>/dev/null; then
  say "profile: perf of wif-serve under new-connection load, syscalls per connection"
  dir="$WORK/pki-ec"
  prof_secs=$([ "$quick" = 1 ] && echo 2 || echo 6)
  strace_count() { # strace_count NAME PID URL
    command -v strace >/dev/null || return 0
    strace -f -c -o "$RES/strace-$1.txt" -p "$2" 2>/dev/null &
    local st=$!
    sleep 0.5
    "${ON1[@]}" "$LG" --url "$3" --cert "$dir/client.crt" --key "$dir/client.key" --ca "$dir/ca-chain.crt" \
      --concurrency 4 --duration 2 --warmup 0 --tls13 > /dev/null 2>&1 || true
    sleep 0.3
    kill -INT "$st" 2>/dev/null || true
    wait "$st" 2>/dev/null || true
  }
  profile_wifserve() { # profile_wifserve NAME BINARY: profile-NAME.md (-kernel.md) and strace-NAME.txt
    local name=$1 ws_pid lg
    start_wifserve "$dir" "$name" 0 "$2"
    ws_pid=$SPIDS
    "${ON1[@]}" "$LG" --url "$URL" --cert "$dir/client.crt" --key "$dir/client.key" --ca "$dir/ca-chain.crt" \
      --concurrency "$concurrency" --duration "$((prof_secs + 2))" --warmup 0 --tls13 > /dev/null 2>&1 &
    lg=$!
    sleep 1
    perf record -q -F 2000 -e cpu-clock -g -a -C 0 -o "$WORK/$name.perf" -- sleep "$prof_secs" 2>/dev/null
    wait "$lg" || true
    perf report -i "$WORK/$name.perf" --comms conn,wif-serve --stdio --no-children -g none --sort dso,sym \
      --percent-limit 0 2>/dev/null | python3 "$BENCH/profile_summary.py" > "$RES/profile-$name.md" || true
    perf script -i "$WORK/$name.perf" --comms conn,wif-serve 2>/dev/null \
      | python3 "$BENCH/profile_kernel.py" > "$RES/profile-$name-kernel.md" || true
    strace_count "$name" "$ws_pid" "$URL"
    kill "$ws_pid" 2>/dev/null || true
  }
  cmdlog "perf record -F 2000 -e cpu-clock -g -a -C 0 -- sleep $prof_secs   # wif-serve under new-connection TLS 1.3 load"
  cmdlog "strace -f -c -p PID   # during 2 s of new-connection load at concurrency 4, for wif-serve and the nginx worker"
  profile_wifserve serve "$BIN/wif-serve"
  [ -z "$baseline" ] || profile_wifserve serve-baseline "$baseline"
  if command -v strace >/dev/null; then
    start_nginx "$dir"
    strace_count nginx "${SPIDS#*,}" "$URL"
    # Where nginx's worker spends its CPU, by library (Debian's libcrypto has no symbols).
    "${ON1[@]}" "$LG" --url "$URL" --cert "$dir/client.crt" --key "$dir/client.key" --ca "$dir/ca-chain.crt" \
      --concurrency "$concurrency" --duration "$((prof_secs + 2))" --warmup 0 --tls13 > /dev/null 2>&1 &
    lg=$!
    sleep 1
    cmdlog "perf record -F 2000 -e cpu-clock -g -p NGINX_WORKER -- sleep $prof_secs   # nginx under the same load"
    perf record -q -F 2000 -e cpu-clock -g -p "${SPIDS#*,}" -o "$WORK/nginx.perf" -- sleep "$prof_secs" 2>/dev/null || true
    wait "$lg" || true
    perf report -i "$WORK/nginx.perf" --stdio --no-children -g none --sort dso --percent-limit 0.5 2>/dev/null \
      > "$RES/profile-nginx-dso.txt" || true
    perf report -i "$WORK/nginx.perf" --stdio --no-children -g none --sort sym --percent-limit 0 2>/dev/null \
      > "$RES/profile-nginx-sym.txt" || true
    kill "${SPIDS%%,*}" 2>/dev/null || true
  fi
  # Where a pipeline tool's CPU goes (the one-off start-up work dominates these short runs).
  if [ -n "${BASE:-}" ]; then
    "$BIN/wif-sign" --client-id "$APP" --tenant-id "$TENANT" --authority "$BASE" --key "$WORK/pki-ec/app-rsa.key" \
      --cert "$WORK/pki-ec/app-rsa.crt" > "$WORK/sign.json" 2>/dev/null || true
    cmdlog "perf record -F 20000 -e cpu-clock -g -- wif-sign ...   # one run"
    perf record -q -F 20000 -e cpu-clock -g -o "$WORK/sign.perf" -- "$BIN/wif-sign" --client-id "$APP" \
      --tenant-id "$TENANT" --authority "$BASE" --key "$WORK/pki-ec/app-rsa.key" --cert "$WORK/pki-ec/app-rsa.crt" \
      > /dev/null 2>&1 || true
    perf report -i "$WORK/sign.perf" --stdio --no-children -g none --sort dso,sym --percent-limit 0 2>/dev/null \
      | python3 "$BENCH/profile_summary.py" "where one wif-sign run's CPU time went" > "$RES/profile-sign.md" || true
  fi
fi

# Read before the fleet part, whose 5,000 client threads are the benchmark's own load.
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RES/facts.txt"

# ---- the fleet: N clients holding one token after a rotation, with and without spreading ----
if want fleet; then
  dir="$WORK/pki-ec"
  # The load shedding of --max-handshake-queue (503 overloaded + Retry-After) is newer than
  # some builds: without it the fleet still runs, and the report says so.
  if "$BIN/wif-serve" --help 2>/dev/null | grep -q max-handshake-queue; then shedding=yes; else shedding=no; fi
  echo "fleet_shedding=$shedding" >> "$RES/facts.txt"
  for spread in off auto; do
    say "fleet: $fleet_clients clients, --spread $spread (shedding: $shedding)"
    tokdir="$WORK/fleet-$spread"
    mkdir -p "$tokdir" && chmod 700 "$tokdir"
    # One test certificate for the whole fleet: its per-client limit must not bite first.
    start_wifserve "$dir" "fleet-$spread" 0 "$BIN/wif-serve" "$tokdir/wif_token.txt" \
      --max-connections-per-client 256 --metrics-listen 127.0.0.1:0
    fleet_pid=$SPIDS
    cmdlog "${PIPE1[*]} wif-fleet --url URL --cert client.crt --key client.key --ca ca-chain.crt --rotate TOKEN_FILE --clients $fleet_clients ${fleet_args[*]} --spread $spread --server-pid PID"
    if ! "${PIPE1[@]}" "$FLEET" --url "$URL" --cert "$dir/client.crt" --key "$dir/client.key" --ca "$dir/ca-chain.crt" \
        --rotate "$tokdir/wif_token.txt" --clients "$fleet_clients" "${fleet_args[@]}" --spread "$spread" \
        --server-pid "$fleet_pid" > "$RES/fleet/$spread.json" 2> "$RES/fleet/$spread.err"; then
      say "wif-fleet failed (--spread $spread): $(cat "$RES/fleet/$spread.err")"
      rm -f "$RES/fleet/$spread.json"
    fi
    if [ -n "$METRICS_URL" ]; then
      python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
        "$METRICS_URL" > "$RES/fleet/$spread.metrics.txt" 2>/dev/null || true
    fi
    kill "$fleet_pid" 2>/dev/null || true
    sleep 0.5
  done
fi

mkdir -p "$(dirname "$out")"
# The report and its charts (bench/*.svg beside it), checked to be well-formed XML.
python3 "$BENCH/report.py" "$RES" --out "$out"
if [ "$quick" = 0 ]; then
  # The raw results, so that the report can be re-rendered:
  # python3 scripts/bench/report.py target/bench-results --out docs/BENCHMARKS.md
  rm -rf "$ROOT/target/bench-results" && mkdir -p "$ROOT/target" && cp -r "$RES" "$ROOT/target/bench-results"
fi
say "report written to $out, its charts to $(dirname "$out")/bench/"
[ "$quick" = 1 ] && cat "$out"
exit 0
