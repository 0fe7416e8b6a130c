#!/usr/bin/env python3
"""The official google-cloud-storage client, pointed at wif-emulate's (or any) Cloud Storage
JSON API endpoint with a bearer token read from a file: lists and reads objects and reports,
for each operation, whether it succeeded or what status refused it.

usage: gcs_client.py --endpoint URL --token-file FILE --project P
                     (--list BUCKET[/PREFIX] | --read BUCKET/OBJECT)...

  --endpoint URL     the API endpoint (client_options={"api_endpoint": URL}), e.g.
                     http://127.0.0.1:8080 or the emulator's https:// URL
  --token-file FILE  a file holding exactly the access token (as wif-get --out writes it)
  --project P        the project the client is created for (no call is made for it)
  --list B[/PREFIX]  list the objects of bucket B, under PREFIX if given (all pages)
  --read B/OBJECT    download the object OBJECT of bucket B (download_as_bytes, which checks
                     the crc32c/md5 the server sends in X-Goog-Hash)

Operations run in the order given. Prints one JSON document and exits 0 (2 on bad usage):
  {"results":[{"op":"list","target":"B/PREFIX","ok":true,"status":200,"items":["a","b"]},
              {"op":"read","target":"B/O","ok":true,"status":200,"sha256":"<hex>","size":N},
              {"op":"read","target":"B/O","ok":false,"status":403,"error":"…"}]}
Never prints the token. Trust for an https:// endpoint comes from REQUESTS_CA_BUNDLE.
"""
import argparse
import hashlib
import json
import sys

import google.api_core.exceptions
import google.oauth2.credentials
from google.cloud import storage


def split(target):
    bucket, _, rest = target.partition("/")
    return bucket, rest


def run_list(client, target):
    bucket, prefix = split(target)
    names = [b.name for b in client.list_blobs(bucket, prefix=prefix or None)]
    return {"items": names}


def run_read(client, target):
    bucket, name = split(target)
    data = client.bucket(bucket).blob(name).download_as_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def attempt(op, target, fn):
    result = {"op": op, "target": target}
    try:
        result.update(fn())
        result.update(ok=True, status=200)
    except google.api_core.exceptions.GoogleAPICallError as e:
        result.update(ok=False, status=e.code, error=e.message)
    except Exception as e:  # e.g. a RefreshError: the token was refused (401) and cannot be renewed
        result.update(ok=False, status=None, error=f"{type(e).__name__}: {e}")
    return result


def main():
    p = argparse.ArgumentParser(description="google-cloud-storage against an endpoint with a token file")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--list", dest="ops", action="append", type=lambda v: ("list", v), metavar="BUCKET[/PREFIX]")
    p.add_argument("--read", dest="ops", action="append", type=lambda v: ("read", v), metavar="BUCKET/OBJECT")
    args = p.parse_args()
    if not args.ops:
        p.error("give at least one --list or --read")
    with open(args.token_file) as f:
        token = f.read().strip()
    creds = google.oauth2.credentials.Credentials(token)
    client = storage.Client(project=args.project, credentials=creds, client_options={"api_endpoint": args.endpoint})
    runners = {"list": run_list, "read": run_read}
    results = [attempt(op, target, lambda op=op, target=target: runners[op](client, target)) for op, target in args.ops]
    print(json.dumps({"results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
