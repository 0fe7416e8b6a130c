//! The metadata beside a token file: what it records about the token (nothing secret), with
//! the entry of the token it replaces, and its path.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the metadata records about one token (nothing secret).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TokenMeta {
    /// Absolute expiry, RFC 3339, as recorded (parsed once, into [`super::StoredToken`]'s
    /// `expires_at`, when the token is read).
    pub expires_at: String,
    /// Token type, e.g. `access_token`.
    pub token_type: String,
    /// When the file was written, RFC 3339 UTC, as recorded (shown, never computed with).
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
