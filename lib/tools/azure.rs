//! `wif-azure`: obtains the subject token for Google STS — from Azure AD (client
//! credentials with the signed assertion or a client secret, v2 or v1 endpoints), from any
//! OAuth/OIDC issuer (jwt-bearer or client credentials with an audience), or from a token
//! another system made (a file, a URL, Azure IMDS, GitHub Actions).

use crate::cli::{self, DocArgs, NetArgs, TokenOutArgs};
use crate::core::diag;
use crate::core::document::{AssertionSection, AzureSection, Document, SubjectClaims, TokenFields};
use crate::core::error::{Error, Kind, Result};
use crate::core::help::Example;
use crate::core::secret::Secret;
use crate::core::settings::{key, FileSetting, Settings};
use crate::http;
use crate::protocol::assertion;
use crate::protocol::azure::{
    self, ClientAuth, ImdsRequest, Issued, Outcome, Source, Target, TimeRefused, TokenRequest,
};
use crate::protocol::hints;
use crate::protocol::oauth::TokenResponse;
use crate::protocol::sts::JWT_TOKEN_TYPE;
use crate::protocol::subject::{self, UrlSource};
use clap::{ArgGroup, Parser, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

const TOOL: &str = "wif-azure";

/// The grant to use at a token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grant {
    /// client_credentials, authenticated by the assertion (or a client secret)
    ClientCredentials,
    /// urn:ietf:params:oauth:grant-type:jwt-bearer with the assertion as the grant (RFC 7523)
    JwtBearer,
}

/// What the manual page says beyond the flags.
pub const PAGE: crate::core::help::Page =
    crate::core::help::Page { examples: EXAMPLES, files: crate::core::help::CONFIG_FILES, environment: &[] };

/// Examples shown in --help and the manual page.
pub const EXAMPLES: &[Example] = &[
    Example {
        about: "Azure AD v2 client credentials with the assertion from wif-sign",
        cmd: "wif-sign ... | wif-azure --scope api://$APP_ID/.default | wif-sts ...",
    },
    Example {
        about: "Azure AD v1: sign for the v1 endpoint and ask for a resource",
        cmd: "wif-sign --audience https://login.microsoftonline.com/$TENANT_ID/oauth2/token ... | wif-azure --resource api://$APP_ID",
    },
    Example {
        about: "Another issuer with the jwt-bearer grant (e.g. ServiceAuthCentral)",
        cmd: "wif-sign --audience https://issuer.example.com/v1/token ... | wif-azure --grant jwt-bearer --token-url https://issuer.example.com/v1/token --audience $STS_AUDIENCE",
    },
    Example {
        about: "An Azure managed identity",
        cmd: "wif-azure --imds --resource api://AzureADTokenExchange | wif-sts ...",
    },
    Example {
        about: "A token file another system keeps fresh (Kubernetes projected token)",
        cmd: "wif-azure --from-file /var/run/secrets/tokens/oidc-token | wif-sts ...",
    },
    Example {
        about: "GitHub Actions OIDC (needs permissions: id-token: write)",
        cmd: "wif-azure --github-actions --audience $STS_AUDIENCE | wif-sts ...",
    },
];

/// Command line of wif-azure.
#[derive(Parser, Debug)]
#[command(
    name = "wif-azure",
    version,
    about = "Get the subject token for Google STS from Azure AD, another OIDC issuer, a file, a URL, Azure IMDS or GitHub Actions",
    long_about = "Get the subject token for Google STS.\n\n\
By default: the OAuth 2.0 client-credentials grant at Azure AD, authenticated by the client assertion that \
wif-sign put in the document (or a client secret from a file or environment variable), at the token endpoint \
the assertion was signed for. --scope asks the v2 endpoint, --resource the v1 endpoint.\n\n\
When the endpoint refuses the assertion for its time (AADSTS700024) and the answer's Date shows this machine's \
clock off by more than the assertion's 30 s back-dating (and by no more than a day), wif-azure signs the assertion again at the server's time \
(by the assertion's `signer`, which wif-sign records), sends the request once more and warns; an assertion without \
`signer`, or a second refusal, is an error whose hint names the skew. Only an assertion the signer's key made, for the \
same client and token endpoint, is signed again: a document cannot name a key and have wif-azure sign for it.\n\n\
Other issuers (e.g. ServiceAuthCentral): --grant jwt-bearer or --grant client-credentials with --audience and \
--token-url. Tokens made elsewhere: --from-file, --from-url, --imds (Azure managed identity) or --github-actions.\n\n\
Adds the `azure` section: the token, its expiry and its decoded iss/aud/sub/exp, which decide whether STS will \
accept it.",
    after_help = crate::core::help::after_help("wif-azure", EXAMPLES),
    group(ArgGroup::new("source").args(["from_file", "from_url", "imds", "github_actions"]))
)]
pub struct Cli {
    /// v2 scope to request [default: api://CLIENT_ID/.default]
    #[arg(long, value_name = "SCOPE", env = key::AZURE_SCOPE.env)]
    pub scope: Option<String>,
    /// v1 resource (Azure AD v1 endpoint /oauth2/token, or IMDS)
    #[arg(long, value_name = "URI", env = key::AZURE_RESOURCE.env)]
    pub resource: Option<String>,
    /// Token endpoint [default: the assertion's audience]
    #[arg(long, value_name = "URL", env = key::AZURE_TOKEN_URL.env)]
    pub token_url: Option<String>,
    /// Grant type [default: client-credentials]
    #[arg(long, value_enum, env = key::AZURE_GRANT.env)]
    pub grant: Option<Grant>,
    /// Audience to request from a non-Azure issuer (or from GitHub Actions)
    #[arg(long, value_name = "AUDIENCE", env = key::AZURE_AUDIENCE.env)]
    pub audience: Option<String>,
    /// Client id [default: the assertion's]
    #[arg(long, value_name = "ID", env = key::CLIENT_ID.env)]
    pub client_id: Option<String>,
    /// File whose first line is the client secret (instead of an assertion)
    #[arg(long, value_name = "FILE", env = key::CLIENT_SECRET_FILE.env)]
    pub client_secret_file: Option<PathBuf>,
    /// Name of the environment variable holding the client secret
    #[arg(long, value_name = "VAR", env = key::CLIENT_SECRET_ENV.env)]
    pub client_secret_env: Option<String>,
    /// Take the subject token from a file (e.g. a Kubernetes projected token)
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Take the subject token from a URL (GET)
    #[arg(long, value_name = "URL")]
    pub from_url: Option<String>,
    /// Header for --from-url, as 'Name: value' (repeatable)
    #[arg(long = "header", value_name = "NAME: VALUE", requires = "from_url")]
    pub headers: Vec<String>,
    /// JSON field holding the token in --from-file/--from-url content [default: the whole content is the token]
    #[arg(long, value_name = "NAME")]
    pub field: Option<String>,
    /// Get the token from Azure's instance metadata service (managed identity); needs --resource
    #[arg(long)]
    pub imds: bool,
    /// Client id of a user-assigned managed identity (with --imds)
    #[arg(long, value_name = "ID", requires = "imds")]
    pub imds_client_id: Option<String>,
    /// IMDS token URL [default: http://169.254.169.254/metadata/identity/oauth2/token]
    #[arg(long, value_name = "URL", requires = "imds", env = key::IMDS_ENDPOINT.env)]
    pub imds_endpoint: Option<String>,
    /// Get a GitHub Actions OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN); --audience sets its aud
    #[arg(long)]
    pub github_actions: bool,
    #[command(flatten)]
    pub token_out: TokenOutArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub doc: DocArgs,
}

/// Entry point of wif-azure.
pub fn main() -> ExitCode {
    let cli = cli::parse::<Cli>();
    cli::run_step(TOOL, &cli.doc, |doc, settings| run(&cli, doc, settings))
}

/// Gets the subject token and adds the `azure` section.
pub fn run(cli: &Cli, doc: &mut Document, s: &Settings) -> Result<()> {
    let section = if let Some(path) = &cli.from_file {
        from_file(cli, path)?
    } else if let Some(url) = &cli.from_url {
        from_url(cli, s, url)?
    } else if cli.imds {
        imds(cli, s)?
    } else if cli.github_actions {
        github_actions(cli, s)?
    } else {
        token_endpoint(cli, doc, s)?
    };
    cli.token_out.write(TOOL, &section.token)?;
    doc.set(&section)
}

fn token_endpoint(cli: &Cli, doc: &Document, s: &Settings) -> Result<AzureSection> {
    let assertion: Option<AssertionSection> = doc.section()?;
    let secret = crate::core::keys::read_password(
        s.pick_file(cli.client_secret_file.clone(), "client_secret_file", key::CLIENT_SECRET_FILE)?.as_ref(),
        s.pick::<String>(cli.client_secret_env.clone(), key::CLIENT_SECRET_ENV)?.as_deref(),
        "client secret",
    )?;
    if assertion.is_none() && secret.is_none() {
        return Err(Error::input("the document has no \"assertion\" section and no client secret was given").hint(
            "pipe wif-sign into wif-azure, or give --client-secret-file/--client-secret-env, or take a token with --from-file/--from-url/--imds/--github-actions",
        ));
    }
    let client_id: String = match s.pick(cli.client_id.clone(), key::CLIENT_ID)? {
        Some(c) => c,
        None => assertion.as_ref().map(|a| a.client_id.clone()).ok_or_else(|| {
            Error::usage("--client-id is required with a client secret").hint("give --client-id or set WIF_CLIENT_ID")
        })?,
    };
    let url: String = match s.pick(cli.token_url.clone(), key::AZURE_TOKEN_URL)? {
        Some(u) => u,
        None => match &assertion {
            Some(a) => a.token_endpoint.clone(),
            None => {
                let tenant: String = s.require(None, key::TENANT_ID, "--token-url (or tenant_id in the config)")?;
                let authority: String = s.pick_or(None, key::AUTHORITY, azure::DEFAULT_AUTHORITY.to_string())?;
                azure::token_endpoint(&authority, &tenant)?
            }
        },
    };
    let grant = s.pick_or(cli.grant, key::AZURE_GRANT, Grant::ClientCredentials)?;
    let audience: Option<String> = s.pick(cli.audience.clone(), key::AZURE_AUDIENCE)?;
    let resource: Option<String> = s.pick(cli.resource.clone(), key::AZURE_RESOURCE)?;
    let scope: Option<String> = s.pick(cli.scope.clone(), key::AZURE_SCOPE)?;
    let default_scope = azure::default_scope(&client_id);

    let grant = match grant {
        Grant::JwtBearer => {
            let assertion = assertion.as_ref().map(|a| &a.token.token).ok_or_else(|| {
                Error::input("--grant jwt-bearer needs the assertion from wif-sign")
                    .hint("pipe wif-sign --audience TOKEN_URL … into wif-azure")
            })?;
            let audience = audience.as_deref().ok_or_else(|| {
                Error::usage("--audience is required with --grant jwt-bearer")
                    .hint("the audience the issuer should put in the token, e.g. the STS audience //iam.googleapis.com/projects/…")
            })?;
            azure::Grant::JwtBearer { assertion, audience, scope: scope.as_deref() }
        }
        Grant::ClientCredentials => {
            let auth = match (&assertion, &secret) {
                (Some(a), _) => {
                    // Client authentication by assertion: its aud must be this exact endpoint.
                    if a.token_endpoint != url {
                        return Err(Error::input(format!(
                            "the assertion was signed for {} but the token endpoint is {url}",
                            a.token_endpoint
                        ))
                        .hint("the assertion's aud must be the exact token endpoint: give wif-sign the matching --tenant-id/--audience, or drop --token-url"));
                    }
                    ClientAuth::Assertion(&a.token.token)
                }
                (None, Some(sec)) => ClientAuth::Secret(sec),
                (None, None) => return Err(Error::new(Kind::Internal, "no client credential")),
            };
            let target = match (&audience, &resource) {
                (Some(aud), _) => Target::Audience { audience: aud, scope: scope.as_deref() },
                (None, Some(res)) => {
                    if azure::is_v2_endpoint(&url) {
                        return Err(Error::usage("--resource is for the Azure AD v1 endpoint, but the token endpoint is v2")
                            .hint("use --scope RESOURCE/.default with v2, or sign for v1: wif-sign --audience https://login.microsoftonline.com/TENANT/oauth2/token"));
                    }
                    Target::Resource(res)
                }
                (None, None) => Target::Scope(scope.as_deref().unwrap_or(&default_scope)),
            };
            azure::Grant::ClientCredentials { auth, target }
        }
    };
    let request = TokenRequest { url: &url, client_id: &client_id, grant };
    let client = cli.net.client(TOOL, s)?;
    let issued = match azure::request_token(&client, &request)? {
        Outcome::Issued(issued) => issued,
        Outcome::AssertionTimeRefused(refused) => retry_at_server_time(&client, &request, assertion.as_ref(), refused)?,
    };
    Ok(section(issued, &url, Some(client_id.clone()), facts(&request)))
}

/// After the token endpoint refused the assertion for its time: when the answer's `Date`
/// shows this machine's clock off by more than the assertion's back-dating, signs the
/// assertion again by its signer recipe at the server's time, warns, and sends the request
/// once more. Never more than once; a skew without a recipe, one over a day
/// ([`hints::MAX_RESIGN_SKEW`]: a `Date` that absurd is not believed), or a second refusal, is
/// an error whose hint names the skew.
fn retry_at_server_time(
    client: &http::Client,
    request: &TokenRequest<'_>,
    assertion: Option<&AssertionSection>,
    refused: TimeRefused,
) -> Result<Issued> {
    let TimeRefused { error, skew, server } = refused;
    let Some(skew) = skew.filter(|s| hints::skew_matters(*s)) else {
        return Err(error);
    };
    let (Some(a), Some(recipe)) = (assertion, assertion.and_then(|a| a.signer.as_ref())) else {
        return Err(error.replace_hint(hints::assertion_skew_no_signer(skew, &server)));
    };
    if !hints::skew_plausible(skew) {
        return Err(error.replace_hint(hints::assertion_skew_implausible(skew, &server)));
    }
    let signed = assertion::sign_again(recipe, &a.token.token, &a.client_id, &a.token_endpoint, skew.server_now())?;
    diag::warn(format!(
        "{}; signed the assertion again with the server's time — fix the clock (chrony/ntp)",
        skew.describe(&server)
    ));
    let again = format!("retrying once with the assertion signed again at {server}'s time");
    match azure::request_token(client, &request.with_assertion(&signed.jwt)).map_err(|e| e.context(&again))? {
        Outcome::Issued(issued) => Ok(issued),
        Outcome::AssertionTimeRefused(refused) => Err(refused
            .error
            .context(again)
            .replace_hint(hints::assertion_skew_persists(refused.skew.unwrap_or(skew), &server))),
    }
}

/// The non-secret facts of a request that the section records.
struct Facts {
    source: Source,
    scope: Option<String>,
    resource: Option<String>,
    audience: Option<String>,
}

/// What a token request asked for, as the section records it.
fn facts(req: &TokenRequest<'_>) -> Facts {
    let owned = |s: Option<&str>| s.map(str::to_string);
    let (scope, resource, audience) = match req.grant {
        azure::Grant::JwtBearer { audience, scope, .. }
        | azure::Grant::ClientCredentials { target: Target::Audience { audience, scope }, .. } => {
            (owned(scope), None, Some(audience.to_string()))
        }
        azure::Grant::ClientCredentials { target: Target::Resource(r), .. } => (None, Some(r.to_string()), None),
        azure::Grant::ClientCredentials { target: Target::Scope(sc), .. } => (Some(sc.to_string()), None, None),
    };
    Facts { source: req.source(), scope, resource, audience }
}

fn section(issued: Issued, endpoint: &str, client_id: Option<String>, facts: Facts) -> AzureSection {
    let expires_at = issued.answer.expires_at(&issued.token).map(|t| t.to_string());
    let claims = claims_of(&issued.token);
    let token_type = issued.answer.token_type.clone().unwrap_or_else(|| "Bearer".into());
    AzureSection {
        token: TokenFields { token_type, token: issued.token, expires_at },
        subject_token_type: JWT_TOKEN_TYPE.into(),
        source: facts.source.name().into(),
        endpoint: http::redact_query(endpoint).to_string(),
        client_id,
        scope: facts.scope,
        resource: facts.resource,
        audience: facts.audience,
        claims,
    }
}

/// The STS-relevant claims of a JWT, if the token is one.
pub fn claims_of(token: &Secret) -> Option<SubjectClaims> {
    let (_, c) = crate::core::jwt::decode_unverified(token.expose())?;
    Some(SubjectClaims {
        iss: c.get("iss").and_then(|v| v.as_str()).map(str::to_string),
        aud: c.get("aud").cloned(),
        sub: c.get("sub").and_then(|v| v.as_str()).map(str::to_string),
        exp: crate::core::jwt::numeric_claim(&c, "exp"),
    })
}

/// A section for a token taken as-is (file, URL): expiry from the JWT.
fn external_section(token: Secret, source: Source, endpoint: &str, audience: Option<String>) -> Result<AzureSection> {
    if token.is_empty() {
        return Err(Error::input("the subject token is empty"));
    }
    let answer = TokenResponse {
        access_token: None,
        token_type: None,
        expires_in: None,
        expires_on: None,
        issued_token_type: None,
    };
    let facts = Facts { source, scope: None, resource: None, audience };
    let mut sec = section(Issued { token, answer }, endpoint, None, facts);
    sec.token.token_type = JWT_TOKEN_TYPE.into();
    Ok(sec)
}

fn from_file(cli: &Cli, path: &std::path::Path) -> Result<AzureSection> {
    let given = FileSetting { path: path.to_path_buf(), origin: "--from-file".into() };
    let explain = given.explain("the subject token (a JWT), e.g. a projected service account token");
    let token = subject::read_file(path, cli.field.as_deref(), explain)?;
    external_section(token, Source::File, &path.display().to_string(), None)
}

fn parse_header(h: &str) -> Result<(&str, String)> {
    let (k, v) = h.split_once(':').ok_or_else(|| {
        Error::usage(format!("--header {:?} is not 'Name: value'", h.split(':').next().unwrap_or("")))
    })?;
    Ok((k.trim(), v.trim().to_string()))
}

fn from_url(cli: &Cli, s: &Settings, url: &str) -> Result<AzureSection> {
    let headers = cli.headers.iter().map(|h| parse_header(h)).collect::<Result<Vec<_>>>()?;
    let client = cli.net.client(TOOL, s)?;
    let token = subject::fetch(&client, UrlSource { url, headers, field: cli.field.as_deref() })?;
    external_section(token, Source::Url, url, None)
}

fn imds(cli: &Cli, s: &Settings) -> Result<AzureSection> {
    let resource: String = s.require(cli.resource.clone(), key::AZURE_RESOURCE, "--resource")?;
    let endpoint: String = s.pick_or(cli.imds_endpoint.clone(), key::IMDS_ENDPOINT, azure::IMDS_URL.to_string())?;
    let client = cli.net.client(TOOL, s)?;
    let request = ImdsRequest { endpoint: &endpoint, resource: &resource, client_id: cli.imds_client_id.as_deref() };
    let issued = azure::imds_token(&client, &request)?;
    let facts = Facts { source: Source::Imds, scope: None, resource: Some(resource), audience: None };
    Ok(section(issued, &endpoint, cli.imds_client_id.clone(), facts))
}

fn github_actions(cli: &Cli, s: &Settings) -> Result<AzureSection> {
    let need = |name: &str| {
        std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
            Error::usage(format!("{name} is not set"))
                .hint("run inside GitHub Actions with `permissions: id-token: write` in the workflow")
        })
    };
    let base = need("ACTIONS_ID_TOKEN_REQUEST_URL")?;
    let bearer = Secret::new(need("ACTIONS_ID_TOKEN_REQUEST_TOKEN")?);
    let audience: Option<String> = s.pick(cli.audience.clone(), key::AZURE_AUDIENCE)?;
    let client = cli.net.client(TOOL, s)?;
    let token = subject::github_actions(&client, &base, &bearer, audience.as_deref())?;
    external_section(token, Source::GithubActions, &base, audience)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing() {
        assert_eq!(parse_header("Metadata: true").unwrap(), ("Metadata", "true".to_string()));
        assert!(parse_header("novalue").is_err());
    }
}
