//! What wif-get will do, resolved once from flags, environment and config.

use super::args::{Cli, Format, SubjectTokenType};
use crate::core::error::{Error, Result};
use crate::core::settings::{key, Key};
use crate::core::settings::{FileSetting, Settings};
use crate::core::spread::Spread;
use crate::http;
use std::path::PathBuf;
use std::time::Duration;

/// The lifetime assumed for a token whose server says nothing of its expiry (the seed's
/// Flask server sends the bare token): the seed's generator refreshes every 55 minutes and
/// Google's access tokens live 60, so a token it serves has at least 5 minutes left.
pub const DEFAULT_ASSUME_TTL: Duration = Duration::from_secs(5 * 60);

/// Everything wif-get needs, resolved from flags, environment and config.
#[derive(Clone)]
pub(crate) struct Plan {
    pub(crate) url: String,
    pub(crate) out: Option<PathBuf>,
    /// `--min-ttl`: skip while --out is this fresh (or, for the metadata server, refresh margin).
    pub(crate) min_ttl: Option<Duration>,
    /// `--spread`: how refreshes are spread before the margin.
    pub(crate) spread: Spread,
    /// `--splay`: the most a fetch that is not yet urgent sleeps first (zero: not at all).
    pub(crate) splay: Duration,
    /// The lifetime assumed for a token of unknown expiry; `None`: such a token is refused.
    pub(crate) assume_ttl: Option<Duration>,
    /// Whether `assume_ttl` is the default (then a warning says it was assumed).
    pub(crate) assume_ttl_default: bool,
    pub(crate) format: Format,
    pub(crate) subject_token_type: Option<SubjectTokenType>,
    pub(crate) export_name: String,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) max_time: Duration,
    /// What wif-get presents to the server.
    pub(crate) auth: Auth,
}

/// What wif-get presents to prove who it is: a client certificate in the TLS handshake (the
/// default), or a bearer token read from a file for each fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Auth {
    /// `--cert`/`--key` (loaded for each fetch).
    Certificate,
    /// `--bearer-file`: `Authorization: Bearer` with the JWT in this file, read for each fetch.
    Bearer(FileSetting),
}

impl Auth {
    /// The `auth` value of the `fetched` section.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Auth::Certificate => "certificate",
            Auth::Bearer(_) => "bearer",
        }
    }
}

/// `--bearer-file`, unless not given; refused beside any setting of the client certificate
/// (naming both), which it replaces.
fn auth(cli: &Cli, s: &Settings) -> Result<Auth> {
    let Some(bearer) = s.pick_file(cli.bearer_file.clone(), "bearer_file", key::GET_BEARER_FILE)? else {
        return Ok(Auth::Certificate);
    };
    let certificate_settings = [
        (cli.cert.is_some(), "cert", key::GET_CERT),
        (cli.key.is_some(), "key", key::GET_KEY),
        (cli.key_password_file.is_some(), "key_password_file", key::GET_KEY_PASSWORD_FILE),
        (cli.key_password_env.is_some(), "key_password_env", key::GET_KEY_PASSWORD_ENV),
    ];
    for (by_flag, arg, key) in certificate_settings {
        if by_flag || s.pick::<serde_json::Value>(None, key)?.is_some() {
            return Err(Error::usage(format!(
                "{} and {} cannot be used together: the bearer token replaces the client certificate",
                bearer.origin,
                s.origin(by_flag, arg, key)
            ))
            .hint("give either --bearer-file (the server must accept bearer tokens: wif-serve --bearer-issuers) or --cert/--key"));
        }
    }
    Ok(Auth::Bearer(bearer))
}

impl Plan {
    /// The token URL without its query, for messages.
    pub(crate) fn url_for_messages(&self) -> &str {
        http::redact_query(&self.url)
    }
}

/// A duration setting, unset when neither flag nor config gives it; `name` is the flag.
pub(crate) fn duration_setting(s: &Settings, flag: Option<String>, key: Key, name: &str) -> Result<Option<Duration>> {
    s.duration(flag, key, Some(&format!("reading {name}")))
}

/// A duration setting that must be more than zero, `default` when not set.
fn over_zero(s: &Settings, flag: Option<String>, key: Key, name: &str, default: Duration) -> Result<Duration> {
    s.duration_over_zero(flag, key, name, Some(&format!("reading {name}")), default)
}

/// Resolves the plan from flags, environment and config, refusing what cannot work.
pub(crate) fn plan(cli: &Cli, s: &Settings) -> Result<Plan> {
    let url: String = s.require(cli.url.clone(), key::GET_URL, "--url")?;
    http::check_url(&url)?;
    if !url.to_ascii_lowercase().starts_with("https://") {
        return Err(Error::usage(format!("{url:?} is not an https:// URL"))
            .hint("the token is served over mutual TLS only: https://HOST:PORT/get_wif_token"));
    }
    let timeout = over_zero(s, cli.timeout.clone(), key::TIMEOUT, "--timeout", Duration::from_secs(30))?;
    let max_time = over_zero(s, cli.max_time.clone(), key::GET_MAX_TIME, "--max-time", Duration::from_secs(120))?;
    let export_name =
        s.pick_or(cli.export_name.clone(), key::GET_EXPORT_NAME, "GOOGLE_OAUTH_ACCESS_TOKEN".to_string())?;
    let valid_name = export_name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && export_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(Error::usage(format!("{export_name:?} is not a shell variable name")));
    }
    let format = s.pick_or(cli.format, key::GET_FORMAT, Format::Json)?;
    let subject_token_type = s.pick(cli.subject_token_type, key::GET_SUBJECT_TOKEN_TYPE)?;
    if subject_token_type.is_some() && format != Format::Executable {
        return Err(Error::usage("--subject-token-type only applies to --format executable"));
    }
    let assume_ttl = duration_setting(s, cli.assume_ttl.clone(), key::GET_ASSUME_TTL, "--assume-ttl")?;
    let auth = auth(cli, s)?;
    let spread = match s.pick::<String>(cli.spread.clone(), key::GET_SPREAD)? {
        Some(text) => Spread::parse(&text, "--spread")?,
        None => Spread::Auto,
    };
    let splay = duration_setting(s, cli.splay.clone(), key::GET_SPLAY, "--splay")?.unwrap_or_default();
    Ok(Plan {
        url,
        out: s.pick(cli.out.clone(), key::GET_OUT)?,
        min_ttl: duration_setting(s, cli.min_ttl.clone(), key::GET_MIN_TTL, "--min-ttl")?,
        spread,
        splay,
        assume_ttl_default: assume_ttl.is_none(),
        assume_ttl: assume_ttl.or(Some(DEFAULT_ASSUME_TTL)).filter(|d| !d.is_zero()),
        format,
        subject_token_type,
        export_name,
        timeout,
        retries: s.pick_or(cli.retries, key::RETRIES, 3)?,
        max_time,
        auth,
    })
}
