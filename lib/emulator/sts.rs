//! Google STS `POST /v1/token`: the RFC 8693 exchange of an OIDC subject token for an
//! opaque federated access token, with the checks Workload Identity Federation makes: the
//! provider named by the audience, the token's issuer, signature, audience and expiry,
//! the attribute mapping and the attribute condition. An access token as the subject is
//! downscoping (`downscope.rs`).

use super::cel::{self, Env};
use super::config::{PoolConfig, ProviderConfig};
use super::errors::{self, oauth};
use super::faults::Service;
use super::keys;
use super::server::Req;
use super::state::{FederatedToken, State};
use crate::core::clock;
use crate::core::jwt::{self, Jws};
use crate::http::parse_form;
use crate::server::Response;
use serde_json::{json, Map, Value};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
use super::downscope::ACCESS_TOKEN;
const BAD_AUDIENCE: &str = "Invalid value for \"audience\". This value should be the full resource name of the Identity Provider. See https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token for the list of possible formats.";
const SUBJECT_TYPES: &[&str] = &["urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token"];

fn invalid_request(msg: &str) -> Response {
    oauth(400, "invalid_request", msg)
}

fn invalid_grant(msg: &str) -> Response {
    oauth(400, "invalid_grant", msg)
}

/// The fields of a form or JSON body (STS takes both).
fn fields(req: &Req) -> Result<Vec<(String, String)>, Response> {
    if req.is_json() {
        let v: Map<String, Value> =
            serde_json::from_slice(&req.body).map_err(|_| invalid_request("Invalid JSON payload received."))?;
        return Ok(v
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect());
    }
    Ok(parse_form(&req.body))
}

/// Splits `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/R`.
fn parse_audience(a: &str) -> Option<(&str, &str, &str)> {
    let rest = a.strip_prefix("//iam.googleapis.com/projects/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [n, "locations", "global", "workloadIdentityPools", p, "providers", r]
            if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() && !r.is_empty() =>
        {
            Some((n, p, r))
        }
        _ => None,
    }
}

/// The `subject_token_type` of X.509 exchanges.
pub const MTLS: &str = "urn:ietf:params:oauth:token-type:mtls";

/// Which STS a `POST /v1/token` goes to, for fault injection: `sts-x509` for mtls
/// exchanges, else `sts`.
pub fn service(req: &Req) -> Service {
    let form = fields(req).unwrap_or_default();
    match form.iter().any(|(k, v)| k == "subject_token_type" && v == MTLS) {
        true => Service::StsX509,
        false => Service::Sts,
    }
}

/// `POST /v1/token`.
pub fn token(st: &State, req: &Req) -> Response {
    let form = match fields(req) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    match field("grant_type") {
        Some(GRANT) => {}
        Some(other) => {
            return oauth(
                400,
                "unsupported_grant_type",
                &format!("Invalid value for \"grant_type\": {other}. Use {GRANT}."),
            )
        }
        None => return invalid_request("Invalid value for \"grant_type\": it is required."),
    }
    if field("requested_token_type") != Some(ACCESS_TOKEN) {
        return invalid_request(&format!("Invalid value for \"requested_token_type\". Use {ACCESS_TOKEN}."));
    }
    let Some(subject_type) = field("subject_token_type") else {
        return invalid_request("Invalid value for \"subject_token_type\": it is required.");
    };
    if subject_type == ACCESS_TOKEN {
        return super::downscope::token(st, field);
    }
    let mtls = subject_type == MTLS;
    if !mtls && !SUBJECT_TYPES.contains(&subject_type) {
        return invalid_request(&format!("Invalid value for \"subject_token_type\": {subject_type} is not supported; use urn:ietf:params:oauth:token-type:jwt or id_token (OIDC providers) or {MTLS} (X.509 providers)."));
    }
    let Some(subject) = field("subject_token") else {
        return invalid_request("Invalid value for \"subject_token\": it is required.");
    };
    let Some(audience) = field("audience") else {
        return invalid_request(BAD_AUDIENCE);
    };
    let Some((number, pool_id, provider_id)) = parse_audience(audience) else {
        return invalid_request(BAD_AUDIENCE);
    };
    let Some(scope) = field("scope") else {
        return oauth(400, "invalid_scope", "The scope parameter is required.");
    };
    let scopes: Vec<String> = scope.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect();
    if let Some(bad) = scopes.iter().find(|s| !s.starts_with("https://www.googleapis.com/auth/")) {
        return oauth(400, "invalid_scope", &format!("The scope {bad} is not a valid Google OAuth scope."));
    }
    if let Some(opts) = field("options") {
        if !matches!(serde_json::from_str::<Value>(opts), Ok(Value::Object(_))) {
            return invalid_request("Invalid value for \"options\": it must be a JSON object.");
        }
    }
    let target = st.config.google.as_ref().filter(|g| g.project_number == number).and_then(|g| {
        let pool = g.pools.iter().find(|p| p.id == pool_id && !p.disabled)?;
        let provider = pool.providers.iter().find(|r| r.id == provider_id && !r.disabled)?;
        Some((pool, provider))
    });
    let Some((pool, provider)) = target else {
        return oauth(400, "invalid_target", "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.");
    };
    let assertion = match (mtls, &provider.x509) {
        (true, Some(x509)) => super::sts_x509::verify(st, req, x509, subject),
        (false, None) => verify_oidc(st, number, pool, provider, subject),
        (true, None) => Err(invalid_request(&format!("Invalid value for \"subject_token_type\": {MTLS} is only supported for X.509 providers; provider {provider_id} is an OIDC provider."))),
        (false, Some(_)) => Err(invalid_request(&format!("Invalid value for \"subject_token_type\": {subject_type} is not supported for X.509 providers; use {MTLS} with the client certificate over mutual TLS."))),
    };
    match assertion.and_then(|a| federate(st, number, pool, provider, a, scopes)) {
        Ok((token, life)) => errors::json(
            200,
            &json!({"access_token": token, "issued_token_type": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": life}),
            "ok",
        ),
        Err(r) => r,
    }
}

/// The issuers whose tokens the emulator can verify (it signs them all).
fn known_issuer(st: &State, iss: &str) -> bool {
    let azure = st
        .config
        .azure
        .as_ref()
        .is_some_and(|az| iss == super::azure::issuer_v1(&az.tenant) || iss == super::azure::issuer_v2(&az.tenant));
    azure || st.config.issuers.iter().any(|i| i.issuer == iss)
}

/// Verifies an OIDC subject token for `provider`: its claims, for the attribute mapping.
fn verify_oidc(
    st: &State,
    number: &str,
    pool: &PoolConfig,
    provider: &ProviderConfig,
    subject: &str,
) -> Result<Value, Response> {
    let jws = Jws::parse(subject).ok_or_else(|| invalid_grant("Unable to parse the ID Token."))?;
    let claims = &jws.claims;
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if iss != provider.issuer {
        return Err(invalid_grant(&format!(
            "The issuer in ID Token {iss} does not match the expected ones: {}.",
            provider.issuer
        )));
    }
    if !known_issuer(st, iss) {
        return Err(invalid_grant(&format!("Failed to fetch the public keys (JWKS) of issuer {iss}: the emulator only verifies tokens of the issuers it emulates.")));
    }
    if !st.signer.verify(&jws) {
        return Err(invalid_grant("Invalid JWT signature: no published key verifies it."));
    }
    let resource = format!(
        "iam.googleapis.com/projects/{number}/locations/global/workloadIdentityPools/{}/providers/{}",
        pool.id, provider.id
    );
    let allowed: Vec<String> = if provider.allowed_audiences.is_empty() {
        vec![format!("https://{resource}"), format!("//{resource}")]
    } else {
        provider.allowed_audiences.clone()
    };
    let auds: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    };
    if !auds.iter().any(|a| allowed.contains(a)) {
        return Err(invalid_grant(&format!(
            "The audience in ID Token [{}] does not match the expected audience.",
            auds.join(", ")
        )));
    }
    let now = st.now();
    let Some(exp) = jwt::numeric_claim(claims, "exp") else {
        return Err(invalid_grant("The ID Token has no exp claim."));
    };
    if exp <= now {
        return Err(invalid_grant(&format!("The ID Token has expired: exp {} is in the past.", clock::rfc3339(exp))));
    }
    let iat = jwt::numeric_claim(claims, "iat").unwrap_or(now);
    if iat > now + st.config.clock_skew() {
        return Err(invalid_grant("The ID Token's iat is in the future; check the clocks."));
    }
    if exp - iat > 86_400 {
        return Err(invalid_grant(
            "The ID Token is valid for more than 24 hours (from iat to exp), which is not allowed.",
        ));
    }
    Ok(claims.clone())
}

/// Maps the verified `assertion` (OIDC claims, or a certificate's attributes) through the
/// provider's attribute mapping, checks its condition and issues the federated token:
/// the token and its lifetime in seconds.
fn federate(
    st: &State,
    number: &str,
    pool: &PoolConfig,
    provider: &ProviderConfig,
    assertion: Value,
    scopes: Vec<String>,
) -> Result<(String, i64), Response> {
    let now = st.now();
    let mut env = Env { assertion, ..Env::default() };
    for mapping in &provider.mapping {
        let target = &mapping.target;
        let value = cel::eval(&mapping.expr, &env)
            .map_err(|e| invalid_grant(&format!("The attribute mapping {target} could not be evaluated: {e}.")))?;
        if let Some(name) = target.strip_prefix("google.") {
            env.google.insert(name.into(), value);
        } else if let Some(name) = target.strip_prefix("attribute.") {
            env.attribute.insert(name.into(), value);
        }
    }
    let subject_value = match env.google.get("subject") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(invalid_grant("The mapped attribute google.subject must be a non-empty string.")),
    };
    if subject_value.len() > 127 {
        return Err(invalid_grant("The size of mapped attribute google.subject exceeds the 127 bytes limit. Either modify your attribute mapping or the incoming assertion to produce a mapped attribute that is less than 127 bytes."));
    }
    let groups: Vec<String> = match env.google.get("groups") {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    if let Some(cond) = &provider.condition {
        let ok = cel::eval(cond, &env).ok() == Some(Value::Bool(true));
        if !ok {
            return Err(invalid_grant("The given credential is rejected by the attribute condition."));
        }
    }
    let token = format!("ya29.d.{}", keys::random_b64(96));
    let fed = FederatedToken {
        pool: format!("projects/{number}/locations/global/workloadIdentityPools/{}", pool.id),
        subject: subject_value,
        groups,
        attributes: env.attribute,
        scopes,
        exp: now + st.token_lifetime,
    };
    if let Ok(mut map) = st.federated.lock() {
        map.retain(|_, f| f.exp > now);
        map.insert(token.clone(), fed);
    }
    Ok((token, st.token_lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences() {
        assert_eq!(
            parse_audience("//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/p/providers/r"),
            Some(("123", "p", "r"))
        );
        assert!(parse_audience(
            "//iam.googleapis.com/projects/abc/locations/global/workloadIdentityPools/p/providers/r"
        )
        .is_none());
        assert!(parse_audience(
            "https://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/r"
        )
        .is_none());
        assert!(parse_audience("//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p").is_none());
    }
}
