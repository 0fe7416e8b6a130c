#!/usr/bin/env bash
# wif's whole flow on this machine, offline, in one command:
#   builds the tools, makes a test PKI, starts wif-emulate (a strict local Azure AD + Google
#   STS + IAM Credentials), runs
#     wif-sign | wif-azure | wif-sts | wif-impersonate --token-out wif_token.txt
#   against it and shows the JSON after each step (tokens shortened), publishes the token
#   with wif-serve over mutual TLS, fetches it with wif-get, shows that a client certificate
#   from another CA is refused in the handshake, then runs wif-serve as a credential broker
#   (--policy: two clients, two buckets, each client's token downscoped at the emulator's STS
#   reads its own bucket and is refused the other's), takes the X.509 path
#     wif-sts --x509 | wif-impersonate   (the client certificate to STS over mutual TLS)
#   shows wif-refresh failing over from Azure AD (made to answer 503) to X.509, then the
#   bearer fallback (wif-serve --bearer-issuers: a Kubernetes service-account token from the
#   emulator fetches the token with wif-get --bearer-file, no certificate; a tampered token
#   is refused 401), and stops everything it started.
#
# usage: scripts/demo.sh [--keep]     (--keep leaves the demo directory for a look around)
#
# The tools are taken from where cargo says it put them, so CARGO_TARGET_DIR, a target
# directory or build target in a cargo configuration, and CARGO_PROFILE_* are honoured.
# The first failure stops the demo with the step, the command and its exit status (the
# tool's own error is the line above); the exit status is non-zero.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
root=$PWD
keep=0
case "${1:-}" in
  --keep) keep=1 ;;
  -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "demo.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/wif-demo.XXXXXX")
pids=()
cleanup() {
  local p
  for p in ${pids[@]+"${pids[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done
  for p in ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
  if [ $keep = 1 ]; then echo "demo.sh: files kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -t 1 ]; then bold=$'\e[1m' dim=$'\e[2m' red=$'\e[31m' green=$'\e[32m' off=$'\e[0m'; else bold='' dim='' red='' green='' off=''; fi
step="starting"
say() { step=$*; printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
cmd() { printf '%s$ %s%s\n' "$dim" "$*" "$off"; }
ok() { printf '%s✔ %s%s\n' "$green" "$*" "$off"; }
die() { printf '%sdemo.sh: %s%s\n' "$red" "$*" "$off" >&2; exit 1; }

# Any command that fails stops the demo here, naming the step and the command; in the
# pipeline, the first tool that failed (its own error message is printed just above).
stages=()
failed() { # failed STATUS LINE COMMAND PIPESTATUS...
  local status=$1 line=$2 command=$3 i
  shift 3
  if [ $# -gt 1 ] && [ ${#stages[@]} -eq $# ]; then
    for ((i = 0; i < $#; i++)); do
      local s=${*:i+1:1}
      if [ "$s" != 0 ] && [ "$s" != 141 ]; then command=${stages[i]} status=$s; break; fi
    done
  fi
  trap - ERR
  # In a command substitution: the command that used it reports (naming this one).
  [ "$BASH_SUBSHELL" = 0 ] || exit "$status"
  printf '%sdemo.sh: stopped at "%s": %s exited with status %s (line %s)%s\n' \
    "$red" "$step" "$command" "$status" "$line" "$off" >&2
  exit "$status"
}
trap 'failed $? $LINENO "$BASH_COMMAND" "${PIPESTATUS[@]}"' ERR

# The first stdout line of a wif server is {"event":"listening",...,"url":"..."}.
server_url() { # server_url LOGFILE PID
  local line
  for _ in $(seq 100); do
    line=$(head -n 1 "$1" 2>/dev/null || true)
    if [ -n "$line" ]; then
      sed -n 's/.*"url":"\([^"]*\)".*/\1/p' <<<"$line"
      return 0
    fi
    kill -0 "$2" 2>/dev/null || die "the server exited early: $(cat "$1.err" 2>/dev/null)"
    sleep 0.1
  done
  die "the server did not start within 10 s"
}

# shellcheck source=scripts/json-string.sh
. scripts/json-string.sh

say "Building wif (cargo build --bins; the first build takes a few minutes)"
cmd "cargo build --bins"
# Cargo's progress and any compiler errors go to stderr; its messages (where each binary
# went: CARGO_TARGET_DIR and cargo's configuration decide) to a file.
cargo build --bins --message-format=json-render-diagnostics >"$work/build.json" ||
  die "cargo build failed (its errors are above); the demo needs the tools built"
want=(wif-sign wif-azure wif-sts wif-impersonate wif-serve wif-get wif-inspect wif-emulate)
declare -A built=()
# The "executable" of each compiler-artifact message.
while IFS= read -r exe; do built[${exe##*/}]=$exe; done < <(
  grep '^{"reason":"compiler-artifact"' "$work/build.json" | json_string executable
)
bindirs=()
for tool in "${want[@]}"; do
  exe=${built[$tool]:-}
  [ -n "$exe" ] || die "cargo build reported no $tool binary (its messages: $work/build.json; try --keep)"
  [ -x "$exe" ] || die "$tool is not an executable file at $exe, where cargo said it put it"
  case " ${bindirs[*]} " in *" ${exe%/*} "*) ;; *) bindirs+=("${exe%/*}") ;; esac
done
PATH="$(IFS=:; echo "${bindirs[*]}"):$PATH"
export PATH
version=$(wif-sign --version)
ok "built: $version, ${#want[@]} tools in ${bindirs[*]}"

say "Making a throwaway PKI (two CA hierarchies, server/client certificates, app keys)"
cmd "scripts/gen-test-pki.sh $work/pki"
# openssl's chatter is kept out of the way, and shown if the script fails.
scripts/gen-test-pki.sh "$work/pki" 2>"$work/gen-test-pki.err" ||
  die "making the test PKI failed (openssl said: $(tail -n 5 "$work/gen-test-pki.err"))"
crts=("$work"/pki/*.crt)
ok "${#crts[@]} certificates in $work/pki"

say "Starting wif-emulate: Azure AD + Google STS + IAM Credentials on loopback"
cp examples/emulator.json "$work/emulator.json"
cd "$work"
cmd "wif-emulate --config emulator.json --listen 127.0.0.1:0"
wif-emulate --config emulator.json --listen 127.0.0.1:0 >emulator.log 2>emulator.log.err &
pids+=($!)
emu=$(server_url emulator.log $!)
ok "emulator at $emu"

# The identities examples/emulator.json registers (mirrors docs/ONBOARDING.md).
tenant=7a1c9e4b-0d2f-4c3a-9b8e-1f2a3b4c5d6e
app=0b6f3d2a-5c4e-4f1a-8e7d-9a0b1c2d3e4f
audience=//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/wif-pool/providers/azure
sa=wif-demo@wif-demo.iam.gserviceaccount.com

say "The pipeline: sign → Azure AD → STS → impersonate → wif_token.txt"
cmd "wif-sign --client-id $app --tenant-id $tenant --key pki/app-rsa.key --cert pki/app-rsa.crt --authority $emu \\"
cmd "  | wif-azure --scope api://wif-gcp/.default \\"
cmd "  | wif-sts --token-url $emu/v1/token --audience $audience \\"
cmd "  | wif-impersonate --endpoint $emu --service-account $sa --token-out wif_token.txt"
stages=(wif-sign tee wif-azure tee wif-sts tee wif-impersonate)
wif-sign --client-id "$app" --tenant-id "$tenant" --key pki/app-rsa.key --cert pki/app-rsa.crt --authority "$emu" \
  | tee 1-sign.json \
  | wif-azure --scope api://wif-gcp/.default \
  | tee 2-azure.json \
  | wif-sts --token-url "$emu/v1/token" --audience "$audience" \
  | tee 3-sts.json \
  | wif-impersonate --endpoint "$emu" --service-account "$sa" --token-out wif_token.txt >4-impersonate.json
stages=()
size=$(wc -c <wif_token.txt) mode=$(stat -c %a wif_token.txt)
ok "wif_token.txt: $size bytes, mode $mode"

for step in 1-sign:assertion 2-azure:azure 3-sts:sts 4-impersonate:impersonated; do
  file=${step%%:*}.json section=${step#*:}
  say "After ${step%%:*}: the \"$section\" section (wif-inspect --redact $file)"
  wif-inspect --redact --section "$section" "$file"
done
say "What the Azure token says about us (wif-inspect --claim sub 2-azure.json)"
sub=$(wif-inspect --claim sub 2-azure.json)
printf 'sub = %s  (the subject Google binds: principal://…/subject/SUB)\n' "$sub"

say "Publishing the token: wif-serve requires a client certificate from our CA"
cmd "wif-serve --listen 127.0.0.1:0 --cert pki/server-chain.crt --key pki/server.key --client-ca pki/ca-chain.crt --token wif_token.txt"
wif-serve --listen 127.0.0.1:0 --cert pki/server-chain.crt --key pki/server.key --client-ca pki/ca-chain.crt \
  --token wif_token.txt >serve.log 2>serve.log.err </dev/null &
serve_pid=$!
pids+=("$serve_pid")
url=$(server_url serve.log $serve_pid)
ok "serving at $url"

say "Fetching it with wif-get over mutual TLS"
cmd "wif-get --url $url --cert pki/client.crt --key pki/client.key --ca pki/ca-chain.crt --out fetched_token.txt"
wif-get --url "$url" --cert pki/client.crt --key pki/client.key --ca pki/ca-chain.crt --out fetched_token.txt \
  </dev/null >fetched.json
wif-inspect --redact --section fetched fetched.json
cmp -s wif_token.txt fetched_token.txt || die "the fetched token differs from wif_token.txt"
mode=$(stat -c %a fetched_token.txt)
ok "fetched_token.txt is byte-identical to wif_token.txt (mode $mode)"

say "A client whose certificate comes from another CA (\"CA 13.1\") is refused in the handshake"
cmd "wif-get --url $url --cert pki/other-client.crt --key pki/other-client.key --ca pki/ca-chain.crt --retries 0"
code=0
wif-get --url "$url" --cert pki/other-client.crt --key pki/other-client.key --ca pki/ca-chain.crt --retries 0 \
  </dev/null >/dev/null 2>refused.err || code=$?
sed 's/^/  /' refused.err
[ $code -eq 4 ] || die "expected exit code 4 (refused), got $code"
ok "refused, exit code $code; nothing was written"

say "wif-serve's access log (one JSON line per request or refused handshake; never the token)"
sed -n '2,$p' serve.log
if grep -qF -- "$(cat wif_token.txt)" serve.log emulator.log serve.log.err emulator.log.err; then
  die "a log contains the token"
fi
ok "no log contains the token"

say "Per-client credentials: wif-serve --policy gives each client only its own bucket"
cat >policy.json <<'JSON'
{ "version": 1, "rules": [
  { "name": "team-a", "match": { "cn": "wif-client" },
    "access_boundary": { "accessBoundaryRules": [ {
      "availableResource": "//storage.googleapis.com/projects/_/buckets/team-a-data",
      "availablePermissions": ["inRole:roles/storage.objectViewer"] } ] } },
  { "name": "team-b", "match": { "uri": "spiffe://example.org/wif-client-2" },
    "access_boundary": { "accessBoundaryRules": [ {
      "availableResource": "//storage.googleapis.com/projects/_/buckets/team-b-data",
      "availablePermissions": ["inRole:roles/storage.objectViewer"] } ] } } ] }
JSON
cmd "wif-serve … --token wif_token.txt --policy policy.json --sts-endpoint $emu/v1/token --ledger ledger.jsonl"
wif-serve --listen 127.0.0.1:0 --cert pki/server-chain.crt --key pki/server.key --client-ca pki/ca-chain.crt \
  --token wif_token.txt --policy policy.json --sts-endpoint "$emu/v1/token" --ledger ledger.jsonl \
  >broker.log 2>broker.log.err </dev/null &
pids+=($!)
broker=$(server_url broker.log $!)
ok "broker at $broker: rule team-a (CN wif-client) → gs://team-a-data, team-b (spiffe://…/wif-client-2) → gs://team-b-data"

# emu_http METHOD PATH [AUTHORIZATION [JSON_BODY]]: one request to the emulator (plain HTTP
# through bash's /dev/tcp: no other tool needed); prints the status and the body.
emu_http() {
  local hostport=${emu#http://} head body=${4:-}
  exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"
  head="$1 $2 HTTP/1.1\r\nHost: $hostport\r\nConnection: close\r\n"
  [ -z "${3:-}" ] || head+="Authorization: $3\r\n"
  [ -z "$body" ] || head+="Content-Type: application/json\r\nContent-Length: ${#body}\r\n"
  printf "%b\r\n%s" "$head" "$body" >&3
  local response
  response=$(tr -d '\r' <&3)
  exec 3<&-
  printf '%s\n' "$response" | sed -n '1s/^HTTP\/1.1 \([0-9]*\).*/\1/p'
  printf '%s\n' "${response#*$'\n\n'}"
}
# gcs_read TOKEN BUCKET OBJECT: reads an object from the emulator's Cloud Storage.
gcs_read() { emu_http GET "/storage/v1/b/$2/o/${3//\//%2F}?alt=media" "Bearer $1"; }
allowed=0 refused=0
for who in client:team-a-data/reports/q1.csv client2:team-b-data/deploy/manifest.json; do
  name=${who%%:*} own=${who#*:}
  cmd "wif-get --url $broker --cert pki/$name.crt --key pki/$name.key --ca pki/ca-chain.crt --out $name.token"
  wif-get --url "$broker" --cert "pki/$name.crt" --key "pki/$name.key" --ca pki/ca-chain.crt --out "$name.token" \
    </dev/null >/dev/null
  if cmp -s wif_token.txt "$name.token"; then die "$name got the unscoped token"; fi
  for object in team-a-data/reports/q1.csv team-b-data/deploy/manifest.json; do
    { read -r status; body=$(cat); } < <(gcs_read "$(cat "$name.token")" "${object%%/*}" "${object#*/}")
    if [ "$object" = "$own" ]; then
      [ "$status" = 200 ] || die "$name could not read its own gs://$object (HTTP $status): $body"
      ok "$name reads gs://$object: HTTP 200, \"$(head -n 1 <<<"$body")\""
      allowed=$((allowed + 1))
    else
      [ "$status" = 403 ] || die "$name was not refused gs://$object (HTTP $status)"
      why=$(json_string message <<<"$body" | head -n 1)
      why=${why#* } why=${why%% to the *}
      ok "$name is refused gs://$object: HTTP 403, \"$why\""
      refused=$((refused + 1))
    fi
  done
done
ok "$allowed reads allowed, $refused refused"
say "The issuance ledger (ledger.jsonl: one JSON line per credential handed out, never a token)"
while IFS= read -r line; do
  field() { json_string "$1" <<<"$line" | head -n 1; }
  printf '%s  %s  rule %s via %s  source %s… → issued %s…  boundary %s…\n' "$(field time)" \
    "$(field subject)" "$(field rule)" "$(field via)" "$(field source_sha256)" "$(field issued_sha256)" \
    "$(field boundary_sha256)"
done <ledger.jsonl
if grep -qF -f <(for t in client.token client2.token wif_token.txt; do cat "$t"; echo; done) broker.log broker.log.err ledger.jsonl; then
  die "a broker log contains a token"
fi

say "The X.509 path: the client certificate straight to Google's STS over mutual TLS (no Azure AD)"
# A second emulator, with an https listener (Google's mtls endpoints) and its Azure AD down.
cmd "wif-emulate --config emulator.json --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --tls-cert pki/server-chain.crt --tls-key pki/server.key --fault azure=unavailable"
wif-emulate --config emulator.json --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --tls-cert pki/server-chain.crt \
  --tls-key pki/server.key --fault azure=unavailable >emulator2.log 2>emulator2.log.err &
pids+=($!)
emu2=$(server_url emulator2.log $!)
mtls=$(head -n 1 emulator2.log | json_string tls_url)
x509_audience=${audience%/azure}/x509
ok "emulator at $emu2 and $mtls (its Azure AD answers 503)"
cmd "wif-sts --x509 --cert pki/client.crt --key pki/client.key --trust-chain pki/client-chain.crt --audience $x509_audience \\"
cmd "    --token-url $mtls/v1/token --ca-file pki/ca-chain.crt \\"
cmd "  | wif-impersonate --endpoint $mtls --ca-file pki/ca-chain.crt --service-account $sa --token-out x509_token.txt"
stages=(wif-sts tee wif-impersonate)
wif-sts --x509 --cert pki/client.crt --key pki/client.key --trust-chain pki/client-chain.crt --audience "$x509_audience" \
    --token-url "$mtls/v1/token" --ca-file pki/ca-chain.crt </dev/null \
  | tee 5-sts-x509.json \
  | wif-impersonate --endpoint "$mtls" --ca-file pki/ca-chain.crt --service-account "$sa" --token-out x509_token.txt \
    >6-impersonate-x509.json
stages=()
wif-inspect --redact --section sts 5-sts-x509.json
ok "x509_token.txt: $(wc -c <x509_token.txt) bytes, for $sa, via the certificate with CN wif-client"

say "Failover: wif-refresh tries Azure AD first, then X.509, in the same run"
cat >azure.json <<JSON
{ "client_id": "$app", "tenant_id": "$tenant", "key": "pki/app-rsa.key", "cert": "pki/app-rsa.crt",
  "authority": "$emu2", "azure_scope": "api://wif-gcp/.default", "retries": 0,
  "sts_audience": "$audience", "sts_token_url": "$emu2/v1/token",
  "service_account": "$sa", "iam_endpoint": "$emu2" }
JSON
cat >x509.json <<JSON
{ "x509": true, "x509_cert": "pki/client.crt", "x509_key": "pki/client.key", "trust_chain": "pki/client-chain.crt",
  "sts_audience": "$x509_audience", "sts_token_url": "$mtls/v1/token", "ca_file": "pki/ca-chain.crt",
  "service_account": "$sa", "iam_endpoint": "$mtls" }
JSON
cmd "wif-refresh --token-out failover_token.txt --path azure=azure.json --path x509=x509.json --textfile wif.prom"
"$root/scripts/wif-refresh" --token-out failover_token.txt --path azure=azure.json --path x509=x509.json \
  --textfile wif.prom </dev/null 2>refresh.err
sed 's/^/  /' refresh.err
grep '^wif_refresh_path{' wif.prom | sed 's/^/  /'
grep -q '^wif_refresh_path{.*path="x509".* 1$' wif.prom || die "wif.prom does not say the token came from the x509 path"
ok "Azure AD was down; the token in failover_token.txt came from the X.509 path"
if grep -qF -f <(cat x509_token.txt; echo; cat failover_token.txt) emulator2.log emulator2.log.err refresh.err; then
  die "a log contains a token"
fi

say "Clients without a certificate: a Kubernetes service-account token as a bearer token"
# The emulator's Kubernetes issuer "prod" (examples/emulator.json) answers TokenRequests as
# the API server does; wif-serve trusts its JWKS for audience wif-serve.
k8s_issuer=https://kubernetes.default.svc.cluster.local
cat >bearer-issuers.json <<JSON
{ "version": 1, "issuers": [ { "name": "k8s-prod", "kind": "kubernetes", "issuer": "$k8s_issuer",
  "audience": "wif-serve", "jwks_uri": "$emu/k8s/prod/openid/v1/jwks", "max_lifetime": "1h10m" } ] }
JSON
request='{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"audiences":["wif-serve"],"expirationSeconds":3600}}'
cmd "POST $emu/k8s/prod/api/v1/namespaces/batch/serviceaccounts/report/token $request"
{ read -r status; body=$(cat); } < <(emu_http POST /k8s/prod/api/v1/namespaces/batch/serviceaccounts/report/token "" "$request")
[ "$status" = 201 ] || die "the emulator's TokenRequest answered HTTP $status: $body"
(umask 077; json_string token <<<"$body" | head -n 1 | tr -d '\n' >k8s-token.jwt)
[ -s k8s-token.jwt ] || die "the TokenRequest answer has no status.token: $body"
printf 'sub = %s, aud = %s, exp = %s  (what the kubelet writes into a projected volume)\n' \
  "$(wif-inspect --token-file k8s-token.jwt --claim sub)" "$(wif-inspect --token-file k8s-token.jwt --claim aud | tr -d '\n ')" \
  "$(wif-inspect --token-file k8s-token.jwt --claim exp)"
cmd "wif-serve … --token wif_token.txt --bearer-issuers bearer-issuers.json --allow bearer:k8s-prod:system:serviceaccount:batch:report --allow cn:wif-client"
wif-serve --listen 127.0.0.1:0 --cert pki/server-chain.crt --key pki/server.key --client-ca pki/ca-chain.crt \
  --token wif_token.txt --bearer-issuers bearer-issuers.json \
  --allow bearer:k8s-prod:system:serviceaccount:batch:report --allow cn:wif-client \
  >bearer.log 2>bearer.log.err </dev/null &
pids+=($!)
bearer_url=$(server_url bearer.log $!)
ok "serving at $bearer_url: certificate clients as before, and clients of issuer k8s-prod without one"
cmd "wif-get --url $bearer_url --ca pki/ca-chain.crt --bearer-file k8s-token.jwt --out bearer_token.txt"
wif-get --url "$bearer_url" --ca pki/ca-chain.crt --bearer-file k8s-token.jwt --out bearer_token.txt \
  </dev/null >bearer-fetched.json
wif-inspect --redact --section fetched bearer-fetched.json
cmp -s wif_token.txt bearer_token.txt || die "the token fetched with the bearer token differs from wif_token.txt"
ok "bearer_token.txt is byte-identical to wif_token.txt: fetched without a client certificate"

say "A tampered token (its namespace changed to kube-system) is refused with 401"
# The payload re-encoded with another namespace and sub; the signature is the original's.
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
payload=$(cut -d. -f2 k8s-token.jwt | tr -- '-_' '+/')
while [ $((${#payload} % 4)) != 0 ]; do payload+='='; done
forged=$(base64 -d <<<"$payload" | sed 's/batch/kube-system/g' | b64url)
(umask 077; printf '%s.%s.%s' "$(cut -d. -f1 k8s-token.jwt)" "$forged" "$(cut -d. -f3 k8s-token.jwt)" >forged-token.jwt)
cmd "wif-get --url $bearer_url --ca pki/ca-chain.crt --bearer-file forged-token.jwt --retries 0"
code=0
wif-get --url "$bearer_url" --ca pki/ca-chain.crt --bearer-file forged-token.jwt --retries 0 \
  </dev/null >/dev/null 2>forged.err || code=$?
sed 's/^/  /' forged.err
[ $code -eq 4 ] || die "expected exit code 4 (refused), got $code"
grep -q '"status":401' bearer.log || die "wif-serve logged no 401"
grep -q '"code":"bad_signature"' bearer.log || die "wif-serve did not log the refusal as bad_signature"
ok "refused: HTTP 401, logged as bad_signature; exit code $code, nothing written"
say "wif-serve's log of the bearer clients (issuer, sub, jti, token digest; never the token)"
grep '"auth":"bearer"' bearer.log
if grep -qF -f <(cat k8s-token.jwt; echo; cat forged-token.jwt; echo; cat bearer_token.txt; echo) bearer.log bearer.log.err emulator.log; then
  die "a log contains a token"
fi
ok "no log contains the service-account token or the Google token"

say "Stopping everything"
kill -TERM "$serve_pid"
wait "$serve_pid"
ok "wif-serve shut down cleanly (exit 0)"
cd "$root"
