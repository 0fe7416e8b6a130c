//! Token files: written atomically (same-directory temp file, fsync, rename, fsync of the
//! directory) with mode 0600, plus a metadata file beside them recording the expiry.
//!
//! The pair is written metadata first: the new metadata describes the new token and keeps
//! the entry of the token still in the file as `previous`, so a reader finds an entry that
//! matches the token file at every moment of a write, and a writer killed between the two
//! renames leaves a consistent pair. Existing files are read only when this user (or root)
//! wrote them and nobody else can change them, and never by blocking on a FIFO.

use crate::core::clock;
use crate::core::error::{Error, Kind, Result};
use crate::core::secret::Secret;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What the metadata records about one token (nothing secret).
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

/// What `<token file>.meta.json` holds: the newest token's entry as top-level fields (as
/// earlier versions wrote it, so their readers keep working) and the entry of the token it
/// replaces, which stays in the file until the new token is renamed over it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetaFile {
    /// The token written last (or being written).
    #[serde(flatten)]
    pub current: TokenMeta,
    /// The token that was in the file when the metadata was written, if it was trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<TokenMeta>,
}

impl MetaFile {
    /// The entry describing `token`: the current one, else the previous one.
    pub fn entry_for(&self, token: &[u8]) -> Option<&TokenMeta> {
        let sha = crate::core::keys::sha256_hex(token);
        std::iter::once(&self.current).chain(&self.previous).find(|e| e.sha256 == sha)
    }
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
    let suffix = hex::encode(rnd);
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

/// Writes a token file (exactly the token bytes, no newline, mode 0600), its metadata
/// first. A token whose expiry has already passed is refused, so a stale token never
/// replaces a good one. A failure at any step (or a kill between the two renames) leaves a
/// consistent pair: the new metadata still describes the token in the file as `previous`.
pub fn write_token(
    path: &Path,
    token: &Secret,
    token_type: &str,
    expires_at: Option<&str>,
    tool: &str,
) -> Result<TokenMeta> {
    let meta = new_meta(path, token, token_type, expires_at, tool)?;
    write_meta(path, &meta)?;
    write_atomic(path, token.expose().as_bytes(), 0o600)?;
    Ok(meta.current)
}

/// The metadata that goes with writing `token` to `path`: the new token's entry, and the
/// entry of the trusted token now in the file. Checks everything that can be checked before
/// either file is touched.
fn new_meta(path: &Path, token: &Secret, token_type: &str, expires_at: Option<&str>, tool: &str) -> Result<MetaFile> {
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
    if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(Error::new(Kind::Io, format!("{} is a directory", path.display()))
            .context(format!("writing {}", path.display())));
    }
    let previous = match read_token(path) {
        Stored::Found(t) => Some(t.meta),
        _ => None,
    };
    let current = TokenMeta {
        expires_at,
        token_type: token_type.to_string(),
        written_at: clock::rfc3339(now),
        written_by: tool.to_string(),
        bytes: token.expose().len(),
        sha256: crate::core::keys::sha256_hex(token.expose().as_bytes()),
    };
    Ok(MetaFile { current, previous })
}

/// Writes `FILE.meta.json` for the token file `path` (mode 0644: it holds nothing secret).
fn write_meta(path: &Path, meta: &MetaFile) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(meta).map_err(|e| Error::new(Kind::Internal, e.to_string()))?;
    json.push(b'\n');
    write_atomic(&meta_path(path), &json, 0o644)
}

/// A token file and the metadata entry that describes it.
pub struct StoredToken {
    /// The token bytes.
    pub token: Secret,
    /// Its metadata entry (the current one, or the previous one while a write is under way).
    pub meta: TokenMeta,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredToken({:?}, expires {})", self.token, self.meta.expires_at)
    }
}

/// Which file of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The token file.
    Token,
    /// `FILE.meta.json`.
    Meta,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Token => "token file",
            Part::Meta => "token metadata file",
        }
    }

    /// Largest file read: real tokens are a few kilobytes, their metadata a few hundred
    /// bytes; the bound keeps a mistaken path (a log, an image) from filling the memory.
    fn limit(self) -> u64 {
        match self {
            Part::Token => 4 << 20,
            Part::Meta => 64 * 1024,
        }
    }
}

/// What reading a token file and its metadata found.
#[derive(Debug)]
pub enum Stored {
    /// A trusted token file and the metadata entry that describes it.
    Found(Box<StoredToken>),
    /// The file does not exist.
    Missing(Part, PathBuf),
    /// The file exists but is not trusted: why (naming no path).
    Untrusted(Part, PathBuf, Distrust),
    /// The file cannot be read or is not what it should be: why (naming no path, owner or
    /// content: safe to show a client).
    Unusable(Part, PathBuf, String),
    /// The metadata describes neither the token in the file nor the one before it: the file
    /// was edited in place, or written by something other than the wif tools.
    Mismatch(PathBuf),
}

impl Stored {
    /// Why there is no token, safe to show anyone: names no path and no owner.
    pub fn reason(&self) -> String {
        match self {
            Stored::Found(_) => "the token was found".into(),
            Stored::Missing(part, _) => format!("there is no {}", part.name()),
            Stored::Untrusted(part, _, why) => format!("the {} is not trusted: {}", part.name(), why.shown),
            Stored::Unusable(part, _, why) => format!("the {} cannot be used: {why}", part.name()),
            Stored::Mismatch(_) => "the token file does not match its metadata".into(),
        }
    }

    /// Why there is no token, naming the file: for the operator (stderr, the server's log).
    pub fn detail(&self) -> String {
        match self {
            Stored::Found(t) => format!("the token was found (expires at {})", t.meta.expires_at),
            Stored::Missing(part, p) => format!("there is no {} {}", part.name(), p.display()),
            Stored::Untrusted(part, p, why) => {
                format!("the {} {} is not trusted: {}", part.name(), p.display(), why.detail)
            }
            Stored::Unusable(part, p, why) => format!("the {} {} cannot be used: {why}", part.name(), p.display()),
            Stored::Mismatch(p) => format!(
                "the token file {} does not match its metadata (edited in place, or not written by the wif tools)",
                p.display()
            ),
        }
    }
}

/// Reads a token file and the entry of its metadata that describes it. Both files must be
/// trusted (see `distrust`). A writer renames the metadata first and keeps the old token's
/// entry in it, so a token that matches neither entry while the token file keeps changing
/// is a writer that finished whole writes between the two reads: look again.
pub fn read_token(path: &Path) -> Stored {
    let meta_file = meta_path(path);
    let mut token = match read_part(path, Part::Token) {
        Ok(t) => t,
        Err(s) => return s,
    };
    for _ in 0..3 {
        let bytes = match read_part(&meta_file, Part::Meta) {
            Ok(b) => b,
            Err(s) => return s,
        };
        let meta: MetaFile = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => return Stored::Unusable(Part::Meta, meta_file, format!("it is not token metadata ({e})")),
        };
        if let Some(entry) = meta.entry_for(&token) {
            return found(path, token, entry.clone());
        }
        match read_part(path, Part::Token) {
            Ok(again) if again != token => token = again,
            Ok(_) => break,
            Err(s) => return s,
        }
    }
    Stored::Mismatch(path.to_path_buf())
}

fn found(path: &Path, token: Vec<u8>, meta: TokenMeta) -> Stored {
    let Ok(token) = String::from_utf8(token) else {
        return Stored::Unusable(Part::Token, path.to_path_buf(), "it is not UTF-8 text".into());
    };
    match clock::parse_rfc3339(&meta.expires_at) {
        Ok(expires_at) => Stored::Found(Box::new(StoredToken { token: Secret::new(token), meta, expires_at })),
        Err(e) => Stored::Unusable(Part::Meta, meta_path(path), format!("its expires_at is not usable: {e}")),
    }
}

/// A token file with no metadata beside it, as programs other than the wif tools write it
/// (the seed's Java generator: the token alone). Its expiry is not known; the reader decides
/// what to assume from when it was written.
pub struct BareToken {
    /// The token bytes, without a trailing line end.
    pub token: Secret,
    /// When the file was last modified, Unix seconds (of the file whose bytes these are).
    pub modified: i64,
}

impl std::fmt::Debug for BareToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BareToken({:?}, modified {})", self.token, self.modified)
    }
}

/// Reads a token file that has no metadata, under the same trust rules as `read_token` (a
/// regular file, owned by this user or root, writable by nobody else). One trailing line end
/// (LF or CRLF), which a generator may add, is not part of the token; what is left must be a
/// token alone (`core::token::bare_token`).
pub fn read_bare_token(path: &Path) -> std::result::Result<BareToken, Stored> {
    let (mut bytes, mut stat) = read_part_with_stat(path, Part::Token)?;
    if bytes.is_empty() {
        // A generator that rewrites the file in place empties it first: look once more.
        std::thread::sleep(std::time::Duration::from_millis(20));
        (bytes, stat) = read_part_with_stat(path, Part::Token)?;
    }
    let unusable = |why: &str| Stored::Unusable(Part::Token, path.to_path_buf(), format!("it {why}"));
    let text = String::from_utf8(bytes).map_err(|_| unusable("is not UTF-8 text"))?;
    let token = text.strip_suffix('\n').map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
    if token.starts_with(['{', '[']) {
        // Whole token responses are JSON; wif-serve serves the token alone.
        return Err(unusable("holds JSON, not the token alone (the access_token value)"));
    }
    let token = crate::core::token::bare_token(token).map_err(unusable)?;
    let modified = stat
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    Ok(BareToken { token: Secret::new(token), modified })
}

/// The bytes of an existing token or metadata file, if it is trusted. The file is opened
/// without blocking and checked before any read, so a FIFO (or device) put in its place is
/// refused at once instead of hanging the reader.
fn read_part(path: &Path, part: Part) -> std::result::Result<Vec<u8>, Stored> {
    read_part_with_stat(path, part).map(|(bytes, _)| bytes)
}

/// `read_part`, with the status of the file that was read. A file rewritten in place (the
/// seed's generator truncates and writes) can be caught half-written: the read counts only
/// when the file's size and modification time were the same before and after it and the
/// bytes read are all of it; otherwise it is read again, a few times, then refused.
fn read_part_with_stat(path: &Path, part: Part) -> std::result::Result<(Vec<u8>, std::fs::Metadata), Stored> {
    for attempt in 0..4 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(5 << attempt));
        }
        let (bytes, before, after) = read_part_once(path, part)?;
        if unchanged(&before, &after, bytes.len()) {
            return Ok((bytes, after));
        }
    }
    Err(Stored::Unusable(part, path.to_path_buf(), "it kept changing while it was read (rewritten in place?)".into()))
}

/// Whether a file's status before and after a read of `read` bytes says nothing wrote to it
/// meanwhile.
fn unchanged(before: &std::fs::Metadata, after: &std::fs::Metadata, read: usize) -> bool {
    let same_time = match (before.modified(), after.modified()) {
        (Ok(a), Ok(b)) => a == b,
        _ => true,
    };
    same_time && before.len() == after.len() && after.len() == read as u64
}

/// One open and read of a token or metadata file: its bytes, and its status before and
/// after the read.
type ReadOnce = (Vec<u8>, std::fs::Metadata, std::fs::Metadata);

fn read_part_once(path: &Path, part: Part) -> std::result::Result<ReadOnce, Stored> {
    let unusable = |e: &std::io::Error| Stored::Unusable(part, path.to_path_buf(), crate::core::error::io_words(e));
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32);
    }
    let mut file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Stored::Missing(part, path.to_path_buf())),
        Err(e) => return Err(unusable(&e)),
    };
    let before = file.metadata().map_err(|e| unusable(&e))?;
    if let Some(why) = distrust(&before) {
        return Err(Stored::Untrusted(part, path.to_path_buf(), why));
    }
    let mut bytes = Vec::new();
    (&mut file).take(part.limit() + 1).read_to_end(&mut bytes).map_err(|e| unusable(&e))?;
    if bytes.len() as u64 > part.limit() {
        return Err(Stored::Unusable(part, path.to_path_buf(), format!("it is larger than {} bytes", part.limit())));
    }
    let after = file.metadata().map_err(|e| unusable(&e))?;
    Ok((bytes, before, after))
}

/// Why a file is not trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distrust {
    /// In words for anyone (a client's 503): no owner's uid.
    pub shown: String,
    /// In words for the operator (stderr, the server's log).
    pub detail: String,
}

impl Distrust {
    fn same(why: String) -> Distrust {
        Distrust { shown: why.clone(), detail: why }
    }
}

/// Why an existing file may not be trusted, or `None` if it may: it must be a regular file,
/// owned by this process's effective user or root, and writable by nobody else. A file
/// another user could have made or changed (say, in a shared or world-writable directory)
/// could carry a token and an expiry of their choosing.
fn distrust(stat: &std::fs::Metadata) -> Option<Distrust> {
    let kind = stat.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_symlink() {
            "a symbolic link"
        } else {
            #[cfg(unix)]
            {
                use std::os::unix::fs::FileTypeExt;
                if kind.is_fifo() {
                    "a FIFO"
                } else if kind.is_socket() {
                    "a socket"
                } else {
                    "a device"
                }
            }
            #[cfg(not(unix))]
            "not a file"
        };
        return Some(Distrust::same(format!("it is {what}, not a regular file")));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = rustix::process::geteuid().as_raw();
        if stat.uid() != me && stat.uid() != 0 {
            return Some(Distrust {
                shown: "it is owned by another user than the reader's or root".into(),
                detail: format!("it is owned by uid {}, not by this user (uid {me}) or root", stat.uid()),
            });
        }
        if stat.mode() & 0o022 != 0 {
            return Some(Distrust::same(format!(
                "others can write it (mode {:04o}); only its owner may (chmod go-w)",
                stat.mode() & 0o7777
            )));
        }
    }
    None
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

    /// A fresh directory and the path of a token file in it.
    fn token_in(tag: &str) -> (PathBuf, PathBuf) {
        let d = tmpdir(tag);
        let p = d.join("t.txt");
        (d, p)
    }

    fn in_an_hour() -> String {
        clock::rfc3339(clock::now_unix() + 3600)
    }

    fn write(p: &Path, token: &str, exp: &str) -> TokenMeta {
        write_token(p, &Secret::new(token), "access_token", Some(exp), "test").unwrap()
    }

    /// The token read back, or the outcome's detail.
    fn read(p: &Path) -> std::result::Result<String, String> {
        match read_token(p) {
            Stored::Found(t) => Ok(t.token.expose().to_string()),
            other => Err(other.detail()),
        }
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
        let exp = in_an_hour();
        write(&p, "ya29.token", &exp);
        assert_eq!(std::fs::read(&p).unwrap(), b"ya29.token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let Stored::Found(t) = read_token(&p) else { panic!("{}", read_token(&p).detail()) };
        assert_eq!(t.token.expose(), "ya29.token");
        assert_eq!(t.meta.expires_at, exp);
        assert_eq!(t.expires_at, clock::parse_rfc3339(&exp).unwrap());
        // Only the two files remain: no temp files left behind.
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn expired_token_never_replaces_the_old_one() {
        let (d, p) = token_in("exp");
        std::fs::write(&p, "old").unwrap();
        let past = clock::rfc3339(clock::now_unix() - 5);
        assert!(write_token(&p, &Secret::new("new"), "access_token", Some(&past), "test").is_err());
        assert!(write_token(&p, &Secret::new("new"), "access_token", None, "test").is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert!(!meta_path(&p).exists(), "nothing was written");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_token_edited_in_place_matches_no_entry() {
        let (d, p) = token_in("mm");
        write(&p, "one", &in_an_hour());
        write(&p, "two", &in_an_hour());
        std::fs::write(&p, "three").unwrap();
        assert!(matches!(read_token(&p), Stored::Mismatch(_)), "{}", read_token(&p).detail());
        assert!(read_token(&p).reason().contains("does not match its metadata"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_metadata_keeps_the_replaced_tokens_entry_and_old_readers_see_the_new_one() {
        let (d, p) = token_in("prev");
        let first = write(&p, "first", &clock::rfc3339(clock::now_unix() + 600));
        let second = write(&p, "second", &in_an_hour());
        let text: serde_json::Value = serde_json::from_slice(&std::fs::read(meta_path(&p)).unwrap()).unwrap();
        // Today's fields keep their meaning: the token in the file.
        assert_eq!(text["sha256"], crate::core::keys::sha256_hex(b"second"));
        assert_eq!(text["expires_at"], second.expires_at.as_str());
        assert_eq!(text["previous"]["sha256"], crate::core::keys::sha256_hex(b"first"));
        assert_eq!(text["previous"]["expires_at"], first.expires_at.as_str());
        assert!(text["previous"].get("previous").is_none(), "one level only");
        // The previous token's entry is carried, never an entry of a token older than that.
        write(&p, "third", &in_an_hour());
        let m: MetaFile = serde_json::from_slice(&std::fs::read(meta_path(&p)).unwrap()).unwrap();
        assert_eq!(m.previous, Some(TokenMeta { written_by: "test".into(), ..second }));
        assert!(m.entry_for(b"first").is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_writer_stopped_between_the_two_renames_leaves_a_consistent_pair() {
        let (d, p) = token_in("kill");
        let old_exp = clock::rfc3339(clock::now_unix() + 600);
        write(&p, "old", &old_exp);
        // The first half of write_token: the new metadata is in place, the token is not.
        let meta = new_meta(&p, &Secret::new("new"), "access_token", Some(&in_an_hour()), "test").unwrap();
        write_meta(&p, &meta).unwrap();
        let Stored::Found(t) = read_token(&p) else { panic!("{}", read_token(&p).detail()) };
        assert_eq!(
            (t.token.expose(), t.meta.expires_at.as_str()),
            ("old", old_exp.as_str()),
            "the old token, its own expiry"
        );
        // The next write keeps the entry of the token really in the file.
        write(&p, "newer", &in_an_hour());
        let m: MetaFile = serde_json::from_slice(&std::fs::read(meta_path(&p)).unwrap()).unwrap();
        assert_eq!(m.previous.unwrap().sha256, crate::core::keys::sha256_hex(b"old"));
        assert_eq!(read(&p).unwrap(), "newer");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_reader_never_sees_a_mismatch_while_a_writer_rewrites_the_pair() {
        let (d, p) = token_in("race");
        write(&p, "token-0", &in_an_hour());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    write(&p, &format!("token-{n}"), &in_an_hour());
                }
                n
            })
        };
        let started = std::time::Instant::now();
        let mut reads = 0;
        while started.elapsed() < std::time::Duration::from_millis(1500) {
            let got = read(&p).unwrap_or_else(|e| panic!("read {reads}: {e}"));
            assert!(got.starts_with("token-"), "{got}");
            reads += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let writes = writer.join().unwrap();
        assert!(writes > 5 && reads > 5, "{writes} writes, {reads} reads");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_metadata_path_that_is_a_directory_fails_before_the_token_is_touched() {
        let (d, p) = token_in("dir");
        std::fs::write(&p, "old").unwrap();
        std::fs::create_dir(meta_path(&p)).unwrap();
        let e = write_token(&p, &Secret::new("new"), "access_token", Some(&in_an_hour()), "test").unwrap_err();
        assert_eq!(e.kind(), Kind::Io);
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert!(read_token(&p).detail().contains("a directory, not a regular file"), "{}", read_token(&p).detail());
        // And a token path that is a directory: refused before the metadata is written.
        let q = d.join("q.txt");
        std::fs::create_dir(&q).unwrap();
        assert!(write_token(&q, &Secret::new("new"), "access_token", Some(&in_an_hour()), "test").is_err());
        assert!(!meta_path(&q).exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn files_others_can_write_fifos_and_missing_files_are_told_apart() {
        use std::os::unix::fs::PermissionsExt;
        let (d, p) = token_in("trust");
        assert!(matches!(read_token(&p), Stored::Missing(Part::Token, _)));
        write(&p, "tok", &in_an_hour());
        std::fs::set_permissions(meta_path(&p), std::fs::Permissions::from_mode(0o666)).unwrap();
        let s = read_token(&p);
        assert!(matches!(s, Stored::Untrusted(Part::Meta, _, _)), "{}", s.detail());
        assert!(s.detail().contains("mode 0666") && s.detail().contains(".meta.json"), "{}", s.detail());
        assert_eq!(
            s.reason(),
            "the token metadata file is not trusted: others can write it (mode 0666); only its owner may (chmod go-w)",
            "no path"
        );
        std::fs::set_permissions(meta_path(&p), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o620)).unwrap();
        assert!(matches!(read_token(&p), Stored::Untrusted(Part::Token, _, _)));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(&p).unwrap(), "tok");
        // A FIFO is refused at once, never read (reading it would block until a writer came).
        std::fs::remove_file(&p).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(&p).status().unwrap().success());
        let s = read_token(&p);
        assert!(s.detail().contains("a FIFO, not a regular file"), "{}", s.detail());
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

    #[test]
    fn a_bare_file_that_is_empty_or_json_is_not_a_token() {
        let (d, p) = token_in("bare-shapes");
        for (content, why) in [
            ("", "it is empty"),
            ("\n", "it is empty"),
            (r#"{"access_token":"ya29.x","expires_in":3599}"#, "it holds JSON"),
            ("ya29.a b", "it holds a space"),
            ("ya29.a\nb", "it holds a line break"),
        ] {
            std::fs::write(&p, content).unwrap();
            match read_bare_token(&p) {
                Err(s @ Stored::Unusable(Part::Token, _, _)) => {
                    assert!(s.reason().contains(why), "{content:?}: {}", s.reason());
                    assert!(!s.reason().contains(&d.display().to_string()), "{}", s.reason());
                }
                Err(s) => panic!("{content:?}: {}", s.detail()),
                Ok(_) => panic!("{content:?} was taken for a token"),
            }
        }
        std::fs::write(&p, "ya29.bare\r\n").unwrap();
        assert_eq!(read_bare_token(&p).unwrap().token.expose(), "ya29.bare");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_read_counts_only_when_the_file_did_not_change_under_it() {
        let (d, p) = token_in("unchanged");
        std::fs::write(&p, "abc").unwrap();
        let short = std::fs::metadata(&p).unwrap();
        std::fs::write(&p, "abcdef").unwrap();
        let long = std::fs::metadata(&p).unwrap();
        assert!(unchanged(&long, &long, 6));
        assert!(!unchanged(&long, &long, 3), "fewer bytes read than the file holds");
        assert!(!unchanged(&short, &long, 6), "the size changed during the read");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// The seed's generator rewrites its file in place (truncate, then write): a reader racing
    /// it gets the whole token or an error, never a piece of one.
    #[test]
    fn a_file_rewritten_in_place_is_never_read_half_written() {
        use std::io::Write;
        let (d, p) = token_in("in-place");
        let token = format!("ya29.{}", "x".repeat(1500));
        std::fs::write(&p, &token).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (p, token, stop) = (p.clone(), token.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&p).unwrap();
                    f.write_all(token.as_bytes()).unwrap();
                }
            })
        };
        let (mut whole, mut refused) = (0, 0);
        for _ in 0..300 {
            match read_bare_token(&p) {
                Ok(t) => {
                    assert_eq!(t.token.expose().len(), token.len(), "a piece of the token was read");
                    whole += 1;
                }
                Err(Stored::Unusable(..)) => refused += 1,
                Err(s) => panic!("{}", s.detail()),
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        assert!(whole > 0, "never read whole ({refused} refused)");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
