#!/usr/bin/env python3
"""google-auth's X.509 workload identity federation (identity_pool credentials whose
credential_source is a certificate), against wif-emulate or a recording server.

usage: google_auth_x509.py CREDENTIAL_CONFIG.json

The configuration is used as written (gcloud's create-cred-config shape, or the one
`wif-sts --print-credential-config --x509` prints): its token_url and
service_account_impersonation_url name the server; nothing in the library is patched.
google-auth finds the certificate through the configuration's certificate_config_location,
else GOOGLE_API_CERTIFICATE_CONFIG, else gcloud's directory (CLOUDSDK_CONFIG). Trust for
the server's TLS certificate comes from REQUESTS_CA_BUNDLE.

Prints (exit 0) {"token_sha256", "token_prefix", "expiry", "impersonated",
"subject_token_certs", "google_auth"} — never the token itself — or (exit 1)
{"error", "type"}.
"""
import hashlib
import json
import sys

import google.auth
import google.auth.transport.requests
from google.auth import identity_pool

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def main():
    creds = identity_pool.Credentials.from_file(sys.argv[1], scopes=[CLOUD_PLATFORM])
    request = google.auth.transport.requests.Request()
    try:
        creds.refresh(request)
        # The certificates google-auth put in subject_token (public, not a secret).
        chain = json.loads(creds.retrieve_subject_token(request))
    except Exception as e:  # the library's RefreshError carries the service's answer
        print(json.dumps({"error": str(e), "type": type(e).__name__}))
        return 1
    token = creds.token or ""
    print(
        json.dumps(
            {
                "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
                "token_prefix": token[:5],
                "expiry": creds.expiry.isoformat() if creds.expiry else None,
                "impersonated": creds.service_account_email is not None,
                "subject_token_certs": len(chain),
                "google_auth": google.auth.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
