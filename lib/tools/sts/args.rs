//! wif-sts's command line: its flags, examples, and the audience they give.

use crate::cli::{DocArgs, NetArgs, TokenOutArgs};
use crate::core::error::{Error, Result};
use crate::core::help::Example;
use crate::core::settings::{key, Settings};
use crate::protocol::external_account::CredentialConfig;
use crate::protocol::sts;
use clap::Parser;
use std::path::PathBuf;

/// The tool's name in messages.
pub const TOOL: &str = "wif-sts";

/// What the manual page says beyond the flags.
pub const PAGE: crate::core::help::Page =
    crate::core::help::Page { examples: EXAMPLES, files: crate::core::help::CONFIG_FILES, environment: &[] };

/// Examples shown in --help and the manual page.
pub const EXAMPLES: &[Example] = &[
    Example {
        about: "Exchange the Azure token for a federated token",
        cmd: "... | wif-azure | wif-sts --audience //iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/my-pool/providers/azure | wif-impersonate ...",
    },
    Example {
        about: "Build the audience from its parts and keep the federated token",
        cmd: "... | wif-sts --project-number 123456789 --pool my-pool --provider azure --token-out wif_token.txt",
    },
    Example {
        about: "Use a gcloud credential configuration (audience, token URL, credential source)",
        cmd: "wif-sts --credential-config clientLibraryConfig.json | wif-impersonate --token-out wif_token.txt",
    },
    Example {
        about: "Write a google-auth credential configuration for the same pool",
        cmd: "wif-sts --print-credential-config --audience $AUD --service-account $SA --credential-file /var/lib/wif/azure.jwt > clientLibraryConfig.json",
    },
    Example {
        about: "The same for wif-emulate (google-auth then talks to it), with 30-minute tokens",
        cmd: "wif-sts --print-credential-config --audience $AUD --token-url https://127.0.0.1:8443/v1/token --iam-endpoint https://127.0.0.1:8443 --service-account $SA --impersonation-lifetime 30m --credential-file azure.jwt > emulated.json",
    },
    Example {
        about: "X.509 federation: the workload certificate straight to STS over mutual TLS, no identity provider",
        cmd: "wif-sts --x509 --audience //iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/my-pool/providers/x509 --cert workload.crt --key workload.key --trust-chain intermediates.pem | wif-impersonate --service-account $SA --token-out wif_token.txt",
    },
    Example {
        about: "X.509 with the certificate named by gcloud's certificate_config.json (GOOGLE_API_CERTIFICATE_CONFIG, else ~/.config/gcloud/)",
        cmd: "wif-sts --x509 --audience $AUD --trust-chain intermediates.pem | wif-impersonate --service-account $SA",
    },
    Example {
        about: "Write the credential configuration and certificate_config.json google-auth and gcloud use for the X.509 path",
        cmd: "wif-sts --print-credential-config --x509 --audience $AUD --cert workload.crt --key workload.key --trust-chain intermediates.pem --service-account $SA --certificate-config-out certificate_config.json > clientLibraryConfig.json",
    },
];

/// Command line of wif-sts.
#[derive(Parser, Debug)]
#[command(
    name = "wif-sts",
    version,
    about = "Exchange the subject token for a federated Google access token at Google STS (RFC 8693)",
    long_about = "Exchange the subject token (the document's `azure` section) for a federated Google access token at \
Google's Security Token Service, as RFC 8693 and Workload Identity Federation define it: grant_type token-exchange, \
the workload identity provider as audience, the scope, requested_token_type access_token, subject_token and \
subject_token_type.\n\n\
The audience is given whole (--audience) or built from --project-number, --pool and --provider. A gcloud / \
google-auth `external_account` credential configuration (--credential-config) can supply the audience, token_url \
(else the STS of its universe_domain), subject_token_type, the credential_source (a file or a URL, with headers, \
as text or JSON) and a workforce pool's workforce_pool_user_project (sent as options.userProject); flags and \
settings win over it. Its service_account_impersonation_url, service_account_impersonation.token_lifetime_seconds \
and a universe_domain other than googleapis.com go into the `sts` section for wif-impersonate, whose own settings \
win over them. Fields wif has no use for (client_id, quota_project_id, token_info_url, …) are named in one \
warning; executable and AWS credential sources are refused.\n\n\
X.509 federation (--x509, or a credential configuration whose credential_source is a `certificate`): no identity \
provider and no document needed. The workload certificate (--cert and --key, PEM or PKCS#12; else the \
certificate_config.json named by --certificate-config / GOOGLE_API_CERTIFICATE_CONFIG, else gcloud's \
$CLOUDSDK_CONFIG or ~/.config/gcloud/certificate_config.json) is presented to STS over mutual TLS \
(default https://sts.mtls.googleapis.com/v1/token), and the subject token is google-auth's: the JSON list of the \
base64 DER certificates, the leaf first, then --trust-chain's. The provider's trust store must lead from them to one \
of its anchors. The `sts` section records path \"x509\" and the certificate (SHA-256, subject, expiry and its files), \
and wif-impersonate then presents the same certificate at https://iamcredentials.mtls.googleapis.com. An expired \
certificate, or a key that is not the certificate's, is refused before any request.\n\n\
--print-credential-config writes such a file for client libraries that do the exchange themselves, with the \
pipeline's STS token URL and IAM Credentials endpoint (--iam-endpoint, WIF_IAM_ENDPOINT), so that it works \
against wif-emulate or a private endpoint too. With --x509 it writes the certificate variant \
(credential_source.certificate, subject_token_type urn:ietf:params:oauth:token-type:mtls, the mTLS endpoints), and \
--certificate-config-out FILE writes the certificate_config.json it names.\n\nAdds the `sts` section.",
    after_help = crate::core::help::after_help("wif-sts", EXAMPLES)
)]
pub struct Cli {
    /// Workload identity provider: //iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/R
    #[arg(long, value_name = "AUDIENCE", env = key::STS_AUDIENCE.env)]
    pub audience: Option<String>,
    /// Project number (digits) to build the audience from, with --pool and --provider
    #[arg(long, value_name = "N", env = key::PROJECT_NUMBER.env)]
    pub project_number: Option<String>,
    /// Workload identity pool id
    #[arg(long, value_name = "POOL", env = key::POOL.env)]
    pub pool: Option<String>,
    /// Workload identity pool provider id
    #[arg(long, value_name = "PROVIDER", env = key::PROVIDER.env)]
    pub provider: Option<String>,
    /// STS token endpoint [default: https://sts.googleapis.com/v1/token]
    #[arg(long, value_name = "URL", env = key::STS_TOKEN_URL.env)]
    pub token_url: Option<String>,
    /// Scope of the federated token [default: https://www.googleapis.com/auth/cloud-platform]
    #[arg(long, value_name = "SCOPE", env = key::STS_SCOPE.env)]
    pub scope: Option<String>,
    /// Subject token type: jwt, id_token, saml2, or a full urn:ietf:params:oauth:token-type:… [default: jwt]
    #[arg(long, value_name = "TYPE", env = key::SUBJECT_TOKEN_TYPE.env)]
    pub subject_token_type: Option<String>,
    /// STS `options` as a JSON object, e.g. '{"userProject":"my-project"}'
    #[arg(long, value_name = "JSON", env = key::STS_OPTIONS.env)]
    pub options: Option<String>,
    /// gcloud / google-auth external_account credential configuration file
    #[arg(long, value_name = "FILE", env = key::CREDENTIAL_CONFIG.env)]
    pub credential_config: Option<PathBuf>,
    /// Print a google-auth / gcloud external_account credential configuration instead of exchanging
    #[arg(long)]
    pub print_credential_config: bool,
    /// With --print-credential-config: the service account the client libraries should impersonate
    /// (ignored otherwise, so one WIF_SERVICE_ACCOUNT can configure wif-sts and wif-impersonate)
    #[arg(long, value_name = "EMAIL", env = key::SERVICE_ACCOUNT.env)]
    pub service_account: Option<String>,
    /// With --print-credential-config and --service-account: the IAM Credentials base URL of the
    /// impersonation URL, e.g. wif-emulate's or a private endpoint's (ignored otherwise)
    /// [default: https://iamcredentials.googleapis.com]
    #[arg(long, value_name = "BASE_URL", env = key::IAM_ENDPOINT.env)]
    pub iam_endpoint: Option<String>,
    /// With --print-credential-config and --service-account: the impersonated token's lifetime,
    /// written as service_account_impersonation.token_lifetime_seconds (ignored otherwise) [default: 3600s]
    #[arg(long, value_name = "DURATION", env = key::IMPERSONATE_LIFETIME.env)]
    pub impersonation_lifetime: Option<String>,
    /// With --print-credential-config: the file holding the subject token (e.g. written by wif-azure --token-out);
    /// a relative path is written made absolute, so the configuration works from any directory
    #[arg(long, value_name = "FILE", requires = "print_credential_config", conflicts_with = "credential_url")]
    pub credential_file: Option<PathBuf>,
    /// With --print-credential-config: a URL serving the subject token
    #[arg(long, value_name = "URL", requires = "print_credential_config")]
    pub credential_url: Option<String>,
    /// With --print-credential-config: the JSON field holding the token in the file or URL content
    #[arg(long, value_name = "NAME", requires = "print_credential_config")]
    pub credential_field: Option<String>,
    /// X.509 federation: present the workload certificate to STS over mutual TLS instead of a subject token
    #[arg(long, env = key::X509.env)]
    pub x509: bool,
    /// X.509: the workload certificate, PEM (leaf first) or PKCS#12 [default: from the certificate configuration]
    #[arg(long, value_name = "FILE", env = key::X509_CERT.env)]
    pub cert: Option<PathBuf>,
    /// X.509: the workload certificate's private key (PEM); omit it when --cert is a PKCS#12 file
    #[arg(long, value_name = "FILE", env = key::X509_KEY.env)]
    pub key: Option<PathBuf>,
    /// X.509: file whose first line is the PKCS#12 password
    #[arg(long, value_name = "FILE", env = key::X509_KEY_PASSWORD_FILE.env, conflicts_with = "key_password_env")]
    pub key_password_file: Option<PathBuf>,
    /// X.509: name of the environment variable holding the PKCS#12 password
    #[arg(long, value_name = "VAR", env = key::X509_KEY_PASSWORD_ENV.env)]
    pub key_password_env: Option<String>,
    /// X.509: PEM file of the intermediate CA certificates sent after the leaf (google-auth's trust_chain_path)
    #[arg(long, value_name = "FILE", env = key::TRUST_CHAIN.env)]
    pub trust_chain: Option<PathBuf>,
    /// X.509: Google's certificate_config.json naming the certificate and key when --cert is not given
    /// [default: the credential configuration's, else $GOOGLE_API_CERTIFICATE_CONFIG, else
    /// certificate_config.json in $CLOUDSDK_CONFIG or ~/.config/gcloud]
    #[arg(long, value_name = "FILE", env = key::CERTIFICATE_CONFIG.env)]
    pub certificate_config: Option<PathBuf>,
    /// With --print-credential-config --x509: also write certificate_config.json to FILE, and name it
    /// in the configuration (else it says use_default_certificate_config)
    #[arg(long, value_name = "FILE", requires = "print_credential_config")]
    pub certificate_config_out: Option<PathBuf>,
    #[command(flatten)]
    pub token_out: TokenOutArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub doc: DocArgs,
}
/// The workload identity provider audience from flags, settings or a credential configuration.
pub fn audience(cli: &Cli, s: &Settings, cred: Option<&CredentialConfig>) -> Result<String> {
    let audience = match s.pick::<String>(cli.audience.clone(), key::STS_AUDIENCE)? {
        Some(a) => a,
        None => match (
            s.pick::<String>(cli.project_number.clone(), key::PROJECT_NUMBER)?,
            s.pick::<String>(cli.pool.clone(), key::POOL)?,
            s.pick::<String>(cli.provider.clone(), key::PROVIDER)?,
        ) {
            (Some(n), Some(p), Some(r)) => sts::build_audience(&n, &p, &r),
            (None, None, None) => match cred {
                Some(c) => c.audience.clone(),
                None => {
                    return Err(Error::usage("--audience is required").hint(
                        "give --audience //iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/R, or --project-number, --pool and --provider",
                    ))
                }
            },
            _ => return Err(Error::usage("--project-number, --pool and --provider go together; give all three")),
        },
    };
    sts::validate_audience(&audience)?;
    Ok(audience)
}
