//! The credential broker: what a verified client gets. Without a policy, the token file
//! (`--token`), as ever. With `--policy`, the first rule matching the client's identity picks
//! a token source and, if the rule has a boundary, narrows its token at STS — failing
//! closed: when the narrowed token cannot be minted, the client gets 503, never the broader
//! token. The policy is re-read when its file changes (looked at every second) and on
//! SIGHUP; a bad new policy is refused and the old one stays.

pub mod downscope;
mod stats;

use super::allow::Principal;
use super::bearer::KnownIssuer;
use super::ledger::Ledger;
use super::log;
use super::policy::{Policy, Rule, DEFAULT_SOURCE};
use super::token::{Loaded, Stamp, State, TokenSource};
use crate::core::error::Result;
use downscope::{Cache, Downscoper, Minted, Via, DIGEST_PREFIX};
pub use stats::{Outcome, Samples};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// `Retry-After` of a 503 for a credential that could not be minted.
pub const MINT_RETRY_AFTER: &str = "5";
/// `Retry-After` of a 503 for a token source that cannot be served (as without a policy).
pub const SOURCE_RETRY_AFTER: &str = "30";

/// The credential handed out.
pub enum Credential {
    /// A token source's token, as it is.
    File(Arc<Loaded>),
    /// A downscoped token.
    Minted(Arc<Minted>),
}

impl Credential {
    /// The token.
    pub fn token(&self) -> &str {
        match self {
            Credential::File(l) => l.token.expose(),
            Credential::Minted(m) => m.token.expose(),
        }
    }

    /// Its `token_type`, for `X-Token-Type`.
    pub fn token_type(&self) -> &str {
        match self {
            Credential::File(l) => &l.token_type,
            Credential::Minted(m) => &m.token_type,
        }
    }

    /// Its expiry as RFC 3339 UTC, for `X-Token-Expires-At`.
    pub fn expires_at_text(&self) -> &str {
        match self {
            Credential::File(l) => &l.expires_at_text,
            Credential::Minted(m) => &m.expires_at_text,
        }
    }

    /// The first hex digits of its SHA-256.
    pub fn sha256(&self) -> &str {
        match self {
            Credential::File(l) => &l.sha256[..DIGEST_PREFIX],
            Credential::Minted(m) => &m.sha256,
        }
    }
}

/// A credential for a client, with where it came from.
pub struct Issued {
    /// The credential.
    pub credential: Credential,
    /// The rule that matched, with a policy.
    pub rule: Option<String>,
    /// The token source's name.
    pub source: String,
    /// The first hex digits of the source token's SHA-256.
    pub source_sha256: String,
    /// The boundary's digest, for a downscoped credential.
    pub boundary: Option<String>,
    /// How it was obtained.
    pub via: Via,
}

/// What a verified client gets.
pub enum Grant {
    /// A credential.
    Issued(Issued),
    /// No rule of the policy matches the client: 403.
    Unmatched,
    /// The token source cannot be served (missing, expired, …): 503, as without a policy.
    SourceUnavailable {
        /// Why, for the client (no paths).
        reason: String,
        /// Why, for the log.
        detail: String,
    },
    /// The narrowed credential could not be minted: 503, never the broader token.
    MintFailed {
        /// Why, for the log (never a token).
        detail: String,
    },
}

/// The policy in force, with its token sources and the credentials minted under it.
struct Active {
    policy: Policy,
    sources: BTreeMap<String, Arc<TokenSource>>,
    cache: Cache,
}

/// `--policy`, watched.
struct Watched {
    path: PathBuf,
    active: RwLock<Arc<Active>>,
    /// The version of the file last read (good or refused): a refused file is not read
    /// again until it changes.
    stamp: Mutex<Option<Stamp>>,
    /// Every token source by file, kept across reloads so an unchanged file is not re-read.
    registry: Mutex<HashMap<PathBuf, Arc<TokenSource>>>,
    sts: Downscoper,
    /// The issuers of `--bearer-issuers`, which the policy's `issuer` keys must name (and
    /// whose kept claims its `claims` keys must be).
    issuers: Vec<KnownIssuer>,
}

/// Decides what each client gets.
pub struct Broker {
    /// The `--token` source, if given.
    pub default: Option<Arc<TokenSource>>,
    assume_ttl: Option<Duration>,
    watched: Option<Watched>,
    /// Where issuance lines go.
    pub ledger: Ledger,
    stats: stats::Stats,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A policy's event in the log: `policy_loaded` or `policy_refused`.
#[derive(serde::Serialize)]
struct PolicyEvent<'a> {
    event: &'static str,
    time: String,
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rules: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

impl Broker {
    /// A broker for `--token` (if given) and `--policy` (if given; read now: a bad policy
    /// stops the start), downscoping with `sts`, recording to `ledger`; the policy's
    /// `issuer` and `claims` keys are checked against `issuers` (those of `--bearer-issuers`).
    pub fn new(
        default: Option<PathBuf>,
        assume_ttl: Option<Duration>,
        policy: Option<(PathBuf, Downscoper)>,
        issuers: Vec<KnownIssuer>,
        ledger: Ledger,
    ) -> Result<Broker> {
        let default = default.map(|p| Arc::new(TokenSource::new(p).assume_ttl(assume_ttl)));
        let mut broker = Broker { default, assume_ttl, watched: None, ledger, stats: stats::Stats::default() };
        if let Some((path, sts)) = policy {
            let stamp = Stamp::of(&path).ok();
            let policy = Policy::load(&path, broker.default.is_some(), &issuers)?;
            let registry = Mutex::new(HashMap::new());
            let active = broker.activate(&registry, policy);
            broker.watched =
                Some(Watched { active: RwLock::new(active), path, stamp: Mutex::new(stamp), registry, sts, issuers });
            broker.stats.policy_reload(true);
        }
        Ok(broker)
    }

    /// Whether a policy is in force.
    pub fn has_policy(&self) -> bool {
        self.watched.is_some()
    }

    /// The token sources to check at start: name and file, each once.
    pub fn sources_at_start(&self) -> Vec<(String, Arc<TokenSource>)> {
        match &self.watched {
            Some(w) => read(&w.active).sources.iter().map(|(n, s)| (n.clone(), s.clone())).collect(),
            None => self.default.iter().map(|s| (DEFAULT_SOURCE.to_string(), s.clone())).collect(),
        }
    }

    /// The policy's sources, with what each would serve now (for /healthz and metrics).
    pub fn source_states(&self) -> Vec<(String, State)> {
        match &self.watched {
            Some(w) => {
                let active = read(&w.active).clone();
                active.sources.iter().map(|(n, s)| (n.clone(), s.current())).collect()
            }
            None => Vec::new(),
        }
    }

    /// Builds the active state for a freshly read policy: its token sources (reusing those
    /// of files already watched) and an empty cache.
    fn activate(&self, registry: &Mutex<HashMap<PathBuf, Arc<TokenSource>>>, policy: Policy) -> Arc<Active> {
        let mut registry = lock(registry);
        let mut sources = BTreeMap::new();
        for name in policy.used_sources() {
            let Some(path) = policy.source_path(name, self.default.as_ref().map(|d| d.path())) else { continue };
            let source = match (name, &self.default) {
                (DEFAULT_SOURCE, Some(d)) if !policy.tokens.contains_key(DEFAULT_SOURCE) => d.clone(),
                _ => registry
                    .entry(path.to_path_buf())
                    .or_insert_with(|| Arc::new(TokenSource::new(path.to_path_buf()).assume_ttl(self.assume_ttl)))
                    .clone(),
            };
            sources.insert(name.to_string(), source);
        }
        registry.retain(|p, _| sources.values().any(|s| s.path() == p));
        Arc::new(Active { policy, sources, cache: Cache::default() })
    }

    /// Logs the policy in force (`policy_loaded`): after the `listening` line at start, and
    /// after each reload.
    pub fn log_loaded(&self) {
        let Some(w) = &self.watched else { return };
        let rules = read(&w.active).policy.rules.len();
        log::emit(&PolicyEvent {
            event: "policy_loaded",
            time: log::now(),
            file: w.path.display().to_string(),
            rules: Some(rules),
            version: Some(super::policy::VERSION),
            reason: None,
        });
    }

    /// Re-reads the policy if its file changed (`force`: whatever its stamp, for SIGHUP).
    /// A policy that cannot be read or is not valid is refused; the one in force stays.
    pub fn refresh(&self, force: bool) {
        let Some(w) = &self.watched else { return };
        // The stamp's lock is held through the read and the swap: the once-a-second look and
        // SIGHUP never load at once, so an older read cannot replace a newer policy (and
        // stay, its file's stamp already seen).
        let mut stamp = lock(&w.stamp);
        let now = Stamp::of(&w.path).ok();
        if !force && *stamp == now {
            return;
        }
        *stamp = now;
        match Policy::load(&w.path, self.default.is_some(), &w.issuers) {
            Ok(policy) => {
                let active = self.activate(&w.registry, policy);
                *w.active.write().unwrap_or_else(|p| p.into_inner()) = active;
                self.stats.policy_reload(true);
                self.log_loaded();
            }
            Err(e) => {
                self.stats.policy_reload(false);
                let reason = format!("{e}; the policy in force stays");
                log::emit(&PolicyEvent {
                    event: "policy_refused",
                    time: log::now(),
                    file: w.path.display().to_string(),
                    rules: None,
                    version: None,
                    reason: Some(&reason),
                });
            }
        }
    }

    /// Forgets what was read from the token files, so they are read again (SIGHUP).
    pub fn invalidate_sources(&self) {
        if let Some(d) = &self.default {
            d.invalidate();
        }
        if let Some(w) = &self.watched {
            for s in read(&w.active).sources.values() {
                s.invalidate();
            }
        }
    }

    /// What the verified client gets now. `hands_out`: the answer carries the token
    /// (GET); a HEAD asks only for its headers and is not counted as a grant.
    pub fn grant(&self, client: &Principal, hands_out: bool) -> Grant {
        let Some(w) = &self.watched else {
            return match self.default.as_ref().map(|d| d.current()) {
                Some(state) => from_source(state, None, DEFAULT_SOURCE),
                None => {
                    Grant::SourceUnavailable { reason: "there is no token file".into(), detail: "no --token".into() }
                }
            };
        };
        let active = read(&w.active).clone();
        let Some(rule) = active.policy.select(client) else { return Grant::Unmatched };
        let grant = self.grant_by(&active, rule, &w.sts);
        if !hands_out {
            return grant;
        }
        match &grant {
            Grant::Issued(i) => self.stats.grant(&rule.name, Outcome::Issued, i.via == Via::Cache),
            Grant::Unmatched => {}
            Grant::SourceUnavailable { .. } | Grant::MintFailed { .. } => {
                self.stats.grant(&rule.name, Outcome::Unavailable, false)
            }
        }
        grant
    }

    fn grant_by(&self, active: &Active, rule: &Rule, sts: &Downscoper) -> Grant {
        let Some(source) = active.sources.get(&rule.source) else {
            return Grant::SourceUnavailable {
                reason: "the server has no token for this client".into(),
                detail: format!("rule {}: no token source {}", rule.name, rule.source),
            };
        };
        let loaded = match source.current() {
            State::Ready(l) => l,
            state => return from_source(state, Some(&rule.name), &rule.source),
        };
        let Some(boundary) = &rule.boundary else {
            return from_source(State::Ready(loaded), Some(&rule.name), &rule.source);
        };
        let on_call = |c| self.stats.downscope_call(&rule.name, c);
        match active.cache.get(&rule.name, boundary, &loaded, sts, on_call) {
            Ok((minted, via)) => Grant::Issued(Issued {
                credential: Credential::Minted(minted),
                rule: Some(rule.name.clone()),
                source: rule.source.clone(),
                source_sha256: loaded.sha256[..DIGEST_PREFIX].to_string(),
                boundary: Some(boundary.digest.clone()),
                via,
            }),
            Err(f) => Grant::MintFailed {
                detail: format!(
                    "rule {}: the narrowed credential could not be minted ({}); answering 503, never the broader token",
                    rule.name, f.detail
                ),
            },
        }
    }

    /// The broker's counters, for the metrics.
    pub fn samples(&self) -> Samples {
        let rules = self.watched.as_ref().map(|w| read(&w.active).policy.rules.len());
        self.stats.samples(rules)
    }
}

/// The grant of a token source's state, as it is.
fn from_source(state: State, rule: Option<&str>, source: &str) -> Grant {
    match state {
        State::Ready(l) => Grant::Issued(Issued {
            source_sha256: l.sha256[..DIGEST_PREFIX].to_string(),
            credential: Credential::File(l),
            rule: rule.map(str::to_string),
            source: source.to_string(),
            boundary: None,
            via: Via::File,
        }),
        State::Unavailable { reason, detail, .. } => Grant::SourceUnavailable { reason, detail },
    }
}
