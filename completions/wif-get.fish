complete -c wif-get -l url -d 'Token URL, e.g. https://tokens.internal:8443/get_wif_token' -r
complete -c wif-get -l cert -d 'Client certificate (PEM chain), or a PKCS#12 file holding certificate and key (then --key is not needed)' -r -F
complete -c wif-get -l key -d 'Client private key: PEM (PKCS#8, PKCS#1, SEC1) or PKCS#12' -r -F
complete -c wif-get -l key-password-file -d 'File whose first line is the PKCS#12 password' -r -F
complete -c wif-get -l key-password-env -d 'Name of the environment variable holding the PKCS#12 password' -r
complete -c wif-get -l bearer-file -d 'Present no client certificate: send the JWT in FILE as Authorization: Bearer, read again for each fetch (e.g. a Kubernetes projected service-account token); the server must accept bearer tokens (wif-serve --bearer-issuers)' -r -F
complete -c wif-get -l ca -d 'CA certificates (PEM) that issued the server\'s certificate, e.g. ca-chain.crt' -r -F
complete -c wif-get -l out -d 'Write the token to FILE (mode 0600, atomically) and FILE.meta.json beside it' -r -F
complete -c wif-get -l min-ttl -d 'Skip the fetch while the token in --out stays valid for at least DURATION, e.g. 10m (--metadata-server: refetch when less is left, default 5m)' -r
complete -c wif-get -l spread -d 'Spread refreshes of a fleet holding the same token over a window before the refresh margin, at random (metadata server) or by host and token (--min-ttl): auto (as wide as the margin), off (exactly at the margin), or a width such as 10m; never later than the margin [default: auto]' -r
complete -c wif-get -l splay -d 'With --min-ttl: before a fetch that is not yet urgent (the token in --out still has more than --min-ttl left), sleep a random time below DURATION, never past the point where --min-ttl is left; a missing or low token is fetched at once [default: 0]' -r
complete -c wif-get -l assume-ttl -d 'Lifetime to assume, from the fetch, when the server sends no X-Token-Expires-At and the token is not a JWT (the seed\'s Flask server); 0: refuse such a token [default: 5m, the least a token the seed serves has left]' -r
complete -c wif-get -l format -d 'What to print on stdout [default: json]' -r -f -a "json\t'The wif JSON document with the `fetched` section (no token unless --show-token)'
token\t'The token alone, without a newline'
export\t'`export NAME=\'TOKEN\'` for a POSIX shell'
executable\t'A google-auth executable-sourced credential response (subject tokens: JWT or SAML)'
gcloud\t'`export CLOUDSDK_AUTH_ACCESS_TOKEN_FILE=\'OUT\'` for gcloud (needs --out; prints no token)'"
complete -c wif-get -l subject-token-type -d 'With --format executable: the subject token type to report [default: from the token\'s claims]' -r -f -a "jwt\t'urn:ietf:params:oauth:token-type:jwt: a JWT that is not an ID token, e.g. an Azure AD access token'
id_token\t'urn:ietf:params:oauth:token-type:id_token: an OpenID Connect ID token'
saml2\t'urn:ietf:params:oauth:token-type:saml2: a base64 SAML 2.0 assertion'"
complete -c wif-get -l export-name -d 'With --format export: the variable name [default: GOOGLE_OAUTH_ACCESS_TOKEN, which Terraform reads]' -r
complete -c wif-get -l timeout -d 'Time-out for each attempt (connect, handshake, answer) [default: 30s]' -r
complete -c wif-get -l retries -d 'Retries after a connection failure or a 5xx answer (never after 4xx) [default: 3]' -r
complete -c wif-get -l max-time -d 'Give up once this much time has passed, attempts and retries included [default: 2m]' -r
complete -c wif-get -l metadata-server -d 'Keep running and answer like the GCE metadata server on this loopback ADDRESS:PORT (port 0: any free one)' -r
complete -c wif-get -l service-account -d 'With --metadata-server: the service account\'s email the token belongs to' -r
complete -c wif-get -l project-id -d 'With --metadata-server: the project id served at /computeMetadata/v1/project/project-id' -r
complete -c wif-get -l project-number -d 'With --metadata-server: the project number served at /computeMetadata/v1/project/numeric-project-id' -r
complete -c wif-get -l scopes -d 'With --metadata-server: the token\'s scopes, comma-separated [default: https://www.googleapis.com/auth/cloud-platform]' -r
complete -c wif-get -l config -d 'Config file (JSON object of settings; the document\'s own `config` wins over it)' -r -F
complete -c wif-get -l show-token -d 'With --format json: include the token in the `fetched` section'
complete -c wif-get -l force -d 'Print the token even when stdout is a terminal'
complete -c wif-get -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wif-get -s V -l version -d 'Print version'
