#!/usr/bin/env python3
"""MSAL Python's client-credentials flow with a certificate, against wif-emulate.

usage: msal_client.py AUTHORITY CLIENT_ID KEY_PEM SHA1_THUMBPRINT_HEX SCOPE
Prints MSAL's result as one JSON object; exit 0 with a token, 1 with an error.
Trust for the emulator's TLS certificate comes from REQUESTS_CA_BUNDLE.
"""
import json
import sys

import msal


def main():
    authority, client_id, key_path, thumbprint, scope = sys.argv[1:6]
    with open(key_path) as f:
        private_key = f.read()
    app = msal.ConfidentialClientApplication(
        client_id,
        authority=authority,
        client_credential={"private_key": private_key, "thumbprint": thumbprint},
        # The emulator is not a known Microsoft cloud: skip the instance discovery that
        # would ask login.microsoftonline.com about it.
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(scopes=[scope])
    print(json.dumps(result))
    return 0 if "access_token" in result else 1


if __name__ == "__main__":
    sys.exit(main())
