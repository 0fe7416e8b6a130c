//! The token being served: read from the token file and its metadata, re-read whenever
//! either file changes (also when a new file is renamed over the old one), and never
//! handed out when missing, untrusted, not matching its metadata, empty or expired.
//!
//! A token file with no metadata at all (what the seed's Java generator writes) is served
//! with an assumed expiry: its modification time plus `--assume-ttl`. Only a missing
//! metadata file counts as "none": metadata that exists but describes another token is the
//! in-place edit (or a write caught half-way) it always was, and is not served. When the
//! metadata appears or disappears, the pair is read again, as for any other change.

use crate::core::clock;
use crate::core::files::{meta_path, read_bare_token, read_token, BareToken, Part, Stored};
use crate::core::secret::Secret;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The lifetime assumed for a token file without metadata: the seed's generator rewrites the
/// file every 55 minutes and Google's access tokens live 60, so a token is at most 5 minutes
/// short of expiry when it is replaced, and never served expired.
pub const DEFAULT_ASSUME_TTL: Duration = Duration::from_secs(55 * 60);

/// What identifies one version of a file: a rename-over gives a new inode, an in-place
/// write a new size or time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    /// The stamp of the file at `path`, `None` if it cannot be stat'ed.
    pub fn of(path: &Path) -> std::io::Result<Stamp> {
        let m = std::fs::metadata(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Ok(Stamp {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
                ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
            })
        }
        #[cfg(not(unix))]
        {
            let mtime_ns = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128);
            Ok(Stamp { dev: 0, ino: 0, size: m.len(), mtime_ns, ctime_ns: 0 })
        }
    }
}

/// Where the expiry of a token being served comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// `FILE.meta.json`, written with the token by the wif tools.
    Metadata,
    /// The file has no metadata: its modification time plus this lifetime (`--assume-ttl`),
    /// or a JWT's own `exp` if that comes first.
    Assumed(Duration),
}

impl Expiry {
    /// `metadata` or `assumed`, as /healthz and the log say it.
    pub fn label(self) -> &'static str {
        match self {
            Expiry::Metadata => "metadata",
            Expiry::Assumed(_) => "assumed",
        }
    }
}

/// A token read from disk.
pub struct Loaded {
    /// The token bytes.
    pub token: Secret,
    /// SHA-256 of the token bytes, hex: names this version in the ledger and keys what was
    /// derived from it.
    pub sha256: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// Expiry as written in the metadata (RFC 3339).
    pub expires_at_text: String,
    /// The token type from the metadata.
    pub token_type: String,
    /// When the file was written (its modification time when it has no metadata), as recorded.
    pub written_at: String,
    /// The same, Unix seconds, when the record is a time (parsed once, here).
    pub written_unix: Option<i64>,
    /// Which tool wrote it, when its metadata says.
    pub written_by: Option<String>,
    /// Where `expires_at` comes from.
    pub expiry: Expiry,
}

/// The token, or why there is none to serve.
pub enum State {
    /// A token that may be served.
    Ready(Arc<Loaded>),
    /// No token may be served.
    Unavailable {
        /// Why, safe to show clients: no token bytes, no file paths.
        reason: String,
        /// Why, for the server's log: names the file and the cause.
        detail: String,
        /// The token on disk that may no longer be served (expired), when one is there.
        expired: Option<Arc<Loaded>>,
    },
}

/// Why the files on disk cannot be served.
#[derive(Clone)]
struct Problem {
    reason: String,
    detail: String,
}

/// What reading one version of the files gave.
type Outcome = Result<Arc<Loaded>, Problem>;

/// The stamps of the token file and of its metadata (`None`: there is none).
type Stamps = (Stamp, Option<Stamp>);

#[derive(Default)]
struct Cache {
    stamps: Option<Stamps>,
    outcome: Option<Outcome>,
    /// When `stamps` were taken: until [`RECHECK`] later, requests use `outcome` as it is.
    looked: Option<Instant>,
}

/// How long one look at the files (two `stat` calls) stands for the requests after it: a
/// token renamed over the file is served at most this long after the rename (SIGHUP: at
/// once), and a busy server looks at most 40 times a second, not once per request.
pub const RECHECK: Duration = Duration::from_millis(25);

/// The token file with a cheap freshness check (two `stat` calls at most every [`RECHECK`]).
pub struct TokenSource {
    path: PathBuf,
    meta: PathBuf,
    cache: Mutex<Cache>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    /// The lifetime assumed for a token file without metadata; `None`: such files are not served.
    assume_ttl: Option<Duration>,
    /// The token file version last warned about for its assumed expiry: one warning per
    /// version (at start, then at each change), not one per request.
    warned: Mutex<Option<Stamp>>,
    /// How long a look at the files stands ([`RECHECK`]).
    recheck: Duration,
}

impl TokenSource {
    /// A source for the token file at `path` (and `path.meta.json`).
    pub fn new(path: PathBuf) -> TokenSource {
        let meta = meta_path(&path);
        TokenSource {
            path,
            meta,
            cache: Mutex::new(Cache::default()),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            assume_ttl: Some(DEFAULT_ASSUME_TTL),
            warned: Mutex::new(None),
            recheck: RECHECK,
        }
    }

    /// The lifetime to assume for a token file without metadata (`None`: do not serve one).
    pub fn assume_ttl(mut self, ttl: Option<Duration>) -> TokenSource {
        self.assume_ttl = ttl;
        self
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a token file without metadata is served (with an assumed expiry).
    pub fn assumes_ttl(&self) -> bool {
        self.assume_ttl.is_some()
    }

    /// How many times a new version of the files was read, and how many times that failed
    /// (missing, untrusted, unreadable, or not matching its metadata).
    pub fn reload_counts(&self) -> (u64, u64) {
        (self.reloads.load(Ordering::Relaxed), self.reload_failures.load(Ordering::Relaxed))
    }

    /// Forgets the cached token so the next request reads the files again (SIGHUP).
    pub fn invalidate(&self) {
        self.cache().stamps = None;
        *self.warned.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The token to serve now, or why there is none.
    pub fn current(&self) -> State {
        match self.recent() {
            Some(outcome) => verdict(outcome, &self.path),
            None => verdict(self.look(), &self.path),
        }
    }

    /// The outcome of a look at the files within the last [`RECHECK`].
    fn recent(&self) -> Option<Outcome> {
        let c = self.cache();
        // Stamps cleared (SIGHUP) force a look however recent the last one.
        match (c.looked, &c.stamps, &c.outcome) {
            (Some(at), Some(_), Some(outcome)) if at.elapsed() < self.recheck => Some(outcome.clone()),
            _ => None,
        }
    }

    /// Looks at the files: the cached outcome if they have not changed, else a new read.
    fn look(&self) -> Outcome {
        let now = Instant::now();
        let stamps = match (Stamp::of(&self.path), Stamp::of(&self.meta)) {
            (Ok(t), Ok(m)) => (t, Some(m)),
            (Ok(t), Err(e)) if e.kind() == std::io::ErrorKind::NotFound && self.assume_ttl.is_some() => (t, None),
            (Err(e), _) => return Err(self.gone(&self.path, &e, "token file")),
            (_, Err(e)) => return Err(self.gone(&self.meta, &e, "token metadata file")),
        };
        let cached = {
            let mut c = self.cache();
            if c.stamps == Some(stamps) {
                c.looked = Some(now);
                c.outcome.clone()
            } else {
                None
            }
        };
        let outcome = match cached {
            Some(o) => o,
            None => {
                // Read with the lock released: a slow disk, a network file system or a FIFO
                // put at the path never stalls other requests (or /healthz). Requests racing
                // here may read the same version twice; that is harmless.
                let o = self.load(stamps.0);
                let mut c = self.cache();
                c.stamps = Some(stamps);
                c.outcome = Some(o.clone());
                c.looked = Some(now);
                o
            }
        };
        outcome
    }

    /// A file of the pair cannot be stat'ed: nothing to serve, and nothing cached.
    fn gone(&self, path: &Path, e: &std::io::Error, what: &str) -> Problem {
        *self.cache() = Cache::default();
        let (reason, detail) = if e.kind() == std::io::ErrorKind::NotFound {
            (format!("there is no {what}"), format!("there is no {what} {}", path.display()))
        } else {
            (
                format!("the {what} cannot be read"),
                format!("the {what} {} cannot be read: {}", path.display(), crate::core::error::io_words(e)),
            )
        };
        Problem { reason, detail }
    }

    /// Reads a new version of the files, logging the outcome. A token that matches neither
    /// entry of its metadata is not a write in progress (the metadata is written first and
    /// keeps the replaced token's entry): it was edited in place, and is not served. A token
    /// file without metadata is served with an assumed expiry, if one is assumed.
    fn load(&self, stamp: Stamp) -> Outcome {
        let stored = match (read_token(&self.path), self.assume_ttl) {
            (Stored::Missing(Part::Meta, _), Some(ttl)) => match read_bare_token(&self.path) {
                Ok(bare) => return Ok(self.loaded_bare(bare, ttl, stamp)),
                Err(stored) => stored,
            },
            (stored, _) => stored,
        };
        match stored {
            Stored::Found(t) => {
                self.reloads.fetch_add(1, Ordering::Relaxed);
                super::log::Event::new("reload")
                    .what("token")
                    .reason(format!(
                        "read {} ({} bytes, expires at {})",
                        self.path.display(),
                        t.meta.bytes,
                        t.meta.expires_at
                    ))
                    .emit();
                Ok(Arc::new(Loaded {
                    sha256: crate::core::keys::sha256_hex(t.token.expose().as_bytes()),
                    token: t.token,
                    expires_at: t.expires_at.unix(),
                    expires_at_text: t.meta.expires_at,
                    token_type: t.meta.token_type,
                    written_unix: clock::Timestamp::parse(&t.meta.written_at).ok().map(clock::Timestamp::unix),
                    written_at: t.meta.written_at,
                    written_by: Some(t.meta.written_by),
                    expiry: Expiry::Metadata,
                }))
            }
            other => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                let detail = other.detail();
                super::log::Event::new("reload_failed").what("token").reason(detail.clone()).emit();
                Err(Problem { reason: other.reason(), detail })
            }
        }
    }
}

/// A bare token file's expiry: its modification time (or now, if that is in the future: a
/// clock set wrong never stretches the lifetime) plus `ttl`, or the token's own `exp` when it
/// is a JWT that expires sooner. Unix seconds, and how it was found, in words.
fn assumed_expiry(bare: &BareToken, ttl: Duration, now: i64) -> (i64, String) {
    let assumed = bare.modified.min(now) + ttl.as_secs() as i64;
    let words = format!("the file's modification time + {}", clock::human(ttl.as_secs() as i64));
    match crate::core::jwt::unverified_exp(bare.token.expose()) {
        Some(exp) if exp < assumed => (exp, format!("the JWT's exp, which comes before {words}")),
        _ => (assumed, words),
    }
}

impl TokenSource {
    /// Logs the read of a token file without metadata and warns about its assumed expiry
    /// (once per version of the file); what is served.
    fn loaded_bare(&self, bare: BareToken, ttl: Duration, stamp: Stamp) -> Arc<Loaded> {
        let (expires_at, how) = assumed_expiry(&bare, ttl, clock::now_unix());
        let expires_at_text = clock::rfc3339(expires_at);
        self.reloads.fetch_add(1, Ordering::Relaxed);
        super::log::Event::new("reload")
            .what("token")
            .code("expiry_assumed")
            .reason(format!(
                "read {} ({} bytes) without {}: expiry assumed at {expires_at_text} ({how})",
                self.path.display(),
                bare.token.expose().len(),
                self.meta.display()
            ))
            .emit();
        self.warn_assumed(stamp, expires_at, &how);
        let is_jwt = crate::core::jwt::decode_unverified(bare.token.expose()).is_some();
        Arc::new(Loaded {
            sha256: crate::core::keys::sha256_hex(bare.token.expose().as_bytes()),
            token: bare.token,
            expires_at,
            expires_at_text,
            token_type: if is_jwt { "jwt" } else { "access_token" }.to_string(),
            written_at: clock::rfc3339(bare.modified),
            written_unix: Some(bare.modified),
            written_by: None,
            expiry: Expiry::Assumed(ttl),
        })
    }

    /// One warning on stderr per version of a token file without metadata.
    fn warn_assumed(&self, stamp: Stamp, expires_at: i64, how: &str) {
        {
            let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
            if *warned == Some(stamp) {
                return;
            }
            *warned = Some(stamp);
        }
        let when = clock::rfc3339(expires_at);
        let what = if expires_at > clock::now_unix() {
            format!("serving it until {when}, assumed from {how}, and answering 503 after that")
        } else {
            format!("answering 503: it is taken to have expired at {when}, assumed from {how}")
        };
        crate::core::diag::warn(format!(
            "the token file {} has no metadata ({}, which the wif tools write beside it): {what}; --assume-ttl \
             sets the lifetime assumed (0: never serve a token file without metadata)",
            self.path.display(),
            self.meta.display()
        ));
    }

    /// At start, for a token file without metadata when an expiry is assumed: the warning
    /// about its expiry (the first request then reads the same version without warning
    /// again), or why the file cannot be served.
    pub fn warn_if_assumed(&self) {
        let (Some(ttl), Ok(stamp)) = (self.assume_ttl, Stamp::of(&self.path)) else { return };
        match read_bare_token(&self.path) {
            Ok(bare) => {
                let (expires_at, how) = assumed_expiry(&bare, ttl, clock::now_unix());
                self.warn_assumed(stamp, expires_at, &how);
            }
            Err(stored) => crate::core::diag::warn(format!("{}; answering 503 until that changes", stored.detail())),
        }
    }
}

/// What to serve for one look at the files.
fn verdict(outcome: Outcome, path: &Path) -> State {
    match outcome {
        Ok(loaded) => judge(loaded, path),
        Err(p) => State::Unavailable { reason: p.reason, detail: p.detail, expired: None },
    }
}

/// Whether a token read from disk (from the token file `path`) may be served now.
fn judge(loaded: Arc<Loaded>, path: &Path) -> State {
    let why = if loaded.token.is_empty() {
        "the token file is empty".to_string()
    } else if loaded.expires_at <= clock::now_unix() {
        match loaded.expiry {
            Expiry::Metadata => {
                format!("the token expired at {}; is the refresh pipeline running?", loaded.expires_at_text)
            }
            Expiry::Assumed(_) if crate::core::jwt::unverified_exp(loaded.token.expose()) == Some(loaded.expires_at) => {
                format!(
                    "the token expired at {} by the JWT's own exp (the token file has no metadata); is the job that writes it running?",
                    loaded.expires_at_text
                )
            }
            Expiry::Assumed(ttl) => format!(
                "the token expired at {} by its assumed lifetime (the token file has no metadata: its modification time + {}); is the job that writes it running?",
                loaded.expires_at_text,
                clock::human(ttl.as_secs() as i64),
            ),
        }
    } else {
        return State::Ready(loaded);
    };
    State::Unavailable { detail: format!("{why} (token file {})", path.display()), reason: why, expired: Some(loaded) }
}

#[cfg(test)]
mod tests;
