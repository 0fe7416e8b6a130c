//! Downscoped credentials: minted at STS from a rule's source token and boundary, cached per
//! rule for the source token they came from, one STS call at a time per rule (single
//! flight), and a failure remembered briefly so a crowd of clients does not hammer STS.

use super::super::policy::Boundary;
use super::super::token::Loaded;
use crate::core::clock;
use crate::core::error::Error;
use crate::core::secret::Secret;
use crate::http::Client;
use crate::protocol::boundary::downscope;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A cached token is minted again this long before it expires, unless nothing fresher can
/// be had (its expiry is already its source's).
const RENEW_BEFORE_SECS: i64 = 60;
/// How long a failure to mint is answered from memory, per rule.
const FAILURE_MEMORY: Duration = Duration::from_secs(5);
/// Bytes of a SHA-256 digest, as hex digits, shown in logs, headers and the ledger.
pub const DIGEST_PREFIX: usize = 16;

/// A downscoped credential.
pub struct Minted {
    /// The narrowed token.
    pub token: Secret,
    /// Its `token_type`.
    pub token_type: String,
    /// Its expiry, Unix seconds.
    pub expires_at: i64,
    /// Its expiry as RFC 3339 UTC.
    pub expires_at_text: String,
    /// The first hex digits of its SHA-256.
    pub sha256: String,
}

/// How a credential was obtained for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The source token as it is.
    File,
    /// Downscoped by an STS call made for this request.
    Sts,
    /// Downscoped earlier, from the cache.
    Cache,
}

impl Via {
    /// The ledger's word.
    pub fn label(self) -> &'static str {
        match self {
            Via::File => "file",
            Via::Sts => "sts",
            Via::Cache => "cache",
        }
    }
}

/// Why no downscoped credential could be had.
#[derive(Clone, Debug)]
pub struct Failure {
    /// For the log: the STS error (never a token).
    pub detail: String,
    /// Whether STS refused (4xx) rather than failed to answer.
    pub refused: bool,
}

/// The outcome of an STS call, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// A token was minted.
    Ok,
    /// STS refused.
    Refused,
    /// STS could not be reached or answered badly.
    Failed,
}

impl Call {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Call::Ok => "ok",
            Call::Refused => "refused",
            Call::Failed => "failed",
        }
    }
}

/// Where and how to downscope.
pub struct Downscoper {
    /// The HTTP client (its roots trust the STS endpoint).
    pub client: Client,
    /// The STS token endpoint.
    pub url: String,
}

/// One rule's cache entry; its lock is held during the STS call (single flight).
#[derive(Default)]
struct Slot {
    /// The source token (full SHA-256 hex) the entry belongs to.
    source: String,
    minted: Option<Arc<Minted>>,
    failed: Option<(Instant, Failure)>,
}

/// The downscoped credentials of one policy, by rule name.
#[derive(Default)]
pub struct Cache {
    slots: Mutex<HashMap<String, Arc<Mutex<Slot>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Minted {
    /// Whether it may still be handed out for `source`: until [`RENEW_BEFORE_SECS`] before
    /// its expiry, or until it expires when its expiry is already the source's.
    fn usable(&self, source: &Loaded, now: i64) -> bool {
        now < self.expires_at && (self.expires_at - now > RENEW_BEFORE_SECS || self.expires_at >= source.expires_at)
    }
}

impl Cache {
    /// The credential of `rule` for `source`: from the cache, or minted now (one call per
    /// rule at a time: concurrent requests wait for it and share its outcome), or the failure.
    /// `on_call` is told the outcome of each STS call made.
    pub fn get(
        &self,
        rule: &str,
        boundary: &Boundary,
        source: &Loaded,
        sts: &Downscoper,
        on_call: impl FnOnce(Call),
    ) -> Result<(Arc<Minted>, Via), Failure> {
        let slot = lock(&self.slots).entry(rule.to_string()).or_default().clone();
        let mut slot = lock(&slot);
        if slot.source != source.sha256 {
            // A new source token: what was minted from the old one goes.
            *slot = Slot { source: source.sha256.clone(), ..Slot::default() };
        }
        let now = clock::now_unix();
        if let Some(m) = slot.minted.as_ref().filter(|m| m.usable(source, now)) {
            return Ok((m.clone(), Via::Cache));
        }
        if let Some((at, failure)) = &slot.failed {
            if at.elapsed() < FAILURE_MEMORY {
                return Err(failure.clone());
            }
        }
        match mint(boundary, source, sts) {
            Ok(m) => {
                on_call(Call::Ok);
                let m = Arc::new(m);
                slot.minted = Some(m.clone());
                slot.failed = None;
                Ok((m, Via::Sts))
            }
            Err(f) => {
                on_call(if f.refused { Call::Refused } else { Call::Failed });
                slot.minted = None;
                slot.failed = Some((Instant::now(), f.clone()));
                Err(f)
            }
        }
    }
}

/// One STS call: the source token narrowed by the boundary, expiring no later than it.
fn mint(boundary: &Boundary, source: &Loaded, sts: &Downscoper) -> Result<Minted, Failure> {
    let d = downscope(&sts.client, &sts.url, &source.token, &boundary.boundary).map_err(|e: Error| Failure {
        refused: e.kind() == crate::core::error::Kind::Refused,
        detail: e.to_string(),
    })?;
    let expires_at = d.expires_at.map_or(source.expires_at, |t| t.unix().min(source.expires_at));
    Ok(Minted {
        sha256: crate::core::keys::sha256_hex(d.token.expose().as_bytes())[..DIGEST_PREFIX].to_string(),
        token: d.token,
        token_type: d.token_type,
        expires_at,
        expires_at_text: clock::rfc3339(expires_at),
    })
}
