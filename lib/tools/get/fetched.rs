//! The `fetched` section: a token fetched (and stored in `--out`), or found fresh there.

use super::args::{Cli, TOOL};
use super::fetch::{client, fetch};
use super::identity::{BearerToken, Credential};
use super::plan::Plan;
use crate::core::clock::{self, Timestamp};
use crate::core::error::{Error, Result};
use crate::core::files;
use crate::core::keys;
use crate::core::secret::Secret;
use crate::core::settings::key;
use crate::core::settings::Settings;
use crate::core::spread;
use crate::http;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The `fetched` section: what was fetched, from where, and where it went (never the token
/// unless asked for).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FetchedSection {
    /// The URL fetched.
    pub url: String,
    /// HTTP status of the answer (absent when skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What wif-get presents: `certificate` (mutual TLS) or `bearer` (--bearer-file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// With `auth: bearer`, when a token was fetched: the file and what the bearer token's
    /// claims say, read without verifying (never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<BearerSection>,
    /// True when --min-ttl found the token in --out fresh and nothing was fetched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// With `skipped`: when this host will fetch that token (its remaining life reaches
    /// --min-ttl plus this host's share of --spread), RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_after: Option<String>,
    /// When a fetch that was not yet urgent slept first (--splay): for how long, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splay_ms: Option<u64>,
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

/// The bearer token a fetch presented, as the `fetched` section describes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BearerSection {
    /// The --bearer-file it was read from, absolute.
    pub file: String,
    /// Its `iss` claim (unverified), if a string.
    pub iss: Option<String>,
    /// Its `sub` claim (unverified), if a string.
    pub sub: Option<String>,
    /// Its `exp` claim (unverified), RFC 3339 UTC, if a number.
    pub expires_at: Option<String>,
}

impl BearerSection {
    fn of(token: &BearerToken) -> BearerSection {
        BearerSection {
            file: token.file.display().to_string(),
            iss: token.iss.clone(),
            sub: token.sub.clone(),
            expires_at: token.expires_at.map(clock::rfc3339),
        }
    }
}

impl crate::core::document::Section for FetchedSection {
    const NAME: &'static str = "fetched";
    const MADE_BY: &'static str = "wif-get";
}

/// A token in hand: the token, the `fetched` section describing it, and its expiry (parsed
/// once, where it was learnt).
pub struct Fetched {
    /// The token.
    pub token: Secret,
    /// What the document says of it.
    pub section: FetchedSection,
    /// When it expires.
    pub expires_at: Timestamp,
}

/// What `--min-ttl` makes of the token in `--out`.
pub(crate) enum Decision {
    /// Fresh enough for this host: nothing is fetched; the `fetched` section describes it.
    Fresh(Box<Fetched>),
    /// This host's turn to fetch it, `early` seconds before only --min-ttl is left: not
    /// urgent, so --splay may delay the fetch (by less than `early`).
    Due {
        /// Seconds of the token's life left above --min-ttl.
        early: i64,
    },
    /// Fetch at once: no --min-ttl, no usable token, or --min-ttl or less left.
    Urgent,
}

/// Decides from the token in `--out` whether to fetch (see [`Decision`]): fetched again when
/// its remaining life is at or below `spread::threshold_within(min_ttl, spread, u, life)`,
/// `u` fixed by this host and the token (`spread::one_shot_unit`), `life` what the token had
/// left when it was written. A token file or metadata that is not trusted (another user's,
/// writable by others, not a regular file) or does not belong together is never used: it
/// is fetched again, with a warning saying why.
pub(crate) fn fresh(plan: &Plan) -> Result<Decision> {
    let (Some(out), Some(ttl)) = (&plan.out, plan.min_ttl) else { return Ok(Decision::Urgent) };
    let stored = match files::read_token(out) {
        files::Stored::Found(t) => t,
        files::Stored::Missing(..) => return Ok(Decision::Urgent),
        other => {
            crate::core::diag::warn(format!("not using the token in --out: {}; fetching a new one", other.detail()));
            return Ok(Decision::Urgent);
        }
    };
    let min_ttl = ttl.as_secs().min(i64::MAX as u64) as i64;
    let expires_at = stored.expires_at.unix();
    let remaining = expires_at - clock::now_unix();
    if remaining <= min_ttl {
        return Ok(Decision::Urgent);
    }
    let u = spread::one_shot_unit(&spread::host_id(), &keys::sha256_hex(stored.token.expose().as_bytes()));
    let life = Timestamp::parse(&stored.meta.written_at).map_or(i64::MAX, |w| expires_at - w.unix());
    let threshold = spread::threshold_within(min_ttl, plan.spread, u, life);
    if remaining <= threshold {
        return Ok(Decision::Due { early: remaining - min_ttl });
    }
    let section = FetchedSection {
        url: plan.url.clone(),
        status: None,
        auth: Some(plan.auth.label().to_string()),
        bearer: None,
        skipped: true,
        refresh_after: Some(clock::rfc3339(expires_at - threshold)),
        splay_ms: None,
        token_type: stored.meta.token_type.clone(),
        expires_at: Some(stored.meta.expires_at.clone()),
        expires_from: Some("file".into()),
        assumed_ttl_seconds: None,
        bytes: stored.meta.bytes,
        sha256: stored.meta.sha256.clone(),
        out: Some(out.display().to_string()),
        fetched_at: stored.meta.written_at.clone(),
        token: None,
    };
    Ok(Decision::Fresh(Box::new(Fetched { token: stored.token, section, expires_at: stored.expires_at })))
}

/// With --splay, before a fetch `early` seconds before only --min-ttl is left: sleeps a
/// random time below --splay, and below `early` less a second (the clock's seconds are
/// whole: at least --min-ttl is left on waking). Returns the milliseconds slept, `None`
/// without --splay.
pub(crate) fn splay(plan: &Plan, early: i64) -> Option<u64> {
    if plan.splay.is_zero() {
        return None;
    }
    let most = plan.splay.as_millis().min(u64::MAX as u128) as u64;
    let cap = (early.saturating_sub(1).max(0) as u64).saturating_mul(1000);
    let ms = ((spread::unit_random() * most as f64).floor() as u64).min(cap);
    std::thread::sleep(Duration::from_millis(ms));
    Some(ms)
}

/// Fetches the token (with retries), writes `--out` if given, and describes what it got.
/// The credential (certificate or bearer token file) is loaded anew for each fetch.
pub(crate) fn fetch_and_store(cli: &Cli, s: &Settings, plan: &Plan) -> Result<Fetched> {
    let credential = Credential::load(cli, s, plan)?;
    let ca = s.require_file(cli.ca.clone(), "ca", key::GET_CA, "--ca")?;
    let roots = keys::load_certs(&ca.path)
        .map_err(|e| e.context("loading the CA bundle"))
        .map_err(ca.explain("the CA certificates (PEM) that issued wif-serve's certificate"))?;
    let client = client(plan, &credential, roots)?;
    let doing = format!("fetching {}", http::redact_query(&plan.url));
    let answer = fetch(&client, plan, &credential).map_err(|e| e.context(doing.clone()))?;

    let now = clock::now_unix();
    let token = answer.token;
    let (expires_at, from, assumed) = match (&answer.expires_header, crate::core::jwt::unverified_exp(token.expose())) {
        (Some(h), _) => {
            let exp = Timestamp::parse(h).map(Timestamp::unix).map_err(|e| {
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
    let expiry = Timestamp::from_unix(expires_at);
    let expires_at = expiry.to_string();
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
        auth: Some(plan.auth.label().to_string()),
        bearer: match &credential {
            Credential::Bearer(token) => Some(BearerSection::of(token)),
            Credential::Certificate(_) => None,
        },
        skipped: false,
        refresh_after: None,
        splay_ms: None,
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
    Ok(Fetched { token, section, expires_at: expiry })
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
