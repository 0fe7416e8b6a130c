//! One issuer's keys held between loads: the JWKS file re-read when it changes, the JWKS URL
//! fetched at start, retried until it first answers, refreshed hourly, refetched for an
//! unknown `kid` at most once a minute (requests arriving meanwhile wait for that fetch and
//! look again), and dropped when not refreshed for a day. Times are Unix seconds passed in,
//! and the fetch is a trait object, so the tests drive all of it without sleeping.

use super::jwks::{self, KeySet};
use crate::core::files::{read_trusted, Part};
use crate::tools::serve::log::{emit, Event};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Least time between two refetches for unknown kids.
pub const UNKNOWN_KID_INTERVAL: i64 = 60;
/// Time between attempts while a URL has never answered (or its keys were dropped).
pub const RETRY_INTERVAL: i64 = 10;
/// Time between refreshes of a URL's keys.
pub const REFRESH_INTERVAL: i64 = 3600;
/// Time between attempts once an hourly refresh has failed.
const REFRESH_RETRY_INTERVAL: i64 = 60;
/// Keys of a URL not refreshed for this long are dropped.
pub const MAX_KEY_AGE: i64 = 86_400;
/// Time-out of one JWKS fetch.
pub const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a JWKS is loaded from.
pub trait Fetch: Send + Sync {
    /// The JWKS's bytes, or why they could not be had.
    fn fetch(&self) -> std::result::Result<Vec<u8>, String>;
    /// Where from, for log lines (`file PATH` or the URL).
    fn origin(&self) -> String;
    /// A file's stamp (it changes when the file does); `None` for a URL, or a missing file.
    fn stamp(&self) -> Option<crate::tools::serve::token::Stamp> {
        None
    }
    /// Whether this is a URL (fetched, refreshed, refetched for unknown kids, aged out).
    fn is_url(&self) -> bool;
}

/// A JWKS file, read on the policy's terms.
pub struct FileFetch(pub PathBuf);

impl Fetch for FileFetch {
    fn fetch(&self) -> std::result::Result<Vec<u8>, String> {
        read_trusted(&self.0, Part::Jwks).map_err(|s| s.detail())
    }
    fn origin(&self) -> String {
        format!("file {}", self.0.display())
    }
    fn stamp(&self) -> Option<crate::tools::serve::token::Stamp> {
        crate::tools::serve::token::Stamp::of(&self.0).ok()
    }
    fn is_url(&self) -> bool {
        false
    }
}

/// A JWKS URL, fetched with the one HTTP client.
pub struct UrlFetch {
    /// The client: 5 s, no retry, 256 KiB.
    pub client: crate::http::Client,
    /// The URL.
    pub url: String,
}

impl UrlFetch {
    /// The client for a JWKS URL: time-out 5 s, no retry, body cap 256 KiB, the CA bundle
    /// given or the Mozilla roots.
    pub fn new(url: &str, ca_file: Option<&std::path::Path>) -> crate::core::error::Result<UrlFetch> {
        let opts = crate::http::HttpOptions {
            timeout: FETCH_TIMEOUT,
            connect_timeout: FETCH_TIMEOUT,
            retries: 0,
            max_total: FETCH_TIMEOUT,
            roots: crate::http::Roots::Public(ca_file.map(std::path::Path::to_path_buf)),
            max_body: jwks::MAX_JWKS_BYTES as u64,
            tool: crate::tools::serve::command::TOOL.to_string(),
            ..Default::default()
        };
        let client = crate::http::Client::new(opts)?;
        Ok(UrlFetch { client, url: url.to_string() })
    }
}

impl Fetch for UrlFetch {
    fn fetch(&self) -> std::result::Result<Vec<u8>, String> {
        let req = crate::http::Request {
            method: "GET",
            url: &self.url,
            headers: vec![("Accept", "application/json".into())],
            bearer: None,
            body: crate::http::Body::Empty,
        };
        let resp = self.client.send(&req).map_err(|e| e.to_string())?;
        if !resp.ok() {
            return Err(format!("HTTP {}: {}", resp.status, resp.excerpt()));
        }
        Ok(resp.body)
    }
    fn origin(&self) -> String {
        crate::http::redact_query(&self.url).to_string()
    }
    fn is_url(&self) -> bool {
        true
    }
}

/// One issuer's keys, for the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerStats {
    /// The issuer's name.
    pub name: String,
    /// Usable keys held now.
    pub keys: usize,
    /// Seconds since the keys were last loaded successfully (`None`: never).
    pub age_secs: Option<i64>,
    /// Successful loads (fetches or file reads) so far.
    pub fetches_ok: u64,
    /// Failed loads so far.
    pub fetches_failed: u64,
}

/// What the cache holds now.
#[derive(Default)]
struct State {
    /// The keys, if any are held.
    keys: Option<Arc<KeySet>>,
    /// Bumped on every successful load, so a waiter sees that the keys changed.
    generation: u64,
    /// The last successful load.
    loaded_at: Option<i64>,
    /// The last attempt, successful or not.
    tried_at: Option<i64>,
    /// The last refetch for an unknown kid.
    unknown_kid_fetch_at: Option<i64>,
    /// A refetch for an unknown kid is running (requests arriving meanwhile wait for it).
    unknown_kid_fetching: bool,
    /// The file's stamp at its last read.
    stamp: Option<crate::tools::serve::token::Stamp>,
    fetches_ok: u64,
    fetches_failed: u64,
}

/// What looking up keys came to.
pub enum Lookup {
    /// The keys held (and their generation).
    Keys(Arc<KeySet>, u64),
    /// None held: never loaded, or dropped.
    Unavailable,
}

/// One issuer's keys.
pub struct Cache {
    /// The issuer's name (the log's `what`).
    name: String,
    source: Box<dyn Fetch>,
    state: Mutex<State>,
    /// Held for the length of a fetch: one fetch at a time, and waiters queue behind it.
    fetching: Mutex<()>,
    /// A background fetch was started and has not finished.
    background: AtomicBool,
}

impl Cache {
    /// A cache with no keys yet.
    pub fn new(name: &str, source: Box<dyn Fetch>) -> Cache {
        Cache {
            name: name.to_string(),
            source,
            state: Mutex::new(State::default()),
            fetching: Mutex::new(()),
            background: AtomicBool::new(false),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the keys come from a URL.
    pub fn is_url(&self) -> bool {
        self.source.is_url()
    }

    /// The keys held now (a URL's, dropped when not refreshed for [`MAX_KEY_AGE`]).
    pub fn lookup(&self, now: i64) -> Lookup {
        let mut st = self.state();
        if self.source.is_url() && st.loaded_at.is_some_and(|t| now - t >= MAX_KEY_AGE) && st.keys.is_some() {
            st.keys = None;
            drop(st);
            let reason = format!("keys dropped: not refreshed for {}", crate::core::clock::human(MAX_KEY_AGE));
            emit(&Event::new("jwks_failed").what(&self.name).reason(reason));
            return Lookup::Unavailable;
        }
        match &st.keys {
            Some(keys) => Lookup::Keys(keys.clone(), st.generation),
            None => Lookup::Unavailable,
        }
    }

    /// Loads the keys now, whatever the timers say; returns why it failed, if it did. One
    /// load at a time: this waits for one already running.
    pub fn load(&self, now: i64) -> std::result::Result<(), String> {
        let _one = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        self.load_locked(now)
    }

    /// The load itself, with `fetching` held: fetch, parse, keep (or keep the old keys and
    /// say why), count and log.
    fn load_locked(&self, now: i64) -> std::result::Result<(), String> {
        let stamp = self.source.stamp();
        let result = self.source.fetch().and_then(|bytes| jwks::parse(&bytes));
        let mut st = self.state();
        st.tried_at = Some(now);
        match result {
            Ok(parsed) => {
                st.fetches_ok += 1;
                st.generation += 1;
                st.loaded_at = Some(now);
                st.stamp = stamp;
                let kids = parsed.set.kids();
                st.keys = Some(Arc::new(parsed.set));
                drop(st);
                let reason = format!("{} keys (kids {}) from {}", kids.len(), kids.join(", "), self.source.origin());
                emit(&Event::new("jwks_loaded").what(&self.name).reason(reason));
                for skipped in parsed.skipped {
                    emit(&Event::new("jwks_key_skipped").what(&self.name).reason(skipped));
                }
                Ok(())
            }
            Err(why) => {
                st.fetches_failed += 1;
                // A bad new file is not read again until it changes again.
                st.stamp = stamp;
                let kept = if st.keys.is_some() { "; the previous keys stay" } else { "" };
                drop(st);
                let reason = format!("{}: {why}{kept}", self.source.origin());
                emit(&Event::new("jwks_failed").what(&self.name).reason(reason.clone()));
                Err(reason)
            }
        }
    }

    /// For a token whose kid is not among the keys of generation `seen`: the newer keys, if
    /// a load finished since or this call's refetch succeeded. At most one refetch per
    /// [`UNKNOWN_KID_INTERVAL`]; a request arriving during one waits for it (bounded by the
    /// fetch's time-out) and then looks again. Files are never refetched here: their
    /// changes are picked up by [`Cache::tick`]. Within the minute, and with no such
    /// refetch running, the answer is at once: never behind another load (an hourly refresh
    /// or a retry that hangs).
    pub fn refetch_for_unknown_kid(&self, seen: u64, now: i64) -> Option<Arc<KeySet>> {
        if !self.source.is_url() {
            return None;
        }
        if let Some(answer) = self.refetch_decided(seen, now, false) {
            return answer;
        }
        let _one = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(answer) = self.refetch_decided(seen, now, true) {
            return answer;
        }
        let loaded = self.load_locked(now);
        self.state().unknown_kid_fetching = false;
        loaded.ok()?;
        self.state().keys.clone()
    }

    /// What a refetch for an unknown kid comes to without fetching, if it is decided: the
    /// newer keys when a load finished since generation `seen`; nothing when the minute is
    /// not over (and no such refetch is running to wait for, unless `locked`: then that one
    /// has finished). `locked`: `fetching` is held, and an undecided call starts the
    /// refetch (marked running).
    fn refetch_decided(&self, seen: u64, now: i64, locked: bool) -> Option<Option<Arc<KeySet>>> {
        let mut st = self.state();
        if st.generation != seen {
            return Some(st.keys.clone());
        }
        let too_soon = st.unknown_kid_fetch_at.is_some_and(|t| now - t < UNKNOWN_KID_INTERVAL);
        if too_soon && (locked || !st.unknown_kid_fetching) {
            return Some(None);
        }
        if locked {
            st.unknown_kid_fetch_at = Some(now);
            st.unknown_kid_fetching = true;
        }
        None
    }

    /// Whether a load is due at `now`: a changed file; a URL never loaded (or dropped) and
    /// not tried for [`RETRY_INTERVAL`]; a URL's keys older than [`REFRESH_INTERVAL`] and not
    /// tried for a minute.
    pub fn due(&self, now: i64) -> bool {
        let st = self.state();
        if !self.source.is_url() {
            return self.source.stamp() != st.stamp;
        }
        let since_try = st.tried_at.map_or(i64::MAX, |t| now - t);
        match (&st.keys, st.loaded_at) {
            (Some(_), Some(loaded)) => now - loaded >= REFRESH_INTERVAL && since_try >= REFRESH_RETRY_INTERVAL,
            _ => since_try >= RETRY_INTERVAL,
        }
    }

    /// From the 1 s watch loop: a due file is re-read here; a due URL is fetched on a
    /// thread of its own, so a slow issuer never holds up the caller.
    pub fn tick(self: &Arc<Self>, now: i64) {
        self.lookup(now);
        if !self.due(now) {
            return;
        }
        if self.source.is_url() {
            self.spawn_load();
        } else {
            let _ = self.load(now);
        }
    }

    /// Loads on a background thread, unless one is running already.
    pub fn spawn_load(self: &Arc<Self>) {
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new().name(format!("jwks-{}", self.name)).spawn(move || {
            let _ = me.load(crate::core::clock::now_unix());
            me.background.store(false, Ordering::Release);
        });
        if spawned.is_err() {
            self.background.store(false, Ordering::Release);
        }
    }

    /// The counters for the metrics.
    pub fn stats(&self, now: i64) -> IssuerStats {
        let st = self.state();
        IssuerStats {
            name: self.name.clone(),
            keys: st.keys.as_ref().map_or(0, |k| k.keys.len()),
            age_secs: st.loaded_at.map(|t| (now - t).max(0)),
            fetches_ok: st.fetches_ok,
            fetches_failed: st.fetches_failed,
        }
    }
}
