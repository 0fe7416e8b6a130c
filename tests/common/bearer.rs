//! Bearer tokens from wif-emulate's issuers (spec §7): a Kubernetes TokenRequest, a GitHub
//! Actions id-token, the issuers' JWKS and discovery URLs, and the emulator's key rotation
//! control. Plain HTTP to a running emulator (`emu_url` is its `url`, `http://127.0.0.1:PORT`).

use serde_json::{json, Value};

/// Which kind of bearer issuer of the emulator (its path prefix and rotation name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `kubernetes` issuers, under `/k8s/{name}/`.
    Kubernetes,
    /// `github` issuers, under `/github/{name}/`.
    Github,
}

impl Kind {
    /// The name in the config and in `POST /_emulator/rotate/{kind}/{name}`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kubernetes => "kubernetes",
            Kind::Github => "github",
        }
    }
}

/// The path of an issuer's JWKS (what the emulator's request log shows for each fetch).
pub fn jwks_path(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Kubernetes => format!("/k8s/{name}/openid/v1/jwks"),
        Kind::Github => format!("/github/{name}/.well-known/jwks"),
    }
}

/// The URL of an issuer's JWKS (a `jwks_uri` for wif-serve's issuers file).
pub fn jwks_url(emu_url: &str, kind: Kind, name: &str) -> String {
    format!("{emu_url}{}", jwks_path(kind, name))
}

/// The URL of an issuer's OIDC discovery document.
pub fn discovery_url(emu_url: &str, kind: Kind, name: &str) -> String {
    let prefix = match kind {
        Kind::Kubernetes => "k8s",
        Kind::Github => "github",
    };
    format!("{emu_url}/{prefix}/{name}/.well-known/openid-configuration")
}

/// Status and decoded JSON body of an answer (`Value::Null` when the body is not JSON).
fn answer(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut resp = resp.expect("the emulator answers");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `POST /k8s/{issuer}/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token` with this
/// TokenRequest body: the status and the decoded answer (a TokenRequest or a `Status`).
pub fn k8s_token_request(emu_url: &str, issuer: &str, ns: &str, sa: &str, body: &Value) -> (u16, Value) {
    let url = format!("{emu_url}/k8s/{issuer}/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token");
    answer(
        ureq::post(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .header("Content-Type", "application/json")
            .send(body.to_string()),
    )
}

/// The TokenRequest body for `audiences` and `expiration_secs`.
pub fn token_request_body(audiences: &[&str], expiration_secs: i64) -> Value {
    json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"audiences": audiences, "expirationSeconds": expiration_secs},
    })
}

/// A Kubernetes service-account token from the emulator's issuer `issuer_name` for
/// `system:serviceaccount:{ns}:{sa}`; the test fails unless the API answers 201.
pub fn k8s_token(
    emu_url: &str,
    issuer_name: &str,
    ns: &str,
    sa: &str,
    audiences: &[&str],
    expiration_secs: i64,
) -> String {
    let body = token_request_body(audiences, expiration_secs);
    let (status, v) = k8s_token_request(emu_url, issuer_name, ns, sa, &body);
    assert_eq!(status, 201, "TokenRequest for {ns}/{sa} at {issuer_name}: {v}");
    v["status"]["token"].as_str().expect("status.token in the TokenRequest answer").to_string()
}

/// `GET /github/{name}/idtoken?api-version=2.0[&audience=AUD]` with `Authorization: Bearer
/// {request_token}` when given: the status and the decoded answer.
pub fn github_request(emu_url: &str, name: &str, request_token: Option<&str>, audience: Option<&str>) -> (u16, Value) {
    let mut url = format!("{emu_url}/github/{name}/idtoken?api-version=2.0");
    if let Some(aud) = audience {
        url.push_str("&audience=");
        url.push_str(&query_escape(aud));
    }
    let mut req = ureq::get(&url).config().http_status_as_error(false).build();
    if let Some(t) = request_token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    answer(req.call())
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A GitHub Actions OIDC token from the emulator's issuer `name` for the run whose request
/// token is `request_token`, with `audience`; the test fails unless it answers 200.
pub fn github_token(emu_url: &str, name: &str, request_token: &str, audience: &str) -> String {
    let (status, v) = github_request(emu_url, name, Some(request_token), Some(audience));
    assert_eq!(status, 200, "id-token from {name}: {v}");
    v["value"].as_str().expect("value in the id-token answer").to_string()
}

/// `POST /_emulator/rotate/{kind}/{name}[?retire=true]`: the status and the answer
/// (`{"kid": NEW, "kids": [...]}` on success).
pub fn rotate_request(emu_url: &str, kind: &str, name: &str, retire: bool) -> (u16, Value) {
    let q = if retire { "?retire=true" } else { "" };
    let url = format!("{emu_url}/_emulator/rotate/{kind}/{name}{q}");
    answer(ureq::post(&url).config().http_status_as_error(false).build().send_empty())
}

/// Rotates the signing key of the emulator's `kind` (`kubernetes` or `github`) issuer
/// `name`, dropping the old keys when `retire`; returns the new key's `kid`.
pub fn rotate(emu_url: &str, kind: &str, name: &str, retire: bool) -> String {
    let (status, v) = rotate_request(emu_url, kind, name, retire);
    assert_eq!(status, 200, "rotating {kind}/{name}: {v}");
    v["kid"].as_str().expect("kid in the rotation answer").to_string()
}

/// The JWKS an issuer publishes now.
pub fn jwks(emu_url: &str, kind: Kind, name: &str) -> Value {
    let (status, v) =
        answer(ureq::get(&jwks_url(emu_url, kind, name)).config().http_status_as_error(false).build().call());
    assert_eq!(status, 200, "JWKS of {}/{name}: {v}", kind.name());
    v
}

/// Decodes a JWT's header and claims without verifying it (for shape checks): read as a
/// verifier reads it (three unpadded base64url segments, nothing around), or the test fails.
pub fn decode_unverified(token: &str) -> (Value, Value) {
    let jws = wif::core::jwt::Jws::parse(token)
        .expect("a compact JWS: three base64url segments, header and claims JSON objects");
    (jws.header, jws.claims)
}
