//! `wif-get`: the mTLS client. Fetches the token from `wif-serve` (or the seed's Flask
//! server) at `/get_wif_token` with a client certificate, verifies the server against the
//! given CA chain and host name, and writes the token atomically.

pub mod metadata;

use crate::cli::{self, DocArgs};
use crate::core::clock;
use crate::core::document::Document;
use crate::core::error::{Error, Kind, Result};
use crate::core::files;
use crate::core::help::Example;
use crate::core::keys;
use crate::core::secret::Secret;
use crate::core::settings::Settings;
use crate::http;
use clap::{Parser, ValueEnum};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOOL: &str = "wif-get";

/// The response header carrying the token's expiry (RFC 3339), set by wif-serve.
pub const EXPIRES_HEADER: &str = "x-token-expires-at";
/// The response header carrying the token's type, set by wif-serve.
pub const TYPE_HEADER: &str = "x-token-type";
/// Largest token accepted; real tokens are a few kilobytes.
pub const MAX_TOKEN_BYTES: u64 = 64 * 1024;
/// What `--cert` names, for the hint when it names no file.
const CLIENT_CERT: &str = "the client certificate (PEM chain, leaf first, or PKCS#12) from the CA wif-serve trusts";
/// Longest wait for the TCP connection of one attempt (within --timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The lifetime assumed for a token whose server says nothing of its expiry (the seed's
/// Flask server sends the bare token): the seed's generator refreshes every 55 minutes and
/// Google's access tokens live 60, so a token it serves has at least 5 minutes left.
pub const DEFAULT_ASSUME_TTL: Duration = Duration::from_secs(5 * 60);
/// Most characters of a server's error message quoted in wif-get's own.
const MAX_REASON_CHARS: usize = 300;

/// What the manual page says beyond the flags.
pub const PAGE: crate::core::help::Page =
    crate::core::help::Page { examples: EXAMPLES, files: crate::core::help::TOKEN_FILES };

/// Examples shown in --help and the manual page.
pub const EXAMPLES: &[Example] = &[
    Example {
        about: "Fetch the token over mTLS and keep it in a 0600 file",
        cmd: "wif-get --url https://tokens.internal:8443/get_wif_token --cert client.crt --key client.key --ca ca-chain.crt --out /var/lib/wif/token.txt",
    },
    Example {
        about: "From cron: fetch only when the token left has less than 10 minutes",
        cmd: "*/5 * * * * wif-get --config /etc/wif/get.json --min-ttl 10m </dev/null >/dev/null",
    },
    Example {
        about: "With a PKCS#12 client certificate",
        cmd: "wif-get --url https://tokens.internal:8443/get_wif_token --cert client.p12 --key-password-file client.pass --ca ca-chain.crt --out token.txt",
    },
    Example {
        about: "Use the token in a shell: Terraform's google provider reads GOOGLE_OAUTH_ACCESS_TOKEN",
        cmd: "eval \"$(wif-get --config /etc/wif/get.json --format export)\" && terraform plan",
    },
    Example {
        about: "gcloud reads the token from the file CLOUDSDK_AUTH_ACCESS_TOKEN_FILE names (or --access-token-file)",
        cmd: "eval \"$(wif-get --config /etc/wif/get.json --out ~/.wif/token.txt --format gcloud)\" && gcloud storage ls",
    },
    Example {
        about: "Answer like the GCE metadata server on loopback, for unmodified Google client libraries",
        cmd: "wif-get --config /etc/wif/get.json --metadata-server 127.0.0.1:8989 --service-account app@my-project.iam.gserviceaccount.com --project-id my-project --project-number 123456789012",
    },
    Example {
        about: "Point a program's Google client library at it (past any HTTP proxy)",
        cmd: "NO_PROXY=127.0.0.1,localhost GCE_METADATA_HOST=127.0.0.1:8989 GCE_METADATA_IP=127.0.0.1:8989 python3 app.py",
    },
    Example {
        about: "Point gcloud at it (it needs --project-number to detect the server)",
        cmd: "GCE_METADATA_ROOT=127.0.0.1:8989 GCE_METADATA_IP=127.0.0.1:8989 gcloud auth print-access-token",
    },
];

/// What to print on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The wif JSON document with the `fetched` section (no token unless --show-token)
    Json,
    /// The token alone, without a newline
    Token,
    /// `export NAME='TOKEN'` for a POSIX shell
    Export,
    /// A google-auth executable-sourced credential response (subject tokens: JWT or SAML)
    Executable,
    /// `export CLOUDSDK_AUTH_ACCESS_TOKEN_FILE='OUT'` for gcloud (needs --out; prints no token)
    Gcloud,
}

/// What kind of subject token `--format executable` says the token is (google-auth's
/// executable-sourced response format).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
pub enum SubjectTokenType {
    /// urn:ietf:params:oauth:token-type:jwt: a JWT that is not an ID token, e.g. an Azure AD access token
    #[value(name = "jwt")]
    #[serde(rename = "jwt")]
    Jwt,
    /// urn:ietf:params:oauth:token-type:id_token: an OpenID Connect ID token
    #[value(name = "id_token")]
    #[serde(rename = "id_token")]
    IdToken,
    /// urn:ietf:params:oauth:token-type:saml2: a base64 SAML 2.0 assertion
    #[value(name = "saml2")]
    #[serde(rename = "saml2")]
    Saml2,
}

impl SubjectTokenType {
    /// The URN google-auth expects in `token_type`.
    pub fn urn(self) -> &'static str {
        match self {
            SubjectTokenType::Jwt => "urn:ietf:params:oauth:token-type:jwt",
            SubjectTokenType::IdToken => "urn:ietf:params:oauth:token-type:id_token",
            SubjectTokenType::Saml2 => "urn:ietf:params:oauth:token-type:saml2",
        }
    }
}

/// Command line of wif-get.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "wif-get",
    version,
    about = "Fetch the token from wif-serve over mutual TLS and write it atomically",
    long_about = "Fetch the token from wif-serve (or any server publishing it at /get_wif_token) over mutual TLS: \
the client presents --cert/--key (PEM, or PKCS#12 with --key-password-file/--key-password-env), and verifies the \
server's certificate against --ca and the host name in --url.\n\n\
With --out, the token is written atomically with mode 0600 (exactly the token bytes), with FILE.meta.json beside \
it, written first (it also describes the token it replaces, so the pair stays consistent if wif-get is killed \
between the two); a failed fetch leaves the previous file untouched. The expiry comes from the server's \
X-Token-Expires-At header, else from the JWT's exp, else it is assumed: --assume-ttl after the fetch (default 5m, \
the least a token from the seed's Flask server, which sends the bare token, has left: the seed refreshes it every 55 \
minutes and Google's access tokens live 60), with a warning on stderr and expires_from: assumed and \
assumed_ttl_seconds in the `fetched` section. With --min-ttl, nothing is fetched while \
the token in --out is still valid that long, and trusted: both files regular, owned by this user or root, and \
writable by nobody else (otherwise a warning says why and the token is fetched again).\n\n\
Connection failures and 5xx answers (503: the server has no fresh token) are retried with exponential backoff and \
jitter, honouring Retry-After, within --retries and --max-time; 4xx answers and TLS verification failures are not. \
The error for a 5xx answer quotes the server's reason when its body is a JSON error (wif-serve's 503 says why it \
has no token), scrubbed of anything shaped like a token and at most 300 characters. \
--max-time bounds the whole fetch: no attempt waits longer than what is left of it.\n\n\
Prints the JSON document (stdin, nothing piped: an empty one) with a `fetched` section: url, status, expires_at, \
bytes, sha256, out, fetched_at (and skipped: true when --min-ttl found the token fresh). The token itself is printed \
only with --show-token or --format token/export/executable, and never to a terminal unless --force is given. \
--format executable labels a JWT as an ID token (token-type:id_token) when it has the claims of one (nonce, \
auth_time, at_hash, c_hash, or azp without the marks of an access token) and as token-type:jwt otherwise, e.g. an \
Azure AD access token, which carries azp too but also azpacr, scp, idtyp, appid or a typ: at+jwt header; \
--subject-token-type says it instead. \
--format gcloud prints `export CLOUDSDK_AUTH_ACCESS_TOKEN_FILE=OUT` (the absolute path of --out) for gcloud.\n\n\
With --metadata-server 127.0.0.1:PORT, wif-get keeps running and answers on loopback like the Compute Engine \
metadata server, so that unmodified Google client libraries run with GCE_METADATA_HOST=127.0.0.1:PORT (and, for \
google-auth's detection ping, GCE_METADATA_IP=127.0.0.1:PORT) use the token: \
/computeMetadata/v1/instance/service-accounts/default/token (also under the --service-account email), .../email, \
.../scopes, .../?recursive=true, /computeMetadata/v1/project/project-id and numeric-project-id, and the root probe. \
gcloud and gsutil (GCE_METADATA_ROOT=127.0.0.1:PORT) detect it only by a numeric-project-id, so give --project-number \
(a warning says so otherwise). \
Every answer carries Metadata-Flavor: Google; a request without Metadata-Flavor: Google, or with X-Forwarded-For or \
Forwarded, gets 403 (set NO_PROXY=127.0.0.1,localhost where an HTTP proxy is configured). So does a request a web page could \
have made (DNS rebinding, cross-origin): a Host that is not a loopback address, localhost or metadata.google.internal \
(with this server's port, if any), an Origin header, or a Sec-Fetch-Site other than none; a request \
without a Host gets 400. Refusals are logged on stderr, at most 10 lines a minute. The token route also accepts POST (its \
body is ignored); a request must arrive whole within 10 s; past 128 connections at once the oldest one whose request has \
not fully arrived is closed (503 only when all 128 are being answered). Its first stdout line is {\"event\":\"listening\",\"address\":\"127.0.0.1:PORT\",\"metadata_host\":...}. \
It fetches the token at start and again when less than --min-ttl (default 5m) or a quarter of its lifetime \
is left (by the wall clock, so also right after a suspend), or at once when a client finds no valid token; a \
token whose lifetime is assumed (no expiry from the server) is fetched again after half of it, and never more \
often than every 30 s; and \
keeps serving the last good token while it is unexpired when a refresh fails; one line on stderr per \
refresh or failure, never the token. If the first fetch is refused (TLS, certificate, 4xx, bad answer) it exits \
with that error; if wif-serve is unreachable or failing it answers 503 for the token and keeps retrying (1 s, \
2 s, ... up to 60 s apart). Requested ?scopes= are not minted: the token has the scopes wif-impersonate gave it. \
SIGTERM or SIGINT stops it (exit 0). Addresses other than loopback are refused.",
    after_help = crate::core::help::after_help("wif-get", EXAMPLES)
)]
pub struct Cli {
    /// Token URL, e.g. https://tokens.internal:8443/get_wif_token
    #[arg(long, value_name = "URL", env = "WIF_GET_URL")]
    pub url: Option<String>,
    /// Client certificate (PEM chain), or a PKCS#12 file holding certificate and key (then --key is not needed)
    #[arg(long, value_name = "FILE", env = "WIF_GET_CERT")]
    pub cert: Option<PathBuf>,
    /// Client private key: PEM (PKCS#8, PKCS#1, SEC1) or PKCS#12
    #[arg(long, value_name = "FILE", env = "WIF_GET_KEY")]
    pub key: Option<PathBuf>,
    /// File whose first line is the PKCS#12 password
    #[arg(long, value_name = "FILE", env = "WIF_GET_KEY_PASSWORD_FILE")]
    pub key_password_file: Option<PathBuf>,
    /// Name of the environment variable holding the PKCS#12 password
    #[arg(long, value_name = "VAR", env = "WIF_GET_KEY_PASSWORD_ENV")]
    pub key_password_env: Option<String>,
    /// CA certificates (PEM) that issued the server's certificate, e.g. ca-chain.crt
    #[arg(long, value_name = "FILE", env = "WIF_GET_CA")]
    pub ca: Option<PathBuf>,
    /// Write the token to FILE (mode 0600, atomically) and FILE.meta.json beside it
    #[arg(long, value_name = "FILE", env = "WIF_GET_OUT")]
    pub out: Option<PathBuf>,
    /// Skip the fetch while the token in --out stays valid for at least DURATION, e.g. 10m (--metadata-server: refetch when less is left, default 5m)
    #[arg(long, value_name = "DURATION", env = "WIF_GET_MIN_TTL")]
    pub min_ttl: Option<String>,
    /// Lifetime to assume, from the fetch, when the server sends no X-Token-Expires-At and the token is not a JWT (the seed's Flask server); 0: refuse such a token [default: 5m, the least a token the seed serves has left]
    #[arg(long, value_name = "DURATION", env = "WIF_GET_ASSUME_TTL")]
    pub assume_ttl: Option<String>,
    /// What to print on stdout [default: json]
    #[arg(long, value_enum, env = "WIF_GET_FORMAT")]
    pub format: Option<Format>,
    /// With --format executable: the subject token type to report [default: from the token's claims]
    #[arg(long, value_enum, value_name = "TYPE", env = "WIF_GET_SUBJECT_TOKEN_TYPE")]
    pub subject_token_type: Option<SubjectTokenType>,
    /// With --format export: the variable name [default: GOOGLE_OAUTH_ACCESS_TOKEN, which Terraform reads]
    #[arg(long, value_name = "NAME", env = "WIF_GET_EXPORT_NAME")]
    pub export_name: Option<String>,
    /// With --format json: include the token in the `fetched` section
    #[arg(long)]
    pub show_token: bool,
    /// Print the token even when stdout is a terminal
    #[arg(long)]
    pub force: bool,
    /// Time-out for each attempt (connect, handshake, answer) [default: 30s]
    #[arg(long, value_name = "DURATION", env = "WIF_TIMEOUT")]
    pub timeout: Option<String>,
    /// Retries after a connection failure or a 5xx answer (never after 4xx) [default: 3]
    #[arg(long, value_name = "N", env = "WIF_RETRIES")]
    pub retries: Option<u32>,
    /// Give up once this much time has passed, attempts and retries included [default: 2m]
    #[arg(long, value_name = "DURATION", env = "WIF_GET_MAX_TIME")]
    pub max_time: Option<String>,
    /// Keep running and answer like the GCE metadata server on this loopback ADDRESS:PORT (port 0: any free one)
    #[arg(long, value_name = "ADDRESS:PORT", env = "WIF_GET_METADATA_SERVER")]
    pub metadata_server: Option<String>,
    /// With --metadata-server: the service account's email the token belongs to
    #[arg(long, value_name = "EMAIL", env = "WIF_GET_SERVICE_ACCOUNT")]
    pub service_account: Option<String>,
    /// With --metadata-server: the project id served at /computeMetadata/v1/project/project-id
    #[arg(long, value_name = "ID", env = "WIF_GET_PROJECT_ID")]
    pub project_id: Option<String>,
    /// With --metadata-server: the project number served at /computeMetadata/v1/project/numeric-project-id
    #[arg(long, value_name = "NUMBER", env = "WIF_GET_PROJECT_NUMBER")]
    pub project_number: Option<String>,
    /// With --metadata-server: the token's scopes, comma-separated [default: https://www.googleapis.com/auth/cloud-platform]
    #[arg(long, value_name = "SCOPES", env = "WIF_GET_SCOPES")]
    pub scopes: Option<String>,
    #[command(flatten)]
    pub doc: DocArgs,
}

/// The `fetched` section: what was fetched, from where, and where it went (never the token
/// unless asked for).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FetchedSection {
    /// The URL fetched.
    pub url: String,
    /// HTTP status of the answer (absent when skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// True when --min-ttl found the token in --out fresh and nothing was fetched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// Token type: from the server's X-Token-Type, else `jwt` or `access_token`.
    pub token_type: String,
    /// Absolute expiry, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Where the expiry came from: `header`, `jwt`, `assumed` or `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_from: Option<String>,
    /// With `expires_from: assumed`: the lifetime assumed from the fetch (--assume-ttl), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assumed_ttl_seconds: Option<u64>,
    /// Length of the token in bytes.
    pub bytes: usize,
    /// SHA-256 of the token (hex).
    pub sha256: String,
    /// The file written (or found fresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<String>,
    /// When the token was fetched (or the file written), RFC 3339 UTC.
    pub fetched_at: String,
    /// The token itself, only with --show-token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
}

impl crate::core::document::Section for FetchedSection {
    const NAME: &'static str = "fetched";
    const MADE_BY: &'static str = "wif-get";
}

/// Entry point of wif-get.
pub fn main() -> ExitCode {
    let cli = cli::parse::<Cli>();
    cli::run(TOOL, || {
        let (mut doc, settings) = cli.doc.load()?;
        run(&cli, &mut doc, &settings)
    })
}

/// Everything wif-get needs, resolved from flags, environment and config.
#[derive(Clone)]
pub(crate) struct Plan {
    url: String,
    out: Option<PathBuf>,
    /// `--min-ttl`: skip while --out is this fresh (or, for the metadata server, refresh margin).
    pub(crate) min_ttl: Option<Duration>,
    /// The lifetime assumed for a token of unknown expiry; `None`: such a token is refused.
    assume_ttl: Option<Duration>,
    /// Whether `assume_ttl` is the default (then a warning says it was assumed).
    assume_ttl_default: bool,
    format: Format,
    subject_token_type: Option<SubjectTokenType>,
    export_name: String,
    timeout: Duration,
    retries: u32,
    max_time: Duration,
}

impl Plan {
    /// The token URL without its query, for messages.
    pub(crate) fn url_for_messages(&self) -> &str {
        http::redact_query(&self.url)
    }
}

pub(crate) fn duration_setting(s: &Settings, flag: Option<String>, key: &str, name: &str) -> Result<Option<Duration>> {
    s.duration(flag, key, Some(&format!("reading {name}")))
}

fn plan(cli: &Cli, s: &Settings) -> Result<Plan> {
    let url: String = s.require(cli.url.clone(), "get_url", "--url")?;
    http::check_url(&url)?;
    if !url.to_ascii_lowercase().starts_with("https://") {
        return Err(Error::usage(format!("{url:?} is not an https:// URL"))
            .hint("the token is served over mutual TLS only: https://HOST:PORT/get_wif_token"));
    }
    let timeout = duration_setting(s, cli.timeout.clone(), "timeout", "--timeout")?.unwrap_or(Duration::from_secs(30));
    if timeout.is_zero() {
        return Err(Error::usage("--timeout must be more than 0 s"));
    }
    let max_time =
        duration_setting(s, cli.max_time.clone(), "get_max_time", "--max-time")?.unwrap_or(Duration::from_secs(120));
    if max_time.is_zero() {
        return Err(Error::usage("--max-time must be more than 0 s"));
    }
    let export_name = s.pick_or(cli.export_name.clone(), "get_export_name", "GOOGLE_OAUTH_ACCESS_TOKEN".to_string())?;
    let valid_name = export_name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && export_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(Error::usage(format!("{export_name:?} is not a shell variable name")));
    }
    let format = s.pick_or(cli.format, "get_format", Format::Json)?;
    let subject_token_type = s.pick(cli.subject_token_type, "get_subject_token_type")?;
    if subject_token_type.is_some() && format != Format::Executable {
        return Err(Error::usage("--subject-token-type only applies to --format executable"));
    }
    let assume_ttl = duration_setting(s, cli.assume_ttl.clone(), "get_assume_ttl", "--assume-ttl")?;
    Ok(Plan {
        url,
        out: s.pick(cli.out.clone(), "get_out")?,
        min_ttl: duration_setting(s, cli.min_ttl.clone(), "get_min_ttl", "--min-ttl")?,
        assume_ttl_default: assume_ttl.is_none(),
        assume_ttl: assume_ttl.or(Some(DEFAULT_ASSUME_TTL)).filter(|d| !d.is_zero()),
        format,
        subject_token_type,
        export_name,
        timeout,
        retries: s.pick_or(cli.retries, "retries", 3)?,
        max_time,
    })
}

/// Fetches (or skips), writes `--out`, adds `fetched` and prints the chosen format; or, with
/// `--metadata-server`, serves the token like the GCE metadata server until stopped.
pub fn run(cli: &Cli, doc: &mut Document, s: &Settings) -> Result<()> {
    let plan = plan(cli, s)?;
    if let Some(addr) = s.pick(cli.metadata_server.clone(), "get_metadata_server")? {
        return metadata::run(cli, s, &plan, &addr);
    }
    let prints_token = !matches!(plan.format, Format::Json | Format::Gcloud) || cli.show_token;
    if prints_token && !cli.force && std::io::stdout().is_terminal() {
        return Err(Error::usage("refusing to print the token to a terminal")
            .hint("redirect stdout to a file or a pipe, use --out FILE, or add --force"));
    }
    if plan.min_ttl.is_some() && plan.out.is_none() {
        return Err(Error::usage("--min-ttl needs --out: it checks the token already in that file"));
    }
    if plan.format == Format::Gcloud && plan.out.is_none() {
        return Err(Error::usage("--format gcloud needs --out: gcloud reads the token from that file")
            .hint("e.g. --out ~/.wif/token.txt --format gcloud, then eval the printed export line"));
    }

    let (token, mut section) = match fresh(&plan)? {
        Some(found) => found,
        None => fetch_and_store(cli, s, &plan)?,
    };
    if cli.show_token {
        section.token = Some(token.clone());
    }
    match plan.format {
        Format::Json => {
            doc.set(&section)?;
            cli::write_document(doc)
        }
        Format::Token => cli::write_stdout(token.expose().as_bytes()),
        Format::Export => {
            let line = format!("export {}={}\n", plan.export_name, shell_quote(token.expose()));
            cli::write_stdout(line.as_bytes())
        }
        Format::Gcloud => {
            let out = plan.out.as_deref().unwrap_or(Path::new(""));
            let abs = std::fs::canonicalize(out).map_err(|e| Error::io(out, &e).context("resolving --out"))?;
            let path = abs.to_str().ok_or_else(|| {
                Error::usage(format!("{} is not valid UTF-8; a shell export line cannot carry it", abs.display()))
            })?;
            let line = format!("export CLOUDSDK_AUTH_ACCESS_TOKEN_FILE={}\n", shell_quote(path));
            cli::write_stdout(line.as_bytes())
        }
        Format::Executable => {
            let resp = executable_response(&token, section.expires_at.as_deref(), plan.subject_token_type)?;
            let mut text =
                serde_json::to_string_pretty(&resp).map_err(|e| Error::new(Kind::Internal, e.to_string()))?;
            text.push('\n');
            cli::write_stdout(text.as_bytes())
        }
    }
}

/// The token in `--out` when `--min-ttl` says it is fresh enough. A token file or metadata
/// that is not trusted (another user's, writable by others, not a regular file) or does not
/// belong together is never used: it is fetched again, with a warning saying why.
fn fresh(plan: &Plan) -> Result<Option<(Secret, FetchedSection)>> {
    let (Some(out), Some(ttl)) = (&plan.out, plan.min_ttl) else { return Ok(None) };
    let stored = match files::read_token(out) {
        files::Stored::Found(t) => t,
        files::Stored::Missing(..) => return Ok(None),
        other => {
            crate::core::diag::warn(format!("not using the token in --out: {}; fetching a new one", other.detail()));
            return Ok(None);
        }
    };
    if stored.expires_at - clock::now_unix() <= ttl.as_secs() as i64 {
        return Ok(None);
    }
    let section = FetchedSection {
        url: plan.url.clone(),
        status: None,
        skipped: true,
        token_type: stored.meta.token_type.clone(),
        expires_at: Some(stored.meta.expires_at.to_string()),
        expires_from: Some("file".into()),
        assumed_ttl_seconds: None,
        bytes: stored.meta.bytes,
        sha256: stored.meta.sha256.clone(),
        out: Some(out.display().to_string()),
        fetched_at: stored.meta.written_at.to_string(),
        token: None,
    };
    Ok(Some((stored.token, section)))
}

/// Fetches the token (with retries), writes `--out` if given, and describes what it got.
pub(crate) fn fetch_and_store(cli: &Cli, s: &Settings, plan: &Plan) -> Result<(Secret, FetchedSection)> {
    let identity = load_identity(cli, s)?;
    let ca = s.require_file(cli.ca.clone(), "ca", "get_ca", "--ca")?;
    let roots = keys::load_certs(&ca.path)
        .map_err(|e| e.context("loading the CA bundle"))
        .map_err(ca.explain("the CA certificates (PEM) that issued wif-serve's certificate"))?;
    let agent = agent(&identity, &roots, plan.timeout)?;
    let doing = format!("fetching {}", http::redact_query(&plan.url));
    let answer = fetch_with_retries(&agent, plan, &identity).map_err(|e| e.context(doing.clone()))?;

    let now = clock::now_unix();
    let token = answer.token;
    let (expires_at, from, assumed) = match (&answer.expires_header, crate::core::jwt::unverified_exp(token.expose())) {
        (Some(h), _) => {
            let exp = clock::parse_rfc3339(h).map_err(|e| {
                e.context(format!("{doing}: reading the server's X-Token-Expires-At header"))
                    .hint("the server must send an RFC 3339 time; is it wif-serve?")
            })?;
            (exp, "header", None)
        }
        (None, Some(exp)) => (exp, "jwt", None),
        (None, None) => {
            let Some(ttl) = plan.assume_ttl else {
                return Err(Error::input("the server did not say when the token expires and it is not a JWT")
                    .context(doing)
                    .hint("--assume-ttl 0 refuses such a token: give a lifetime (e.g. --assume-ttl 5m), or serve the token with wif-serve, which sends X-Token-Expires-At"));
            };
            let exp = now + ttl.as_secs() as i64;
            if plan.assume_ttl_default {
                warn_assumed_once(ttl, exp);
            }
            (exp, "assumed", Some(ttl.as_secs()))
        }
    };
    let expires_at = clock::rfc3339(expires_at);
    let token_type = answer.token_type.unwrap_or_else(|| {
        if crate::core::jwt::decode_unverified(token.expose()).is_some() { "jwt" } else { "access_token" }.to_string()
    });
    if let Some(out) = &plan.out {
        files::write_token(out, &token, &token_type, Some(&expires_at), TOOL)
            .map_err(|e| e.context("writing --out"))?;
    }
    let section = FetchedSection {
        url: plan.url.clone(),
        status: Some(answer.status),
        skipped: false,
        token_type,
        expires_from: Some(from.to_string()),
        assumed_ttl_seconds: assumed,
        expires_at: Some(expires_at),
        bytes: token.expose().len(),
        sha256: keys::sha256_hex(token.expose().as_bytes()),
        out: plan.out.as_ref().map(|p| p.display().to_string()),
        fetched_at: clock::rfc3339(now),
        token: None,
    };
    Ok((token, section))
}

/// Says, once per process (the metadata server fetches again and again), that the server
/// gave no expiry and what was assumed.
fn warn_assumed_once(ttl: Duration, expires_at: i64) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    crate::core::diag::warn(format!(
        "the server gave no expiry (no X-Token-Expires-At header, and the token is not a JWT): assuming it expires {} after this fetch, at {}, the least a token from the seed's server has left; --assume-ttl DURATION changes that",
        clock::human(ttl.as_secs() as i64),
        clock::rfc3339(expires_at)
    ));
}

/// The client certificate chain and key, with facts for error hints.
struct Identity {
    chain: keys::CertChain,
    key: PrivateKeyDer<'static>,
    subject: String,
    sha256: String,
}

fn load_identity(cli: &Cli, s: &Settings) -> Result<Identity> {
    let cert = s.require_file(cli.cert.clone(), "cert", "get_cert", "--cert")?;
    let cert_path = &cert.path;
    let key_file = s.pick_file(cli.key.clone(), "key", "get_key")?;
    let password = keys::read_password(
        s.pick_file(cli.key_password_file.clone(), "key_password_file", "get_key_password_file")?.as_ref(),
        s.pick::<String>(cli.key_password_env.clone(), "get_key_password_env")?.as_deref(),
        "key password",
    )?;
    let (chain, key) = match &key_file {
        // No --key: the certificate file is a PKCS#12 (or a PEM holding key and certificate).
        None => {
            let bundle = keys::load_key(cert_path, password.as_ref())
                .map_err(cert.explain(CLIENT_CERT))
                .map_err(|e| e.hint("give --key KEY.pem, or a PKCS#12 file as --cert with --key-password-file"))?;
            let Some(chain) = bundle.chain else {
                return Err(Error::usage(format!("{} holds a key but no certificate", cert_path.display()))
                    .hint("give the certificate with --cert and the key with --key"));
            };
            (chain, bundle.key)
        }
        Some(kf) => {
            let bundle = keys::load_key(&kf.path, password.as_ref())
                .map_err(kf.explain("the client certificate's private key (PEM, or the PKCS#12 file)"))?;
            // One file for both (PKCS#12, or PEM with key and certificate): its certificates.
            let chain = match bundle.chain {
                Some(chain) if &kf.path == cert_path => chain,
                _ => keys::load_chain(cert_path)
                    .map_err(|e| e.context("loading the client certificate"))
                    .map_err(cert.explain(CLIENT_CERT))?,
            };
            (chain, bundle.key)
        }
    };
    if let Ok(sk) = keys::signing_key(&key) {
        keys::check_key_matches_cert(&sk, chain.leaf()).map_err(|e| e.context("checking --key against --cert"))?;
    }
    let subject = x509_parser::parse_x509_certificate(chain.leaf().as_ref())
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_else(|_| "(unparsable)".into());
    let sha256 = keys::sha256_hex(chain.leaf().as_ref());
    let _ = keys::warn_if_not_current(
        chain.leaf(),
        "the client certificate",
        "the server will refuse it",
        keys::ValidityCheck::Expiry,
    );
    Ok(Identity { chain, key, subject, sha256 })
}

/// A ureq agent presenting the client certificate and trusting only `roots`.
fn agent(id: &Identity, roots: &[CertificateDer<'static>], timeout: Duration) -> Result<ureq::Agent> {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // ureq builds its rustls config lazily and panics on a bad key, so build one here
    // first: it fails cleanly on keys rustls cannot use.
    let mut store = rustls::RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(roots.iter().cloned());
    if added == 0 {
        return Err(Error::input("--ca holds no usable CA certificate"));
    }
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(Kind::Internal, e.to_string()))?
        .with_root_certificates(store)
        .with_client_auth_cert(id.chain.clone().into_vec(), id.key.clone_key())
        .map_err(|e| {
            Error::input(format!("the client key cannot be used for TLS: {e}")).context("loading --cert and --key")
        })?;
    // ureq takes keys as DER with a kind it does not export, or as PEM: hand it PEM.
    let (label, der) = match &id.key {
        PrivateKeyDer::Pkcs1(k) => ("RSA PRIVATE KEY", k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => ("EC PRIVATE KEY", k.secret_sec1_der()),
        PrivateKeyDer::Pkcs8(k) => ("PRIVATE KEY", k.secret_pkcs8_der()),
        _ => return Err(Error::input("unsupported client key format").hint("use a PKCS#8, PKCS#1 or SEC1 PEM key")),
    };
    let key = pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der)
        .map(Secret::new)
        .map_err(|e| e.to_string())
        .and_then(|pem| PrivateKey::from_pem(pem.expose().as_bytes()).map_err(|e| e.to_string()))
        .map_err(|e| Error::new(Kind::Internal, format!("re-encoding the client key: {e}")))?;
    let chain: Vec<Certificate<'static>> =
        id.chain.certs().iter().map(|c| Certificate::from_der(c.as_ref()).to_owned()).collect();
    let client_cert = ClientCert::new_with_certs(&chain, key);
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider)
        .root_certs(RootCerts::from(roots.iter().map(|c| Certificate::from_der(c.as_ref()).to_owned())))
        .client_cert(Some(client_cert))
        .build();
    Ok(ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(timeout.min(CONNECT_TIMEOUT)))
        .timeout_global(Some(timeout))
        .user_agent(concat!("wif-get/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent())
}

/// A successful answer.
struct Answer {
    status: u16,
    token: Secret,
    expires_header: Option<String>,
    token_type: Option<String>,
}

/// One attempt's failure: the error, and whether (and when) it is worth retrying.
struct Failure {
    error: Error,
    retry: bool,
    retry_after: Option<u64>,
}

fn fetch_with_retries(agent: &ureq::Agent, plan: &Plan, id: &Identity) -> Result<Answer> {
    let start = Instant::now();
    let mut attempt = 0u32;
    loop {
        // Each attempt gets --timeout, but never more than what is left of --max-time.
        let timeout = plan.timeout.min(plan.max_time.saturating_sub(start.elapsed())).max(Duration::from_millis(1));
        let failure = match fetch_once(agent, plan, id, timeout) {
            Ok(a) => return Ok(a),
            Err(f) => f,
        };
        if !failure.retry || attempt >= plan.retries {
            return Err(failure.error);
        }
        let delay = http::backoff(attempt, failure.retry_after);
        if start.elapsed() + delay >= plan.max_time {
            return Err(failure.error.hint(format!(
                "gave up after {} attempts in {:.0} s (--max-time)",
                attempt + 1,
                start.elapsed().as_secs_f64()
            )));
        }
        attempt += 1;
        let what = format!("GET {}", plan.url_for_messages());
        let retry = crate::core::diag::Retry { attempt, of: Some(plan.retries), delay };
        crate::core::diag::retrying(TOOL, &what, &failure.error.to_string(), retry);
        std::thread::sleep(delay);
    }
}

fn fetch_once(agent: &ureq::Agent, plan: &Plan, id: &Identity, timeout: Duration) -> Result<Answer, Failure> {
    let mut resp = agent
        .get(&plan.url)
        .config()
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout.min(CONNECT_TIMEOUT)))
        .build()
        .header("Accept", "text/plain, application/jwt, */*")
        .call()
        .map_err(|e| transport_failure(&e, timeout))?;
    let status = resp.status().as_u16();
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string());
    let expires_header = header(EXPIRES_HEADER);
    let token_type = header(TYPE_HEADER).filter(|t| !t.is_empty());
    let retry_after = header("retry-after").and_then(|v| v.parse::<u64>().ok());
    let mut body = Vec::new();
    resp.body_mut().as_reader().take(MAX_TOKEN_BYTES + 1).read_to_end(&mut body).map_err(|e| Failure {
        error: Error::new(
            Kind::Unavailable,
            format!("reading the answer failed: {}", crate::core::error::io_words(&e)),
        ),
        retry: true,
        retry_after: None,
    })?;
    if status != 200 {
        return Err(status_failure(status, retry_after, id, server_reason(&body)));
    }
    if body.len() as u64 > MAX_TOKEN_BYTES {
        return Err(Failure {
            error: Error::input(format!("the answer is larger than {MAX_TOKEN_BYTES} bytes; that is not a token"))
                .hint("is the URL the /get_wif_token route of wif-serve?"),
            retry: false,
            retry_after: None,
        });
    }
    let token = parse_token(body).map_err(|error| Failure { error, retry: false, retry_after: None })?;
    Ok(Answer { status, token, expires_header, token_type })
}

/// The token from a 200 body: UTF-8, no whitespace inside (a trailing newline is dropped).
fn parse_token(body: Vec<u8>) -> Result<Secret> {
    let text = String::from_utf8(body).map_err(|_| Error::input("the answer is not text; that is not a token"))?;
    let token = text.trim_matches(['\r', '\n']);
    match crate::core::token::bare_token(token) {
        Ok(token) => Ok(Secret::new(token)),
        Err(_) if token.is_empty() => Err(Error::new(Kind::Unavailable, "the server answered 200 with an empty body")
            .hint("the server's token file is empty; check its refresh job")),
        Err(flaw) => Err(Error::input(format!("the answer {flaw}; that is not a token"))
            .hint("is the URL the /get_wif_token route of wif-serve?")),
    }
}

/// The `message` of a JSON error body (wif-serve's `{"error": code, "message": why}`, which
/// names no server path), fit to quote (`secret::quote`: a server could echo a secret), at
/// most MAX_REASON_CHARS characters. Any other body
/// (the seed's HTML, a proxy's page) gives none.
fn server_reason(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: String,
    }
    let body: ErrorBody = serde_json::from_slice(body).ok()?;
    let reason = crate::core::secret::quote(&body.message, MAX_REASON_CHARS);
    (!reason.is_empty()).then_some(reason)
}

fn status_failure(status: u16, retry_after: Option<u64>, id: &Identity, reason: Option<String>) -> Failure {
    let because = reason.map(|r| format!(": {r}")).unwrap_or_default();
    let refused = |why: String, hint: String| Failure {
        error: Error::new(Kind::Refused, why).hint(hint),
        retry: false,
        retry_after: None,
    };
    match status {
        401 | 403 => refused(
            format!("the server refused this client (HTTP {status})"),
            format!(
                "the certificate verified but is not on the server's allow-list; ask its operator to allow subject \"{}\" (SHA-256 {})",
                id.subject, id.sha256
            ),
        ),
        404 => refused(
            "the server has no such route (HTTP 404)".into(),
            "the token is served at https://HOST:PORT/get_wif_token".into(),
        ),
        503 => Failure {
            error: Error::new(Kind::Unavailable, format!("the server has no fresh token to give (HTTP 503){because}"))
                .hint("the server's token is missing or expired: check the refresh job (wif-sign | … | wif-impersonate --token-out) on the server"),
            retry: true,
            retry_after,
        },
        s if s == 429 || s >= 500 => Failure {
            error: Error::new(Kind::Unavailable, format!("the server failed (HTTP {s}){because}")),
            retry: true,
            retry_after,
        },
        s => refused(
            format!("the server answered HTTP {s}"),
            "wif-get expects 200 with the token from GET /get_wif_token".into(),
        ),
    }
}

/// Maps a transport failure; TLS verification failures are final, network ones retryable.
fn transport_failure(e: &ureq::Error, timeout: Duration) -> Failure {
    use ureq::Error as E;
    let net = |why: String| Failure { error: Error::new(Kind::Unavailable, why), retry: true, retry_after: None };
    let tls = |t: &rustls::Error| Failure { error: tls_failure(t), retry: false, retry_after: None };
    if let Some(t) = crate::http::rustls_cause(e) {
        return tls(t);
    }
    match e {
        E::Io(io) => {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused => {
                    let mut f = net("connection refused".into());
                    f.error =
                        f.error.hint("nothing listens at that address: is wif-serve running, and is the port right?");
                    f
                }
                K::ConnectionReset => net("the server reset the connection".into()),
                K::TimedOut | K::WouldBlock => net(format!("no answer within {} s", seconds(timeout))),
                K::UnexpectedEof => net("the server closed the connection without answering".into()),
                _ => net(format!("network error: {}", crate::core::error::io_words(io))),
            }
        }
        E::Timeout(_) => net(format!("no answer within {} s", seconds(timeout))),
        E::HostNotFound => {
            let mut f = net("the host name does not resolve".into());
            f.error = f.error.hint("check the host in --url and DNS");
            f
        }
        E::ConnectionFailed => net("connection failed".into()),
        E::Protocol(p) => net(format!("the server broke the HTTP protocol: {p}")),
        E::BadUri(u) => Failure { error: Error::usage(format!("bad URL {u:?}")), retry: false, retry_after: None },
        E::TooManyRedirects | E::RedirectFailed => Failure {
            error: Error::new(Kind::Refused, "the server answered with a redirect").hint("give the final URL"),
            retry: false,
            retry_after: None,
        },
        other => net(format!("request failed: {other}")),
    }
}

/// A duration in seconds for messages: "30", or "1.5" when an attempt got less than --timeout.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.1}", d.as_secs_f64())
    }
}

/// Explains a TLS failure: whose certificate failed, and what to check.
pub fn tls_failure(e: &rustls::Error) -> Error {
    use rustls::{CertificateError as C, Error as R};
    let (what, hint) = match e {
        R::InvalidCertificate(C::UnknownIssuer) => (
            "the server's certificate is not issued by a CA in --ca".to_string(),
            "give the CA chain that issued the server's certificate with --ca; certificates from another CA hierarchy (e.g. CA 13 vs CA 13.1) fail here".to_string(),
        ),
        R::InvalidCertificate(C::NotValidForName) | R::InvalidCertificate(C::NotValidForNameContext { .. }) => (
            "the server's certificate is not issued for the host in --url".to_string(),
            "use the host name or address listed in the server certificate's subjectAltName (openssl x509 -noout -ext subjectAltName -in server.crt)".to_string(),
        ),
        R::InvalidCertificate(C::Expired) | R::InvalidCertificate(C::ExpiredContext { .. }) => (
            "the server's certificate has expired".to_string(),
            "renew the server certificate (or fix this machine's clock)".to_string(),
        ),
        R::InvalidCertificate(other) => (
            format!("the server's certificate was rejected: {other:?}"),
            "check the server certificate and --ca".to_string(),
        ),
        R::AlertReceived(alert) => (
            format!("the server refused our client certificate (TLS alert {alert:?})"),
            "the server does not accept --cert: it must be issued by a CA the server trusts (same hierarchy, e.g. CA 13 not CA 13.1), be unexpired and unrevoked, and allow clientAuth".to_string(),
        ),
        other => (format!("TLS failed: {other}"), "check --cert, --key and --ca against the server's setup".to_string()),
    };
    Error::new(Kind::Refused, format!("TLS handshake failed: {what}")).hint(hint)
}

/// Quotes a value for a POSIX shell: single quotes, with `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A google-auth executable-sourced credential response.
#[derive(Serialize, Debug)]
struct ExecutableResponse<'a> {
    version: u8,
    success: bool,
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    saml_response: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_time: Option<i64>,
}

/// Builds the executable response: JWTs as `id_token` (type `id_token` for an OpenID Connect
/// ID token, else `jwt`; see [`jwt_kind`]), SAML assertions as `saml_response`; `wanted`
/// overrides the type, but a JWT type needs a JWT and `saml2` a SAML assertion. Opaque
/// access tokens are refused, since google-auth would hand them to STS as a subject token.
fn executable_response<'a>(
    token: &'a Secret,
    expires_at: Option<&str>,
    wanted: Option<SubjectTokenType>,
) -> Result<ExecutableResponse<'a>> {
    let t = token.expose();
    let expiration_time = expires_at.map(clock::parse_rfc3339).transpose()?;
    let found = match crate::core::jwt::decode_unverified(t) {
        Some((header, claims)) => Some(jwt_kind(&header, &claims)),
        None => is_saml(t).then_some(SubjectTokenType::Saml2),
    };
    let kind = match (found, wanted) {
        (Some(SubjectTokenType::Saml2), Some(w @ (SubjectTokenType::Jwt | SubjectTokenType::IdToken))) => {
            let name = w.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
            return Err(Error::input(format!(
                "--subject-token-type {name} needs a JWT, and this token is a SAML assertion"
            )));
        }
        (Some(SubjectTokenType::Jwt | SubjectTokenType::IdToken), Some(SubjectTokenType::Saml2)) => {
            return Err(Error::input("--subject-token-type saml2 needs a SAML assertion, and this token is a JWT"))
        }
        (Some(found), wanted) => wanted.unwrap_or(found),
        (None, _) => {
            return Err(Error::input(
                "--format executable carries a subject token (JWT or SAML), and this token is neither",
            )
            .hint("an access token is used directly: try --format token or --format export"))
        }
    };
    let saml = kind == SubjectTokenType::Saml2;
    Ok(ExecutableResponse {
        version: 1,
        success: true,
        token_type: kind.urn(),
        id_token: (!saml).then_some(t),
        saml_response: saml.then_some(t),
        expiration_time,
    })
}

/// Claims only access tokens carry: OAuth scopes (`scp`, `scope`), Azure AD's client of an
/// access token (`azpacr`, v1 `appid`/`appidacr`) and token type (`idtyp`), RFC 9068's
/// `client_id`.
const ACCESS_TOKEN_CLAIMS: &[&str] = &["scp", "scope", "azpacr", "appid", "appidacr", "idtyp", "client_id"];
/// Claims only OpenID Connect ID tokens carry (OpenID Connect Core 1.0, section 2 and 3.1.3.6).
const ID_TOKEN_CLAIMS: &[&str] = &["nonce", "auth_time", "at_hash", "c_hash"];

/// Whether a JWT is an OpenID Connect ID token or another JWT. The marks of an access token
/// come first: an Azure AD v2 access token carries `azp` (the client that asked for it) as
/// an ID token may, but also `azpacr` (and `scp` or `idtyp`; `roles` is no mark, ID tokens
/// carry it too); RFC 9068 access tokens say `typ: at+jwt`. Then an ID token's own claims, or `azp` without those marks (Google's
/// ID tokens from generateIdToken: `azp`, `email`, no nonce).
fn jwt_kind(header: &serde_json::Value, claims: &serde_json::Value) -> SubjectTokenType {
    let typ = header.get("typ").and_then(|t| t.as_str()).unwrap_or("").to_ascii_lowercase();
    let has = |names: &[&str]| names.iter().any(|n| claims.get(n).is_some());
    if typ == "at+jwt" || typ == "application/at+jwt" || has(ACCESS_TOKEN_CLAIMS) {
        SubjectTokenType::Jwt
    } else if has(ID_TOKEN_CLAIMS) || has(&["azp"]) {
        SubjectTokenType::IdToken
    } else {
        SubjectTokenType::Jwt
    }
}

fn is_saml(t: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|x| x.contains("urn:oasis:names:tc:SAML:2.0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("ya29.a-b_c"), "'ya29.a-b_c'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn token_bodies() {
        assert_eq!(parse_token(b"abc.def\n".to_vec()).unwrap().expose(), "abc.def");
        assert!(parse_token(b"\n".to_vec()).is_err());
        assert!(parse_token(b"<html> error </html>".to_vec()).is_err());
        assert!(parse_token(vec![0xff, 0xfe]).is_err());
    }

    #[test]
    fn opaque_tokens_are_not_executable_responses() {
        assert!(executable_response(&Secret::new("ya29.opaque"), None, None).is_err());
        assert!(executable_response(&Secret::new("ya29.opaque"), None, Some(SubjectTokenType::Jwt)).is_err());
    }

    fn jwt(header: serde_json::Value, claims: serde_json::Value) -> Secret {
        use base64::Engine;
        let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        Secret::new(format!("{}.{}.c2ln", b64(&header), b64(&claims)))
    }

    fn token_type_of(token: &Secret, wanted: Option<SubjectTokenType>) -> &'static str {
        executable_response(token, None, wanted).unwrap().token_type
    }

    #[test]
    fn executable_token_types_follow_the_kind_of_token() {
        let rs256 = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "k"});
        // An Azure AD v2 app-only access token (client credentials), claims as Microsoft documents them.
        let azure_access = jwt(
            rs256.clone(),
            serde_json::json!({"aud": "api://wif", "iss": "https://login.microsoftonline.com/t/v2.0", "iat": 1, "nbf": 1,
                "exp": 2, "aio": "x", "azp": "client-id", "azpacr": "2", "oid": "o", "rh": "r", "roles": ["Read"],
                "sub": "o", "tid": "t", "uti": "u", "ver": "2.0", "idtyp": "app"}),
        );
        // A delegated one: scp instead of roles and idtyp.
        let azure_delegated = jwt(
            rs256.clone(),
            serde_json::json!({"aud": "api://wif", "azp": "client-id", "azpacr": "0", "scp": "user.read", "ver": "2.0"}),
        );
        let v1_access =
            jwt(rs256.clone(), serde_json::json!({"aud": "api://wif", "appid": "c", "appidacr": "2", "ver": "1.0"}));
        let rfc9068 =
            jwt(serde_json::json!({"alg": "ES256", "typ": "at+jwt"}), serde_json::json!({"aud": "x", "sub": "y"}));
        // A Google ID token from generateIdToken: azp and email, no nonce.
        let google_id = jwt(
            rs256.clone(),
            serde_json::json!({"aud": "https://x", "azp": "1234", "email": "sa@p.iam.gserviceaccount.com", "iss": "https://accounts.google.com"}),
        );
        let oidc_id =
            jwt(rs256.clone(), serde_json::json!({"aud": "client-id", "nonce": "n", "sub": "s", "ver": "2.0"}));
        let plain =
            jwt(rs256, serde_json::json!({"iss": "https://sts.windows.net/t/", "sub": "s", "aud": "api://wif"}));
        for t in [&azure_access, &azure_delegated, &v1_access, &rfc9068, &plain] {
            assert_eq!(token_type_of(t, None), "urn:ietf:params:oauth:token-type:jwt", "{:?}", t.expose());
        }
        for t in [&google_id, &oidc_id] {
            assert_eq!(token_type_of(t, None), "urn:ietf:params:oauth:token-type:id_token", "{:?}", t.expose());
        }
        // The user's word wins, within kind: a JWT type for a JWT.
        assert_eq!(
            token_type_of(&azure_access, Some(SubjectTokenType::IdToken)),
            "urn:ietf:params:oauth:token-type:id_token"
        );
        assert_eq!(token_type_of(&google_id, Some(SubjectTokenType::Jwt)), "urn:ietf:params:oauth:token-type:jwt");
        assert!(executable_response(&azure_access, None, Some(SubjectTokenType::Saml2)).is_err());
        let resp = executable_response(&azure_access, None, None).unwrap();
        assert_eq!((resp.id_token, resp.saml_response), (Some(azure_access.expose()), None));
    }

    #[test]
    fn saml_assertions_go_in_saml_response() {
        use base64::Engine;
        let saml = Secret::new(
            base64::engine::general_purpose::STANDARD
                .encode("<saml2:Assertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\">x</saml2:Assertion>"),
        );
        let resp = executable_response(&saml, None, None).unwrap();
        assert_eq!(resp.token_type, "urn:ietf:params:oauth:token-type:saml2");
        assert_eq!((resp.id_token, resp.saml_response), (None, Some(saml.expose())));
        assert!(executable_response(&saml, None, Some(SubjectTokenType::IdToken)).is_err());
    }

    #[test]
    fn the_servers_reason_is_quoted_scrubbed_and_bounded() {
        let body = |message: &str| serde_json::json!({"error": "token_unavailable", "message": message}).to_string();
        assert_eq!(server_reason(body("there is no token file").as_bytes()).as_deref(), Some("there is no token file"));
        // Not JSON (the seed's HTML), no message, an empty one: nothing to quote.
        assert_eq!(server_reason(b"<html>Service Unavailable</html>"), None);
        assert_eq!(server_reason(br#"{"error":"x"}"#), None);
        assert_eq!(server_reason(body(" \n ").as_bytes()), None);
        // A token in the message never reaches the error; neither do line breaks.
        let leaky =
            server_reason(body("expired: ya29.a0AfH6SMBleakedleakedleaked\r\nX-Injected: 1").as_bytes()).unwrap();
        assert!(!leaky.contains("ya29.a0AfH6SMB") && !leaky.contains('\n') && !leaky.contains('\r'), "{leaky}");
        let long = server_reason(body(&"why ".repeat(500)).as_bytes()).unwrap();
        assert_eq!(long.chars().count(), MAX_REASON_CHARS + 1, "{long}");
        assert!(long.ends_with('…'));
    }
}
