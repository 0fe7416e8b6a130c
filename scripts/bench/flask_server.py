#!/usr/bin/env python3
"""The seed's design, for comparison: Flask serving the token file at /get_wif_token over HTTPS
with ssl.CERT_REQUIRED against the CA chain (server.crt, server.key, ca-chain.crt), as in the
seed's white paper. Flask's built-in (werkzeug) server, threaded, as `app.run` gives it.

usage: flask_server.py PORT SERVER_CHAIN SERVER_KEY CA_CHAIN TOKEN_FILE
"""
import logging
import ssl
import sys

from flask import Flask, Response

port, cert, key, ca, token_file = sys.argv[1:6]
app = Flask(__name__)


@app.route("/get_wif_token")
def get_wif_token():
    with open(token_file, "rb") as f:
        return Response(f.read(), mimetype="text/plain", headers={"Cache-Control": "no-store"})


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(ca)

# Werkzeug logs one line per request on stderr, like wif-serve's access log on stdout.
logging.getLogger("werkzeug").setLevel(logging.INFO)
app.run(host="127.0.0.1", port=int(port), ssl_context=ctx, threaded=True)
