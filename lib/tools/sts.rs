//! `wif-sts`: the RFC 8693 token exchange at Google STS — a subject token for a federated
//! access token — plus gcloud/google-auth `external_account` credential configurations.

use crate::cli::{self, DocArgs, NetArgs, TokenOutArgs};
use crate::core::clock;
use crate::core::document::{AzureSection, Document, ImpersonationOptions, StsSection, TokenFields};
use crate::core::error::{Context, Error, Result};
use crate::core::help::Example;
use crate::core::secret::Secret;
use crate::core::settings::{key, FileSetting, Settings};
use crate::http;
use crate::protocol::external_account::{CredentialConfig, DEFAULT_UNIVERSE};
use crate::protocol::iam;
use crate::protocol::sts::{self, ExchangeRequest, DEFAULT_SCOPE, DEFAULT_TOKEN_URL, JWT_TOKEN_TYPE};
use crate::protocol::subject::{self, UrlSource};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

const TOOL: &str = "wif-sts";

/// What the manual page says beyond the flags.
pub const PAGE: crate::core::help::Page =
    crate::core::help::Page { examples: EXAMPLES, files: crate::core::help::CONFIG_FILES };

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
warning; executable, X.509 and AWS credential sources are refused.\n\n\
--print-credential-config writes such a file for client libraries that do the exchange themselves, with the \
pipeline's STS token URL and IAM Credentials endpoint (--iam-endpoint, WIF_IAM_ENDPOINT), so that it works \
against wif-emulate or a private endpoint too.\n\nAdds the `sts` section.",
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
    #[command(flatten)]
    pub token_out: TokenOutArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub doc: DocArgs,
}

/// Entry point of wif-sts.
pub fn main() -> ExitCode {
    let cli = cli::parse::<Cli>();
    if cli.print_credential_config {
        return cli::run(TOOL, || {
            let (_, settings) = cli.doc.load()?;
            let config = credential_config(&cli, &settings)?;
            let mut text = serde_json::to_string_pretty(&config).unwrap_or_default();
            text.push('\n');
            cli::write_stdout(text.as_bytes())
        });
    }
    cli::run_step(TOOL, &cli.doc, |doc, settings| run(&cli, doc, settings))
}

/// The workload identity provider audience from flags, settings or a credential configuration.
fn audience(cli: &Cli, s: &Settings, cred: Option<&CredentialConfig>) -> Result<String> {
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

/// A gcloud / google-auth `external_account` configuration for the same provider, so client
/// libraries can do the STS exchange (and impersonation) themselves from a token file or URL.
pub fn credential_config(cli: &Cli, s: &Settings) -> Result<serde_json::Value> {
    use serde_json::json;
    let audience = audience(cli, s, None)?;
    let token_url = s.pick_or(cli.token_url.clone(), key::STS_TOKEN_URL, DEFAULT_TOKEN_URL.to_string())?;
    let subject_token_type = match s.pick::<String>(cli.subject_token_type.clone(), key::SUBJECT_TOKEN_TYPE)? {
        Some(t) => sts::expand_token_type(&t)?,
        None => JWT_TOKEN_TYPE.to_string(),
    };
    let format = match &cli.credential_field {
        Some(f) => json!({"type": "json", "subject_token_field_name": f}),
        None => json!({"type": "text"}),
    };
    let source = match (&cli.credential_file, &cli.credential_url) {
        (Some(f), _) => {
            // A client library reads the file from its own working directory.
            let f = std::path::absolute(f).map_err(|e| Error::io(f, &e).context("making --credential-file absolute"))?;
            json!({"file": f, "format": format})
        }
        (None, Some(u)) => {
            http::check_url(u)?;
            json!({"url": u, "format": format})
        }
        (None, None) => {
            return Err(Error::usage("--credential-file or --credential-url is required with --print-credential-config")
                .hint("e.g. keep the Azure token fresh with `wif-sign … | wif-azure --token-out /var/lib/wif/azure.jwt` and give that file"))
        }
    };
    let mut config = json!({
        "universe_domain": "googleapis.com",
        "type": "external_account",
        "audience": audience,
        "subject_token_type": subject_token_type,
        "token_url": token_url,
        "credential_source": source,
    });
    http::check_url(&token_url).map_err(|e| e.context("checking the STS token URL"))?;
    if let Some(sa) = s.pick::<String>(cli.service_account.clone(), key::SERVICE_ACCOUNT)? {
        // The endpoint the pipeline's wif-impersonate uses, so that the file works against
        // wif-emulate or a private endpoint too.
        let base: String = s.pick_or(cli.iam_endpoint.clone(), key::IAM_ENDPOINT, iam::DEFAULT_ENDPOINT.to_string())?;
        http::check_url(&base).map_err(|e| e.context("checking the IAM Credentials endpoint"))?;
        config["service_account_impersonation_url"] =
            json!(iam::method_url(&base, &sa, iam::Method::GenerateAccessToken));
        if let Some(l) = s.pick::<String>(cli.impersonation_lifetime.clone(), key::IMPERSONATE_LIFETIME)? {
            let what = format!("--impersonation-lifetime {l}");
            let secs = iam::lifetime_in_range(clock::parse_duration(&l)?.as_secs(), &what).map_err(Error::usage)?;
            config["service_account_impersonation"] = json!({ "token_lifetime_seconds": secs });
        }
    }
    Ok(config)
}

/// Reads a credential configuration file, refuses what wif cannot honour, and warns once
/// about the fields it does not use.
pub fn read_credential_config(file: &FileSetting) -> Result<CredentialConfig> {
    let path = &file.path;
    let doing = format!("reading the credential configuration {}", path.display());
    let bytes = std::fs::read(path)
        .map_err(|e| Error::io(path, &e))
        .context(doing.clone())
        .map_err(file.explain("a gcloud / google-auth external_account credential configuration (JSON)"))?;
    let c: CredentialConfig = serde_json::from_slice(&bytes)
        .map_err(|e| {
            Error::input(format!("not an external_account configuration ({})", crate::core::document::scrub(&e)))
        })
        .context(doing.clone())?;
    let ignored = c.check().context(doing)?;
    if !ignored.is_empty() {
        crate::core::diag::warn(format!(
            "the credential configuration's {} {} not used by wif and ignored",
            ignored.join(", "),
            if ignored.len() == 1 { "is" } else { "are" }
        ));
    }
    Ok(c)
}

/// Exchanges the subject token and adds the `sts` section.
pub fn run(cli: &Cli, doc: &mut Document, s: &Settings) -> Result<()> {
    let cred = match s.pick_file(cli.credential_config.clone(), "credential_config", key::CREDENTIAL_CONFIG)? {
        Some(f) => Some(read_credential_config(&f)?),
        None => None,
    };
    let audience = audience(cli, s, cred.as_ref())?;
    let token_url: String = match s.pick(cli.token_url.clone(), key::STS_TOKEN_URL)? {
        Some(u) => u,
        None => cred.as_ref().map(CredentialConfig::token_url).unwrap_or_else(|| DEFAULT_TOKEN_URL.to_string()),
    };
    let scope = s.pick_or(cli.scope.clone(), key::STS_SCOPE, DEFAULT_SCOPE.to_string())?;
    let options = sts_options(s.pick(cli.options.clone(), key::STS_OPTIONS)?, cred.as_ref())?;

    let client = cli.net.client(TOOL, s)?;
    let (subject, from_doc_type) = subject_token(doc, cred.as_ref(), &client)?;
    let subject_token_type = match s.pick::<String>(cli.subject_token_type.clone(), key::SUBJECT_TOKEN_TYPE)? {
        Some(t) => sts::expand_token_type(&t)?,
        None => cred
            .as_ref()
            .and_then(|c| c.subject_token_type.clone())
            .or(from_doc_type)
            .unwrap_or_else(|| JWT_TOKEN_TYPE.into()),
    };

    let exchanged = sts::exchange(
        &client,
        &ExchangeRequest {
            url: &token_url,
            audience: &audience,
            scope: &scope,
            subject_token: &subject,
            subject_token_type: &subject_token_type,
            options: options.as_deref(),
        },
    )?;
    let section = StsSection {
        token: TokenFields {
            token: exchanged.token,
            token_type: exchanged.token_type,
            expires_at: Some(exchanged.expires_at.to_string()),
        },
        issued_token_type: exchanged.issued_token_type,
        endpoint: token_url,
        audience,
        scope,
        subject_token_type,
        service_account_impersonation_url: cred.as_ref().and_then(|c| c.service_account_impersonation_url.clone()),
        service_account_impersonation: cred
            .as_ref()
            .and_then(|c| c.service_account_impersonation.as_ref()?.token_lifetime_seconds)
            .map(|secs| ImpersonationOptions { token_lifetime_seconds: Some(secs) }),
        universe_domain: cred.as_ref().map(|c| c.universe().to_string()).filter(|u| u != DEFAULT_UNIVERSE),
    };
    cli.token_out.write(TOOL, &section.token)?;
    doc.set(&section)
}

/// The subject token: the document's `azure` section, else the credential source.
fn subject_token(
    doc: &Document,
    cred: Option<&CredentialConfig>,
    client: &http::Client,
) -> Result<(Secret, Option<String>)> {
    if let Some(az) = doc.section::<AzureSection>()? {
        // The section's expiry first: from a token endpoint's lifetime (expires_in) wif-azure
        // reckoned it by this machine's clock, so a clock that is off does not make a fresh
        // token look expired here; the token's `exp` (the issuer's clock) when there is none.
        let expiry = az.token.expires_at.as_deref().and_then(|t| clock::parse_rfc3339(t).ok());
        if let Some(exp) = expiry.or(az.claims.as_ref().and_then(|c| c.exp)) {
            if exp <= clock::now_unix() {
                return Err(Error::input(format!("the subject token expired at {}", clock::rfc3339(exp)))
                    .hint("run the pipeline again from wif-azure; STS refuses expired tokens (if this machine's clock is off, fix it: timedatectl)"));
            }
        }
        return Ok((az.token.token, Some(az.subject_token_type)));
    }
    let (Some(cred), Some(src)) = (cred, cred.and_then(|c| c.credential_source.as_ref())) else {
        return Err(Error::input("the document has no \"azure\" section")
            .hint("run wif-azure before wif-sts (… | wif-azure | wif-sts), or give --credential-config with a credential_source"));
    };
    let field = cred.source_field()?;
    let token = if let Some(path) = &src.file {
        subject::read_file(path, field.as_deref(), |e| e)?
    } else if let Some(url) = &src.url {
        let headers = src.headers.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        subject::fetch(client, UrlSource { url, headers, field: field.as_deref() })?
    } else {
        return Err(Error::input("credential_source has neither file nor url"));
    };
    if token.is_empty() {
        return Err(Error::input("the subject token from the credential source is empty"));
    }
    Ok((token, None))
}

/// The STS `options`: `--options` (a JSON object), plus a workforce pool's user project from
/// the credential configuration as `userProject` unless `--options` names one.
fn sts_options(given: Option<String>, cred: Option<&CredentialConfig>) -> Result<Option<String>> {
    let mut options = match &given {
        Some(o) => match serde_json::from_str::<serde_json::Value>(o) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return Err(Error::usage("--options must be a JSON object, e.g. '{\"userProject\":\"my-project\"}'")),
        },
        None => serde_json::Map::new(),
    };
    let Some(project) = cred.and_then(|c| c.workforce_pool_user_project.as_deref()) else { return Ok(given) };
    if options.contains_key("userProject") {
        return Ok(given);
    }
    options.insert("userProject".into(), project.into());
    Ok(Some(serde_json::Value::Object(options).to_string()))
}
