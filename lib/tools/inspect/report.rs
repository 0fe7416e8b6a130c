//! What wif-inspect reports: the tokens, certificates and document outline it found, as
//! printed with --json, and the times in them shown three ways.

use crate::core::clock;
use crate::core::secret::Secret;
use serde::Serialize;
use serde_json::{Map, Value};
use time::{OffsetDateTime, UtcOffset};

/// A time claim shown three ways.
#[derive(Serialize, Debug, Clone)]
pub struct TimeReport {
    /// Unix seconds.
    pub unix: i64,
    /// RFC 3339 UTC.
    pub utc: String,
    /// Local date and time with offset.
    pub local: String,
    /// Relative to now: "expires in 41 min", "3 min ago".
    pub relative: String,
}

/// The outcome of signature verification.
#[derive(Serialize, Debug, Clone)]
pub struct Verification {
    /// Whether signature and times check out.
    pub valid: bool,
    /// Whether the signature verifies.
    pub signature_valid: bool,
    /// Which key verified it (or why none did).
    pub key: String,
    /// Why it is not valid.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// What a token found in the input is.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A JWT: header and claims are shown.
    Jwt,
    /// Anything else: shown by type, length and a preview.
    Opaque,
    /// The document holds facts about a token but not the token itself.
    Withheld,
}

/// One token found in the input.
#[derive(Serialize, Debug, Clone)]
pub struct TokenReport {
    /// Where it was found: a section name, `token`, or `file:PATH`.
    pub source: String,
    /// What the token is.
    pub kind: TokenKind,
    /// The token type recorded with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Length in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<usize>,
    /// SHA-256 (hex) of the token, to compare with metadata and logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Expiry, RFC 3339 UTC (the JWT's exp, else the document's or metadata's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// "expires in 41 min" or "expired 3 min ago".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    /// Whether it has expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired: Option<bool>,
    /// The JWT header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<Value>,
    /// The JWT claims (unverified unless `verification` says so).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<Value>,
    /// exp, iat, nbf (and auth_time) as dates.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub times: Map<String, Value>,
    /// First six characters of an opaque token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// The section's other, non-secret fields (endpoint, audience, scope, …).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub facts: Map<String, Value>,
    /// Signature verification, with --jwks or --verify-cert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Whether the header's x5t / x5t#S256 names the --cert or --verify-cert certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbprint_matches_cert: Option<bool>,
    /// The raw token (--show-secrets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// The JWT signature (--show-secrets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Secret>,
}

/// A certificate described.
#[derive(Serialize, Debug, Clone)]
pub struct CertReport {
    /// The file it came from.
    pub file: String,
    /// Position in the file (0 = first, the leaf).
    pub index: usize,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number (hex).
    pub serial: String,
    /// Subject alternative names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub san: Vec<String>,
    /// Start of validity.
    pub not_before: TimeReport,
    /// End of validity.
    pub not_after: TimeReport,
    /// Whether it has expired.
    pub expired: bool,
    /// SHA-1 thumbprint in upper-case hex, as the Azure portal lists certificates.
    pub thumbprint_sha1_hex: String,
    /// SHA-256 fingerprint in upper-case hex.
    pub thumbprint_sha256_hex: String,
    /// `x5t`: base64url SHA-1, unpadded (as wif-sign sends it).
    pub x5t: String,
    /// `x5t#S256`: base64url SHA-256, unpadded.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
    /// `customKeyIdentifier` of an Azure app manifest keyCredential: standard base64 SHA-1.
    pub custom_key_identifier: String,
    /// With --key: whether the key is the certificate's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_matches: Option<bool>,
}

/// The whole report.
#[derive(Serialize, Debug, Default)]
pub struct Report {
    /// Tokens found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenReport>,
    /// Certificates described.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertReport>,
    /// The document's sections (when the input was a document).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<Value>,
}

/// When the report is made and where: now, and the local offset dates are shown in.
pub struct Ctx {
    /// Now, Unix seconds.
    pub now: i64,
    /// The local time zone's offset.
    pub offset: UtcOffset,
}

impl Ctx {
    /// A time shown three ways, with `past`/`future` as the verb of its relative form.
    pub fn time(&self, unix: i64, past: &str, future: &str) -> TimeReport {
        let rel = unix - self.now;
        let relative = if rel > 0 {
            format!("{future} in {}", clock::human(rel))
        } else {
            format!("{past} {} ago", clock::human(rel))
        };
        TimeReport {
            unix,
            utc: clock::rfc3339(unix),
            local: local_time(unix, self.offset),
            relative: relative.trim().into(),
        }
    }
}

/// `2026-11-23 13:05:00 +01:00` (or `… UTC`).
pub fn local_time(unix: i64, offset: UtcOffset) -> String {
    let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH).to_offset(offset);
    let text = if offset == UtcOffset::UTC {
        t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC"))
    } else {
        t.format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory]:[offset_minute]"
        ))
    };
    text.unwrap_or_else(|_| clock::rfc3339(unix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_carry_their_offset() {
        assert_eq!(local_time(0, UtcOffset::UTC), "1970-01-01 00:00:00 UTC");
        let cet = UtcOffset::from_hms(1, 0, 0).unwrap();
        assert_eq!(local_time(0, cet), "1970-01-01 01:00:00 +01:00");
        let ny = UtcOffset::from_hms(-5, -30, 0).unwrap();
        assert_eq!(local_time(0, ny), "1969-12-31 18:30:00 -05:30");
    }

    #[test]
    fn relative_times() {
        let ctx = Ctx { now: 1000, offset: UtcOffset::UTC };
        assert_eq!(ctx.time(1000 + 41 * 60, "expired", "expires").relative, "expires in 41 min");
        assert_eq!(ctx.time(1000 - 180, "expired", "expires").relative, "expired 3 min ago");
    }
}
