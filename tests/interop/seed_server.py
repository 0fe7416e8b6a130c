#!/usr/bin/env python3
"""The seed's Flask mTLS token server, rebuilt on the standard library for wif-get's tests.

Configured as the seed describes: ssl.SSLContext(PROTOCOL_TLS_SERVER), verify_mode =
CERT_REQUIRED, load_verify_locations(ca-chain.crt), load_cert_chain(server-chain.crt,
server.key); serves the token file at GET /get_wif_token. Prints {"port": N} as its first
stdout line, then one JSON line per request ({"path", "status"}).

Flags for failure tests: --status (always answer with it), --fail-first N with
--fail-status (answer N requests with it first), --close-first N (drop N connections
after the handshake without answering), --retry-after S, --expires-at (X-Token-Expires-At
header value; "meta" reads FILE.meta.json, "none" sends none).
"""
import argparse
import http.server
import json
import os
import ssl
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--client-ca", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--fail-status", type=int, default=503)
    p.add_argument("--close-first", type=int, default=0)
    p.add_argument("--retry-after", default=None)
    p.add_argument("--expires-at", default="meta")
    args = p.parse_args()

    state = {"requests": 0, "connections": 0}

    def log(**fields):
        print(json.dumps(fields), flush=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle(self):
            state["connections"] += 1
            if state["connections"] <= args.close_first:
                log(path=None, status="closed")
                self.request.close()
                return
            super().handle()

        def do_GET(self):
            state["requests"] += 1
            if self.path != "/get_wif_token":
                return self.answer(404, b"not found\n")
            if state["requests"] <= args.fail_first:
                return self.answer(args.fail_status, b"try again later\n")
            if args.status != 200:
                return self.answer(args.status, b"refused\n")
            with open(args.token, "rb") as f:
                token = f.read()
            self.answer(200, token)

        def answer(self, status, body):
            log(path=self.path, status=status)
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            if status >= 500 and args.retry_after is not None:
                self.send_header("Retry-After", args.retry_after)
            if status == 200:
                exp = args.expires_at
                if exp == "meta":
                    try:
                        with open(args.token + ".meta.json") as f:
                            exp = json.load(f)["expires_at"]
                    except (OSError, ValueError, KeyError):
                        exp = "none"
                if exp != "none":
                    self.send_header("X-Token-Expires-At", exp)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(args.client_ca)
    ctx.load_cert_chain(args.cert, args.key)

    httpd = http.server.HTTPServer((args.bind, 0), Handler)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    log(port=httpd.server_address[1])
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
