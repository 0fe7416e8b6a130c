#!/usr/bin/env python3
"""google-auth's downscoping (google.auth.downscoped.Credentials) against wif-emulate: the
source credentials are google-auth's own workload identity federation (identity_pool
credentials with service account impersonation, as google_auth_client.py uses them), and the
Credential Access Boundary is built with the library's own classes from a JSON file.

The only patch: the downscoped credentials' `_sts_client` is replaced by a `sts.Client` for
the emulator's token URL, because the library always builds https://sts.googleapis.com/v1/token
(from the universe domain). Everything it sends and parses is the library's.

usage: google_auth_downscoped.py EXTERNAL_ACCOUNT_CONFIG.json BOUNDARY.json STS_TOKEN_URL [TOKEN_OUT]
  BOUNDARY.json  {"accessBoundary": {"accessBoundaryRules": [...]}} as in Google's docs
  TOKEN_OUT      where to write the downscoped token (0600), for gcs_client.py --token-file

Prints {"sha256": "<first 16 hex of the token's SHA-256>", "expiry": ISO, "source_expiry": ISO,
"source_sha256": …} (exit 0) or {"error": ..., "type": ...} (exit 1). Never a token.
Trust for the emulator's TLS certificate comes from REQUESTS_CA_BUNDLE.
"""
import hashlib
import json
import os
import sys

import google.auth.transport.requests
from google.auth import downscoped, identity_pool
from google.oauth2 import sts


def boundary_from(doc):
    rules = []
    for r in doc["accessBoundary"]["accessBoundaryRules"]:
        cond = r.get("availabilityCondition")
        condition = None
        if cond is not None:
            condition = downscoped.AvailabilityCondition(
                cond["expression"], title=cond.get("title"), description=cond.get("description")
            )
        rules.append(
            downscoped.AccessBoundaryRule(
                r["availableResource"], r["availablePermissions"], availability_condition=condition
            )
        )
    return downscoped.CredentialAccessBoundary(rules=rules)


def digest(token):
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def main():
    config, boundary_file, token_url = sys.argv[1:4]
    token_out = sys.argv[4] if len(sys.argv) > 4 else None
    with open(config) as f:
        info = json.load(f)
    with open(boundary_file) as f:
        boundary = boundary_from(json.load(f))
    source = identity_pool.Credentials.from_info(info, scopes=["https://www.googleapis.com/auth/cloud-platform"])
    creds = downscoped.Credentials(source_credentials=source, credential_access_boundary=boundary)
    creds._sts_client = sts.Client(token_url)  # the one patch (see above)
    try:
        creds.refresh(google.auth.transport.requests.Request())
    except Exception as e:  # RefreshError / OAuthError carry the service's answer
        print(json.dumps({"error": str(e), "type": type(e).__name__}))
        return 1
    if token_out:
        fd = os.open(token_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(creds.token)
    print(
        json.dumps(
            {
                "sha256": digest(creds.token),
                "source_sha256": digest(source.token),
                "expiry": creds.expiry.isoformat() if creds.expiry else None,
                "source_expiry": source.expiry.isoformat() if source.expiry else None,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
