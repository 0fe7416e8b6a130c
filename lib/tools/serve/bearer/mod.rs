//! The bearer-token fallback (`--bearer-issuers FILE`): trusted issuers, their keys (JWKS
//! from a URL or a file), and the verification of `Authorization: Bearer <JWT>` for clients
//! that present no certificate. Off by default; certificate clients never come here.

mod cache;
pub mod issuers;
pub mod jwks;
mod verify;

use crate::core::error::{Error, Result};
use cache::{Cache, Fetch, FileFetch, UrlFetch};
use issuers::{IssuersFile, KeySource};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use verify::{Issuer, Presented};

/// A claim kept in a bearer identity: one value (a string, or a number or bool as its JSON
/// text), or the strings of an array.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum ClaimValue {
    /// A single value.
    One(String),
    /// The strings of an array claim (e.g. Azure's `roles`).
    Many(Vec<String>),
}

impl ClaimValue {
    /// Whether the claim has `value` (an array claim: as one of its elements).
    pub fn has(&self, value: &str) -> bool {
        match self {
            ClaimValue::One(v) => v == value,
            ClaimValue::Many(vs) => vs.iter().any(|v| v == value),
        }
    }
}

/// Who a verified bearer token says its holder is. Holds no token: only its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BearerIdentity {
    /// The issuer's name in the issuers file.
    pub issuer: String,
    /// The token's `iss`.
    pub iss: String,
    /// The token's `sub`.
    pub sub: String,
    /// The issuer's identity claims present in the token, by the name the file gives them.
    pub claims: BTreeMap<String, ClaimValue>,
    /// The token's `jti`, if it has one.
    pub jti: Option<String>,
    /// The first 16 hex digits of the token's SHA-256.
    pub token_sha256: String,
    /// The token's `exp`, Unix seconds.
    pub expires_at: i64,
}

impl BearerIdentity {
    /// The key under which the connections of one bearer client are counted
    /// (`--max-connections-per-client`): `bearer:<issuer>:<sub>`.
    pub fn client_key(&self) -> String {
        format!("bearer:{}:{}", self.issuer, self.sub)
    }
}

/// Why a bearer client's request is refused: the codes of the log, the metric and the docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The token was sent in the query string.
    TokenInQuery,
    /// No `Authorization: Bearer` token.
    NoToken,
    /// Not a compact JWS, two Authorization headers, a `crit` header.
    Malformed,
    /// Longer than `max_token_bytes`.
    Oversized,
    /// `none`, HMAC, or an algorithm the issuer is not trusted with.
    AlgNotAllowed,
    /// `iss` is not a configured issuer.
    WrongIssuer,
    /// The issuer's keys are not available: 503.
    JwksUnavailable,
    /// No published key has the token's `kid`.
    UnknownKid,
    /// The signature does not verify.
    BadSignature,
    /// `aud` names none of the issuer's audiences.
    WrongAudience,
    /// Past `exp` (with the leeway).
    Expired,
    /// Before `nbf`, or issued in the future.
    NotYetValid,
    /// `exp` too far after `iat`.
    LifetimeTooLong,
    /// `exp` or `sub` missing or unusable.
    MissingClaim,
    /// A second identity on a connection bound to the first.
    IdentityChanged,
}

impl Code {
    /// Every code, in the order of the checks.
    pub const ALL: [Code; 15] = [
        Code::TokenInQuery,
        Code::NoToken,
        Code::Malformed,
        Code::Oversized,
        Code::AlgNotAllowed,
        Code::WrongIssuer,
        Code::JwksUnavailable,
        Code::UnknownKid,
        Code::BadSignature,
        Code::WrongAudience,
        Code::Expired,
        Code::NotYetValid,
        Code::LifetimeTooLong,
        Code::MissingClaim,
        Code::IdentityChanged,
    ];

    /// The code as logged and counted.
    pub fn label(self) -> &'static str {
        match self {
            Code::TokenInQuery => "token_in_query",
            Code::NoToken => "no_token",
            Code::Malformed => "malformed",
            Code::Oversized => "oversized",
            Code::AlgNotAllowed => "alg_not_allowed",
            Code::WrongIssuer => "wrong_issuer",
            Code::JwksUnavailable => "jwks_unavailable",
            Code::UnknownKid => "unknown_kid",
            Code::BadSignature => "bad_signature",
            Code::WrongAudience => "wrong_audience",
            Code::Expired => "expired",
            Code::NotYetValid => "not_yet_valid",
            Code::LifetimeTooLong => "lifetime_too_long",
            Code::MissingClaim => "missing_claim",
            Code::IdentityChanged => "identity_changed",
        }
    }

    /// What the client is told: what is wrong, without token content or the server's setup.
    pub fn client_words(self) -> &'static str {
        match self {
            Code::TokenInQuery => "a token in the query string is refused: send it in the Authorization header",
            Code::NoToken => "this server needs a client certificate or an Authorization: Bearer token",
            Code::Malformed => "the bearer token is not a well-formed signed JWT",
            Code::Oversized => "the bearer token is too long",
            Code::AlgNotAllowed => "the token's signing algorithm is not accepted",
            Code::WrongIssuer => "the token's issuer is not trusted by this server",
            Code::JwksUnavailable => "the keys of the token's issuer cannot be loaded right now; retry later",
            Code::UnknownKid => "the token's signing key is not one of its issuer's published keys",
            Code::BadSignature => "the token's signature does not verify",
            Code::WrongAudience => "the token's audience is not this server's",
            Code::Expired => "the token has expired",
            Code::NotYetValid => "the token is not valid yet",
            Code::LifetimeTooLong => "the token lives longer than this server accepts",
            Code::MissingClaim => "the token lacks a required claim (sub, exp)",
            Code::IdentityChanged => "this connection already serves another identity: open a new connection",
        }
    }

    /// The HTTP status of the refusal.
    pub fn status(self) -> u16 {
        match self {
            Code::JwksUnavailable => 503,
            _ => 401,
        }
    }

    /// The OAuth error (RFC 6750 §3.1) for the body and `WWW-Authenticate`.
    pub fn oauth_error(self) -> &'static str {
        match self {
            Code::NoToken => "unauthorized",
            Code::TokenInQuery | Code::Malformed => "invalid_request",
            Code::JwksUnavailable => "temporarily_unavailable",
            _ => "invalid_token",
        }
    }

    /// `Retry-After` of the refusal, if it is worth retrying.
    pub fn retry_after(self) -> Option<&'static str> {
        match self {
            Code::JwksUnavailable => Some("5"),
            _ => None,
        }
    }
}

/// A refused bearer request: its code, and the detail for the log (no token).
#[derive(Clone, Debug)]
pub struct Refused {
    /// Why, as counted.
    pub code: Code,
    /// Why, in the log's words (token-derived strings quoted through `secret::quote`).
    pub detail: String,
}

/// One issuer's keys, for the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerStats {
    /// The issuer's name.
    pub name: String,
    /// Usable keys held now.
    pub keys: usize,
    /// Seconds since the keys were last loaded successfully (`None`: never).
    pub age_secs: Option<i64>,
    /// Successful loads (fetches or file reads) so far.
    pub fetches_ok: u64,
    /// Failed loads so far.
    pub fetches_failed: u64,
}

/// The loaded issuers and their keys.
pub struct Bearer {
    max_token_bytes: usize,
    issuers: Vec<Issuer>,
}

impl Bearer {
    /// Reads and checks the issuers file, loads JWKS files (a failure stops the start) and
    /// fetches JWKS URLs once (a failure is a warning: the server starts, and the URL is
    /// tried again every 10 s from [`Bearer::tick`]).
    pub fn load(path: &Path) -> Result<Bearer> {
        let file = IssuersFile::load(path)?;
        let mut issuers = Vec::new();
        for config in file.issuers {
            let source: Box<dyn Fetch> = match &config.keys {
                KeySource::File(p) => Box::new(FileFetch(p.clone())),
                KeySource::Url { uri, ca_file } => Box::new(UrlFetch::new(uri, ca_file.as_deref()).map_err(|e| {
                    e.context(format!("issuer {}: the client for its jwks_uri", config.name))
                        .hint("jwks_ca_file must be a CA bundle (PEM)")
                })?),
            };
            let cache = Arc::new(Cache::new(&config.name, source));
            issuers.push(Issuer { config, cache });
        }
        let bearer = Bearer { max_token_bytes: file.max_token_bytes, issuers };
        bearer.first_loads(crate::core::clock::now_unix())?;
        Ok(bearer)
    }

    /// The loads at start, side by side (a slow URL does not hold up the others).
    fn first_loads(&self, now: i64) -> Result<()> {
        let results: Vec<(&Issuer, std::result::Result<(), String>)> = std::thread::scope(|scope| {
            let running: Vec<_> = self.issuers.iter().map(|i| (i, scope.spawn(move || i.cache.load(now)))).collect();
            running
                .into_iter()
                .map(|(i, h)| (i, h.join().unwrap_or_else(|_| Err("the load stopped unexpectedly".into()))))
                .collect()
        });
        for (issuer, result) in results {
            let Err(why) = result else { continue };
            let name = &issuer.config.name;
            if issuer.cache.is_url() {
                crate::core::diag::warn(format!(
                    "bearer issuer {name}: its keys could not be fetched ({why}); its tokens are refused \
                     (503 jwks_unavailable) until a fetch succeeds, tried again every 10 s"
                ));
            } else {
                return Err(Error::usage(format!("bearer issuer {name}: {why}"))
                    .hint("a jwks_file must hold a JWKS ({\"keys\": [...]}) with at least one usable public key"));
            }
        }
        Ok(())
    }

    /// Verifies one request's bearer token (§3 of the spec): `authorization` is the
    /// `Authorization` header's value as sent, `extra_authorization` whether there was more
    /// than one, `query` the request's query string.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        extra_authorization: bool,
        query: &str,
    ) -> std::result::Result<BearerIdentity, Refused> {
        let presented = Presented { authorization, extra_authorization, query };
        verify::verify(&self.issuers, self.max_token_bytes, &presented, crate::core::clock::now_unix())
    }

    /// The configured issuer names.
    pub fn issuer_names(&self) -> Vec<&str> {
        self.issuers.iter().map(|i| i.config.name.as_str()).collect()
    }

    /// From the 1 s watch loop: changed JWKS files re-read, due URL fetches started on
    /// threads of their own, keys too old dropped.
    pub fn tick(&self) {
        let now = crate::core::clock::now_unix();
        for issuer in &self.issuers {
            issuer.cache.tick(now);
        }
    }

    /// SIGHUP: JWKS files re-read, URLs fetched again now (in the background).
    pub fn reload(&self) {
        let now = crate::core::clock::now_unix();
        for issuer in &self.issuers {
            if issuer.cache.is_url() {
                issuer.cache.spawn_load();
            } else {
                let _ = issuer.cache.load(now);
            }
        }
    }

    /// Per issuer: its keys and loads, for the metrics.
    pub fn stats(&self) -> Vec<IssuerStats> {
        let now = crate::core::clock::now_unix();
        self.issuers.iter().map(|i| i.cache.stats(now)).collect()
    }
}

#[cfg(test)]
mod tests;
