//! Token endpoint responses: success bodies (OAuth 2.0, RFC 8693, Azure v1 quirks) and the
//! error bodies of Azure AD, Google STS and Google APIs, turned into errors with hints.

use crate::clock;
use crate::error::{Error, Kind, Result};
use crate::hints;
use crate::http::Response;
use crate::secret::Secret;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A successful OAuth token response (fields vary by service; all optional here).
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    /// The token (OAuth).
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// `token_type`, usually `Bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// Lifetime in seconds; Azure v1 and IMDS send it as a string.
    #[serde(default, deserialize_with = "int_or_string")]
    pub expires_in: Option<i64>,
    /// Absolute expiry in Unix seconds (Azure v1, IMDS), often a string.
    #[serde(default, deserialize_with = "int_or_string")]
    pub expires_on: Option<i64>,
    /// RFC 8693 `issued_token_type`.
    #[serde(default)]
    pub issued_token_type: Option<String>,
}

fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

impl TokenResponse {
    /// Decodes a 2xx token response, insisting on a non-empty `access_token`.
    pub fn from_response(resp: &Response) -> Result<(TokenResponse, Secret)> {
        let t: TokenResponse = resp.json()?;
        match &t.access_token {
            Some(tok) if !tok.is_empty() => {
                let tok = tok.clone();
                Ok((t, tok))
            }
            _ => Err(Error::new(Kind::Unavailable, "the response has no access_token")),
        }
    }

    /// The absolute expiry: from `expires_in`, else `expires_on`, else the JWT's `exp`.
    pub fn expires_at(&self, token: &Secret) -> Option<String> {
        let now = clock::now_unix();
        if let Some(s) = self.expires_in.filter(|s| *s > 0) {
            return Some(clock::rfc3339(now + s));
        }
        if let Some(on) = self.expires_on.filter(|s| *s > 0) {
            return Some(clock::rfc3339(on));
        }
        crate::jwt::unverified_exp(token.expose()).map(clock::rfc3339)
    }
}

/// Which service answered, to pick the error format and the hints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Azure AD / Microsoft Entra ID.
    Azure,
    /// Any other OAuth 2.0 / OIDC token endpoint.
    Oauth,
    /// Google STS.
    Sts,
    /// Google IAM Credentials (Google API error format).
    Iam,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Option<Vec<u64>>,
}

#[derive(Deserialize)]
struct GoogleErrorBody {
    error: GoogleError,
}

#[derive(Deserialize)]
struct GoogleError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// Passes a 2xx response through; turns anything else into an error that says what the
/// service said, classed as refused (4xx) or retryable (429, 5xx), with a hint if known.
pub fn check(resp: Response, service: Service) -> Result<Response> {
    if resp.ok() {
        return Ok(resp);
    }
    let retryable = resp.status == 429 || resp.status >= 500;
    let kind = if retryable { Kind::Unavailable } else { Kind::Refused };
    if let Ok(g) = serde_json::from_slice::<GoogleErrorBody>(&resp.body) {
        let status = g.error.status.unwrap_or_else(|| format!("HTTP {}", resp.status));
        let msg = first_line(g.error.message.as_deref().unwrap_or(""));
        return Err(Error::new(kind, format!("{status}: {msg}")));
    }
    if let Ok(o) = serde_json::from_slice::<OAuthErrorBody>(&resp.body) {
        let desc = o.error_description.as_deref().unwrap_or("");
        let mut err = Error::new(kind, format!("{}: {}", o.error, first_line(desc)));
        let hint = match service {
            Service::Azure | Service::Oauth => {
                aadsts_code(o.error_codes.as_deref(), desc).and_then(hints::aadsts).map(str::to_string)
            }
            Service::Sts => hints::sts(&o.error, desc),
            Service::Iam => None,
        };
        if let Some(h) = hint {
            err = err.hint(h);
        }
        return Err(err);
    }
    let err = Error::new(kind, format!("HTTP {}: {}", resp.status, resp.excerpt()));
    Err(match resp.status {
        404 => err.hint("the URL is wrong: check the endpoint (--token-url / --endpoint)"),
        401 | 403 => err.hint("the server refused the credentials"),
        _ if retryable => err.hint("the service is unavailable; it was retried, try again later"),
        _ => err,
    })
}

/// Azure's error code: the first of `error_codes`, else the number after `AADSTS`.
fn aadsts_code(codes: Option<&[u64]>, desc: &str) -> Option<u64> {
    if let Some(c) = codes.and_then(|c| c.first()) {
        return Some(*c);
    }
    let i = desc.find("AADSTS")? + 6;
    let digits: String = desc[i..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Azure descriptions carry trace and correlation ids on later lines; keep the first.
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: Some("application/json".into()),
            retry_after: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn azure_error_gets_code_hint_and_first_line() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS700027: Client assertion contains an invalid signature.\r\nTrace ID: x\r\nCorrelation ID: y","error_codes":[700027]}"#;
        let e = check(resp(401, body), Service::Azure).unwrap_err();
        assert_eq!(e.kind(), Kind::Refused);
        assert_eq!(e.to_string(), "invalid_client: AADSTS700027: Client assertion contains an invalid signature.");
        assert!(e.hint_text().unwrap().contains("thumbprint"));
    }

    #[test]
    fn code_from_description_when_no_list() {
        assert_eq!(aadsts_code(None, "AADSTS700016: Application not found"), Some(700016));
        assert_eq!(aadsts_code(None, "nothing"), None);
    }

    #[test]
    fn google_error_and_retryable_statuses() {
        let e = check(
            resp(403, r#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#),
            Service::Iam,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "PERMISSION_DENIED: Permission denied");
        let e = check(resp(503, "<html>busy</html>"), Service::Sts).unwrap_err();
        assert_eq!(e.kind(), Kind::Unavailable);
        assert!(e.to_string().contains("HTTP 503: <html>busy</html>"));
    }

    #[test]
    fn expiry_sources() {
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"x","expires_in":"3599"}"#).unwrap();
        let at = clock::parse_rfc3339(&t.expires_at(&Secret::new("x")).unwrap()).unwrap();
        assert!((at - clock::now_unix() - 3599).abs() <= 2);
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"x","expires_on":"2000000000"}"#).unwrap();
        assert_eq!(t.expires_at(&Secret::new("x")).unwrap(), clock::rfc3339(2_000_000_000));
    }
}
