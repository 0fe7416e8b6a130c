//! One token described: a JWT's header, claims and times, an opaque token's preview; the
//! claim `--claim` asks for, and whether a JWT names a certificate by its thumbprint.

use super::report::{Ctx, TokenKind, TokenReport};
use crate::core::clock;
use crate::core::error::{Error, Result};
use crate::core::jwt;
use crate::core::keys;
use crate::core::secret::Secret;
use serde_json::{Map, Value};

/// Sections that carry a token, most relevant first for `--claim`.
pub const PREFERRED_SECTIONS: &[&str] = &["azure", "impersonated", "sts", "assertion", "fetched"];

/// A token as found, before it is described.
pub struct Found {
    /// Where it was found: a section name, `token`, or `file:PATH`.
    pub source: String,
    /// The token, unless the document holds only facts about it.
    pub token: Option<String>,
    /// The token type recorded with it.
    pub token_type: Option<String>,
    /// The expiry recorded with it (RFC 3339).
    pub expires_at: Option<String>,
    /// The other, non-secret fields recorded with it.
    pub facts: Map<String, Value>,
    /// Its length, as recorded (when the token itself is not there).
    pub bytes: Option<usize>,
    /// Its SHA-256, as recorded (when the token itself is not there).
    pub sha256: Option<String>,
}

/// A token found alone, with nothing recorded beside it.
pub fn bare(source: &str, token: &str) -> Found {
    Found {
        source: source.into(),
        token: Some(token.into()),
        token_type: None,
        expires_at: None,
        facts: Map::new(),
        bytes: None,
        sha256: None,
    }
}

/// The report on a token found.
pub fn describe(f: Found, ctx: &Ctx) -> TokenReport {
    let mut r = TokenReport {
        source: f.source,
        kind: TokenKind::Withheld,
        token_type: f.token_type,
        bytes: f.bytes,
        sha256: f.sha256,
        expires_at: None,
        expiry: None,
        expired: None,
        header: None,
        claims: None,
        times: Map::new(),
        preview: None,
        facts: f.facts,
        verification: None,
        thumbprint_matches_cert: None,
        token: None,
        signature: None,
    };
    let mut exp = f.expires_at.as_deref().and_then(|e| clock::parse_rfc3339(e).ok());
    if let Some(token) = f.token {
        r.bytes = Some(token.len());
        r.sha256 = Some(keys::sha256_hex(token.as_bytes()));
        if let Some((header, claims)) = jwt::decode_unverified(&token) {
            r.kind = TokenKind::Jwt;
            for (name, past, future) in [
                ("exp", "expired", "expires"),
                ("nbf", "became valid", "becomes valid"),
                ("iat", "issued", "issued"),
                ("auth_time", "authenticated", "authenticated"),
            ] {
                if let Some(v) = jwt::numeric_claim(&claims, name) {
                    let t = ctx.time(v, past, future);
                    r.times.insert(name.into(), serde_json::to_value(t).unwrap_or_default());
                    if name == "exp" {
                        exp = Some(v);
                    }
                }
            }
            r.header = Some(header);
            r.claims = Some(claims);
            r.signature = token.rsplit('.').next().map(Secret::new);
        } else {
            r.kind = TokenKind::Opaque;
            // Six characters say which kind of token it is (ya29., gho_…) without giving
            // much of it away; short tokens get no preview at all.
            let n = if token.chars().count() >= 20 { 6 } else { 0 };
            let head: String = token.chars().take(n).collect();
            r.preview = Some(format!("{head}…"));
        }
        r.token = Some(Secret::new(token));
    }
    if let Some(e) = exp {
        r.expires_at = Some(clock::rfc3339(e));
        r.expiry = Some(clock::describe_expiry(e, ctx.now));
        r.expired = Some(e <= ctx.now);
    }
    r
}

/// The raw token of a JWT report (to verify it).
pub fn raw_token_of(t: &TokenReport) -> Option<String> {
    (t.kind == TokenKind::Jwt).then(|| t.token.as_ref().map(|s| s.expose().to_string())).flatten()
}

/// The claim from the most relevant JWT: the one chosen with --section, else azure first.
pub fn pick_claim(tokens: &[TokenReport], name: &str, section: Option<&str>) -> Result<Value> {
    let jwts: Vec<&TokenReport> = tokens.iter().filter(|t| t.claims.is_some()).collect();
    let rank =
        |t: &TokenReport| PREFERRED_SECTIONS.iter().position(|s| *s == t.source).unwrap_or(PREFERRED_SECTIONS.len());
    let chosen = jwts.iter().min_by_key(|t| rank(t)).ok_or_else(|| {
        Error::input(match section {
            Some(s) => format!("the token in \"{s}\" is not a JWT, so it has no claims"),
            None => "no JWT in the input, so there are no claims".to_string(),
        })
        .hint("opaque tokens (like Google access tokens) carry no readable claims")
    })?;
    let claims = chosen.claims.as_ref().and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(v) = claims.get(name) {
        return Ok(v.clone());
    }
    // A dotted path reaches into nested claims (e.g. `xms_az_claims.sub`).
    let mut cur: Option<&Value> = None;
    for (i, part) in name.split('.').enumerate() {
        cur = if i == 0 { claims.get(part) } else { cur.and_then(|c| c.get(part)) };
    }
    cur.cloned().ok_or_else(|| {
        let names: Vec<&str> = claims.keys().map(String::as_str).collect();
        Error::input(format!("the {} token has no claim \"{name}\"", chosen.source))
            .hint(format!("its claims are: {}", names.join(", ")))
    })
}

/// Whether the header's `x5t` (else `x5t#S256`) names `cert`; `None` if it names none.
pub fn thumbprint_matches(header: Option<&Value>, cert: &[u8]) -> Option<bool> {
    let h = header?;
    let strip = |s: &str| s.trim_end_matches('=').to_string();
    if let Some(x5t) = h.get("x5t").and_then(Value::as_str) {
        return Some(strip(x5t) == keys::thumbprint_sha1(cert));
    }
    if let Some(x5t) = h.get("x5t#S256").and_then(Value::as_str) {
        return Some(strip(x5t) == keys::thumbprint_sha256(cert));
    }
    None
}
