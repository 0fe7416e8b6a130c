//! `wif-impersonate`: trades the federated token for a service account's access token
//! (IAM Credentials `generateAccessToken`) or ID token (`generateIdToken`).

use crate::cli::{self, DocArgs, NetArgs, TokenOutArgs};
use crate::core::clock;
use crate::core::document::{AzureSection, Document, ImpersonatedSection, StsSection, TokenFields};
use crate::core::error::{Context, Error, Kind, Result};
use crate::core::help::Example;
use crate::core::secret::Secret;
use crate::core::settings::Settings;
use crate::http::{Body, Request};
use crate::protocol::hints;
use crate::protocol::oauth::{self, Service};
use clap::Parser;
use serde::Deserialize;
use serde_json::json;
use std::process::ExitCode;

const TOOL: &str = "wif-impersonate";

/// IAM Credentials API base URL.
pub const DEFAULT_ENDPOINT: &str = "https://iamcredentials.googleapis.com";
/// Lifetime asked for by default.
pub const DEFAULT_LIFETIME: &str = "3600s";
/// Longest lifetime IAM grants (with the org-policy exception).
pub const MAX_LIFETIME_SECS: u64 = 43_200;

/// What the manual page says beyond the flags.
pub const PAGE: crate::core::help::Page =
    crate::core::help::Page { examples: EXAMPLES, files: crate::core::help::TOKEN_FILES };

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
Adds the `impersonated` section; with --token-out the token alone goes to a file, atomically and with mode 0600, \
so wif-serve can publish it. On any failure the existing file is left exactly as it was.",
    after_help = crate::core::help::after_help("wif-impersonate", EXAMPLES)
)]
pub struct Cli {
    /// Service account email to impersonate [default: from the credential configuration's impersonation URL]
    #[arg(long, value_name = "EMAIL", env = "WIF_SERVICE_ACCOUNT")]
    pub service_account: Option<String>,
    /// IAM Credentials base URL [default: from the credential configuration's impersonation URL, else
    /// https://iamcredentials.googleapis.com]
    #[arg(long, value_name = "BASE_URL", env = "WIF_IAM_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Access token lifetime, 1s to 12h (over 1h needs the org-policy exception) [default: the credential
    /// configuration's service_account_impersonation.token_lifetime_seconds, else 3600s]
    #[arg(long, value_name = "DURATION", env = "WIF_IMPERSONATE_LIFETIME")]
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
    #[arg(long, value_name = "AUDIENCE", env = "WIF_ID_TOKEN_AUDIENCE")]
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessTokenResponse {
    access_token: Option<Secret>,
    expire_time: Option<String>,
}

#[derive(Deserialize)]
struct IdTokenResponse {
    token: Option<Secret>,
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
    let from_config = sts.service_account_impersonation_url.as_deref().and_then(split_impersonation_url);
    let default_endpoint = match (&from_config, &sts.universe_domain) {
        (Some((_, base)), _) => base.clone(),
        (None, Some(universe)) => format!("https://iamcredentials.{universe}"),
        (None, None) => DEFAULT_ENDPOINT.to_string(),
    };
    let base = s.pick_or(cli.endpoint.clone(), "iam_endpoint", default_endpoint)?;
    let service_account = match (s.pick::<String>(cli.service_account.clone(), "service_account")?, from_config) {
        (Some(sa), _) | (None, Some((sa, _))) => sa,
        (None, None) => {
            return Err(Error::usage("--service-account is required").hint(
                "give --service-account EMAIL, set WIF_SERVICE_ACCOUNT, or put \"service_account\" in the config",
            ))
        }
    };
    validate_email(&service_account)?;
    let id_token = cli.id_token || s.pick_or(None, "id_token", false)?;
    let base = base.trim_end_matches('/').to_string();
    let method = if id_token { "generateIdToken" } else { "generateAccessToken" };
    let url = format!("{base}/v1/projects/-/serviceAccounts/{service_account}:{method}");
    let delegates: Vec<String> =
        if cli.delegates.is_empty() { s.pick_or(None, "delegates", Vec::new())? } else { cli.delegates.clone() };
    let delegate_names: Vec<String> = delegates.iter().map(|d| format!("projects/-/serviceAccounts/{d}")).collect();

    let client = cli.net.client(TOOL, s)?;
    let doing = format!("impersonating {service_account} at {url}");
    let principal = principal(doc, &sts);
    let call = |mut body: serde_json::Value| {
        if !delegate_names.is_empty() {
            body["delegates"] = json!(delegate_names);
        }
        client
            .send(&Request {
                method: "POST",
                url: &url,
                headers: vec![],
                bearer: Some(&sts.token.token),
                body: Body::Json(&body),
            })
            .and_then(|r| oauth::check(r, Service::Iam))
            .map_err(|e| explain(e, &service_account, principal.as_deref()))
            .context(doing.clone())
    };

    let section = if id_token {
        let audience: String = s.require(cli.audience.clone(), "id_token_audience", "--audience")?;
        let include_email = cli.include_email || s.pick_or(None, "include_email", false)?;
        let resp = call(json!({ "audience": audience, "includeEmail": include_email }))?;
        let r: IdTokenResponse = resp.json().context(doing.clone())?;
        let token = r
            .token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::new(Kind::Unavailable, "the response has no token"))
            .context(doing.clone())?;
        oauth::check_token(&token, "token").context(doing.clone())?;
        let expires_at = crate::core::jwt::unverified_exp(token.expose()).map(clock::rfc3339);
        ImpersonatedSection {
            token: TokenFields { token, token_type: "id_token".into(), expires_at },
            endpoint: url.clone(),
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
        let lifetime = normalize_lifetime(
            &s.pick(cli.lifetime.clone(), "impersonate_lifetime")?
                .or(from_config)
                .unwrap_or_else(|| DEFAULT_LIFETIME.to_string()),
        )?;
        let scopes: Vec<String> = if cli.scopes.is_empty() {
            s.pick_or(None, "impersonate_scope", vec![crate::tools::sts::DEFAULT_SCOPE.to_string()])?
        } else {
            cli.scopes.clone()
        };
        let resp = call(json!({ "scope": scopes, "lifetime": lifetime }))?;
        let r: AccessTokenResponse = resp.json().context(doing.clone())?;
        let token = r
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::new(Kind::Unavailable, "the response has no accessToken"))
            .context(doing.clone())?;
        oauth::check_token(&token, "accessToken").context(doing.clone())?;
        let expires_at = match r.expire_time.as_deref() {
            Some(t) => Some(clock::rfc3339(expire_time(t).context(doing.clone())?)),
            None => None,
        };
        ImpersonatedSection {
            token: TokenFields { token, token_type: "access_token".into(), expires_at },
            endpoint: url.clone(),
            service_account,
            scope: Some(scopes),
            lifetime: Some(lifetime),
            audience: None,
            delegates,
        }
    };
    cli.token_out.write(TOOL, &section.token)?;
    doc.set(&section)
}

/// IAM's `expireTime` (RFC 3339) in Unix seconds, refused when it is not one or lies in the
/// past or absurdly far ahead (see [`oauth::check_expiry`]).
fn expire_time(text: &str) -> Result<i64> {
    let at = clock::parse_rfc3339(text).map_err(|_| {
        Error::new(Kind::Unavailable, format!("the expireTime in the answer, {text:?}, is not an RFC 3339 time"))
            .hint("IAM Credentials answers like 2026-01-31T12:00:00Z; is --endpoint an IAM Credentials API?")
    })?;
    oauth::check_expiry(at, clock::now_unix(), "expireTime")?;
    Ok(at)
}

/// Adds the IAM-specific hint (with the principal to bind) to a refusal.
fn explain(e: Error, service_account: &str, principal: Option<&str>) -> Error {
    let cause = e.cause().to_string();
    if cause.starts_with("PERMISSION_DENIED") || cause.contains("HTTP 403") {
        e.hint(hints::iam_permission_denied(service_account, principal))
    } else if cause.starts_with("UNAUTHENTICATED") || cause.contains("HTTP 401") {
        e.hint("IAM did not accept the federated token: it may have expired or be for another scope; run the pipeline again")
    } else if cause.starts_with("NOT_FOUND") {
        e.hint(format!("the service account {service_account} does not exist (check the email and project)"))
    } else if cause.starts_with("INVALID_ARGUMENT") && cause.to_ascii_lowercase().contains("lifetime") {
        e.hint("lifetimes over 3600s need the org policy constraints/iam.allowServiceAccountCredentialLifetimeExtension for this service account")
    } else {
        e
    }
}

/// The principal IAM sees, if the document tells (STS audience + the subject's `sub`).
fn principal(doc: &Document, sts: &StsSection) -> Option<String> {
    let az: AzureSection = doc.section().ok()??;
    let sub = az.claims?.sub?;
    hints::principal_for(&sts.audience, &sub)
}

/// Splits `https://HOST/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken`.
pub fn split_impersonation_url(url: &str) -> Option<(String, String)> {
    let i = url.find("/v1/projects/-/serviceAccounts/")?;
    let rest = &url[i + "/v1/projects/-/serviceAccounts/".len()..];
    let email = rest.split(':').next()?;
    (!email.is_empty()).then(|| (email.to_string(), url[..i].to_string()))
}

fn validate_email(sa: &str) -> Result<()> {
    let ok = sa.split_once('@').is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
        && !sa.contains(['/', ':', '?', '#', ' ']);
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!("{sa:?} is not a service account email"))
            .hint("like name@project-id.iam.gserviceaccount.com"))
    }
}

/// `secs` if IAM grants it as a token lifetime (1 s to 12 h); else why, naming `what` (the
/// setting that asked for it), for the caller to make a usage or input error of.
pub fn lifetime_in_range(secs: u64, what: &str) -> std::result::Result<u64, String> {
    if (1..=MAX_LIFETIME_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(format!(
            "{what} is out of range: IAM grants 1 to {MAX_LIFETIME_SECS} seconds (at most {MAX_LIFETIME_SECS}s, 12h)"
        ))
    }
}

/// Validates a lifetime (1 s to 12 h) and writes it as IAM wants it: `NNNs`.
pub fn normalize_lifetime(l: &str) -> Result<String> {
    let secs = lifetime_in_range(clock::parse_duration(l)?.as_secs(), &format!("--lifetime {l}")).map_err(|why| {
        Error::usage(why).hint("the default limit is 3600s; longer lifetimes need the org policy constraints/iam.allowServiceAccountCredentialLifetimeExtension")
    })?;
    if secs > 3600 {
        crate::core::diag::warn("lifetimes over 3600s are refused unless the org policy constraints/iam.allowServiceAccountCredentialLifetimeExtension lists this service account");
    }
    Ok(format!("{secs}s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(normalize_lifetime("3600s").unwrap(), "3600s");
        assert_eq!(normalize_lifetime("15m").unwrap(), "900s");
        assert!(normalize_lifetime("0s").is_err());
        assert!(normalize_lifetime("43201s").is_err());
    }

    #[test]
    fn impersonation_url() {
        let (sa, base) =
            split_impersonation_url("https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken").unwrap();
        assert_eq!(sa, "sa@p.iam.gserviceaccount.com");
        assert_eq!(base, "https://iamcredentials.googleapis.com");
        assert!(split_impersonation_url("https://x/other").is_none());
    }

    #[test]
    fn emails() {
        assert!(validate_email("sa@p.iam.gserviceaccount.com").is_ok());
        for bad in ["sa", "@p.com", "sa@p", "a/b@p.com", "sa@p.com:x"] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
