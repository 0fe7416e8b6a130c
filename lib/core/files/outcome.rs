//! What reading a token file and its metadata found, and why there is no token: in words
//! safe for a client (no path, no owner) and in words for the operator.

use super::meta::TokenMeta;
use crate::core::clock::Timestamp;
use crate::core::secret::Secret;
use std::path::PathBuf;

/// A token file and the metadata entry that describes it.
pub struct StoredToken {
    /// The token bytes.
    pub token: Secret,
    /// Its metadata entry (the current one, or the previous one while a write is under way).
    pub meta: TokenMeta,
    /// Its expiry, parsed once from the metadata.
    pub expires_at: Timestamp,
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
    /// A file that decides who gets which token (wif-serve's `--policy`): trusted only on
    /// the same terms as the tokens it hands out.
    Policy,
    /// wif-serve's `--bearer-issuers` file: it decides whose tokens are trusted.
    Issuers,
    /// A JWKS file named by the issuers file: its keys decide which tokens verify.
    Jwks,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Token => "token file",
            Part::Meta => "token metadata file",
            Part::Policy => "policy file",
            Part::Issuers => "bearer issuers file",
            Part::Jwks => "JWKS file",
        }
    }

    /// Largest file read: real tokens are a few kilobytes, their metadata a few hundred
    /// bytes; the bound keeps a mistaken path (a log, an image) from filling the memory.
    pub(super) fn limit(self) -> u64 {
        match self {
            Part::Token => 4 << 20,
            Part::Meta => 64 * 1024,
            Part::Policy | Part::Issuers => 1 << 20,
            Part::Jwks => 256 * 1024,
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

/// Why a file is not trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distrust {
    /// In words for anyone (a client's 503): no owner's uid.
    pub shown: String,
    /// In words for the operator (stderr, the server's log).
    pub detail: String,
}

impl Distrust {
    pub(super) fn same(why: String) -> Distrust {
        Distrust { shown: why.clone(), detail: why }
    }
}
