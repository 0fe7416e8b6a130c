complete -c wif-emulate -l config -d 'Emulator configuration (JSON; see --print-example-config)' -r -F
complete -c wif-emulate -l listen -d 'Plain HTTP listen address (loopback) [default: 127.0.0.1:0, a free port]' -r
complete -c wif-emulate -l tls-listen -d 'Also listen with TLS on this address (needs --tls-cert and --tls-key)' -r
complete -c wif-emulate -l tls-cert -d 'TLS certificate chain (PEM) for --tls-listen' -r -F
complete -c wif-emulate -l tls-key -d 'TLS private key (PEM) for --tls-listen' -r -F
complete -c wif-emulate -l fail-first -d 'Fault injection: answer the first N requests with 503 and Retry-After' -r
complete -c wif-emulate -l delay -d 'Fault injection: wait this long before answering each request, e.g. 2s' -r
complete -c wif-emulate -l fault -d 'Fault injection per service: SERVICE=KIND[:N], SERVICE azure, issuer, sts, sts-x509, iam, storage, kubernetes or github; KIND unavailable (503, Retry-After: 1), refused (the service\'s own refusal) or reset (the connection closed unanswered); :N only the first N requests (repeatable)' -r
complete -c wif-emulate -l clock-offset -d 'Run the emulator\'s clock this far ahead of the machine\'s (negative: behind), e.g. 10m or -10m: every time check, issued timestamp and Date header follows it' -r
complete -c wif-emulate -l token-lifetime -d 'Lifetime of every issued token, e.g. 30s (overrides the config\'s token_lifetime)' -r
complete -c wif-emulate -l allow-remote -d 'Allow listening on addresses other than loopback'
complete -c wif-emulate -l print-example-config -d 'Print an example configuration and exit'
complete -c wif-emulate -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wif-emulate -s V -l version -d 'Print version'
