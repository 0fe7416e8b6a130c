//! The issuance ledger: one JSON line per credential handed out (a `GET /get_wif_token`
//! answered with a token) — who got it, by which rule, from which source, narrowed by which
//! boundary, until when, and whether STS was called — never a token, only digests of it.
//! Appended to `--ledger FILE` (created 0600; refused when another user owns it or others
//! can write it), else, with a policy, on stdout among the log lines.

use super::allow::Principal;
use super::bearer::ClaimValue;
use super::log;
use std::collections::BTreeMap;
use crate::core::error::{Error, Result};
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// Where ledger lines go.
pub enum Ledger {
    /// Nowhere: no policy and no `--ledger` (the request log says enough).
    Off,
    /// Among the log lines on stdout.
    Stdout,
    /// Appended to a file.
    File(Mutex<File>),
}

/// The client, as the ledger records it: `"kind": "certificate"` or `"kind": "bearer"`.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Client<'a> {
    /// A client that presented a certificate.
    Certificate {
        /// Subject (RFC 4514).
        subject: &'a str,
        /// Subject common names.
        cn: &'a [String],
        /// DNS subjectAltNames.
        dns: &'a [String],
        /// URI subjectAltNames.
        uris: &'a [String],
        /// SHA-256 of the public key, hex.
        spki_sha256: &'a str,
        /// SHA-256 of the certificate, hex.
        fingerprint: &'a str,
    },
    /// A client whose bearer token verified.
    Bearer {
        /// The issuer's name in `--bearer-issuers`.
        issuer: &'a str,
        /// The token's `iss`.
        iss: &'a str,
        /// The token's `sub`.
        sub: &'a str,
        /// The issuer's identity claims present in the token.
        claims: &'a BTreeMap<String, ClaimValue>,
        /// The token's `jti`, `null` without one.
        jti: Option<&'a str>,
        /// The first 16 hex digits of the token's SHA-256 (never the token).
        token_sha256: &'a str,
        /// The token's `exp`, RFC 3339.
        token_expires_at: String,
    },
}

impl<'a> Client<'a> {
    /// The ledger's view of a verified client.
    pub fn of(client: &'a Principal) -> Client<'a> {
        match client {
            Principal::Certificate(id) => Client::Certificate {
                subject: &id.subject,
                cn: &id.common_names,
                dns: &id.dns,
                uris: &id.uris,
                spki_sha256: &id.spki_sha256,
                fingerprint: &id.fingerprint,
            },
            Principal::Bearer(b) => Client::Bearer {
                issuer: &b.issuer,
                iss: &b.iss,
                sub: &b.sub,
                claims: &b.claims,
                jti: b.jti.as_deref(),
                token_sha256: &b.token_sha256,
                token_expires_at: crate::core::clock::rfc3339(b.expires_at),
            },
        }
    }

    /// Who, in words for an error line.
    fn describe(&self) -> String {
        match self {
            Client::Certificate { subject, .. } => subject.to_string(),
            Client::Bearer { issuer, sub, .. } => format!("bearer {issuer} {}", crate::core::secret::quote(sub, 200)),
        }
    }
}

/// One credential handed out.
#[derive(Serialize)]
pub struct Line<'a> {
    /// When.
    pub time: String,
    /// Always `credential_issued`.
    pub event: &'static str,
    /// The client's address.
    pub peer: &'a str,
    /// Who.
    pub client: Client<'a>,
    /// The policy rule, `null` without a policy.
    pub rule: Option<&'a str>,
    /// The token source's name.
    pub token_source: &'a str,
    /// First hex digits of the source token's SHA-256.
    pub source_sha256: &'a str,
    /// First hex digits of the issued token's SHA-256.
    pub issued_sha256: &'a str,
    /// The boundary's digest, `null` when the token was not narrowed.
    pub boundary_sha256: Option<&'a str>,
    /// The issued token's expiry.
    pub expires_at: &'a str,
    /// `file`, `sts` or `cache`.
    pub via: &'static str,
}

impl Ledger {
    /// Opens `--ledger FILE` for appending (creating it 0600), refusing one that is not a
    /// regular file of this user's (or root's) that nobody else can write.
    pub fn open(path: &Path) -> Result<Ledger> {
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // NONBLOCK: a FIFO in its place would otherwise hold the start until a reader
            // comes; without one, the open fails at once (and with one, it is no regular file).
            opts.mode(0o600).custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32);
        }
        let doing = || format!("opening the ledger (--ledger {})", path.display());
        let file = opts.open(path).map_err(|e| Error::io(path, &e).context(doing()))?;
        let stat = file.metadata().map_err(|e| Error::io(path, &e).context(doing()))?;
        // The same terms as the files wif reads: a regular file, this user's (or root's), that
        // nobody else can write. A ledger others can write proves nothing.
        if let Some(why) = crate::core::files::distrust(&stat) {
            return Err(Error::usage(format!("{}: {}", path.display(), why.detail))
                .context(doing())
                .hint("keep the ledger in a file only wif-serve's user can write (chmod go-w)"));
        }
        Ok(Ledger::File(Mutex::new(file)))
    }

    /// Records one issuance. A ledger file that cannot be written is reported in the log
    /// (the credential has been handed out already; the log line says so).
    pub fn record(&self, line: &Line<'_>) {
        match self {
            Ledger::Off => {}
            Ledger::Stdout => log::emit(line),
            Ledger::File(f) => {
                let Ok(mut bytes) = serde_json::to_vec(line) else { return };
                bytes.push(b'\n');
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = f.write_all(&bytes) {
                    log::Event::new("ledger_failed")
                        .reason(format!("writing the ledger: {e}; a credential was issued to {}", line.client.describe()))
                        .emit();
                }
            }
        }
    }
}
