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
    /// Every result, in the order of the counters.
    pub const ALL: [Call; 3] = [Call::Ok, Call::Refused, Call::Failed];

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
        let slot = {
            let mut slots = lock(&self.slots);
            match slots.get(rule) {
                Some(slot) => slot.clone(),
                None => slots.entry(rule.to_string()).or_default().clone(),
            }
        };
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
    // The detail goes to the log: an STS (or a proxy before it) that quotes the request in
    // its refusal would put the source token there, so it is scrubbed of every secret held.
    let d = downscope(&sts.client, &sts.url, &source.token, &boundary.boundary).map_err(|e: Error| Failure {
        refused: e.kind() == crate::core::error::Kind::Refused,
        detail: crate::core::secret::scrub(&e.to_string()),
    })?;
    if d.token == source.token {
        // An STS (or something posing as one) that hands back the source token has narrowed
        // nothing: handing it out would be the broader credential under the rule's name.
        return Err(Failure {
            detail: format!("{} answered with the source token itself, not a narrowed one", sts.url),
            refused: false,
        });
    }
    let expires_at = d.expires_at.map_or(source.expires_at, |t| t.unix().min(source.expires_at));
    Ok(Minted {
        sha256: crate::core::keys::sha256_hex(d.token.expose().as_bytes())[..DIGEST_PREFIX].to_string(),
        token: d.token,
        // What X-Token-Type says of the source (e.g. access_token), not OAuth's scheme word.
        token_type: source.token_type.clone(),
        expires_at,
        expires_at_text: clock::rfc3339(expires_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::boundary::AccessBoundary;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An STS on loopback that answers every request with `status` and `body` after `delay`,
    /// counting the requests.
    fn fake_sts(status: u16, body: &'static str, delay: Duration) -> (Downscoper, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/token", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // The whole request: the head, then Content-Length bytes of form.
                loop {
                    let n = s.read(&mut chunk).unwrap_or(0);
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len || n == 0 {
                            assert!(text.contains(
                                "subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
                            ));
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(delay);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let opts = crate::http::HttpOptions { retries: 0, timeout: Duration::from_secs(5), ..Default::default() };
        (Downscoper { client: Client::new(opts).unwrap(), url }, count)
    }

    fn source(token: &str, ttl: i64) -> Loaded {
        let expires_at = clock::now_unix() + ttl;
        Loaded {
            token: Secret::new(token),
            sha256: crate::core::keys::sha256_hex(token.as_bytes()),
            expires_at,
            expires_at_text: clock::rfc3339(expires_at),
            token_type: "Bearer".into(),
            written_at: String::new(),
            written_unix: None,
            written_by: None,
            expiry: super::super::super::token::Expiry::Metadata,
        }
    }

    fn boundary() -> Boundary {
        let b: AccessBoundary = serde_json::from_value(serde_json::json!({"accessBoundaryRules": [{
            "availableResource": "//storage.googleapis.com/projects/_/buckets/b-1",
            "availablePermissions": ["inRole:roles/storage.objectViewer"]}]}))
        .unwrap();
        Boundary { digest: b.digest(), boundary: b }
    }

    const MINTED: &str = r#"{"access_token":"ya29.narrowed","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer"}"#;

    #[test]
    fn concurrent_requests_for_one_rule_make_one_call_and_share_it() {
        let (sts, calls) = fake_sts(200, MINTED, Duration::from_millis(300));
        let (cache, b, src) = (Cache::default(), boundary(), source("ya29.source", 3600));
        let vias: Vec<Via> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..20)
                .map(|_| {
                    s.spawn(|| {
                        cache.get("r", &b, &src, &sts, |_| {}).map(|(m, via)| (m.token.expose().to_string(), via))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .map(|(t, via)| {
                    assert_eq!(t, "ya29.narrowed");
                    via
                })
                .collect()
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(vias.iter().filter(|v| **v == Via::Sts).count(), 1);
        assert_eq!(vias.iter().filter(|v| **v == Via::Cache).count(), 19);
        // Without expires_in, the narrowed token expires with its source.
        let (m, _) = cache.get("r", &b, &src, &sts, |_| {}).unwrap();
        assert_eq!(m.expires_at, src.expires_at);
    }

    #[test]
    fn a_new_source_token_is_narrowed_afresh() {
        let (sts, calls) = fake_sts(200, MINTED, Duration::ZERO);
        let (cache, b) = (Cache::default(), boundary());
        let (one, two) = (source("ya29.one", 3600), source("ya29.two", 3600));
        assert_eq!(cache.get("r", &b, &one, &sts, |_| {}).unwrap().1, Via::Sts);
        assert_eq!(cache.get("r", &b, &one, &sts, |_| {}).unwrap().1, Via::Cache);
        assert_eq!(cache.get("r", &b, &two, &sts, |_| {}).unwrap().1, Via::Sts);
        assert_eq!(cache.get("other-rule", &b, &two, &sts, |_| {}).unwrap().1, Via::Sts);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_short_lived_answer_is_minted_again_near_its_end() {
        let (sts, calls) =
            fake_sts(200, r#"{"access_token":"ya29.short","token_type":"Bearer","expires_in":30}"#, Duration::ZERO);
        let (cache, b, src) = (Cache::default(), boundary(), source("ya29.source", 3600));
        let (m, _) = cache.get("r", &b, &src, &sts, |_| {}).unwrap();
        assert!(m.expires_at <= clock::now_unix() + 30);
        assert_eq!(cache.get("r", &b, &src, &sts, |_| {}).unwrap().1, Via::Sts);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // A source about to expire: the narrowed token cannot outlive it, and is reused.
        let near = source("ya29.near", 20);
        let (m, _) = cache.get("r", &b, &near, &sts, |_| {}).unwrap();
        assert_eq!(m.expires_at, near.expires_at);
        assert_eq!(cache.get("r", &b, &near, &sts, |_| {}).unwrap().1, Via::Cache);
    }

    #[test]
    fn a_refusal_is_remembered_briefly_and_never_cached_as_a_token() {
        let (sts, calls) = fake_sts(
            400,
            r#"{"error":"invalid_request","error_description":"The access boundary is not valid."}"#,
            Duration::ZERO,
        );
        let (cache, b, src) = (Cache::default(), boundary(), source("ya29.source", 3600));
        let mut results = Vec::new();
        let f = cache.get("r", &b, &src, &sts, |c| results.push(c)).err().unwrap();
        assert!(f.refused && f.detail.contains("invalid_request"), "{f:?}");
        assert!(!f.detail.contains("ya29.source"));
        assert_eq!(results, vec![Call::Refused]);
        assert!(cache.get("r", &b, &src, &sts, |_| panic!("no second call within the memory")).is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_answer_that_is_the_source_token_is_refused() {
        let (sts, _) = fake_sts(200, r#"{"access_token":"ya29.source","token_type":"Bearer"}"#, Duration::ZERO);
        let f = Cache::default().get("r", &boundary(), &source("ya29.source", 3600), &sts, |_| {}).err().unwrap();
        assert!(f.detail.contains("source token itself"), "{f:?}");
    }

    #[test]
    fn sts_unreachable_is_a_failure() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/token", closed.local_addr().unwrap());
        drop(closed);
        let opts = crate::http::HttpOptions { retries: 0, ..Default::default() };
        let sts = Downscoper { client: Client::new(opts).unwrap(), url };
        let mut results = Vec::new();
        let f =
            Cache::default().get("r", &boundary(), &source("ya29.s", 3600), &sts, |c| results.push(c)).err().unwrap();
        assert!(!f.refused);
        assert_eq!(results, vec![Call::Failed]);
    }
}
