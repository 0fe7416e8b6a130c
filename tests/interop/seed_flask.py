#!/usr/bin/env python3
"""The seed's token server as the seed describes it, on the real Flask package.

A Flask app serves the text of the token file at /get_wif_token (the seed's Java generator
writes the bare token to wif_token.txt: no expiry header, no metadata), over HTTPS with
mutual TLS configured on an ssl.SSLContext: verify_mode = CERT_REQUIRED,
load_verify_locations(ca-chain.crt), load_cert_chain(server.crt, server.key).

usage: seed_flask.py --cert SERVER.crt --key SERVER.key --client-ca CA_CHAIN.crt --token FILE
The seed runs app.run(host, port, ssl_context=context); tests need a free port, so this
makes the same werkzeug server app.run makes, on 127.0.0.1 port 0, and prints {"port": N}
as its first stdout line.
"""
import argparse
import json
import ssl
import sys

from flask import Flask
from werkzeug.serving import make_server


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--client-ca", required=True)
    p.add_argument("--token", required=True)
    args = p.parse_args()

    app = Flask("seed")

    @app.route("/get_wif_token")
    def get_wif_token():
        with open(args.token) as f:
            return f.read()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(args.client_ca)
    context.load_cert_chain(args.cert, args.key)

    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=context)
    print(json.dumps({"port": server.server_port}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
