//! Other OAuth/OIDC issuers (like ServiceAuthCentral in the seed): `jwt-bearer` (RFC 7523)
//! or `client_credentials` (with a client assertion or secret), each with an `audience`
//! the client must be authorized for. Tokens are RS256 JWTs with the configured `iss`.

use super::config::{IssuerClient, IssuerConfig};
use super::errors::{self, oauth};
use super::keys::AssertionError;
use super::server::Req;
use super::state::State;
use crate::http::parse_form;
use crate::server::Response;
use serde_json::json;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn find<'a>(st: &'a State, name: &str) -> Option<&'a IssuerConfig> {
    st.config.issuers.iter().find(|i| i.name == name)
}

/// `POST /issuers/{name}/v1/token`.
pub fn token(st: &State, req: &Req, name: &str) -> Response {
    let Some(iss) = find(st, name) else { return errors::not_found(&req.path) };
    if !req.is_form() {
        return oauth(400, "invalid_request", "The request must be application/x-www-form-urlencoded.");
    }
    let form = parse_form(&req.body);
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let Some(grant) = field("grant_type") else { return oauth(400, "invalid_request", "Missing grant_type.") };
    let Some(client_id) = field("client_id") else { return oauth(400, "invalid_request", "Missing client_id.") };
    let Some(client) = iss.clients.iter().find(|c| c.client_id == client_id) else {
        return oauth(401, "invalid_client", &format!("Unknown client {client_id}."));
    };
    let endpoint = format!("{}{}", req.base_url(), req.path);
    let outcome = match grant {
        JWT_BEARER => match field("assertion") {
            Some(a) => check(st, client, a, &endpoint, "invalid_grant"),
            None => Err(oauth(400, "invalid_request", "Missing assertion.")),
        },
        "client_credentials" => match (field("client_assertion"), field("client_secret")) {
            (Some(a), None) if field("client_assertion_type") == Some(super::azure::CLIENT_ASSERTION_TYPE) => {
                check(st, client, a, &endpoint, "invalid_client")
            }
            (Some(_), None) => Err(oauth(400, "invalid_request", "Invalid client_assertion_type.")),
            (None, Some(s)) if client.secrets.iter().any(|x| x == s) => Ok(()),
            (None, Some(_)) => Err(oauth(401, "invalid_client", "Client authentication failed: wrong client secret.")),
            _ => Err(oauth(
                401,
                "invalid_client",
                "Client authentication is required: one client_assertion or client_secret.",
            )),
        },
        other => Err(oauth(400, "unsupported_grant_type", &format!("Unsupported grant_type {other}."))),
    };
    if let Err(r) = outcome {
        return r;
    }
    let Some(audience) = field("audience") else { return oauth(400, "invalid_request", "Missing audience.") };
    if !client.audiences.iter().any(|a| a == audience) {
        return oauth(
            400,
            "invalid_target",
            &format!("The client {client_id} is not authorized for the audience {audience}."),
        );
    }
    let now = st.now();
    let exp = now + st.token_lifetime;
    let mut claims = json!({
        "iss": iss.issuer, "sub": client.client_id, "aud": audience, "client_id": client.client_id,
        "iat": now, "nbf": now, "exp": exp, "jti": crate::core::jwt::random_uuid(),
    });
    if let Some(scope) = field("scope") {
        claims["scope"] = json!(scope);
    }
    let body =
        json!({"access_token": st.signer.sign(&claims), "token_type": "Bearer", "expires_in": st.token_lifetime});
    errors::json(200, &body, "ok")
}

fn check(st: &State, client: &IssuerClient, assertion: &str, endpoint: &str, error: &str) -> Result<(), Response> {
    st.client_assertion(assertion, &client.certs, &[], false, &client.client_id, endpoint).map_err(|e| {
        let msg = match e {
            AssertionError::Malformed(m) => format!("Invalid assertion: {m}"),
            AssertionError::NoThumbprint | AssertionError::UnknownKey(_) | AssertionError::KeyExpired(_) => {
                "Invalid assertion: no registered key of the client verifies it.".to_string()
            }
            AssertionError::BadSignature(_) => "Invalid assertion: signature verification failed.".to_string(),
            AssertionError::WrongClient(m) => format!("Invalid assertion: {m}."),
            AssertionError::WrongAudience(a) => format!("Invalid assertion: audience {a} is not {endpoint}."),
            AssertionError::Time(m) => format!("Invalid assertion: expired or not yet valid. {m}"),
            AssertionError::Replayed(j) => format!("Invalid assertion: jti {j} was already used (replayed)."),
        };
        oauth(if error == "invalid_client" { 401 } else { 400 }, error, &msg)
    })
}

/// `GET /issuers/{name}/.well-known/openid-configuration`.
pub fn discovery(st: &State, req: &Req, name: &str) -> Response {
    let Some(iss) = find(st, name) else { return errors::not_found(&req.path) };
    let base = format!("{}/issuers/{name}", req.base_url());
    let body = json!({
        "issuer": iss.issuer,
        "token_endpoint": format!("{base}/v1/token"),
        "jwks_uri": format!("{base}/jwks"),
        "grant_types_supported": ["client_credentials", JWT_BEARER],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_post"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
    });
    errors::json(200, &body, "ok")
}

/// `GET /issuers/{name}/jwks`.
pub fn jwks(st: &State, name: &str) -> Response {
    match find(st, name) {
        Some(_) => errors::json(200, &st.jwks(), "ok"),
        None => errors::not_found(&format!("/issuers/{name}/jwks")),
    }
}
