#!/usr/bin/env python3
"""The seed's client pattern: fetch the token over mutual TLS with requests.

usage: seed_client.py URL CLIENT.crt CLIENT.key CA_CHAIN.crt
Prints the token (exact bytes) on stdout; exits 1 on any failure.
"""
import sys

import requests


def main():
    url, crt, key, ca = sys.argv[1:5]
    try:
        r = requests.get(url, cert=(crt, key), verify=ca, timeout=10)
        r.raise_for_status()
    except Exception as e:  # noqa: BLE001 - any failure is the answer
        print(f"seed_client: {type(e).__name__}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(r.content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
