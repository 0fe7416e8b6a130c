//! The token being served: read from the token file and its metadata, re-read whenever
//! either file changes (also when a new file is renamed over the old one), and never
//! handed out when missing, untrusted, not matching its metadata, empty or expired.

use crate::clock;
use crate::files::{meta_path, read_token, Stored};
use crate::secret::Secret;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
    /// When the file was written.
    pub written_at: String,
    /// Which tool wrote it.
    pub written_by: String,
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

#[derive(Default)]
struct Cache {
    stamps: Option<(Stamp, Stamp)>,
    outcome: Option<Outcome>,
}

/// The token file with a cheap per-request freshness check (two `stat` calls).
pub struct TokenSource {
    path: PathBuf,
    meta: PathBuf,
    cache: Mutex<Cache>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
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
        }
    }

    /// How many times a new version of the files was read, and how many times that failed
    /// (missing, untrusted, unreadable, or not matching its metadata).
    pub fn reload_counts(&self) -> (u64, u64) {
        (self.reloads.load(Ordering::Relaxed), self.reload_failures.load(Ordering::Relaxed))
    }

    /// Forgets the cached token so the next request reads the files again (SIGHUP).
    pub fn invalidate(&self) {
        self.cache().stamps = None;
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The token to serve now, or why there is none.
    pub fn current(&self) -> State {
        let stamps = match (Stamp::of(&self.path), Stamp::of(&self.meta)) {
            (Ok(t), Ok(m)) => (t, m),
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
                let o = self.load();
                let mut c = self.cache();
                c.stamps = Some(stamps);
                c.outcome = Some(o.clone());
                o
            }
        };
        match outcome {
            Ok(loaded) => judge(loaded),
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
                format!("the {what} {} cannot be read: {}", path.display(), crate::error::io_words(e)),
            )
        };
        State::Unavailable { reason, detail, expires_at: None, written_at: None }
    }

    /// Reads a new version of the files, logging the outcome. A token that matches neither
    /// entry of its metadata is not a write in progress (the metadata is written first and
    /// keeps the replaced token's entry): it was edited in place, and is not served.
    fn load(&self) -> Outcome {
        match read_token(&self.path) {
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
                    expires_at_text: t.meta.expires_at,
                    token_type: t.meta.token_type,
                    written_at: t.meta.written_at,
                    written_by: t.meta.written_by,
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

/// Whether a token read from disk may be served now.
fn judge(loaded: Arc<Loaded>) -> State {
    let why = if loaded.token.is_empty() {
        "the token file is empty".to_string()
    } else if loaded.expires_at <= clock::now_unix() {
        format!("the token expired at {}; is the refresh pipeline running?", loaded.expires_at_text)
    } else {
        return State::Ready(loaded);
    };
    State::Unavailable {
        detail: why.clone(),
        reason: why,
        expires_at: Some(loaded.expires_at_text.clone()),
        written_at: Some(loaded.written_at.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::write_token;

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
        let meta = meta.replace(&crate::keys::sha256_hex(b"x"), &crate::keys::sha256_hex(b""));
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
        let entry = |t: &str| crate::files::TokenMeta {
            expires_at: exp.to_string(),
            token_type: "access_token".into(),
            written_at: clock::rfc3339(clock::now_unix()),
            written_by: "test".into(),
            bytes: t.len(),
            sha256: crate::keys::sha256_hex(t.as_bytes()),
        };
        let m = crate::files::MetaFile { current: entry(new), previous: Some(entry(old)) };
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
        assert_eq!(reason, "the token file is not trusted");
        assert!(detail.contains("a FIFO") && detail.contains(&p.display().to_string()), "{detail}");
        // Missing files: the reason names no path either.
        std::fs::remove_file(&p).unwrap();
        let (reason, detail) = unavailable(&src);
        assert_eq!(reason, "there is no token file");
        assert!(detail.contains(&p.display().to_string()), "{detail}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
