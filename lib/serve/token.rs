//! The token being served: read from the token file and its metadata, re-read whenever
//! either file changes (also when a new file is renamed over the old one), and never
//! handed out when missing, empty or expired.

use crate::clock;
use crate::files::{meta_path, read_token};
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
    /// No token may be served; the reason is safe to show (no token bytes in it).
    Unavailable {
        /// Why.
        reason: String,
        /// The expiry of the token on disk, when one is there.
        expires_at: Option<String>,
        /// When the token on disk was written, when one is there.
        written_at: Option<String>,
    },
}

#[derive(Default)]
struct Cache {
    stamps: Option<(Stamp, Stamp)>,
    loaded: Option<Arc<Loaded>>,
    problem: Option<String>,
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

    /// The token file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times a new version of the files was read, and how many times that failed
    /// (unreadable, or not matching its metadata with no earlier token to keep serving).
    pub fn reload_counts(&self) -> (u64, u64) {
        (self.reloads.load(Ordering::Relaxed), self.reload_failures.load(Ordering::Relaxed))
    }

    /// Forgets the cached token so the next request reads the files again (SIGHUP).
    pub fn invalidate(&self) {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.stamps = None;
    }

    /// The token to serve now, or why there is none.
    pub fn current(&self) -> State {
        let unavailable =
            |reason: String, expires_at: Option<String>| State::Unavailable { reason, expires_at, written_at: None };
        // A token on disk that may not be served (empty, expired): its times are still known.
        let not_servable = |reason: String, l: &Loaded| State::Unavailable {
            reason,
            expires_at: Some(l.expires_at_text.clone()),
            written_at: Some(l.written_at.clone()),
        };
        let token_stamp = match Stamp::of(&self.path) {
            Ok(s) => s,
            Err(e) => {
                *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Cache::default();
                return unavailable(describe_missing(&self.path, &e, "token file"), None);
            }
        };
        let meta_stamp = match Stamp::of(&self.meta) {
            Ok(s) => s,
            Err(e) => {
                *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Cache::default();
                return unavailable(describe_missing(&self.meta, &e, "token metadata file"), None);
            }
        };
        let stamps = (token_stamp, meta_stamp);
        let loaded = {
            let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if c.stamps != Some(stamps) {
                match self.read(c.loaded.is_none()) {
                    Ok(Some(t)) => {
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
                        c.loaded = Some(Arc::new(Loaded {
                            token: t.token,
                            expires_at: t.expires_at,
                            expires_at_text: t.meta.expires_at,
                            token_type: t.meta.token_type,
                            written_at: t.meta.written_at,
                            written_by: t.meta.written_by,
                        }));
                        c.problem = None;
                        c.stamps = Some(stamps);
                    }
                    // The token is written before its metadata: a mismatch is usually a write
                    // in progress. Keep serving the previous token (if still valid) and look
                    // again on the next request.
                    Ok(None) if c.loaded.is_some() => {}
                    Ok(None) => {
                        self.reload_failures.fetch_add(1, Ordering::Relaxed);
                        c.problem = Some(format!(
                            "the token file {} does not match its metadata (being written, or edited by hand)",
                            self.path.display()
                        ));
                        c.stamps = Some(stamps);
                    }
                    Err(e) => {
                        self.reload_failures.fetch_add(1, Ordering::Relaxed);
                        c.loaded = None;
                        c.problem = Some(format!("reading the token file: {e}"));
                        c.stamps = Some(stamps);
                    }
                }
            }
            match (&c.loaded, &c.problem) {
                (_, Some(p)) => return unavailable(p.clone(), None),
                (Some(l), None) => l.clone(),
                (None, None) => return unavailable("no token has been read yet".into(), None),
            }
        };
        if loaded.token.is_empty() {
            return not_servable("the token file is empty".into(), &loaded);
        }
        if loaded.expires_at <= clock::now_unix() {
            return not_servable(
                format!("the token expired at {}; is the refresh pipeline running?", loaded.expires_at_text),
                &loaded,
            );
        }
        State::Ready(loaded)
    }
}

impl TokenSource {
    /// Reads the token and its metadata. The token is written before its metadata, so a
    /// mismatch is usually a write in progress; with no earlier token to fall back on
    /// (`settle`), wait up to 200 ms for the metadata to follow before calling it one.
    fn read(&self, settle: bool) -> crate::error::Result<Option<crate::files::StoredToken>> {
        let mut attempts = if settle { 20 } else { 1 };
        loop {
            attempts -= 1;
            match read_token(&self.path) {
                Ok(None) if attempts > 0 => std::thread::sleep(std::time::Duration::from_millis(10)),
                other => return other,
            }
        }
    }
}

fn describe_missing(path: &Path, e: &std::io::Error, what: &str) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!("no {what} at {}", path.display())
    } else {
        format!("the {what} {} cannot be read: {e}", path.display())
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
        let d = dir("empty");
        let p = d.join("t.txt");
        let exp = clock::rfc3339(clock::now_unix() + 600);
        write_token(&p, &Secret::new("x"), "access_token", Some(&exp), "test").unwrap();
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

    #[test]
    fn a_half_written_pair_keeps_the_previous_token() {
        let d = dir("half");
        let p = d.join("t.txt");
        let src = TokenSource::new(p.clone());
        let exp = clock::rfc3339(clock::now_unix() + 600);
        write_token(&p, &Secret::new("old"), "access_token", Some(&exp), "test").unwrap();
        assert_eq!(token_of(&src).as_deref(), Some("old"));
        std::fs::write(&p, "new-but-no-meta-yet").unwrap();
        assert_eq!(token_of(&src).as_deref(), Some("old"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_fresh_server_waits_briefly_for_metadata_being_written() {
        let d = dir("settle");
        let p = d.join("t.txt");
        let exp = clock::rfc3339(clock::now_unix() + 600);
        write_token(&p, &Secret::new("old"), "access_token", Some(&exp), "test").unwrap();
        std::fs::write(&p, "new").unwrap();
        let writer = {
            let (p, exp) = (p.clone(), exp.clone());
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                write_token(&p, &Secret::new("new"), "access_token", Some(&exp), "test").unwrap();
            })
        };
        // Nothing was served before, so there is no previous token to fall back on.
        assert_eq!(token_of(&TokenSource::new(p.clone())).as_deref(), Some("new"));
        writer.join().unwrap();
        // A pair that stays mismatched is reported, after the short wait.
        std::fs::write(&p, "edited by hand").unwrap();
        match TokenSource::new(p).current() {
            State::Unavailable { reason, .. } => assert!(reason.contains("does not match"), "{reason}"),
            State::Ready(_) => panic!("served a token that does not match its metadata"),
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
