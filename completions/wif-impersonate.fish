complete -c wif-impersonate -l service-account -d 'Service account email to impersonate [default: from the credential configuration\'s impersonation URL]' -r
complete -c wif-impersonate -l endpoint -d 'IAM Credentials base URL [default: from the credential configuration\'s impersonation URL, else https://iamcredentials.mtls.googleapis.com after the X.509 path, else https://iamcredentials.googleapis.com]' -r
complete -c wif-impersonate -l lifetime -d 'Access token lifetime, 1s to 12h (over 1h needs the org-policy exception) [default: the credential configuration\'s service_account_impersonation.token_lifetime_seconds, else 3600s]' -r
complete -c wif-impersonate -l scope -d 'OAuth scope of the access token (repeatable) [default: https://www.googleapis.com/auth/cloud-platform]' -r
complete -c wif-impersonate -l delegate -d 'Delegate service account in the delegation chain (repeatable)' -r
complete -c wif-impersonate -l audience -d 'Audience of the ID token (with --id-token)' -r
complete -c wif-impersonate -l token-out -d 'Also write the token (exact bytes, mode 0600, atomically) to FILE, with FILE.meta.json beside it' -r -F
complete -c wif-impersonate -l timeout -d 'Time-out for each HTTP attempt, e.g. 30s [default: 30s]' -r
complete -c wif-impersonate -l retries -d 'Retries after a connection error, 429 or 5xx (never after other 4xx) [default: 3]' -r
complete -c wif-impersonate -l ca-file -d 'CA bundle (PEM) to trust for HTTPS instead of the built-in Mozilla roots' -r -F
complete -c wif-impersonate -l config -d 'Config file (JSON object of settings; the document\'s own `config` wins over it)' -r -F
complete -c wif-impersonate -l id-token -d 'Ask for an OpenID Connect ID token (generateIdToken) instead of an access token'
complete -c wif-impersonate -l include-email -d 'Include the service account\'s email in the ID token (with --id-token)'
complete -c wif-impersonate -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wif-impersonate -s V -l version -d 'Print version'
