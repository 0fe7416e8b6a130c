#!/usr/bin/env python3
"""The Python way of the pipeline's Google half, for comparison: google-auth's identity_pool
credentials exchange an Azure token (read from a file) at STS and impersonate a service
account, against the same emulator or double the wif tools use.

usage: gauth_exchange.py SUBJECT_TOKEN_FILE BASE_URL AUDIENCE SERVICE_ACCOUNT
"""
import sys

import google.auth.transport.requests
from google.auth import identity_pool

token_file, base, audience, sa = sys.argv[1:5]
creds = identity_pool.Credentials(
    audience=audience,
    subject_token_type="urn:ietf:params:oauth:token-type:jwt",
    token_url=f"{base}/v1/token",
    credential_source={"file": token_file},
    service_account_impersonation_url=f"{base}/v1/projects/-/serviceAccounts/{sa}:generateAccessToken",
    scopes=["https://www.googleapis.com/auth/cloud-platform"],
)
creds.refresh(google.auth.transport.requests.Request())
if not creds.token:
    sys.exit("no token")
