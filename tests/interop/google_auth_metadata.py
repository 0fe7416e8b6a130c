#!/usr/bin/env python3
"""google-auth's Compute Engine credentials, unmodified, against `wif-get --metadata-server`.

usage: google_auth_metadata.py   (GCE_METADATA_HOST and GCE_METADATA_IP name the server)
Prints one JSON object: whether google-auth detects a metadata server, what
google.auth.default() returns, and what compute_engine.Credentials.refresh() obtains
(exit 0), or {"error": ...} (exit 1).
"""
import calendar
import json
import sys

import google.auth
import google.auth.transport.requests
from google.auth import compute_engine
from google.auth.compute_engine import _metadata


def main():
    request = google.auth.transport.requests.Request()
    out = {"on_gce": _metadata.is_on_gce(request)}
    try:
        creds, project = google.auth.default()
        out["default_type"] = type(creds).__module__ + "." + type(creds).__name__
        out["default_project"] = project
        creds = compute_engine.Credentials()
        creds.refresh(request)
    except Exception as e:  # RefreshError / DefaultCredentialsError carry the reason
        out["error"] = str(e)
        out["error_type"] = type(e).__name__
        print(json.dumps(out))
        return 1
    out["token"] = creds.token
    out["expiry"] = calendar.timegm(creds.expiry.utctimetuple()) if creds.expiry else None
    out["service_account_email"] = creds.service_account_email
    out["scopes"] = list(creds.scopes or [])
    out["valid"] = creds.valid
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
