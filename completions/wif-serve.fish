complete -c wif-serve -l listen -d 'Address and port to listen on, e.g. 0.0.0.0:8443 or 127.0.0.1:0 (any free port)' -r
complete -c wif-serve -l cert -d 'Server certificate chain (PEM, leaf first)' -r -F
complete -c wif-serve -l key -d 'Server private key (PEM: PKCS#8, PKCS#1 or SEC1)' -r -F
complete -c wif-serve -l client-ca -d 'CA certificates (root and intermediates, PEM) that client certificates must chain to' -r -F
complete -c wif-serve -l token -d 'The token file to serve (written by --token-out, with FILE.meta.json beside it); with --policy, the token source called "default"' -r -F
complete -c wif-serve -l assume-ttl -d 'Lifetime assumed for a token file without FILE.meta.json (as the seed\'s generator writes it), counted from its modification time; 0: never serve such a file [default: 55m, the seed\'s refresh period]' -r
complete -c wif-serve -l crl -d 'Certificate revocation list (PEM or DER) of a client CA; repeatable. Certificates whose issuer has no CRL here are not checked' -r -F
complete -c wif-serve -l allow -d 'Only serve clients with this identity: cn:NAME, dns:NAME, uri:URI, spki-sha256:HEX or cert-sha256:HEX; repeatable' -r
complete -c wif-serve -l handshake-timeout -d 'Time a client has to complete the TLS handshake [default: 10s]' -r
complete -c wif-serve -l idle-timeout -d 'Time a connection may stay silent before (or while) sending a request [default: 30s]' -r
complete -c wif-serve -l header-timeout -d 'Time a client has, from the first byte of a request, to send its request line and headers (the request must also be complete within --idle-timeout) [default: 5s]' -r
complete -c wif-serve -l max-connection-age -d 'Longest a connection stays open, however active: after it the connection is closed after its current answer, and the client reconnects and is verified afresh [default: 10m]' -r
complete -c wif-serve -l max-connections -d 'Most connections open at once. At the limit a new client takes the slot of a connection refused after its handshake, else one still in its handshake, else one idle between requests, else one whose request or answer has taken over a second (oldest first); a client\'s first second after its handshake, and answers it takes at once, are never cut. When no connection can give way the new one is closed at once. Both are logged [default: 256]' -r
complete -c wif-serve -l max-connections-per-client -d 'Most connections one verified client (one certificate) may hold at once. Beyond it one of the client\'s own connections gives way by the rules of --max-connections, else the new connection is answered 503 with Retry-After: 1 and closed. A fleet of hosts sharing one certificate that fetch at the same moment needs room for its burst [default: a quarter of --max-connections]' -r
complete -c wif-serve -l max-connections-per-address -d 'Most connections from one IP address at once, counted from accept. Beyond it that address\'s own oldest waiting connection gives way, else the new one is closed. Off by default: clients behind NAT or a load balancer share an address [default: no limit]' -r
complete -c wif-serve -l shutdown-timeout -d 'On SIGTERM, how long requests in progress may take to finish [default: 10s]' -r
complete -c wif-serve -l metrics-listen -d 'Also serve Prometheus metrics (GET /metrics) and health checks (GET /healthz, /livez) on this address, over plain HTTP without authentication, e.g. 127.0.0.1:9464 [default: off]. Keep it on loopback or a management network: another address draws a warning on stderr' -r
complete -c wif-serve -l policy -d 'Per-client credentials: a JSON policy whose first rule matching the client certificate picks a token source and an optional Credential Access Boundary, applied by downscoping at --sts-endpoint; a client no rule matches gets 403. Re-read when it changes and on SIGHUP (a bad new policy is refused, the old one stays) [default: every allowed client gets the --token file]' -r -F
complete -c wif-serve -l sts-endpoint -d 'The STS token endpoint that downscopes tokens for --policy rules with an access_boundary [default: https://sts.googleapis.com/v1/token]' -r
complete -c wif-serve -l sts-ca-file -d 'CA bundle (PEM) to trust for --sts-endpoint instead of the built-in Mozilla roots' -r -F
complete -c wif-serve -l sts-timeout -d 'Time-out of one downscoping call at --sts-endpoint (one quick retry within it); past it the client gets 503 with Retry-After [default: 10s]' -r
complete -c wif-serve -l ledger -d 'Issuance ledger: append one JSON line per credential handed out (client identity, rule, token digests, boundary digest, expiry, cache or STS; never a token) to FILE, created 0600 [default: with --policy, on stdout among the log lines; without, none]' -r -F
complete -c wif-serve -l config -d 'Config file (JSON object of settings; the document\'s own `config` wins over it)' -r -F
complete -c wif-serve -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wif-serve -s V -l version -d 'Print version'
