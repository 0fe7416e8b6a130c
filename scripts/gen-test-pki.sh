#!/usr/bin/env bash
# Makes a complete test PKI for wif: two unrelated CA hierarchies, server and client
# certificates (good, expired, serverAuth-only, revoked + CRL) and application signing keys
# for wif-sign in every supported format. For tests, demos and trying wif out; never for
# production.
#
# usage: scripts/gen-test-pki.sh [--rsa] [--days N] OUT_DIR
#   --rsa     TLS keys are RSA-2048 instead of ECDSA P-256
#   --days N  validity of the good certificates (default 30)
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
alg=ec days=30 out=
while [ $# -gt 0 ]; do
  case "$1" in
    --rsa) alg=rsa ;;
    --days) days="${2:?--days needs a number}"; shift ;;
    -h|--help) usage 0 ;;
    -*) echo "gen-test-pki.sh: unknown option $1" >&2; usage ;;
    *) out="$1" ;;
  esac
  shift
done
[ -n "$out" ] || usage
command -v openssl >/dev/null || { echo "gen-test-pki.sh: openssl is needed (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$out"
cd "$out"
umask 077

newkey() { # newkey FILE [ec|rsa]
  case "${2:-$alg}" in
    ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null ;;
    rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null ;;
  esac
}

# A CA directory for `openssl ca`, which can back-date certificates and issue CRLs.
ca_init() { # ca_init NAME
  mkdir -p "$1.db"
  : > "$1.db/index.txt"
  echo 1000 > "$1.db/serial"
  echo 1000 > "$1.db/crlnumber"
  cat > "$1.db/ca.cnf" <<CNF
[ ca ]
default_ca = this
[ this ]
dir = $PWD/$1.db
database = \$dir/index.txt
serial = \$dir/serial
crlnumber = \$dir/crlnumber
new_certs_dir = \$dir
certificate = $PWD/$1.crt
private_key = $PWD/$1.key
default_md = sha256
default_days = $days
default_crl_days = $days
policy = any
unique_subject = no
copy_extensions = none
[ any ]
commonName = supplied
organizationName = optional
[ root_ext ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ inter_ext ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ server_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
authorityKeyIdentifier = keyid
[ client_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectAltName = \$ENV::WIF_SAN
authorityKeyIdentifier = keyid
[ serveronly_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = \$ENV::WIF_SAN
authorityKeyIdentifier = keyid
CNF
}

sign() { # sign CA CSR OUT EXT [extra openssl ca args...]
  local ca=$1 csr=$2 crt=$3 ext=$4; shift 4
  openssl ca -batch -notext -config "$ca.db/ca.cnf" -extensions "$ext" -in "$csr" -out "$crt" "$@" 2>/dev/null
}

make_root() { # make_root NAME "CN"
  newkey "$1.key"
  openssl req -new -key "$1.key" -subj "/O=wif test/CN=$2" -out "$1.csr"
  ca_init "$1"
  openssl ca -batch -notext -selfsign -config "$1.db/ca.cnf" -keyfile "$1.key" -extensions root_ext \
    -in "$1.csr" -out "$1.crt" -days $((days * 4)) 2>/dev/null
}

make_inter() { # make_inter NAME "CN" PARENT
  newkey "$1.key"
  openssl req -new -key "$1.key" -subj "/O=wif test/CN=$2" -out "$1.csr"
  sign "$3" "$1.csr" "$1.crt" inter_ext -days $((days * 2))
  ca_init "$1"
}

make_leaf() { # make_leaf NAME "CN" CA EXT SAN [extra]
  local name=$1 cn=$2 ca=$3 ext=$4; export WIF_SAN=$5; shift 5
  newkey "$name.key"
  openssl req -new -key "$name.key" -subj "/O=wif test/CN=$cn" -out "$name.csr"
  sign "$ca" "$name.csr" "$name.crt" "$ext" "$@"
  cat "$name.crt" "$ca.crt" > "$name-chain.crt"
}

export WIF_SAN=DNS:unused
# Hierarchy "CA 13": the one the server trusts.
make_root root-ca "wif test root CA 13"
make_inter intermediate-ca "wif test intermediate CA 13" root-ca
cat intermediate-ca.crt root-ca.crt > ca-chain.crt
make_leaf server localhost intermediate-ca server_ext "DNS:localhost"
make_leaf client wif-client intermediate-ca client_ext "URI:spiffe://example.org/wif-client, DNS:client.example.org"
make_leaf client2 wif-client-2 intermediate-ca client_ext "URI:spiffe://example.org/wif-client-2"
make_leaf client-expired wif-client-expired intermediate-ca client_ext "DNS:expired.example.org" \
  -startdate 20200101000000Z -enddate 20200201000000Z
make_leaf client-serveronly wif-client-serveronly intermediate-ca serveronly_ext "DNS:serveronly.example.org"
make_leaf client-revoked wif-client-revoked intermediate-ca client_ext "DNS:revoked.example.org"
openssl ca -config intermediate-ca.db/ca.cnf -revoke client-revoked.crt 2>/dev/null
openssl ca -config intermediate-ca.db/ca.cnf -gencrl -out crl.pem 2>/dev/null

# Hierarchy "CA 13.1": same names, different keys; the server must refuse its clients.
make_root other-root-ca "wif test root CA 13.1"
make_inter other-intermediate-ca "wif test intermediate CA 13.1" other-root-ca
cat other-intermediate-ca.crt other-root-ca.crt > other-ca-chain.crt
make_leaf other-client wif-client other-intermediate-ca client_ext "URI:spiffe://example.org/wif-client"
make_leaf other-server localhost other-intermediate-ca server_ext "DNS:localhost"

# Application keys for wif-sign (the certificate registered with Azure AD).
newkey app-rsa.key rsa
openssl req -new -x509 -key app-rsa.key -subj "/CN=wif-app" -days "$days" -out app-rsa.crt
openssl pkey -in app-rsa.key -traditional -out app-rsa-pkcs1.key
newkey app-ec.key ec
openssl req -new -x509 -key app-ec.key -subj "/CN=wif-app-ec" -days "$days" -out app-ec.crt
openssl pkey -in app-ec.key -traditional -out app-ec-sec1.key 2>/dev/null || openssl ec -in app-ec.key -out app-ec-sec1.key 2>/dev/null
newkey other-app-rsa.key rsa
openssl req -new -x509 -key other-app-rsa.key -subj "/CN=wif-other-app" -days "$days" -out other-app-rsa.crt
printf 'correct horse battery staple\n' > app.p12.pass
openssl pkcs12 -export -inkey app-rsa.key -in app-rsa.crt -name wif-app -passout file:app.p12.pass -out app.p12
openssl pkcs12 -export -inkey client.key -in client.crt -certfile intermediate-ca.crt -name wif-client \
  -passout file:app.p12.pass -out client.p12

# For the X.509 path (Workload Identity Federation with certificates): a P-384 workload, a
# leaf whose RSA-1024 key Google refuses, and the trust store of hierarchy "CA 13" as gcloud
# takes it (--trust-store-config-path; JSON is YAML), the PEM text inline.
newkey_p384() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$1" 2>/dev/null; }
newkey_p384 client-p384.key
openssl req -new -key client-p384.key -subj "/O=wif test/CN=wif-client-p384" -out client-p384.csr
WIF_SAN="URI:spiffe://example.org/wif-client-p384" sign intermediate-ca client-p384.csr client-p384.crt client_ext
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out client-rsa1024.key 2>/dev/null
openssl req -new -key client-rsa1024.key -subj "/O=wif test/CN=wif-client-rsa1024" -out client-rsa1024.csr
WIF_SAN="DNS:rsa1024.example.org" sign intermediate-ca client-rsa1024.csr client-rsa1024.crt client_ext
pem_json() { awk 'BEGIN { ORS = "" } { gsub(/\r/, ""); print $0 "\\n" }' "$1"; }
cat > trust-store.json <<JSON
{"trustStore": {
  "trustAnchors": [{"pemCertificate": "$(pem_json root-ca.crt)"}],
  "intermediateCas": [{"pemCertificate": "$(pem_json intermediate-ca.crt)"}]
}}
JSON

rm -f ./*.csr
chmod 600 ./*.key ./*.p12 ./*.pass
chmod 644 ./*.crt crl.pem trust-store.json
echo "gen-test-pki.sh: test PKI ($alg) written to $PWD" >&2

# A CRL of the other hierarchy (revokes nothing the server trusts): a starting point for
# tests that swap in crl.pem while the server runs.
openssl ca -config other-intermediate-ca.db/ca.cnf -gencrl -out other-crl.pem 2>/dev/null
chmod 644 other-crl.pem
