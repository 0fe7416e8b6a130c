//! Token files: written atomically (same-directory temp file, fsync, rename, fsync of the
//! directory) with mode 0600, plus a metadata file beside them recording the expiry.
//!
//! The pair is written metadata first: the new metadata describes the new token and keeps
//! the entry of the token still in the file as `previous`, so a reader finds an entry that
//! matches the token file at every moment of a write, and a writer killed between the two
//! renames leaves a consistent pair. Existing files are read only when this user (or root)
//! wrote them and nobody else can change them, and never by blocking on a FIFO.
//!
//! - [`atomic`]: the atomic write (temp file, fsync, rename, fsync of the directory);
//! - [`meta`]: what the metadata file holds and where it lives;
//! - [`outcome`]: what reading the pair found, in words for a client and for the operator;
//! - [`trusted`]: opening an existing file safely (no FIFO, no other user's file, no torn read);
//! - [`token`]: writing and reading a token file with its metadata, or a bare token file.

pub mod atomic;
pub mod meta;
pub mod outcome;
pub mod token;
pub mod trusted;

pub use atomic::write_atomic;
pub use meta::{meta_path, MetaFile, TokenMeta};
pub use outcome::{Distrust, Part, Stored, StoredToken};
pub use token::{read_bare_token, read_token, write_token, BareToken};
pub use trusted::{distrust, read_trusted};

/// `path` made absolute (from the working directory), for a path recorded for another step
/// or program that may run elsewhere; it need not exist.
pub fn absolute(path: &std::path::Path) -> crate::core::error::Result<std::path::PathBuf> {
    std::path::absolute(path).map_err(|e| crate::core::error::Error::io(path, &e).context("making the path absolute"))
}

#[cfg(test)]
mod tests;
