# shellcheck shell=bash
# The nginx baseline both benchmark scripts measure: one worker, mutual TLS with the same
# certificates, the same token file at /get_wif_token. Sourced by run.sh and compare-serve.sh.

# write_nginx_conf DIR PORT PKI TOKEN [WORKERS]: writes DIR/nginx.conf (logs and temp files in
# DIR); WORKERS (default 1) above one are bound one to a CPU (worker_cpu_affinity auto).
write_nginx_conf() {
  local dir=$1 port=$2 pki=$3 token=$4 workers=${5:-1} affinity=''
  [ "$workers" = 1 ] || affinity="worker_cpu_affinity auto;"
  mkdir -p "$dir/tmp"
  cat > "$dir/nginx.conf" <<CONF
# One worker, mutual TLS with the same certificates, the same token file at /get_wif_token.
worker_processes $workers;
$affinity
daemon off;
user root;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log $dir/access.log;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $pki/server-chain.crt;
    ssl_certificate_key $pki/server.key;
    ssl_client_certificate $pki/ca-chain.crt;
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_protocols TLSv1.2 TLSv1.3;
    location = /get_wif_token {
      default_type text/plain;
      add_header Cache-Control no-store;
      alias $token;
    }
  }
}
CONF
}
