//! `wif-impersonate`: trades the federated token for a service account's access token
//! (IAM Credentials `generateAccessToken`) or ID token (`generateIdToken`).

use crate::cli::{self, DocArgs, NetArgs, TokenOutArgs};
use crate::core::clock;
use crate::core::document::{
    AzureSection, Document, ImpersonatedSection, StsSection, TokenFields, WorkloadCertificate,
};
use crate::core::error::{Context, Error, Result};
use crate::core::help::Example;
use crate::core::settings::{key, Settings};
use crate::http::ClientIdentity;
use crate::protocol::iam::{self, Ask, Impersonation};
use crate::protocol::x509::{self, WorkloadFiles};
use crate::protocol::{hints, sts};
use clap::Parser;
use std::process::ExitCode;

const TOOL: &str = "wif-impersonate";

/// What the manual page says beyond the flags.
pub const PAGE: crate::core::help::Page =
    crate::core::help::Page { examples: EXAMPLES, files: crate::core::help::TOKEN_FILES, environment: &[] };

/// Examples shown in --help and the manual page.
pub const EXAMPLES: &[Example] = &[
    Example {
        about: "Impersonate a service account and publish the token file",
        cmd: "... | wif-sts ... | wif-impersonate --service-account deployer@my-project.iam.gserviceaccount.com --token-out wif_token.txt",
    },
    Example {
        about: "A narrower scope and a shorter lifetime",
        cmd: "... | wif-impersonate --service-account sa@p.iam.gserviceaccount.com --scope https://www.googleapis.com/auth/devstorage.read_only --lifetime 15m",
    },
    Example {
        about: "An ID token for Cloud Run or IAP",
        cmd: "... | wif-impersonate --service-account sa@p.iam.gserviceaccount.com --id-token --audience https://my-service.run.app --include-email",
    },
];

/// Command line of wif-impersonate.
#[derive(Parser, Debug)]
#[command(
    name = "wif-impersonate",
    version,
    about = "Impersonate a service account with the federated token (IAM Credentials) and write wif_token.txt",
    long_about = "Impersonate a Google service account: call IAM Credentials generateAccessToken (or generateIdToken \
with --id-token) with the federated token from wif-sts as the bearer. The federated principal needs \
roles/iam.workloadIdentityUser on the service account.\n\n\
After wif-sts's X.509 path (the `sts` section's path \"x509\"), the same workload certificate is presented \
again, over mutual TLS, and the default endpoint is https://iamcredentials.mtls.googleapis.com.\n\n\
Adds the `impersonated` section; with --token-out the token alone goes to a file, atomically and with mode 0600, \
so wif-serve can publish it. On any failure the existing file is left exactly as it was.",
    after_help = crate::core::help::after_help("wif-impersonate", EXAMPLES)
)]
pub struct Cli {
    /// Service account email to impersonate [default: from the credential configuration's impersonation URL]
    #[arg(long, value_name = "EMAIL", env = key::SERVICE_ACCOUNT.env)]
    pub service_account: Option<String>,
    /// IAM Credentials base URL [default: from the credential configuration's impersonation URL, else
    /// https://iamcredentials.mtls.googleapis.com after the X.509 path, else https://iamcredentials.googleapis.com]
    #[arg(long, value_name = "BASE_URL", env = key::IAM_ENDPOINT.env)]
    pub endpoint: Option<String>,
    /// Access token lifetime, 1s to 12h (over 1h needs the org-policy exception) [default: the credential
    /// configuration's service_account_impersonation.token_lifetime_seconds, else 3600s]
    #[arg(long, value_name = "DURATION", env = key::IMPERSONATE_LIFETIME.env)]
    pub lifetime: Option<String>,
    /// OAuth scope of the access token (repeatable) [default: https://www.googleapis.com/auth/cloud-platform]
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Delegate service account in the delegation chain (repeatable)
    #[arg(long = "delegate", value_name = "EMAIL")]
    pub delegates: Vec<String>,
    /// Ask for an OpenID Connect ID token (generateIdToken) instead of an access token
    #[arg(long, requires = "audience")]
    pub id_token: bool,
    /// Audience of the ID token (with --id-token)
    #[arg(long, value_name = "AUDIENCE", env = key::ID_TOKEN_AUDIENCE.env)]
    pub audience: Option<String>,
    /// Include the service account's email in the ID token (with --id-token)
    #[arg(long, requires = "id_token")]
    pub include_email: bool,
    #[command(flatten)]
    pub token_out: TokenOutArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub doc: DocArgs,
}

/// Entry point of wif-impersonate.
pub fn main() -> ExitCode {
    let cli = cli::parse::<Cli>();
    cli::run_step(TOOL, &cli.doc, |doc, settings| run(&cli, doc, settings))
}

/// Impersonates the service account and adds the `impersonated` section.
pub fn run(cli: &Cli, doc: &mut Document, s: &Settings) -> Result<()> {
    let sts: StsSection = doc.require()?;
    // It goes into the Authorization header as it is.
    if let Some(flaw) = crate::core::token::token_flaw(sts.token.token.expose()) {
        return Err(Error::input(format!("the document's federated token (sts.token) {flaw}"))
            .hint("run wif-sts again; a token is visible ASCII only"));
    }
    if let Some(exp) = sts.token.expires_at.as_deref().and_then(|e| clock::parse_rfc3339(e).ok()) {
        if exp <= clock::now_unix() {
            return Err(Error::input(format!("the federated token expired at {}", clock::rfc3339(exp)))
                .hint("run the pipeline again from the start"));
        }
    }
    // What wif-sts carried from a credential configuration: the impersonation URL (its
    // service account and IAM endpoint) or, in another universe, the endpoint there.
    let from_config = sts.service_account_impersonation_url.as_deref().and_then(iam::split_impersonation_url);
    let default_endpoint = match (&from_config, &sts.universe_domain) {
        (Some((_, base)), _) => base.clone(),
        (None, Some(universe)) => format!("https://iamcredentials.{universe}"),
        (None, None) if sts.certificate.is_some() => x509::DEFAULT_MTLS_IAM_ENDPOINT.to_string(),
        (None, None) => iam::DEFAULT_ENDPOINT.to_string(),
    };
    let base = s.pick_or(cli.endpoint.clone(), key::IAM_ENDPOINT, default_endpoint)?;
    let service_account = match (s.pick::<String>(cli.service_account.clone(), key::SERVICE_ACCOUNT)?, from_config) {
        (Some(sa), _) | (None, Some((sa, _))) => sa,
        (None, None) => {
            return Err(Error::usage("--service-account is required").hint(
                "give --service-account EMAIL, set WIF_SERVICE_ACCOUNT, or put \"service_account\" in the config",
            ))
        }
    };
    iam::validate_email(&service_account)?;
    let id_token = cli.id_token || s.pick_or(None, key::ID_TOKEN, false)?;
    let base = base.trim_end_matches('/').to_string();
    let delegates: Vec<String> =
        if cli.delegates.is_empty() { s.pick_or(None, key::DELEGATES, Vec::new())? } else { cli.delegates.clone() };

    let identity = sts.certificate.as_ref().map(workload_identity).transpose()?;
    let client = cli.net.client_presenting(TOOL, s, identity)?;
    let principal = principal(doc, &sts);
    let who = Impersonation {
        endpoint: &base,
        service_account: &service_account,
        delegates: &delegates,
        bearer: &sts.token.token,
        principal: principal.as_deref(),
    };
    let section = if id_token {
        let audience: String = s.require(cli.audience.clone(), key::ID_TOKEN_AUDIENCE, "--audience")?;
        let include_email = cli.include_email || s.pick_or(None, key::INCLUDE_EMAIL, false)?;
        let generated = iam::generate(&client, &who, &Ask::IdToken { audience: &audience, include_email })?;
        ImpersonatedSection {
            token: TokenFields {
                token: generated.token,
                token_type: "id_token".into(),
                expires_at: generated.expires_at.map(|t| t.to_string()),
            },
            endpoint: generated.url,
            service_account,
            scope: None,
            lifetime: None,
            audience: Some(audience),
            delegates,
        }
    } else {
        // Its own settings first, then what wif-sts carried from a credential configuration.
        let from_config =
            sts.service_account_impersonation.as_ref().and_then(|o| o.token_lifetime_seconds).map(|n| format!("{n}s"));
        let lifetime_secs = lifetime(
            &s.pick(cli.lifetime.clone(), key::IMPERSONATE_LIFETIME)?
                .or(from_config)
                .unwrap_or_else(|| iam::DEFAULT_LIFETIME.to_string()),
        )?;
        let scopes: Vec<String> = if cli.scopes.is_empty() {
            s.pick_or(None, key::IMPERSONATE_SCOPE, vec![sts::DEFAULT_SCOPE.to_string()])?
        } else {
            cli.scopes.clone()
        };
        let generated = iam::generate(&client, &who, &Ask::AccessToken { scopes: &scopes, lifetime_secs })?;
        ImpersonatedSection {
            token: TokenFields {
                token: generated.token,
                token_type: "access_token".into(),
                expires_at: generated.expires_at.map(|t| t.to_string()),
            },
            endpoint: generated.url,
            service_account,
            scope: Some(scopes),
            lifetime: Some(format!("{lifetime_secs}s")),
            audience: None,
            delegates,
        }
    };
    cli.token_out.write(TOOL, &section.token)?;
    doc.set(&section)
}

/// On the X.509 path, the workload certificate wif-sts presented, presented again: IAM
/// Credentials' mTLS endpoint binds the call to it.
fn workload_identity(c: &WorkloadCertificate) -> Result<ClientIdentity> {
    let workload =
        WorkloadFiles::recorded(c).load().context("presenting the workload certificate of the X.509 path")?;
    if workload.facts.sha256 != c.sha256 {
        return Err(Error::input(format!("{} is no longer the certificate wif-sts presented", c.cert_file.display()))
            .hint("the certificate was renewed in between: run the pipeline again from wif-sts"));
    }
    Ok(workload.identity())
}

/// The principal IAM sees, if the document tells (STS audience + the subject's `sub`).
fn principal(doc: &Document, sts: &StsSection) -> Option<String> {
    let az: AzureSection = doc.section().ok()??;
    let sub = az.claims?.sub?;
    hints::principal_for(&sts.audience, &sub)
}

/// Validates a lifetime (1 s to 12 h) in seconds, warning over an hour (the org-policy exception).
fn lifetime(l: &str) -> Result<u64> {
    let secs = iam::lifetime_in_range(clock::parse_duration(l)?.as_secs(), &format!("--lifetime {l}")).map_err(|why| {
        Error::usage(why).hint("the default limit is 3600s; longer lifetimes need the org policy constraints/iam.allowServiceAccountCredentialLifetimeExtension")
    })?;
    if secs > iam::DEFAULT_MAX_LIFETIME_SECS {
        crate::core::diag::warn("lifetimes over 3600s are refused unless the org policy constraints/iam.allowServiceAccountCredentialLifetimeExtension lists this service account");
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(lifetime("3600s").unwrap(), 3600);
        assert_eq!(lifetime("15m").unwrap(), 900);
        assert!(lifetime("0s").is_err());
        assert!(lifetime("43201s").is_err());
    }
}
