complete -c wif-azure -l scope -d 'v2 scope to request [default: api://CLIENT_ID/.default]' -r
complete -c wif-azure -l resource -d 'v1 resource (Azure AD v1 endpoint /oauth2/token, or IMDS)' -r
complete -c wif-azure -l token-url -d 'Token endpoint [default: the assertion\'s audience]' -r
complete -c wif-azure -l grant -d 'Grant type [default: client-credentials]' -r -f -a "client-credentials\t'client_credentials, authenticated by the assertion (or a client secret)'
jwt-bearer\t'urn:ietf:params:oauth:grant-type:jwt-bearer with the assertion as the grant (RFC 7523)'"
complete -c wif-azure -l audience -d 'Audience to request from a non-Azure issuer (or from GitHub Actions)' -r
complete -c wif-azure -l client-id -d 'Client id [default: the assertion\'s]' -r
complete -c wif-azure -l client-secret-file -d 'File whose first line is the client secret (instead of an assertion)' -r -F
complete -c wif-azure -l client-secret-env -d 'Name of the environment variable holding the client secret' -r
complete -c wif-azure -l from-file -d 'Take the subject token from a file (e.g. a Kubernetes projected token)' -r -F
complete -c wif-azure -l from-url -d 'Take the subject token from a URL (GET)' -r
complete -c wif-azure -l header -d 'Header for --from-url, as \'Name: value\' (repeatable)' -r
complete -c wif-azure -l field -d 'JSON field holding the token in --from-file/--from-url content [default: the whole content is the token]' -r
complete -c wif-azure -l imds-client-id -d 'Client id of a user-assigned managed identity (with --imds)' -r
complete -c wif-azure -l imds-endpoint -d 'IMDS token URL [default: http://169.254.169.254/metadata/identity/oauth2/token]' -r
complete -c wif-azure -l token-out -d 'Also write the token (exact bytes, mode 0600, atomically) to FILE, with FILE.meta.json beside it' -r -F
complete -c wif-azure -l timeout -d 'Time-out for each HTTP attempt, e.g. 30s [default: 30s]' -r
complete -c wif-azure -l retries -d 'Retries after a connection error, 429 or 5xx (never after other 4xx) [default: 3]' -r
complete -c wif-azure -l ca-file -d 'CA bundle (PEM) to trust for HTTPS instead of the built-in Mozilla roots' -r -F
complete -c wif-azure -l config -d 'Config file (JSON object of settings; the document\'s own `config` wins over it)' -r -F
complete -c wif-azure -l imds -d 'Get the token from Azure\'s instance metadata service (managed identity); needs --resource'
complete -c wif-azure -l github-actions -d 'Get a GitHub Actions OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN); --audience sets its aud'
complete -c wif-azure -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wif-azure -s V -l version -d 'Print version'
