//! The checks on one request's bearer token, in the order of the spec (first failure wins):
//! where the token came, its size and shape, its algorithm and issuer, the issuer's key, the
//! signature, then the claims (audience, expiry, validity window, lifetime, subject).

use super::cache::{Cache, Lookup};
use super::code::{Code, Refused};
use super::identity::{BearerIdentity, ClaimValue};
use super::issuers::IssuerConfig;
use super::jwks::{Alg, Key, KeySet};
use crate::core::jwt::{self, Jws};
use crate::core::secret::quote;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Longest `sub` accepted, in bytes.
const MAX_SUB_BYTES: usize = 1024;
/// Longest `Authorization` scheme named in a log detail (`AWS4-HMAC-SHA256` is 16).
const MAX_SCHEME_CHARS: usize = 20;
/// Longest token-derived string quoted in a log detail.
const QUOTE: usize = 200;

/// One configured issuer with its keys.
pub struct Issuer {
    /// What the file says.
    pub config: IssuerConfig,
    /// Its keys.
    pub cache: Arc<Cache>,
}

/// What a request brings to be verified.
pub struct Presented<'a> {
    /// The `Authorization` header's value, as sent.
    pub authorization: Option<&'a str>,
    /// Whether the request had more than one `Authorization` header.
    pub extra_authorization: bool,
    /// The request's query string (without `?`).
    pub query: &'a str,
}

fn refuse(code: Code, detail: impl Into<String>) -> Refused {
    Refused { code, detail: detail.into() }
}

/// Verifies a request's bearer token against the issuers at `now` (Unix seconds).
pub fn verify(
    issuers: &[Issuer],
    max_token_bytes: usize,
    presented: &Presented<'_>,
    now: i64,
) -> std::result::Result<BearerIdentity, Refused> {
    check_query(presented.query)?;
    let token = token_of(presented.authorization)?;
    if presented.extra_authorization {
        return Err(refuse(Code::Malformed, "more than one Authorization header"));
    }
    if token.len() > max_token_bytes {
        return Err(refuse(Code::Oversized, format!("{} bytes, more than {max_token_bytes}", token.len())));
    }
    let jws = Jws::parse(token).ok_or_else(|| refuse(Code::Malformed, shape_words(token)))?;
    if jws.repeats_a_member {
        return Err(refuse(Code::Malformed, "the header or the claims name a member twice"));
    }
    let alg = header_alg(&jws.header)?;
    let issuer = find_issuer(issuers, &jws.claims)?;
    if !issuer.config.algorithms.contains(&alg) {
        let detail = format!("alg {} is not among issuer {}'s algorithms", alg.name(), issuer.config.name);
        return Err(refuse(Code::AlgNotAllowed, detail));
    }
    let (keys, at) = find_key(issuer, &jws.header, alg, now)?;
    check_signature(token, &keys.keys[at], alg)?;
    check_claims(&issuer.config, &jws.claims, now)?;
    identity(&issuer.config, &jws.claims, token)
}

/// A token in the query string is refused before anything else: it would sit in logs and
/// histories. `access_token` in any case, or any value shaped like a JWT.
fn check_query(query: &str) -> std::result::Result<(), Refused> {
    for (name, value) in crate::http::parse_form(query.as_bytes()) {
        if name.eq_ignore_ascii_case("access_token") {
            return Err(refuse(Code::TokenInQuery, "the query has an access_token parameter"));
        }
        if looks_like_jwt(&value) {
            return Err(refuse(Code::TokenInQuery, format!("the query parameter {} holds a JWT", quote(&name, 60))));
        }
    }
    Ok(())
}

/// Three (JWS) or five (JWE) base64url segments, the first a JSON object.
fn looks_like_jwt(value: &str) -> bool {
    let segments: Vec<&str> = value.split('.').collect();
    let base64url = |s: &&str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    matches!(segments.len(), 3 | 5)
        && segments.iter().all(base64url)
        && jwt::base64url_decode(segments[0])
            .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
            .is_some_and(|h| h.is_object())
}

/// The token of `Authorization: Bearer <token>` (scheme in any case).
fn token_of(authorization: Option<&str>) -> std::result::Result<&str, Refused> {
    let Some(value) = authorization else {
        return Err(refuse(Code::NoToken, "no Authorization header"));
    };
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(refuse(Code::NoToken, other_scheme_words(scheme, !rest.is_empty())));
    }
    let token = rest.trim_matches(|c| c == ' ' || c == '\t');
    if token.is_empty() {
        return Err(refuse(Code::NoToken, "the Bearer token is empty"));
    }
    Ok(token)
}

/// The log's words for an `Authorization` value that is not `Bearer …`. The scheme is
/// named only when it looks like one (a short word followed by credentials, as `Basic …`):
/// a value sent without a scheme is the credential itself (an API key, a raw token), and
/// not a word of it reaches the log.
fn other_scheme_words(scheme: &str, has_credentials: bool) -> String {
    let scheme_like = |s: &str| {
        (1..=MAX_SCHEME_CHARS).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if has_credentials && scheme_like(scheme) {
        format!("Authorization scheme {scheme} is not Bearer")
    } else {
        format!("the Authorization value ({} bytes) does not start with a scheme such as Bearer", scheme.len())
    }
}

/// Why a token is not a compact JWS, in the log's words (no token content).
fn shape_words(token: &str) -> String {
    match token.split('.').count() {
        5 => "a JWE (five segments): an encrypted token is not a signed one".into(),
        3 => "not three unpadded base64url segments holding JSON objects".into(),
        n => format!("{n} segments, not the 3 of a compact JWS"),
    }
}

/// The header's `alg`, if it is an accepted one. A `crit` header (an extension this
/// verifier cannot honour) or an encrypted token is malformed.
fn header_alg(header: &Value) -> std::result::Result<Alg, Refused> {
    if header.get("crit").is_some() {
        return Err(refuse(Code::Malformed, "the header has crit"));
    }
    if header.get("enc").is_some() {
        return Err(refuse(Code::Malformed, "the header has enc: an encrypted token"));
    }
    let Some(name) = header.get("alg").and_then(Value::as_str) else {
        return Err(refuse(Code::Malformed, "the header has no alg string"));
    };
    Alg::parse(name).ok_or_else(|| {
        refuse(Code::AlgNotAllowed, format!("alg {} is not an accepted asymmetric algorithm", quote(name, 40)))
    })
}

/// The configured issuer whose `issuer` is the token's `iss`, byte for byte.
fn find_issuer<'a>(issuers: &'a [Issuer], claims: &Value) -> std::result::Result<&'a Issuer, Refused> {
    let Some(iss) = claims.get("iss").and_then(Value::as_str) else {
        return Err(refuse(Code::WrongIssuer, "the token has no iss string"));
    };
    issuers
        .iter()
        .find(|i| i.config.issuer == iss)
        .ok_or_else(|| refuse(Code::WrongIssuer, format!("iss {} is not a configured issuer", quote(iss, QUOTE))))
}

/// The key that may verify the token, as the set holding it and its place there (the key
/// is borrowed, never copied per request): by `kid` (refetching a URL's keys, rate-limited,
/// when the kid is unknown), or, without a kid, the issuer's only key for `alg`. The
/// token's own `jku`, `x5u`, `jwk` and `x5c` are never looked at.
fn find_key(issuer: &Issuer, header: &Value, alg: Alg, now: i64) -> std::result::Result<(Arc<KeySet>, usize), Refused> {
    let name = &issuer.config.name;
    let Lookup::Keys(keys, generation) = issuer.cache.lookup(now) else {
        return Err(refuse(Code::JwksUnavailable, format!("issuer {name}'s keys are not loaded")));
    };
    let kid = match header.get("kid") {
        None => return only_key(&keys, alg, name).map(|at| (keys, at)),
        Some(Value::String(kid)) => kid,
        Some(_) => return Err(refuse(Code::Malformed, "the header's kid is not a string")),
    };
    if let Some(at) = by_kid(&keys, kid, alg, name)? {
        return Ok((keys, at));
    }
    let unknown = || {
        let detail = format!("kid {} is not among issuer {name}'s keys", quote(kid, QUOTE));
        refuse(Code::UnknownKid, detail)
    };
    let newer = issuer.cache.refetch_for_unknown_kid(generation, now).ok_or_else(unknown)?;
    let at = by_kid(&newer, kid, alg, name)?.ok_or_else(unknown)?;
    Ok((newer, at))
}

/// The key with `kid`, if the set has one; one of that kid that cannot verify `alg` is a
/// refusal (never tried with another algorithm's key).
fn by_kid(keys: &KeySet, kid: &str, alg: Alg, name: &str) -> std::result::Result<Option<usize>, Refused> {
    let mut with_kid = keys.keys.iter().enumerate().filter(|(_, k)| k.kid.as_deref() == Some(kid)).peekable();
    let Some(&(_, first)) = with_kid.peek() else { return Ok(None) };
    match with_kid.find(|(_, k)| k.fits(alg)) {
        Some((at, _)) => Ok(Some(at)),
        None => Err(refuse(
            Code::UnknownKid,
            format!(
                "issuer {name}'s key {} is {}{}, not one for {}",
                quote(kid, QUOTE),
                first.key_type.words(),
                first.alg.as_deref().map(|a| format!(" for {}", quote(a, 20))).unwrap_or_default(),
                alg.name()
            ),
        )),
    }
}

/// Without a kid: the set's one key for `alg`, if it has exactly one.
fn only_key(keys: &KeySet, alg: Alg, name: &str) -> std::result::Result<usize, Refused> {
    let fitting: Vec<usize> = (0..keys.keys.len()).filter(|at| keys.keys[*at].fits(alg)).collect();
    match fitting.as_slice() {
        [one] => Ok(*one),
        many => Err(refuse(
            Code::UnknownKid,
            format!(
                "the token has no kid and issuer {name} has {} keys for {}, not exactly one",
                many.len(),
                alg.name()
            ),
        )),
    }
}

/// The signature, checked by jsonwebtoken with exactly `alg` and a key of its type.
fn check_signature(token: &str, key: &Key, alg: Alg) -> std::result::Result<(), Refused> {
    let kid = key.kid.as_deref().map(|k| format!(" {}", quote(k, QUOTE))).unwrap_or_default();
    let bad = || refuse(Code::BadSignature, format!("the {} signature does not verify with key{kid}", alg.name()));
    let Some((signing_input, signature)) = token.rsplit_once('.') else { return Err(bad()) };
    match jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), &key.decoding, alg.jwt()) {
        Ok(true) => Ok(()),
        _ => Err(bad()),
    }
}

/// The claims, in order: audience, expiry, validity window, lifetime.
fn check_claims(issuer: &IssuerConfig, claims: &Value, now: i64) -> std::result::Result<(), Refused> {
    check_audience(issuer, claims.get("aud"))?;
    let Some(exp) = jwt::numeric_claim(claims, "exp") else {
        return Err(refuse(Code::MissingClaim, "the token has no numeric exp"));
    };
    if now >= exp.saturating_add(issuer.leeway) {
        return Err(refuse(Code::Expired, format!("exp {exp}, now {now}, leeway {} s", issuer.leeway)));
    }
    let nbf = time_claim(claims, "nbf")?;
    let iat = time_claim(claims, "iat")?;
    for (name, at) in [("nbf", nbf), ("iat", iat)] {
        if let Some(at) = at.filter(|t| *t > now.saturating_add(issuer.leeway)) {
            return Err(refuse(Code::NotYetValid, format!("{name} {at}, now {now}, leeway {} s", issuer.leeway)));
        }
    }
    let start = iat.or(nbf).unwrap_or(now);
    let lifetime = exp.saturating_sub(start);
    if lifetime > issuer.max_lifetime {
        let detail =
            format!("exp {exp} is {lifetime} s after {start}, more than the {} s allowed", issuer.max_lifetime);
        return Err(refuse(Code::LifetimeTooLong, detail));
    }
    Ok(())
}

/// `nbf` or `iat`: absent, or a number (anything else is malformed).
fn time_claim(claims: &Value, name: &str) -> std::result::Result<Option<i64>, Refused> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => jwt::whole_seconds(v)
            .map(Some)
            .ok_or_else(|| refuse(Code::Malformed, format!("the token's {name} is not a number"))),
    }
}

/// `aud` (a string or an array of strings) must hold one of the issuer's audiences.
fn check_audience(issuer: &IssuerConfig, aud: Option<&Value>) -> std::result::Result<(), Refused> {
    let presented: Vec<&str> = match aud {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if presented.iter().any(|a| issuer.audiences.iter().any(|want| want == a)) {
        return Ok(());
    }
    let detail = match aud {
        None => "the token has no aud".to_string(),
        Some(v) => format!("aud {} holds none of issuer {}'s audiences", quote(&v.to_string(), QUOTE), issuer.name),
    };
    Err(refuse(Code::WrongAudience, detail))
}

/// The verified identity: `sub` (required), the issuer's claims, `jti`, the token's digest.
fn identity(issuer: &IssuerConfig, claims: &Value, token: &str) -> std::result::Result<BearerIdentity, Refused> {
    let sub = match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_SUB_BYTES => s.clone(),
        Some(Value::String(s)) if !s.is_empty() => {
            return Err(refuse(Code::MissingClaim, format!("sub is {} bytes, more than {MAX_SUB_BYTES}", s.len())))
        }
        _ => return Err(refuse(Code::MissingClaim, "the token has no sub string")),
    };
    // A subject is matched, logged and recorded: one with line breaks or bidirectional
    // controls could pass for another in a log or a ledger reader's terminal.
    if sub.chars().any(is_disguising) {
        return Err(refuse(Code::MissingClaim, format!("sub {} holds control characters", quote(&sub, QUOTE))));
    }
    let expires_at = jwt::numeric_claim(claims, "exp").unwrap_or_default();
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(BearerIdentity {
        issuer: issuer.name.clone(),
        iss,
        sub,
        claims: identity_claims(issuer, claims),
        jti: claims.get("jti").and_then(Value::as_str).map(str::to_string),
        token_sha256: crate::core::keys::sha256_hex(token.as_bytes())[..16].to_string(),
        expires_at,
    })
}

/// A character that lets one subject pass for another where it is read: a control
/// character (line breaks, escapes) or a bidirectional embedding, override or isolate.
fn is_disguising(c: char) -> bool {
    c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// The issuer's identity claims present in the token: strings as they are, numbers and
/// bools as their JSON text, arrays of strings as lists; anything else is left out.
pub fn identity_claims(issuer: &IssuerConfig, claims: &Value) -> BTreeMap<String, ClaimValue> {
    let mut kept = BTreeMap::new();
    for name in &issuer.claims {
        let value = match name.find(claims) {
            Some(Value::String(s)) => ClaimValue::One(s.clone()),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => ClaimValue::One(v.to_string()),
            Some(Value::Array(items)) => {
                let Some(strings) = items.iter().map(|i| i.as_str().map(str::to_string)).collect() else { continue };
                ClaimValue::Many(strings)
            }
            _ => continue,
        };
        kept.insert(name.as_str().to_string(), value);
    }
    kept
}
