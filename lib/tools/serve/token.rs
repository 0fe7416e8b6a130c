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
use std::time::Duration;

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
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// Expiry as written in the metadata (RFC 3339).
    pub expires_at_text: String,
    /// The token type from the metadata.
    pub token_type: String,
    /// When the file was written (its modification time when it has no metadata).
    pub written_at: String,
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
        /// The expiry of the token on disk, when one is there.
        expires_at: Option<String>,
        /// When the token on disk was written, when one is there.
        written_at: Option<String>,
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
}

/// The token file with a cheap per-request freshness check (two `stat` calls).
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
        }
    }

    /// The lifetime to assume for a token file without metadata (`None`: do not serve one).
    pub fn assume_ttl(mut self, ttl: Option<Duration>) -> TokenSource {
        self.assume_ttl = ttl;
        self
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
        let stamps = match (Stamp::of(&self.path), Stamp::of(&self.meta)) {
            (Ok(t), Ok(m)) => (t, Some(m)),
            (Ok(t), Err(e)) if e.kind() == std::io::ErrorKind::NotFound && self.assume_ttl.is_some() => (t, None),
            (Err(e), _) => return self.gone(&self.path, &e, "token file"),
            (_, Err(e)) => return self.gone(&self.meta, &e, "token metadata file"),
        };
        let cached = {
            let c = self.cache();
            if c.stamps == Some(stamps) {
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
                o
            }
        };
        match outcome {
            Ok(loaded) => judge(loaded, &self.path),
            Err(p) => State::Unavailable { reason: p.reason, detail: p.detail, expires_at: None, written_at: None },
        }
    }

    /// A file of the pair cannot be stat'ed: nothing to serve, and nothing cached.
    fn gone(&self, path: &Path, e: &std::io::Error, what: &str) -> State {
        *self.cache() = Cache::default();
        let (reason, detail) = if e.kind() == std::io::ErrorKind::NotFound {
            (format!("there is no {what}"), format!("there is no {what} {}", path.display()))
        } else {
            (
                format!("the {what} cannot be read"),
                format!("the {what} {} cannot be read: {}", path.display(), crate::core::error::io_words(e)),
            )
        };
        State::Unavailable { reason, detail, expires_at: None, written_at: None }
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
                    token: t.token,
                    expires_at: t.expires_at,
                    expires_at_text: t.meta.expires_at.to_string(),
                    token_type: t.meta.token_type,
                    written_at: t.meta.written_at.to_string(),
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
            token: bare.token,
            expires_at,
            expires_at_text,
            token_type: if is_jwt { "jwt" } else { "access_token" }.to_string(),
            written_at: clock::rfc3339(bare.modified),
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
    State::Unavailable {
        detail: format!("{why} (token file {})", path.display()),
        reason: why,
        expires_at: Some(loaded.expires_at_text.clone()),
        written_at: Some(loaded.written_at.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::files::write_token;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wif-serve-token-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A fresh directory with the pair for `token` (expiring in 10 minutes) written in it:
    /// the directory, the token path and the expiry.
    fn written(tag: &str, token: &str) -> (PathBuf, PathBuf, String) {
        let d = dir(tag);
        let p = d.join("t.txt");
        let exp = clock::rfc3339(clock::now_unix() + 600);
        write_token(&p, &Secret::new(token), "access_token", Some(&exp), "test").unwrap();
        (d, p, exp)
    }

    fn token_of(s: &TokenSource) -> Option<String> {
        match s.current() {
            State::Ready(l) => Some(l.token.expose().to_string()),
            State::Unavailable { .. } => None,
        }
    }

    #[test]
    fn follows_rewrites_and_refuses_expired_and_missing() {
        let d = dir("rw");
        let p = d.join("t.txt");
        let src = TokenSource::new(p.clone());
        assert!(token_of(&src).is_none());
        let exp = clock::rfc3339(clock::now_unix() + 600);
        write_token(&p, &Secret::new("first"), "access_token", Some(&exp), "test").unwrap();
        assert_eq!(token_of(&src).as_deref(), Some("first"));
        write_token(&p, &Secret::new("second"), "access_token", Some(&exp), "test").unwrap();
        assert_eq!(token_of(&src).as_deref(), Some("second"));
        // Metadata saying it expired: refused.
        let meta = meta_path(&p);
        let text = std::fs::read_to_string(&meta).unwrap().replace(&exp, "2020-01-01T00:00:00Z");
        std::fs::write(&meta, text).unwrap();
        match src.current() {
            State::Unavailable { reason, .. } => assert!(reason.contains("expired"), "{reason}"),
            State::Ready(_) => panic!("served an expired token"),
        }
        std::fs::remove_file(&p).unwrap();
        assert!(token_of(&src).is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_empty_token_is_never_served() {
        let (d, p, _) = written("empty", "x");
        std::fs::write(&p, "").unwrap();
        let meta = std::fs::read_to_string(meta_path(&p)).unwrap();
        let meta = meta.replace(&crate::core::keys::sha256_hex(b"x"), &crate::core::keys::sha256_hex(b""));
        std::fs::write(meta_path(&p), meta).unwrap();
        match TokenSource::new(p).current() {
            State::Unavailable { reason, .. } => assert!(reason.contains("empty"), "{reason}"),
            State::Ready(_) => panic!("served an empty token"),
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// The state of a writer stopped between its two renames: the metadata describes `new`
    /// and keeps the entry of `old`, the token file still holds `old`.
    fn metadata_written_first(p: &Path, old: &str, new: &str, exp: &str) {
        let entry = |t: &str| crate::core::files::TokenMeta {
            expires_at: exp.parse().unwrap(),
            token_type: "access_token".into(),
            written_at: clock::Timestamp::now(),
            written_by: "test".into(),
            bytes: t.len(),
            sha256: crate::core::keys::sha256_hex(t.as_bytes()),
        };
        let m = crate::core::files::MetaFile { current: entry(new), previous: Some(entry(old)) };
        std::fs::write(meta_path(p), serde_json::to_vec(&m).unwrap()).unwrap();
    }

    fn unavailable(s: &TokenSource) -> (String, String) {
        match s.current() {
            State::Unavailable { reason, detail, .. } => (reason, detail),
            State::Ready(l) => panic!("served {:?}", l.token),
        }
    }

    #[test]
    fn a_pair_caught_between_the_two_renames_serves_the_token_in_the_file() {
        let (d, p, exp) = written("half", "old");
        let src = TokenSource::new(p.clone());
        assert_eq!(token_of(&src).as_deref(), Some("old"));
        metadata_written_first(&p, "old", "new", &exp);
        assert_eq!(token_of(&src).as_deref(), Some("old"), "a server that served the old token");
        assert_eq!(token_of(&TokenSource::new(p.clone())).as_deref(), Some("old"), "a fresh server");
        std::fs::write(&p, "new").unwrap();
        assert_eq!(token_of(&src).as_deref(), Some("new"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_token_edited_in_place_stops_being_served() {
        let (d, p, exp) = written("edit", "old");
        write_token(&p, &Secret::new("good"), "access_token", Some(&exp), "test").unwrap();
        let src = TokenSource::new(p.clone());
        assert_eq!(token_of(&src).as_deref(), Some("good"));
        std::fs::write(&p, "edited by hand").unwrap();
        for s in [&src, &TokenSource::new(p.clone())] {
            let (reason, detail) = unavailable(s);
            assert_eq!(reason, "the token file does not match its metadata");
            assert!(detail.contains(&p.display().to_string()) && detail.contains("edited in place"), "{detail}");
        }
        assert_eq!(src.reload_counts(), (1, 1));
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Sets the modification time of `p` to `secs` seconds from now.
    fn touch(p: &Path, secs: i64) {
        let t = std::time::SystemTime::now()
            .checked_add(Duration::from_secs(secs.max(0) as u64))
            .and_then(|t| t.checked_sub(Duration::from_secs((-secs).max(0) as u64)))
            .unwrap();
        std::fs::File::options().write(true).open(p).unwrap().set_modified(t).unwrap();
    }

    /// The seed's generator's file: the token alone, no metadata, mode 0600.
    fn bare(tag: &str, contents: &str) -> (PathBuf, PathBuf) {
        let d = dir(tag);
        let p = d.join("wif_token.txt");
        crate::core::files::write_atomic(&p, contents.as_bytes(), 0o600).unwrap();
        (d, p)
    }

    fn ready(s: &TokenSource) -> Arc<Loaded> {
        match s.current() {
            State::Ready(l) => l,
            State::Unavailable { detail, .. } => panic!("not served: {detail}"),
        }
    }

    #[test]
    fn a_token_file_without_metadata_is_served_until_its_mtime_plus_the_assumed_lifetime() {
        let (d, p) = bare("bare", "ya29.bare-token");
        touch(&p, -600);
        let written = clock::now_unix() - 600;
        let src = TokenSource::new(p.clone());
        let l = ready(&src);
        assert_eq!(l.token.expose(), "ya29.bare-token");
        assert_eq!(l.expiry, Expiry::Assumed(DEFAULT_ASSUME_TTL));
        assert!((l.expires_at - (written + 3300)).abs() <= 1, "{} vs {}", l.expires_at, written + 3300);
        assert_eq!(l.expires_at_text, clock::rfc3339(l.expires_at));
        assert_eq!((l.token_type.as_str(), l.written_by.as_deref()), ("access_token", None));
        // A shorter lifetime, and one the file has outlived: 503, saying why without the path.
        assert!(
            (ready(&TokenSource::new(p.clone()).assume_ttl(Some(Duration::from_secs(900)))).expires_at
                - (written + 900))
                .abs()
                <= 1
        );
        let (reason, detail) = unavailable(&TokenSource::new(p.clone()).assume_ttl(Some(Duration::from_secs(300))));
        assert!(reason.contains("expired") && reason.contains("no metadata") && reason.contains("5 min"), "{reason}");
        assert!(!reason.contains(&d.display().to_string()) && !detail.contains("ya29"), "{reason} / {detail}");
        // --assume-ttl 0: not served at all, as before.
        let (reason, _) = unavailable(&TokenSource::new(p.clone()).assume_ttl(None));
        assert_eq!(reason, "there is no token metadata file");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_bare_token_keeps_its_exact_bytes_but_not_a_trailing_line_end() {
        for (contents, served) in [
            ("ya29.exact", Some("ya29.exact")),
            ("ya29.lf\n", Some("ya29.lf")),
            ("ya29.crlf\r\n", Some("ya29.crlf")),
            ("two words", None),
            ("ya29.a\n\n", None),
        ] {
            let (d, p) = bare("bytes", contents);
            assert_eq!(token_of(&TokenSource::new(p)).as_deref(), served, "{contents:?}");
            std::fs::remove_dir_all(&d).unwrap();
        }
    }

    #[test]
    fn a_future_mtime_or_a_sooner_jwt_exp_never_stretches_the_assumed_lifetime() {
        let (d, p) = bare("future", "ya29.future");
        touch(&p, 86_400);
        let now = clock::now_unix();
        let l = ready(&TokenSource::new(p.clone()));
        assert!(l.expires_at <= now + 3300 + 1, "{} > {}", l.expires_at, now + 3300);
        use base64::Engine;
        let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let exp = now + 120;
        let jwt = format!("{}.{}.c2ln", b64(serde_json::json!({"alg": "RS256"})), b64(serde_json::json!({"exp": exp})));
        crate::core::files::write_atomic(&p, jwt.as_bytes(), 0o600).unwrap();
        let l = ready(&TokenSource::new(p.clone()));
        assert_eq!((l.expires_at, l.token_type.as_str()), (exp, "jwt"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn metadata_appearing_or_disappearing_is_a_change_like_any_other() {
        let (d, p) = bare("appear", "ya29.seed");
        let src = TokenSource::new(p.clone());
        assert_eq!(ready(&src).expiry, Expiry::Assumed(DEFAULT_ASSUME_TTL));
        // The wif tools take over the file: the metadata's expiry from then on.
        let exp = clock::rfc3339(clock::now_unix() + 1200);
        write_token(&p, &Secret::new("ya29.wif"), "access_token", Some(&exp), "test").unwrap();
        let l = ready(&src);
        assert_eq!(
            (l.token.expose(), l.expiry, l.expires_at_text.as_str()),
            ("ya29.wif", Expiry::Metadata, exp.as_str())
        );
        // The metadata removed: the file is bare again.
        std::fs::remove_file(meta_path(&p)).unwrap();
        let l = ready(&src);
        assert_eq!((l.token.expose(), l.expiry), ("ya29.wif", Expiry::Assumed(DEFAULT_ASSUME_TTL)));
        // Metadata of another token is a mismatch still, never "no metadata".
        let other = d.join("other.txt");
        write_token(&other, &Secret::new("ya29.other"), "access_token", Some(&exp), "test").unwrap();
        std::fs::copy(meta_path(&other), meta_path(&p)).unwrap();
        assert_eq!(unavailable(&src).0, "the token file does not match its metadata");
        assert_eq!(src.reload_counts(), (3, 1));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_bare_file_is_trusted_as_little_as_a_pair() {
        use std::os::unix::fs::PermissionsExt;
        let (d, p) = bare("trust", "ya29.planted");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let (reason, detail) = unavailable(&TokenSource::new(p.clone()));
        assert_eq!(
            reason,
            "the token file is not trusted: others can write it (mode 0666); only its owner may (chmod go-w)"
        );
        assert!(detail.contains("mode 0666"), "{detail}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_fifo_or_another_users_file_is_refused_at_once_and_named_only_in_the_detail() {
        let (d, p, _) = written("fifo", "tok");
        let src = TokenSource::new(p.clone());
        assert_eq!(token_of(&src).as_deref(), Some("tok"));
        std::fs::remove_file(&p).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(&p).status().unwrap().success());
        let started = std::time::Instant::now();
        let (reason, detail) = unavailable(&src);
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
        assert_eq!(reason, "the token file is not trusted: it is a FIFO, not a regular file");
        assert!(detail.contains("a FIFO") && detail.contains(&p.display().to_string()), "{detail}");
        // Missing files: the reason names no path either.
        std::fs::remove_file(&p).unwrap();
        let (reason, detail) = unavailable(&src);
        assert_eq!(reason, "there is no token file");
        assert!(detail.contains(&p.display().to_string()), "{detail}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
