#!/usr/bin/env python3
"""MSAL Python's client-credentials flow with a certificate, against wif-emulate.

usage: msal_client.py AUTHORITY CLIENT_ID KEY_PEM SHA1_THUMBPRINT_HEX SCOPE[,SCOPE…] [INSTANCE_DISCOVERY_URL]
Asks for each scope in turn with one application object (MSAL reuses its client assertion
for about nine minutes) and prints the first failure or the last result as one JSON object;
exit 0 with a token, 1 with an error.
Trust for the emulator's TLS certificate comes from REQUESTS_CA_BUNDLE.
"""
import json
import sys

import msal


def main():
    authority, client_id, key_path, thumbprint, scope = sys.argv[1:6]
    # The emulator is not a known Microsoft cloud: either skip instance discovery, which would
    # ask login.microsoftonline.com about it, or ask the emulator's own discovery endpoint.
    discovery = sys.argv[6] if len(sys.argv) > 6 else False
    with open(key_path) as f:
        private_key = f.read()
    app = msal.ConfidentialClientApplication(
        client_id,
        authority=authority,
        client_credential={"private_key": private_key, "thumbprint": thumbprint},
        instance_discovery=discovery,
    )
    for one in scope.split(","):
        result = app.acquire_token_for_client(scopes=[one])
        if "access_token" not in result:
            break
    print(json.dumps(result))
    return 0 if "access_token" in result else 1


if __name__ == "__main__":
    sys.exit(main())
