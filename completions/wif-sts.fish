complete -c wif-sts -l audience -d 'Workload identity provider: //iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/R' -r
complete -c wif-sts -l project-number -d 'Project number (digits) to build the audience from, with --pool and --provider' -r
complete -c wif-sts -l pool -d 'Workload identity pool id' -r
complete -c wif-sts -l provider -d 'Workload identity pool provider id' -r
complete -c wif-sts -l token-url -d 'STS token endpoint [default: https://sts.googleapis.com/v1/token]' -r
complete -c wif-sts -l scope -d 'Scope of the federated token [default: https://www.googleapis.com/auth/cloud-platform]' -r
complete -c wif-sts -l subject-token-type -d 'Subject token type: jwt, id_token, saml2, or a full urn:ietf:params:oauth:token-type:… [default: jwt]' -r
complete -c wif-sts -l options -d 'STS `options` as a JSON object, e.g. \'{"userProject":"my-project"}\'' -r
complete -c wif-sts -l credential-config -d 'gcloud / google-auth external_account credential configuration file' -r -F
complete -c wif-sts -l service-account -d 'With --print-credential-config: the service account the client libraries should impersonate (ignored otherwise, so one WIF_SERVICE_ACCOUNT can configure wif-sts and wif-impersonate)' -r
complete -c wif-sts -l iam-endpoint -d 'With --print-credential-config and --service-account: the IAM Credentials base URL of the impersonation URL, e.g. wif-emulate\'s or a private endpoint\'s (ignored otherwise) [default: https://iamcredentials.googleapis.com]' -r
complete -c wif-sts -l impersonation-lifetime -d 'With --print-credential-config and --service-account: the impersonated token\'s lifetime, written as service_account_impersonation.token_lifetime_seconds (ignored otherwise) [default: 3600s]' -r
complete -c wif-sts -l credential-file -d 'With --print-credential-config: the file holding the subject token (e.g. written by wif-azure --token-out); a relative path is written made absolute, so the configuration works from any directory' -r -F
complete -c wif-sts -l credential-url -d 'With --print-credential-config: a URL serving the subject token' -r
complete -c wif-sts -l credential-field -d 'With --print-credential-config: the JSON field holding the token in the file or URL content' -r
complete -c wif-sts -l cert -d 'X.509: the workload certificate, PEM (leaf first) or PKCS#12 [default: from the certificate configuration]' -r -F
complete -c wif-sts -l key -d 'X.509: the workload certificate\'s private key (PEM); omit it when --cert is a PKCS#12 file' -r -F
complete -c wif-sts -l key-password-file -d 'X.509: file whose first line is the PKCS#12 password' -r -F
complete -c wif-sts -l key-password-env -d 'X.509: name of the environment variable holding the PKCS#12 password' -r
complete -c wif-sts -l trust-chain -d 'X.509: PEM file of the intermediate CA certificates sent after the leaf (google-auth\'s trust_chain_path)' -r -F
complete -c wif-sts -l certificate-config -d 'X.509: Google\'s certificate_config.json naming the certificate and key when --cert is not given [default: the credential configuration\'s, else $GOOGLE_API_CERTIFICATE_CONFIG, else certificate_config.json in $CLOUDSDK_CONFIG or ~/.config/gcloud]' -r -F
complete -c wif-sts -l certificate-config-out -d 'With --print-credential-config --x509: also write certificate_config.json to FILE, and name it in the configuration (else it says use_default_certificate_config)' -r -F
complete -c wif-sts -l token-out -d 'Also write the token (exact bytes, mode 0600, atomically) to FILE, with FILE.meta.json beside it' -r -F
complete -c wif-sts -l timeout -d 'Time-out for each HTTP attempt, e.g. 30s [default: 30s]' -r
complete -c wif-sts -l retries -d 'Retries after a connection error, 429 or 5xx (never after other 4xx) [default: 3]' -r
complete -c wif-sts -l ca-file -d 'CA bundle (PEM) to trust for HTTPS instead of the built-in Mozilla roots' -r -F
complete -c wif-sts -l config -d 'Config file (JSON object of settings; the document\'s own `config` wins over it)' -r -F
complete -c wif-sts -l print-credential-config -d 'Print a google-auth / gcloud external_account credential configuration instead of exchanging'
complete -c wif-sts -l x509 -d 'X.509 federation: present the workload certificate to STS over mutual TLS instead of a subject token'
complete -c wif-sts -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wif-sts -s V -l version -d 'Print version'
