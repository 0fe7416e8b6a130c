//! Who a verified bearer token says its holder is: the issuer, `sub`, the kept claims, the
//! token's `jti` and digest (never the token).

use std::collections::BTreeMap;

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
