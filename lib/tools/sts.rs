//! `wif-sts`: the RFC 8693 token exchange at Google STS — a subject token for a federated
//! access token — plus gcloud/google-auth `external_account` credential configurations.

use crate::cli::{self, DocArgs, NetArgs, TokenOutArgs};
use crate::core::clock;
use crate::core::document::{AzureSection, Document, ImpersonationOptions, StsSection, TokenFields};
use crate::core::error::{Context, Error, Result};
use crate::core::help::Example;
use crate::core::secret::Secret;
use crate::core::settings::{FileSetting, Settings};
use crate::http::{self, Body, Request};
use crate::protocol::oauth::{self, Service, TokenResponse};
use clap::Parser;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

const TOOL: &str = "wif-sts";

/// Google's STS token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://sts.googleapis.com/v1/token";
/// The scope asked for by default.
pub const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

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
    #[arg(long, value_name = "AUDIENCE", env = "WIF_STS_AUDIENCE")]
    pub audience: Option<String>,
    /// Project number (digits) to build the audience from, with --pool and --provider
    #[arg(long, value_name = "N", env = "WIF_PROJECT_NUMBER")]
    pub project_number: Option<String>,
    /// Workload identity pool id
    #[arg(long, value_name = "POOL", env = "WIF_POOL")]
    pub pool: Option<String>,
    /// Workload identity pool provider id
    #[arg(long, value_name = "PROVIDER", env = "WIF_PROVIDER")]
    pub provider: Option<String>,
    /// STS token endpoint [default: https://sts.googleapis.com/v1/token]
    #[arg(long, value_name = "URL", env = "WIF_STS_TOKEN_URL")]
    pub token_url: Option<String>,
    /// Scope of the federated token [default: https://www.googleapis.com/auth/cloud-platform]
    #[arg(long, value_name = "SCOPE", env = "WIF_STS_SCOPE")]
    pub scope: Option<String>,
    /// Subject token type: jwt, id_token, saml2, or a full urn:ietf:params:oauth:token-type:… [default: jwt]
    #[arg(long, value_name = "TYPE", env = "WIF_SUBJECT_TOKEN_TYPE")]
    pub subject_token_type: Option<String>,
    /// STS `options` as a JSON object, e.g. '{"userProject":"my-project"}'
    #[arg(long, value_name = "JSON", env = "WIF_STS_OPTIONS")]
    pub options: Option<String>,
    /// gcloud / google-auth external_account credential configuration file
    #[arg(long, value_name = "FILE", env = "WIF_CREDENTIAL_CONFIG")]
    pub credential_config: Option<PathBuf>,
    /// Print a google-auth / gcloud external_account credential configuration instead of exchanging
    #[arg(long)]
    pub print_credential_config: bool,
    /// With --print-credential-config: the service account the client libraries should impersonate
    /// (ignored otherwise, so one WIF_SERVICE_ACCOUNT can configure wif-sts and wif-impersonate)
    #[arg(long, value_name = "EMAIL", env = "WIF_SERVICE_ACCOUNT")]
    pub service_account: Option<String>,
    /// With --print-credential-config and --service-account: the IAM Credentials base URL of the
    /// impersonation URL, e.g. wif-emulate's or a private endpoint's (ignored otherwise)
    /// [default: https://iamcredentials.googleapis.com]
    #[arg(long, value_name = "BASE_URL", env = "WIF_IAM_ENDPOINT")]
    pub iam_endpoint: Option<String>,
    /// With --print-credential-config and --service-account: the impersonated token's lifetime,
    /// written as service_account_impersonation.token_lifetime_seconds (ignored otherwise) [default: 3600s]
    #[arg(long, value_name = "DURATION", env = "WIF_IMPERSONATE_LIFETIME")]
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

/// Google's `external_account` credential configuration (gcloud `iam workload-identity-pools
/// create-cred-config`, google-auth `external_account` / `identity_pool`): the fields wif has a
/// use for. Every other field lands in `other` and is named in one warning (see
/// [`read_credential_config`]).
#[derive(Debug, Deserialize)]
pub struct CredentialConfig {
    /// Must be `external_account`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The workload (or workforce) identity provider.
    pub audience: String,
    /// Subject token type URN.
    #[serde(default)]
    pub subject_token_type: Option<String>,
    /// STS endpoint [default: `https://sts.{universe_domain}/v1/token`].
    #[serde(default)]
    pub token_url: Option<String>,
    /// Where to get the subject token.
    #[serde(default)]
    pub credential_source: Option<CredentialSource>,
    /// IAM Credentials `generateAccessToken` URL for impersonation.
    #[serde(default)]
    pub service_account_impersonation_url: Option<String>,
    /// Impersonation options: the token lifetime.
    #[serde(default)]
    pub service_account_impersonation: Option<ImpersonationConfig>,
    /// Workforce pools: the project billed, sent to STS as `options.userProject`.
    #[serde(default)]
    pub workforce_pool_user_project: Option<String>,
    /// The universe domain [default: googleapis.com].
    #[serde(default)]
    pub universe_domain: Option<String>,
    /// Every other field: not used by wif.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `service_account_impersonation` of a credential configuration.
#[derive(Debug, Deserialize)]
pub struct ImpersonationConfig {
    /// The impersonated access token's lifetime, seconds.
    #[serde(default)]
    pub token_lifetime_seconds: Option<u64>,
    /// Every other field: not used by wif.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `credential_source` of a credential configuration (file or URL).
#[derive(Debug, Deserialize)]
pub struct CredentialSource {
    /// A file holding the token.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// A URL serving the token.
    #[serde(default)]
    pub url: Option<String>,
    /// Headers for the URL.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How to read the content.
    #[serde(default)]
    pub format: Option<SourceFormat>,
    /// Every other field: executable, certificate and AWS sources are refused, the rest unused.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `credential_source.format`.
#[derive(Debug, Deserialize)]
pub struct SourceFormat {
    /// `text` or `json` [default: text].
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The JSON field holding the token.
    #[serde(default)]
    pub subject_token_field_name: Option<String>,
    /// Every other field: not used by wif.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The universe domain of Google's public cloud.
const DEFAULT_UNIVERSE: &str = "googleapis.com";

impl CredentialConfig {
    /// The STS endpoint it names, or the default of its universe.
    pub fn token_url(&self) -> String {
        match (&self.token_url, self.universe()) {
            (Some(u), _) => u.clone(),
            (None, DEFAULT_UNIVERSE) => DEFAULT_TOKEN_URL.to_string(),
            (None, universe) => format!("https://sts.{universe}/v1/token"),
        }
    }

    /// Its universe domain.
    pub fn universe(&self) -> &str {
        self.universe_domain.as_deref().filter(|u| !u.is_empty()).unwrap_or(DEFAULT_UNIVERSE)
    }

    /// The subject token's `format`: the JSON field holding it, or `None` for text.
    fn source_field(&self) -> Result<Option<String>> {
        let format = self.credential_source.as_ref().and_then(|c| c.format.as_ref());
        match format.map(|f| (f.kind.as_deref().unwrap_or("text"), f)) {
            None | Some(("text", _)) => Ok(None),
            Some(("json", f)) => f.subject_token_field_name.clone().map(Some).ok_or_else(|| {
                Error::input("credential_source.format is json but names no subject_token_field_name")
                    .hint("add \"subject_token_field_name\": the field of the JSON content that holds the token")
            }),
            Some((other, _)) => Err(Error::input(format!("credential_source.format.type is {other:?}"))
                .hint("the format type is \"text\" (the whole content is the token) or \"json\"")),
        }
    }

    /// Refuses what wif cannot honour, and lists the fields it does not use (set to
    /// something other than null), each by its path in the file.
    fn check(&self) -> Result<Vec<String>> {
        if self.kind != "external_account" {
            return Err(Error::input(format!("its type is {:?}, not \"external_account\"", self.kind)));
        }
        let set = |m: &BTreeMap<String, serde_json::Value>, prefix: &str| -> Vec<String> {
            m.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| format!("{prefix}{k}")).collect()
        };
        let mut ignored = set(&self.other, "");
        if let Some(src) = &self.credential_source {
            let refused = [
                ("executable", "executable-sourced credentials (credential_source.executable) are not supported by wif-sts", "run the program yourself, e.g. from the refresh job, write its token to a file and name it in credential_source.file (or give it to wif-azure --from-file)"),
                ("certificate", "X.509 federation (credential_source.certificate) is not supported by wif-sts", "use a token source (file or url), or the client libraries themselves for X.509 federation"),
                ("environment_id", "AWS credential sources (credential_source.environment_id) are not supported by wif-sts", "use a token source (file or url)"),
            ];
            for (field, why, hint) in refused {
                if src.other.get(field).is_some_and(|v| !v.is_null()) {
                    return Err(Error::input(why).hint(hint));
                }
            }
            match (&src.file, &src.url) {
                (Some(_), Some(_)) => {
                    return Err(Error::input("credential_source has both file and url")
                        .hint("keep the one that holds the subject token"))
                }
                (None, None) => {
                    return Err(Error::input("credential_source has neither file nor url")
                        .hint("name the file holding the subject token (\"file\") or the URL serving it (\"url\")"))
                }
                _ => {}
            }
            self.source_field()?;
            ignored.extend(set(&src.other, "credential_source."));
            if let Some(f) = &src.format {
                ignored.extend(set(&f.other, "credential_source.format."));
            }
        }
        if let Some(imp) = &self.service_account_impersonation {
            if let Some(secs) = imp.token_lifetime_seconds {
                let what = format!("service_account_impersonation.token_lifetime_seconds {secs}");
                crate::tools::impersonate::lifetime_in_range(secs, &what).map_err(Error::input)?;
            }
            ignored.extend(set(&imp.other, "service_account_impersonation."));
        }
        if self.workforce_pool_user_project.is_some() && !self.audience.contains("/workforcePools/") {
            return Err(Error::input(
                "workforce_pool_user_project is set but the audience is not a workforce pool provider",
            )
            .hint("remove workforce_pool_user_project: workload identity pools bill their own project"));
        }
        let universe = self.universe();
        if !universe.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
            return Err(Error::input(format!("universe_domain {universe:?} is not a domain name")));
        }
        ignored.sort();
        Ok(ignored)
    }
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
    let audience = match s.pick::<String>(cli.audience.clone(), "sts_audience")? {
        Some(a) => a,
        None => match (
            s.pick::<String>(cli.project_number.clone(), "project_number")?,
            s.pick::<String>(cli.pool.clone(), "pool")?,
            s.pick::<String>(cli.provider.clone(), "provider")?,
        ) {
            (Some(n), Some(p), Some(r)) => build_audience(&n, &p, &r),
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
    validate_audience(&audience)?;
    Ok(audience)
}

/// A gcloud / google-auth `external_account` configuration for the same provider, so client
/// libraries can do the STS exchange (and impersonation) themselves from a token file or URL.
pub fn credential_config(cli: &Cli, s: &Settings) -> Result<serde_json::Value> {
    use serde_json::json;
    let audience = audience(cli, s, None)?;
    let token_url = s.pick_or(cli.token_url.clone(), "sts_token_url", DEFAULT_TOKEN_URL.to_string())?;
    let subject_token_type = match s.pick::<String>(cli.subject_token_type.clone(), "subject_token_type")? {
        Some(t) => expand_token_type(&t)?,
        None => crate::tools::azure::JWT_TOKEN_TYPE.to_string(),
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
    if let Some(sa) = s.pick::<String>(cli.service_account.clone(), "service_account")? {
        // The endpoint the pipeline's wif-impersonate uses, so that the file works against
        // wif-emulate or a private endpoint too.
        let base: String = s.pick_or(
            cli.iam_endpoint.clone(),
            "iam_endpoint",
            crate::tools::impersonate::DEFAULT_ENDPOINT.to_string(),
        )?;
        http::check_url(&base).map_err(|e| e.context("checking the IAM Credentials endpoint"))?;
        config["service_account_impersonation_url"] =
            json!(format!("{}/v1/projects/-/serviceAccounts/{sa}:generateAccessToken", base.trim_end_matches('/')));
        if let Some(l) = s.pick::<String>(cli.impersonation_lifetime.clone(), "impersonate_lifetime")? {
            let what = format!("--impersonation-lifetime {l}");
            let secs = crate::tools::impersonate::lifetime_in_range(clock::parse_duration(&l)?.as_secs(), &what)
                .map_err(Error::usage)?;
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
    let cred = match s.pick_file(cli.credential_config.clone(), "credential_config", "credential_config")? {
        Some(f) => Some(read_credential_config(&f)?),
        None => None,
    };
    let audience = audience(cli, s, cred.as_ref())?;
    let token_url: String = match s.pick(cli.token_url.clone(), "sts_token_url")? {
        Some(u) => u,
        None => cred.as_ref().map(CredentialConfig::token_url).unwrap_or_else(|| DEFAULT_TOKEN_URL.to_string()),
    };
    let scope = s.pick_or(cli.scope.clone(), "sts_scope", DEFAULT_SCOPE.to_string())?;
    let options = sts_options(s.pick(cli.options.clone(), "sts_options")?, cred.as_ref())?;

    let client = cli.net.client(TOOL, s)?;
    let (subject, from_doc_type) = subject_token(doc, cred.as_ref(), &client)?;
    let subject_token_type = match s.pick::<String>(cli.subject_token_type.clone(), "subject_token_type")? {
        Some(t) => expand_token_type(&t)?,
        None => cred
            .as_ref()
            .and_then(|c| c.subject_token_type.clone())
            .or(from_doc_type)
            .unwrap_or_else(|| crate::tools::azure::JWT_TOKEN_TYPE.into()),
    };

    let mut fields: Vec<(&str, &str)> = vec![
        ("grant_type", GRANT),
        ("audience", &audience),
        ("scope", &scope),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("subject_token", subject.expose()),
        ("subject_token_type", &subject_token_type),
    ];
    if let Some(o) = &options {
        fields.push(("options", o));
    }
    let doing = format!("exchanging the subject token at {}", http::redact_query(&token_url));
    let resp = client
        .send(&Request { method: "POST", url: &token_url, headers: vec![], bearer: None, body: Body::Form(&fields) })
        .and_then(|r| oauth::check(r, Service::Sts))
        .context(doing.clone())?;
    let (tr, token) = TokenResponse::from_response(&resp).context(doing)?;
    let expires_at = tr.expires_at(&token).or_else(|| Some(clock::rfc3339(clock::now_unix() + 3600)));
    let section = StsSection {
        token: TokenFields { token, token_type: tr.token_type.clone().unwrap_or_else(|| "Bearer".into()), expires_at },
        issued_token_type: tr.issued_token_type.clone(),
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
        if let Some(exp) = az.claims.as_ref().and_then(|c| c.exp) {
            if exp <= clock::now_unix() {
                return Err(Error::input(format!("the subject token expired at {}", clock::rfc3339(exp)))
                    .hint("run the pipeline again from wif-azure; STS refuses expired tokens"));
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
        let doing = format!("reading the subject token from {}", path.display());
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e)).context(doing.clone())?;
        crate::tools::azure::token_from_content(&bytes, field.as_deref()).context(doing)?
    } else if let Some(url) = &src.url {
        let doing = format!("fetching the subject token from {}", http::redact_query(url));
        let headers = src.headers.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let resp = client
            .send(&Request { method: "GET", url, headers, bearer: None, body: Body::Empty })
            .and_then(|r| oauth::check(r, Service::Oauth))
            .context(doing.clone())?;
        crate::tools::azure::token_from_content(&resp.body, field.as_deref()).context(doing)?
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

/// `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/R`.
pub fn build_audience(project_number: &str, pool: &str, provider: &str) -> String {
    format!("//iam.googleapis.com/projects/{project_number}/locations/global/workloadIdentityPools/{pool}/providers/{provider}")
}

/// Checks the shape of a workload (or workforce) identity provider audience.
pub fn validate_audience(aud: &str) -> Result<()> {
    let bad = |why: &str| {
        Error::usage(format!("the audience {aud:?} {why}")).hint(
            "it must look like //iam.googleapis.com/projects/PROJECT_NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER",
        )
    };
    let id_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if let Some(rest) = aud.strip_prefix("//iam.googleapis.com/locations/global/workforcePools/") {
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.as_slice() {
            [pool, "providers", prov] if id_ok(pool) && id_ok(prov) => Ok(()),
            _ => Err(bad("is not a workforce pool provider name")),
        };
    }
    let Some(rest) = aud.strip_prefix("//iam.googleapis.com/projects/") else {
        return Err(if aud.starts_with("https://iam.googleapis.com/") {
            bad("starts with https:// — STS wants the resource name starting with //iam.googleapis.com/")
        } else {
            bad("does not start with //iam.googleapis.com/projects/")
        });
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [num, "locations", "global", "workloadIdentityPools", pool, "providers", prov] => {
            if !num.chars().all(|c| c.is_ascii_digit()) || num.is_empty() {
                return Err(bad("names the project by id; STS needs the project NUMBER (gcloud projects describe PROJECT_ID --format='value(projectNumber)')"));
            }
            if !id_ok(pool) || !id_ok(prov) {
                return Err(bad("has a pool or provider id with characters other than a-z, 0-9 and -"));
            }
            Ok(())
        }
        _ => Err(bad("is not a workload identity pool provider name")),
    }
}

/// Expands short subject token type names to their URNs.
pub fn expand_token_type(t: &str) -> Result<String> {
    Ok(match t {
        "jwt" => "urn:ietf:params:oauth:token-type:jwt".into(),
        "id_token" => "urn:ietf:params:oauth:token-type:id_token".into(),
        "saml2" => "urn:ietf:params:oauth:token-type:saml2".into(),
        "access_token" => "urn:ietf:params:oauth:token-type:access_token".into(),
        t if t.starts_with("urn:ietf:params:oauth:token-type:") || t.starts_with("urn:ietf:params:aws:token-type:") => {
            t.into()
        }
        _ => {
            return Err(Error::usage(format!("{t:?} is not a subject token type"))
                .hint("use jwt, id_token, saml2 or a urn:ietf:params:oauth:token-type:… URN"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_validation() {
        let good = build_audience("123456789", "my-pool", "azure");
        assert!(validate_audience(&good).is_ok());
        assert!(validate_audience("//iam.googleapis.com/locations/global/workforcePools/wf/providers/p").is_ok());
        let e = validate_audience(&build_audience("my-project", "p", "r")).unwrap_err();
        assert!(e.to_string().contains("NUMBER"));
        assert!(validate_audience(
            "https://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/r"
        )
        .is_err());
        assert!(validate_audience("//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p").is_err());
        assert!(validate_audience(
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/P_x/providers/r"
        )
        .is_err());
    }

    #[test]
    fn credential_configuration_universe_and_unused_fields() {
        let parse = |v: serde_json::Value| serde_json::from_value::<CredentialConfig>(v).unwrap();
        let aud = build_audience("1", "p", "r");
        let c =
            parse(serde_json::json!({"type": "external_account", "audience": aud, "universe_domain": "cloud.example"}));
        assert_eq!(c.token_url(), "https://sts.cloud.example/v1/token");
        assert_eq!(c.check().unwrap(), Vec::<String>::new());
        let c = parse(serde_json::json!({"type": "external_account", "audience": aud, "token_info_url": "x",
            "credential_source": {"file": "/t", "environment_id": null, "regional_cred_verification_url": "y"}}));
        assert_eq!(c.token_url(), DEFAULT_TOKEN_URL);
        assert_eq!(c.check().unwrap(), ["credential_source.regional_cred_verification_url", "token_info_url"]);
        let c = parse(serde_json::json!({"type": "external_account", "audience": aud,
            "service_account_impersonation": {"token_lifetime_seconds": 0}}));
        assert!(c.check().unwrap_err().to_string().contains("1 to 43200"));
    }

    #[test]
    fn token_types() {
        assert_eq!(expand_token_type("jwt").unwrap(), "urn:ietf:params:oauth:token-type:jwt");
        assert!(expand_token_type("bogus").is_err());
    }
}
