//! A Kubernetes API server's service-account token issuer, under `/k8s/{name}/`: the
//! TokenRequest API (`POST …/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token`), the
//! issuer discovery document and its JWKS (`/openid/v1/jwks`). Answers and refusals in the
//! API server's shapes: a `TokenRequest` object (201), a `Status` object otherwise.

use super::bearer_config::{BearerKind, KubernetesConfig, ServiceAccount};
use super::errors;
use super::server::Req;
use super::state::State;
use crate::core::clock::rfc3339;
use crate::server::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// `authentication.k8s.io/v1`.
const API_VERSION: &str = "authentication.k8s.io/v1";
/// The API server's default and bounds for `spec.expirationSeconds`.
const DEFAULT_EXPIRATION: i64 = 3600;
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;

/// A TokenRequest as a client sends it (unknown fields ignored, as the API server does by
/// default).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRequest {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    spec: Spec,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    expiration_seconds: Option<i64>,
    #[serde(default)]
    bound_object_ref: Option<BoundObjectRef>,
}

#[derive(Deserialize)]
struct BoundObjectRef {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
}

fn find<'a>(st: &'a State, name: &str) -> Option<&'a KubernetesConfig> {
    st.config.kubernetes.iter().find(|k| k.name == name)
}

/// The API server's answer to a path it does not serve.
fn no_such_path() -> Response {
    errors::kubernetes(404, "NotFound", "the server could not find the requested resource", None)
}

fn bad_request(message: &str) -> Response {
    errors::kubernetes(400, "BadRequest", message, None)
}

/// `{kind} "{name}" not found`, as the API server words a missing object.
fn not_found(kind: &str, name: &str) -> Response {
    let details = json!({"name": name, "kind": kind});
    errors::kubernetes(404, "NotFound", &format!("{kind} \"{name}\" not found"), Some(details))
}

/// The API server's validation failure (422 `Invalid`) of `spec.expirationSeconds`.
fn invalid_expiration(value: i64, why: &str) -> Response {
    let field = "spec.expirationSeconds";
    let cause = format!("Invalid value: {value}: {why}");
    let details = json!({
        "name": "", "group": "authentication.k8s.io", "kind": "TokenRequest",
        "causes": [{"reason": "FieldValueInvalid", "message": cause, "field": field}],
    });
    let message = format!("TokenRequest.authentication.k8s.io \"\" is invalid: {field}: {cause}");
    errors::kubernetes(422, "Invalid", &message, Some(details))
}

/// Decodes the request body as a TokenRequest, or the API server's refusal.
fn decode(req: &Req) -> Result<TokenRequest, Response> {
    if !req.is_json() {
        return Err(errors::kubernetes(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
            None,
        ));
    }
    let tr: TokenRequest = serde_json::from_slice(&req.body)
        .map_err(|e| bad_request(&format!("the body of the request could not be decoded as a TokenRequest: {e}")))?;
    if let Some(v) = tr.api_version.as_deref().filter(|v| *v != API_VERSION) {
        return Err(bad_request(&format!(
            "the API version in the data ({v}) does not match the expected API version ({API_VERSION})"
        )));
    }
    if let Some(k) = tr.kind.as_deref().filter(|k| *k != "TokenRequest") {
        return Err(bad_request(&format!(
            "the kind in the data ({k}) does not match the expected kind (TokenRequest)"
        )));
    }
    Ok(tr)
}

/// `POST /k8s/{name}/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token`.
pub fn token(st: &State, req: &Req, name: &str, ns: &str, sa_name: &str) -> Response {
    let (Some(issuer), Some(keys)) = (find(st, name), st.issuer_keys.get(BearerKind::Kubernetes, name)) else {
        return no_such_path();
    };
    let tr = match decode(req) {
        Ok(tr) => tr,
        Err(r) => return r,
    };
    let Some(sa) = issuer.service_accounts.iter().find(|s| s.namespace == ns && s.name == sa_name) else {
        return not_found("serviceaccounts", sa_name);
    };
    let expiration = tr.spec.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION);
    if expiration < MIN_EXPIRATION {
        return invalid_expiration(expiration, "may not specify a duration less than 10 minutes");
    }
    if expiration > MAX_EXPIRATION {
        return invalid_expiration(expiration, "may not specify a duration larger than 2^32 seconds");
    }
    if let Some(bound) = &tr.spec.bound_object_ref {
        // The emulator runs no pods or secrets: any object a token could be bound to is missing.
        return not_found(&format!("{}s", bound.kind.to_ascii_lowercase()), &bound.name);
    }
    // With no audiences the API server issues the token for its own (the issuer).
    let audiences = if tr.spec.audiences.is_empty() { vec![issuer.issuer.clone()] } else { tr.spec.audiences };
    let now = st.now();
    let exp = now.saturating_add(expiration);
    let claims = claims(&issuer.issuer, sa, &audiences, now, exp);
    // The API server's header: alg and kid only.
    let token = keys.sign(Map::new(), &claims);
    let body = json!({
        "kind": "TokenRequest",
        "apiVersion": API_VERSION,
        "metadata": {"name": sa.name, "namespace": sa.namespace, "creationTimestamp": rfc3339(now)},
        "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": null},
        "status": {"token": token, "expirationTimestamp": rfc3339(exp)},
    });
    errors::json(201, &body, "issued")
}

/// The claims the API server writes into a service-account token.
fn claims(iss: &str, sa: &ServiceAccount, audiences: &[String], now: i64, exp: i64) -> Value {
    json!({
        "aud": audiences,
        "exp": exp,
        "iat": now,
        "iss": iss,
        "jti": crate::core::jwt::random_uuid(),
        "kubernetes.io": {
            "namespace": sa.namespace,
            "serviceaccount": {"name": sa.name, "uid": sa.uid()},
        },
        "nbf": now,
        "sub": format!("system:serviceaccount:{}:{}", sa.namespace, sa.name),
    })
}

/// `GET /k8s/{name}/.well-known/openid-configuration`: the service-account issuer discovery
/// document, its `jwks_uri` on this emulator.
pub fn discovery(st: &State, req: &Req, name: &str) -> Response {
    let (Some(issuer), Some(keys)) = (find(st, name), st.issuer_keys.get(BearerKind::Kubernetes, name)) else {
        return no_such_path();
    };
    let body = json!({
        "issuer": issuer.issuer,
        "jwks_uri": format!("{}/k8s/{name}/openid/v1/jwks", req.base_url()),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": keys.algs(),
    });
    errors::json(200, &body, "ok")
}

/// `GET /k8s/{name}/openid/v1/jwks`.
pub fn jwks(st: &State, name: &str) -> Response {
    match st.issuer_keys.get(BearerKind::Kubernetes, name) {
        Some(keys) => errors::json(200, &keys.jwks(), "ok"),
        None => no_such_path(),
    }
}
