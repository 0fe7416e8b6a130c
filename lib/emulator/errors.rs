//! Responses in the formats the real services use: Azure AD's OAuth errors with AADSTS
//! codes, trace and correlation ids; plain OAuth errors (Google STS, other issuers); and
//! Google API errors (IAM Credentials); Cloud Storage's JSON API errors.

use crate::core::jwt::random_uuid as guid;
use crate::server::Response;
use serde_json::{json, Value};

/// A JSON response; `outcome` is what the request log records.
pub fn json(status: u16, body: &Value, outcome: impl Into<String>) -> Response {
    Response::new(status, "application/json; charset=utf-8", body.to_string().into_bytes()).because(outcome)
}

/// A JSON decoding error as the services word it: serde's message without its position
/// (`… at line 1 column 9`).
pub fn serde_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// An Azure AD error dated `now` (Unix seconds, the emulator's clock): `{"error",
/// "error_description": "AADSTSn: …\r\nTrace ID…", "error_codes": [n], "timestamp", …}`.
pub fn azure(now: i64, status: u16, error: &str, code: u64, message: &str) -> Response {
    // Azure AD's timestamp form in error bodies: `2026-01-31 12:00:00Z`.
    let ts = crate::core::clock::rfc3339(now).replace('T', " ");
    let (trace, corr) = (guid(), guid());
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}"),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    json(status, &body, format!("AADSTS{code}"))
}

/// A plain OAuth 2.0 error (RFC 6749 §5.2), as Google STS sends it.
pub fn oauth(status: u16, error: &str, description: &str) -> Response {
    json(status, &json!({"error": error, "error_description": description}), error.to_string())
}

/// A Google API error: `{"error": {"code", "message", "status", "details"}}`.
pub fn google(code: u16, status: &str, message: &str, reason: Option<(&str, &str)>) -> Response {
    let mut err = json!({"code": code, "message": message, "status": status});
    if let Some((reason, permission)) = reason {
        err["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": "iam.googleapis.com",
            "metadata": {"permission": permission},
        }]);
    }
    json(code, &json!({ "error": err }), status.to_string())
}

/// A Cloud Storage JSON API error `{"error":{"code","message","errors":[{"message","domain","reason"}]}}`;
/// `outcome` is what the request log records.
pub fn storage(code: u16, message: &str, reason: &str, outcome: &str) -> Response {
    let mut detail = json!({"message": message, "domain": "global", "reason": reason});
    if code == 401 {
        detail["locationType"] = json!("header");
        detail["location"] = json!("Authorization");
    }
    json(code, &json!({"error": {"code": code, "message": message, "errors": [detail]}}), outcome)
}

/// IAM's refusal to impersonate, identical whether the account is missing or not bound.
pub fn iam_denied(permission: &str) -> Response {
    google(
        403,
        "PERMISSION_DENIED",
        &format!("Permission '{permission}' denied on resource (or it may not exist)."),
        Some(("IAM_PERMISSION_DENIED", permission)),
    )
}

/// The answer to a request that does not match any endpoint.
pub fn not_found(path: &str) -> Response {
    google(404, "NOT_FOUND", &format!("The requested URL {path} was not found on this server."), None)
}

/// Wrong HTTP method for an endpoint.
pub fn method_not_allowed(allowed: &str) -> Response {
    let mut r = google(405, "METHOD_NOT_ALLOWED", &format!("Use {allowed}."), None);
    r.headers.push(("Allow", allowed.to_string()));
    r
}

/// Fault injection: a retryable 503.
pub fn unavailable() -> Response {
    let mut r = google(503, "UNAVAILABLE", "The service is currently unavailable.", None);
    r.headers.push(("Retry-After", "1".into()));
    r.reason = Some("injected_503".into());
    r
}

/// A Kubernetes API `Status` failure: `{"kind": "Status", "apiVersion": "v1", "metadata": {},
/// "status": "Failure", "message", "reason", "details"?, "code"}`.
pub fn kubernetes(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response {
    let mut body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    if let Some(d) = details {
        body["details"] = d;
    }
    json(code, &body, reason.to_string())
}

/// A GitHub Actions token service error: `{"message": …}`; a 401 also says
/// `WWW-Authenticate: Bearer`.
pub fn github(code: u16, message: &str, outcome: &str) -> Response {
    let r = json(code, &json!({ "message": message }), outcome);
    if code == 401 {
        r.header("WWW-Authenticate", "Bearer")
    } else {
        r
    }
}
