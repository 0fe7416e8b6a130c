complete -c wif-serve -l listen -d 'Address and port to listen on, e.g. 0.0.0.0:8443 or 127.0.0.1:0 (any free port)' -r
complete -c wif-serve -l cert -d 'Server certificate chain (PEM, leaf first)' -r -F
complete -c wif-serve -l key -d 'Server private key (PEM: PKCS#8, PKCS#1 or SEC1)' -r -F
complete -c wif-serve -l client-ca -d 'CA certificates (root and intermediates, PEM) that client certificates must chain to' -r -F
complete -c wif-serve -l token -d 'The token file to serve (written by --token-out, with FILE.meta.json beside it)' -r -F
complete -c wif-serve -l crl -d 'Certificate revocation list (PEM or DER) of a client CA; repeatable. Certificates whose issuer has no CRL here are not checked' -r -F
complete -c wif-serve -l allow -d 'Only serve clients with this identity: cn:NAME, dns:NAME, uri:URI, spki-sha256:HEX or cert-sha256:HEX; repeatable' -r
complete -c wif-serve -l handshake-timeout -d 'Time a client has to complete the TLS handshake [default: 10s]' -r
complete -c wif-serve -l idle-timeout -d 'Time a connection may stay silent before (or while) sending a request [default: 30s]' -r
complete -c wif-serve -l max-connections -d 'Most connections open at once. At the limit a new client takes the slot of the oldest connection still in its handshake (or idle between requests); when all are busy with requests it is closed at once. Both are logged [default: 256]' -r
complete -c wif-serve -l shutdown-timeout -d 'On SIGTERM, how long requests in progress may take to finish [default: 10s]' -r
complete -c wif-serve -l metrics-listen -d 'Also serve Prometheus metrics (GET /metrics) and health checks (GET /healthz, /livez) on this address, over plain HTTP without authentication, e.g. 127.0.0.1:9464 [default: off]. Keep it on loopback or a management network: another address draws a warning on stderr' -r
complete -c wif-serve -l config -d 'Config file (JSON object of settings; the document\'s own `config` wins over it)' -r -F
complete -c wif-serve -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wif-serve -s V -l version -d 'Print version'
