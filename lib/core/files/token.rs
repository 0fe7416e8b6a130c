//! Token files: the token alone (mode 0600) with its metadata written first, read back only
//! when both files are trusted and agree; and bare token files that other programs write.

use super::atomic::write_atomic;
use super::meta::{meta_path, MetaFile, TokenMeta};
use super::outcome::{Part, Stored, StoredToken};
use super::trusted::{read_part_with_stat, read_trusted};
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Kind, Result};
use crate::core::secret::Secret;
use std::path::Path;

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
pub(super) fn new_meta(
    path: &Path,
    token: &Secret,
    token_type: &str,
    expires_at: Option<&str>,
    tool: &str,
) -> Result<MetaFile> {
    if token.is_empty() {
        return Err(Error::new(Kind::Input, "the token is empty; nothing was written"));
    }
    let now = Timestamp::now();
    let Some(text) = expires_at else {
        return Err(Error::input("the token has no known expiry; refusing to publish it"));
    };
    let expires_at = Timestamp::parse(text)?;
    if expires_at <= now {
        return Err(Error::input(format!("the token expired at {text}; the previous token file was kept"))
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
        expires_at: text.to_string(),
        token_type: token_type.to_string(),
        written_at: now.to_string(),
        written_by: tool.to_string(),
        bytes: token.expose().len(),
        sha256: crate::core::keys::sha256_hex(token.expose().as_bytes()),
    };
    Ok(MetaFile { current, previous })
}

/// Writes `FILE.meta.json` for the token file `path` (mode 0644: it holds nothing secret).
pub(super) fn write_meta(path: &Path, meta: &MetaFile) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(meta).map_err(|e| Error::new(Kind::Internal, e.to_string()))?;
    json.push(b'\n');
    write_atomic(&meta_path(path), &json, 0o644)
}

/// Reads a token file and the entry of its metadata that describes it. Both files must be
/// trusted (see `distrust`). A writer renames the metadata first and keeps the old token's
/// entry in it, so a token that matches neither entry while the token file keeps changing
/// is a writer that finished whole writes between the two reads: look again.
pub fn read_token(path: &Path) -> Stored {
    let meta_file = meta_path(path);
    let mut token = match read_trusted(path, Part::Token) {
        Ok(t) => t,
        Err(s) => return s,
    };
    for _ in 0..3 {
        let bytes = match read_trusted(&meta_file, Part::Meta) {
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
        match read_trusted(path, Part::Token) {
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
    match Timestamp::parse(&meta.expires_at) {
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
