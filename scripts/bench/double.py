#!/usr/bin/env python3
"""A tiny HTTP double of Azure AD's token endpoint, Google STS and IAM Credentials for the
pipeline benchmark, used only when wif-emulate is not built: canned JSON, no verification, so
the tools' own cost is what is measured. Prints {"event":"listening","url":...} on stdout.

usage: double.py [PORT]
"""
import base64
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def fake_jwt(tenant):
    now = int(time.time())
    claims = {"iss": f"https://sts.windows.net/{tenant}/", "aud": "api://wif", "sub": "bench-sub",
              "iat": now, "nbf": now, "exp": now + 3600}
    return f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{b64(claims)}.{'s' * 342}"


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0]
        if path.endswith("/oauth2/v2.0/token") or path.endswith("/oauth2/token"):
            tenant = path.strip("/").split("/")[0]
            body = {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                    "access_token": fake_jwt(tenant)}
        elif path == "/v1/token":
            body = {"access_token": "ya29.federated-" + "f" * 1000, "token_type": "Bearer",
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "expires_in": 3599}
        elif path.endswith(":generateAccessToken"):
            body = {"accessToken": "ya29.c." + "a" * 1530, "expireTime": rfc3339(time.time() + 3600)}
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
port = srv.server_address[1]
print(json.dumps({"event": "listening", "url": f"http://127.0.0.1:{port}"}), flush=True)
srv.serve_forever()
