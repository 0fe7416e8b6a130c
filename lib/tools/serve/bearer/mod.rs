//! The bearer-token fallback (`--bearer-issuers FILE`): trusted issuers, their keys (JWKS
//! from a URL or a file), and the verification of `Authorization: Bearer <JWT>` for clients
//! that present no certificate. Off by default; certificate clients never come here.

use crate::core::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

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
    names: Vec<String>,
}

impl Bearer {
    /// Reads and checks the issuers file, loads JWKS files and fetches JWKS URLs once.
    pub fn load(path: &Path) -> Result<Bearer> {
        let _ = path;
        Err(Error::usage("--bearer-issuers is being built"))
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
        let _ = (authorization, extra_authorization, query);
        Err(Refused { code: Code::NoToken, detail: "not built yet".into() })
    }

    /// The configured issuer names.
    pub fn issuer_names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    /// From the 1 s watch loop: changed JWKS files, due URL fetches.
    pub fn tick(&self) {}

    /// SIGHUP: JWKS files re-read, URLs fetched again now.
    pub fn reload(&self) {}

    /// Per issuer: its keys and loads, for the metrics.
    pub fn stats(&self) -> Vec<IssuerStats> {
        Vec::new()
    }
}
