#!/usr/bin/env python3
"""google-auth's workload identity federation (identity_pool credentials with service
account impersonation), against wif-emulate.

usage: google_auth_client.py EXTERNAL_ACCOUNT_CONFIG.json
Prints {"token": ..., "expiry": ...} (exit 0) or {"error": ...} (exit 1).
Trust for the emulator's TLS certificate comes from REQUESTS_CA_BUNDLE.
"""
import json
import sys

import google.auth.transport.requests
from google.auth import identity_pool


def main():
    with open(sys.argv[1]) as f:
        info = json.load(f)
    creds = identity_pool.Credentials.from_info(
        info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    try:
        creds.refresh(google.auth.transport.requests.Request())
    except Exception as e:  # the library's RefreshError carries the service's answer
        print(json.dumps({"error": str(e), "type": type(e).__name__}))
        return 1
    print(json.dumps({"token": creds.token, "expiry": creds.expiry.isoformat() if creds.expiry else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
