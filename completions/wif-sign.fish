complete -c wif-sign -l client-id -d 'Application (client) id: the assertion\'s iss and sub' -r
complete -c wif-sign -l tenant-id -d 'Azure AD tenant id or domain; the token endpoint is {authority}/{tenant}/oauth2/v2.0/token' -r
complete -c wif-sign -l key -d 'Private key: PEM (PKCS#8, PKCS#1 RSA, SEC1 EC) or PKCS#12 (.p12/.pfx)' -r -F
complete -c wif-sign -l cert -d 'Certificate (PEM or DER) registered with the identity provider; optional with a PKCS#12 key that holds it' -r -F
complete -c wif-sign -l key-password-file -d 'File whose first line is the PKCS#12 password' -r -F
complete -c wif-sign -l key-password-env -d 'Name of the environment variable holding the PKCS#12 password' -r
complete -c wif-sign -l authority -d 'Azure AD authority [default: https://login.microsoftonline.com]' -r
complete -c wif-sign -l audience -d 'The assertion\'s aud for issuers other than Azure AD (replaces the Azure token endpoint)' -r
complete -c wif-sign -l lifetime -d 'Assertion lifetime [default: 10m]' -r
complete -c wif-sign -l alg -d 'Signing algorithm [default: RS256 for RSA keys (PS256 with --thumbprint sha256), ES256/ES384 for EC keys]' -r -f -a "RS256\t'RSASSA-PKCS1-v1_5 with SHA-256 (RSA keys; MSAL\'s default)'
PS256\t'RSASSA-PSS with SHA-256 (RSA keys; pairs with x5t#S256)'
ES256\t'ECDSA P-256 with SHA-256'
ES384\t'ECDSA P-384 with SHA-384'"
complete -c wif-sign -l thumbprint -d 'Thumbprint header: x5t (sha1) or x5t#S256 (sha256) [default: sha1]' -r -f -a "sha1\t'`x5t`: SHA-1 of the certificate (what Azure AD shows and MSAL sends)'
sha256\t'`x5t#S256`: SHA-256 of the certificate (Azure\'s newer form, signed with PS256 for RSA)'"
complete -c wif-sign -l token-out -d 'Also write the token (exact bytes, mode 0600, atomically) to FILE, with FILE.meta.json beside it' -r -F
complete -c wif-sign -l config -d 'Config file (JSON object of settings; the document\'s own `config` wins over it)' -r -F
complete -c wif-sign -l x5c -d 'Also send the certificate chain in the x5c header (for subject-name/issuer registration)'
complete -c wif-sign -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wif-sign -s V -l version -d 'Print version'
