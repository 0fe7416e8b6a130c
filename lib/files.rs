//! Token files: written atomically (same-directory temp file, fsync, rename, fsync of the
//! directory) with mode 0600, plus a metadata file beside them recording the expiry.

use crate::clock;
use crate::error::{Error, Kind, Result};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `<token file>.meta.json` records about the token beside it (nothing secret).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TokenMeta {
    /// Absolute expiry, RFC 3339 UTC.
    pub expires_at: String,
    /// Token type, e.g. `access_token`.
    pub token_type: String,
    /// When the file was written, RFC 3339 UTC.
    pub written_at: String,
    /// The tool that wrote it.
    pub written_by: String,
    /// Length of the token in bytes.
    pub bytes: usize,
    /// SHA-256 of the token (hex), to tell whether the metadata belongs to the token file.
    pub sha256: String,
}

/// The metadata path for a token file: `FILE.meta.json`.
pub fn meta_path(token_path: &Path) -> PathBuf {
    let mut s = token_path.as_os_str().to_owned();
    s.push(".meta.json");
    PathBuf::from(s)
}

/// Writes `bytes` to `path` atomically with `mode`: readers see the old file or the new
/// one, never a mix, and a failure leaves the old file as it was.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| Error::usage(format!("{} is not a file path", path.display())))?;
    let mut rnd = [0u8; 6];
    let _ = aws_lc_rs::rand::fill(&mut rnd);
    let suffix: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let prefix = format!(".{}.", name.to_string_lossy());
    sweep_stale_temps(&dir, &prefix);
    let tmp = dir.join(format!("{prefix}{}.{suffix}.tmp", std::process::id()));
    let result = write_new(&tmp, bytes, mode).and_then(|()| std::fs::rename(&tmp, path)).and_then(|()| sync_dir(&dir));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        let hint = match e.raw_os_error() {
            Some(28) => Some("the file system is full; the previous file was kept"),
            Some(30) => Some("the file system is read-only"),
            Some(18) => Some("the temporary file and the target must be on one file system"),
            _ => None,
        };
        let err = Error::io(path, &e).context(format!("writing {}", path.display()));
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    })
}

/// Removes temp files that an earlier writer of the same file left behind when it was
/// killed (SIGKILL, power loss) between creating and renaming them: those whose process is
/// gone, or that are older than ten minutes. Best effort; errors are ignored.
fn sweep_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(600));
        if pid != std::process::id() && (!process_alive(pid) || old) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

fn write_new(tmp: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Writes a token file (exactly the token bytes, no newline, mode 0600) and then its
/// metadata. A token whose expiry has already passed is refused, so a stale token never
/// replaces a good one.
pub fn write_token(
    path: &Path,
    token: &Secret,
    token_type: &str,
    expires_at: Option<&str>,
    tool: &str,
) -> Result<TokenMeta> {
    if token.is_empty() {
        return Err(Error::new(Kind::Input, "the token is empty; nothing was written"));
    }
    let now = clock::now_unix();
    let expires_at = match expires_at {
        Some(e) => e.to_string(),
        None => return Err(Error::input("the token has no known expiry; refusing to publish it")),
    };
    let exp = clock::parse_rfc3339(&expires_at)?;
    if exp <= now {
        return Err(Error::input(format!("the token expired at {expires_at}; the previous token file was kept"))
            .hint("check this machine's clock and the lifetimes the services grant"));
    }
    let meta = TokenMeta {
        expires_at,
        token_type: token_type.to_string(),
        written_at: clock::rfc3339(now),
        written_by: tool.to_string(),
        bytes: token.expose().len(),
        sha256: crate::keys::sha256_hex(token.expose().as_bytes()),
    };
    write_atomic(path, token.expose().as_bytes(), 0o600)?;
    let mut json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::new(Kind::Internal, e.to_string()))?;
    json.push(b'\n');
    write_atomic(&meta_path(path), &json, 0o644)?;
    Ok(meta)
}

/// A token file and its metadata, if both exist and belong together.
pub struct StoredToken {
    /// The token bytes.
    pub token: Secret,
    /// Its metadata.
    pub meta: TokenMeta,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredToken({:?}, expires {})", self.token, self.meta.expires_at)
    }
}

/// Reads a token file and its metadata. `Ok(None)` when either is missing or they do not
/// match (the metadata is written second, so a mismatch is a write in progress or a
/// hand-edited file).
pub fn read_token(path: &Path) -> Result<Option<StoredToken>> {
    let token = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, &e)),
    };
    let meta_file = meta_path(path);
    let meta: TokenMeta = match std::fs::read(&meta_file) {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(m) => m,
            Err(_) => return Ok(None),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&meta_file, &e)),
    };
    if meta.sha256 != crate::keys::sha256_hex(&token) {
        return Ok(None);
    }
    let Ok(token) = String::from_utf8(token) else { return Ok(None) };
    let expires_at = clock::parse_rfc3339(&meta.expires_at)?;
    Ok(Some(StoredToken { token: Secret::new(token), meta, expires_at }))
}

/// The stored token if it will still be valid for at least `min_ttl_secs`.
pub fn fresh_token(path: &Path, min_ttl_secs: u64) -> Result<Option<StoredToken>> {
    Ok(read_token(path)?.filter(|t| t.expires_at - clock::now_unix() > min_ttl_secs as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wif-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn stale_temp_files_of_dead_writers_are_swept() {
        let d = tmpdir("sweep");
        let p = d.join("wif_token.txt");
        // 4000000000 is above Linux's pid_max, so no live process has it.
        let dead = d.join(".wif_token.txt.4000000000.abcdef.tmp");
        let unrelated = d.join(".other.txt.1.abcdef.tmp");
        std::fs::write(&dead, b"half a tok").unwrap();
        std::fs::write(&unrelated, b"x").unwrap();
        write_atomic(&p, b"token", 0o600).unwrap();
        assert!(!dead.exists(), "the dead writer's temp file is gone");
        assert!(unrelated.exists(), "other files' temp files are left alone");
        assert_eq!(std::fs::read(&p).unwrap(), b"token");
    }

    #[test]
    fn token_file_round_trip_and_mode() {
        let d = tmpdir("rt");
        let p = d.join("wif_token.txt");
        let exp = clock::rfc3339(clock::now_unix() + 3600);
        write_token(&p, &Secret::new("ya29.token"), "access_token", Some(&exp), "test").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"ya29.token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let t = read_token(&p).unwrap().unwrap();
        assert_eq!(t.token.expose(), "ya29.token");
        assert!(fresh_token(&p, 600).unwrap().is_some());
        assert!(fresh_token(&p, 7200).unwrap().is_none());
        // Only the two files remain: no temp files left behind.
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn expired_token_never_replaces_the_old_one() {
        let d = tmpdir("exp");
        let p = d.join("t.txt");
        std::fs::write(&p, "old").unwrap();
        let past = clock::rfc3339(clock::now_unix() - 5);
        assert!(write_token(&p, &Secret::new("new"), "access_token", Some(&past), "test").is_err());
        assert!(write_token(&p, &Secret::new("new"), "access_token", None, "test").is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn mismatched_metadata_is_not_trusted() {
        let d = tmpdir("mm");
        let p = d.join("t.txt");
        let exp = clock::rfc3339(clock::now_unix() + 3600);
        write_token(&p, &Secret::new("one"), "access_token", Some(&exp), "test").unwrap();
        std::fs::write(&p, "two").unwrap();
        assert!(read_token(&p).unwrap().is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn failed_write_leaves_old_file_and_no_temp() {
        let d = tmpdir("fail");
        let p = d.join("missing-dir").join("t.txt");
        let e = write_atomic(&p, b"x", 0o600).unwrap_err();
        assert_eq!(e.kind(), Kind::Io);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
