complete -c wif-inspect -l token-file -d 'A token file (as written by --token-out or wif-get --out) and its FILE.meta.json' -r -F
complete -c wif-inspect -l claim -d 'Print only this claim of the chosen JWT (a string as is, anything else as JSON)' -r
complete -c wif-inspect -l section -d 'Only the token of this document section: assertion, azure, sts, impersonated, fetched' -r
complete -c wif-inspect -l cert -d 'Certificate (PEM or DER) to describe: thumbprints, subject, validity' -r -F
complete -c wif-inspect -l key -d 'With --cert: check that this private key (PEM or PKCS#12) belongs to the certificate' -r -F
complete -c wif-inspect -l key-password-file -d 'File whose first line is the PKCS#12 password (for --key)' -r -F
complete -c wif-inspect -l key-password-env -d 'Name of the environment variable holding the PKCS#12 password (for --key)' -r
complete -c wif-inspect -l jwks -d 'JSON Web Key Set to verify with: a file, or a URL (https, or http on loopback); an OpenID discovery URL works too' -r
complete -c wif-inspect -l verify-cert -d 'Certificate (PEM or DER) whose public key must have signed the JWTs' -r -F
complete -c wif-inspect -l verify -d 'Verify JWT signatures (needs --jwks or --verify-cert; either alone implies it)'
complete -c wif-inspect -l json -d 'Machine-readable output (one JSON object)'
complete -c wif-inspect -l show-secrets -d 'Also print raw tokens and JWT signatures'
complete -c wif-inspect -l redact -d 'Print the document itself (or with --section, that section) with every token shortened: what to paste into a bug report or a terminal'
complete -c wif-inspect -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wif-inspect -s V -l version -d 'Print version'
