//! Token endpoint responses: success bodies (OAuth 2.0, RFC 8693, Azure v1 quirks) and the
//! error bodies of Azure AD, Google STS and Google APIs, turned into errors with hints.

use crate::core::clock::{self, Timestamp};
use crate::core::error::{Error, Kind, Result};
use crate::core::secret::Secret;
use crate::core::token::{byte_flaw, token_flaw};
use crate::http::Response;
use crate::protocol::hints;
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
    #[serde(default, deserialize_with = "seconds")]
    pub expires_in: Option<i64>,
    /// Absolute expiry in Unix seconds (Azure v1, IMDS), often a string.
    #[serde(default, deserialize_with = "int_or_string")]
    pub expires_on: Option<i64>,
    /// RFC 8693 `issued_token_type`.
    #[serde(default)]
    pub issued_token_type: Option<String>,
}

/// A whole number from a JSON number (floats are cut) or a string holding one.
fn whole_number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(_) => crate::core::jwt::whole_seconds(v),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `expires_on`: a number or a string; anything else counts as absent (App Service's
/// managed identity endpoint writes a date there), the lifetime being what wif relies on.
fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.as_ref().and_then(whole_number))
}

/// `expires_in`: absent, or a number of seconds (maybe as a string); anything else is an
/// answer no genuine token endpoint gives.
fn seconds<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            whole_number(&v).map(Some).ok_or_else(|| serde::de::Error::custom("expires_in is not a number of seconds"))
        }
    }
}

impl TokenResponse {
    /// Decodes a 2xx token response, insisting on a non-empty `access_token` and on fields
    /// that are safe to store in a token file and send in a header: see [`check_token`],
    /// [`check_token_type`], [`check_lifetime`] and [`check_expiry`].
    pub fn from_response(resp: &Response) -> Result<(TokenResponse, Secret)> {
        let t: TokenResponse = resp.json()?;
        let tok = match &t.access_token {
            Some(tok) if !tok.is_empty() => tok.clone(),
            _ => return Err(Error::new(Kind::Unavailable, "the response has no access_token")),
        };
        check_token(&tok, "access_token")?;
        if let Some(tt) = &t.token_type {
            check_token_type(tt, "token_type", false)?;
        }
        if let Some(it) = &t.issued_token_type {
            check_token_type(it, "issued_token_type", true)?;
        }
        // Only the expiry that is used is checked: Azure v1 sends both, and the lifetime wins.
        match (t.expires_in, t.expires_on) {
            (Some(secs), _) => check_lifetime(secs, "expires_in")?,
            (None, Some(on)) => check_expiry(on, clock::now_unix(), "expires_on")?,
            (None, None) => {}
        }
        Ok((t, tok))
    }

    /// The absolute expiry: from `expires_in`, else `expires_on`, else the JWT's `exp`.
    pub fn expires_at(&self, token: &Secret) -> Option<Timestamp> {
        let now = clock::now_unix();
        if let Some(s) = self.expires_in.filter(|s| *s > 0) {
            return Some(Timestamp::from_unix(now + s));
        }
        if let Some(on) = self.expires_on.filter(|s| *s > 0) {
            return Some(Timestamp::from_unix(on));
        }
        crate::core::jwt::unverified_exp(token.expose()).map(Timestamp::from_unix)
    }
}

/// Longest lifetime wif believes a token service grants: Google's tokens live at most 12 h,
/// Azure AD's at most about 28 h (continuous access evaluation). Anything longer is not a
/// real answer, or this machine's clock is far off.
pub const MAX_LIFETIME_SECS: i64 = 48 * 3600;

/// Longest `token_type` / `issued_token_type` accepted (the registered ones are under 60).
const MAX_TOKEN_TYPE_LEN: usize = 256;

/// An answer that no genuine token service gives: classed like a truncated or non-JSON body
/// (the service is not answering properly, exit 5), with a hint that says where to look.
fn bad_answer(what: String) -> Error {
    Error::new(Kind::Unavailable, what).hint(
        "no genuine token service answers that: check the URL, and whether a proxy or TLS interception alters the answers; nothing was written (a previous token file is kept)",
    )
}

/// Refuses a token from a service's answer that [`token_flaw`] finds fault with.
pub fn check_token(token: &Secret, field: &str) -> Result<()> {
    match token_flaw(token.expose()) {
        Some(flaw) => Err(bad_answer(format!("the {field} in the answer {flaw}"))),
        None => Ok(()),
    }
}

/// Refuses a `token_type` (RFC 6749: a name or a URI) or, with `uri`, an RFC 8693
/// `issued_token_type` (an absolute URI) that is not one: letters, digits and URI
/// punctuation only, at most 256 of them. It is stored beside the token and served in a
/// header, so a line break in it would let the service write headers of its choosing.
pub fn check_token_type(value: &str, field: &str, uri: bool) -> Result<()> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b);
    let flaw = if value.is_empty() {
        Some("is empty")
    } else if value.len() > MAX_TOKEN_TYPE_LEN {
        Some("is too long")
    } else if let Some(b) = value.bytes().find(|b| !allowed(*b)) {
        Some(byte_flaw(b))
    } else if uri && !is_absolute_uri(value) {
        Some("is not a URI (like urn:ietf:params:oauth:token-type:access_token)")
    } else {
        None
    };
    match flaw {
        Some(flaw) => Err(bad_answer(format!("the {field} in the answer, {}, {flaw}", preview(value)))),
        None => Ok(()),
    }
}

/// `scheme ":" …` with an RFC 3986 scheme.
fn is_absolute_uri(s: &str) -> bool {
    s.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    })
}

/// A value quoted for an error message: escaped (a line break shows as `\r\n`, so it cannot
/// forge lines on a terminal or in a log) and cut at 64 characters.
fn preview(value: &str) -> String {
    // Scrubbed before it is cut, so that no half of a secret survives the cut.
    let value = crate::core::secret::scrub(value);
    let cut: String = value.chars().take(64).collect();
    let more = if cut.len() < value.len() { "…" } else { "" };
    format!("{cut:?}{more}")
}

/// Refuses a lifetime in seconds (`expires_in`) that is not positive or longer than
/// [`MAX_LIFETIME_SECS`].
pub fn check_lifetime(secs: i64, field: &str) -> Result<()> {
    if secs <= 0 {
        return Err(bad_answer(format!("the {field} in the answer, {secs}, is not a positive number of seconds")));
    }
    if secs > MAX_LIFETIME_SECS {
        return Err(bad_answer(format!(
            "the {field} in the answer, {secs} s ({}), is longer than any token service grants ({} h at most)",
            clock::human(secs),
            MAX_LIFETIME_SECS / 3600
        )));
    }
    Ok(())
}

/// Refuses an absolute expiry (Unix seconds) that has passed or lies further ahead than
/// [`MAX_LIFETIME_SECS`]: either the answer is not genuine or this machine's clock is off.
pub fn check_expiry(at: i64, now: i64, field: &str) -> Result<()> {
    let clock_hint = "check this machine's clock (NTP); an expiry that far off comes from a wrong clock or an answer that is not genuine; nothing was written (a previous token file is kept)";
    let shown = match time::OffsetDateTime::from_unix_timestamp(at) {
        Ok(_) => clock::rfc3339(at),
        Err(_) => format!("{at} s after 1970"),
    };
    if at <= now {
        return Err(Error::new(
            Kind::Unavailable,
            format!(
                "the {field} in the answer, {shown}, is in the past: the token {}",
                clock::describe_expiry(at, now)
            ),
        )
        .hint(clock_hint));
    }
    if at - now > MAX_LIFETIME_SECS {
        return Err(Error::new(
            Kind::Unavailable,
            format!(
                "the {field} in the answer, {shown}, is {} ahead, longer than any token service grants ({} h at most)",
                clock::human(at - now),
                MAX_LIFETIME_SECS / 3600
            ),
        )
        .hint(clock_hint));
    }
    Ok(())
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

/// What a service said in the body of a refusal.
pub enum Said {
    /// Google's API error format (IAM Credentials): `{"error": {"message", "status"}}`.
    Google {
        /// The canonical status code, e.g. `PERMISSION_DENIED`.
        status: Option<String>,
        /// The message.
        message: String,
    },
    /// An OAuth 2.0 error (RFC 6749 §5.2), with Azure AD's `error_codes`.
    Oauth {
        /// The error code, e.g. `invalid_grant`.
        error: String,
        /// `error_description`.
        description: String,
        /// Azure AD's AADSTS codes.
        codes: Option<Vec<u64>>,
    },
    /// Neither: the body is quoted as an excerpt.
    Unknown,
}

/// A refusal: the HTTP status and what the body said.
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The error body, decoded.
    pub said: Said,
}

impl Refusal {
    /// Decodes the error body of a response that is not 2xx.
    pub fn of(resp: &Response) -> Refusal {
        let said = if let Ok(g) = serde_json::from_slice::<GoogleErrorBody>(&resp.body) {
            Said::Google { status: g.error.status, message: g.error.message.unwrap_or_default() }
        } else if let Ok(o) = serde_json::from_slice::<OAuthErrorBody>(&resp.body) {
            Said::Oauth { error: o.error, description: o.error_description.unwrap_or_default(), codes: o.error_codes }
        } else {
            Said::Unknown
        };
        Refusal { status: resp.status, said }
    }

    /// 429 and 5xx: worth another try later.
    pub fn retryable(&self) -> bool {
        crate::http::Status::of(self.status).retries()
    }

    /// The error: what the service said, classed as refused (4xx) or unavailable (429,
    /// 5xx), with the hint `service`'s error codes (else the HTTP status) call for.
    fn error(&self, resp: &Response, service: Service) -> Error {
        let kind = if self.retryable() { Kind::Unavailable } else { Kind::Refused };
        match &self.said {
            Said::Google { status, message } => {
                let status = status.clone().unwrap_or_else(|| format!("HTTP {}", self.status));
                Error::new(kind, format!("{status}: {}", first_line(message)))
            }
            Said::Oauth { error, description, codes } => {
                let err = Error::new(kind, format!("{error}: {}", first_line(description)));
                let hint = match service {
                    Service::Azure | Service::Oauth => {
                        aadsts_code(codes.as_deref(), description).and_then(hints::aadsts).map(str::to_string)
                    }
                    Service::Sts => hints::sts(error, description),
                    Service::Iam => None,
                };
                err.hint_if(hint)
            }
            Said::Unknown => {
                let err = Error::new(kind, format!("HTTP {}: {}", self.status, resp.excerpt()));
                match self.status {
                    404 => err.hint("the URL is wrong: check the endpoint (--token-url / --endpoint)"),
                    401 | 403 => err.hint("the server refused the credentials"),
                    _ if self.retryable() => err.hint("the service is unavailable; it was retried, try again later"),
                    _ => err,
                }
            }
        }
    }
}

/// Passes a 2xx response through; turns anything else into an error that says what the
/// service said, classed as refused (4xx) or retryable (429, 5xx), with a hint if known.
pub fn check(resp: Response, service: Service) -> Result<Response> {
    check_with(resp, service, |_, _| None)
}

/// [`check`], with a hint of the caller's (chosen from the [`Refusal`] and the response, e.g.
/// its `Date`), which knows more than the service's own table and wins over it.
pub fn check_with(
    resp: Response,
    service: Service,
    hint: impl FnOnce(&Refusal, &Response) -> Option<String>,
) -> Result<Response> {
    if resp.ok() {
        return Ok(resp);
    }
    let refusal = Refusal::of(&resp);
    let err = refusal.error(&resp, service);
    Err(match hint(&refusal, &resp) {
        Some(hint) => err.replace_hint(hint),
        None => err,
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
            ..Default::default()
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
    fn answers_with_fields_unfit_for_a_file_or_a_header_are_refused() {
        let ok = r#"{"access_token":"ya29.ok","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","expires_in":3599}"#;
        assert!(TokenResponse::from_response(&resp(200, ok)).is_ok());
        let n_a = r#"{"access_token":"ya29.ok","token_type":"N_A","expires_in":"3599","expires_on":"1"}"#;
        assert!(TokenResponse::from_response(&resp(200, n_a)).is_ok(), "only the expiry used is checked");
        for (body, needle) in [
            (
                r#"{"access_token":"ya29.ok","token_type":"Bearer\r\nX-Injected: yes"}"#,
                r#"the token_type in the answer, "Bearer\r\nX-Injected: yes", holds a line break"#,
            ),
            (r#"{"access_token":"ya29.ok","token_type":"Bearer x"}"#, "holds a space"),
            (r#"{"access_token":"ya29.ok","token_type":""}"#, "is empty"),
            (r#"{"access_token":"ya29.ok","token_type":"<b>"}"#, "no token type has"),
            (r#"{"access_token":"ya29.ok","issued_token_type":"access_token"}"#, "is not a URI"),
            (r#"{"access_token":"ya29.ok","issued_token_type":"urn:x\u0000"}"#, "control character"),
            (r#"{"access_token":"ya29.ok\r\nX-Injected: yes"}"#, "the access_token in the answer holds a line break"),
            (r#"{"access_token":"ya29.ok\u00e9"}"#, "non-ASCII"),
            (r#"{"access_token":"ya29.ok","expires_in":-5}"#, "not a positive number"),
            (r#"{"access_token":"ya29.ok","expires_in":0}"#, "not a positive number"),
            (r#"{"access_token":"ya29.ok","expires_in":315360000}"#, "longer than any token service grants"),
            (r#"{"access_token":"ya29.ok","expires_in":1e300}"#, "longer than any token service grants"),
            (r#"{"access_token":"ya29.ok","expires_in":"soon"}"#, "expires_in is not a number of seconds"),
            (r#"{"access_token":"ya29.ok","expires_on":"1000"}"#, "is in the past"),
            (r#"{"access_token":"ya29.ok","expires_on":9223372036854775807}"#, "longer than any token service grants"),
        ] {
            let e = TokenResponse::from_response(&resp(200, body)).unwrap_err();
            assert_eq!(e.kind(), Kind::Unavailable, "{body}");
            assert!(e.to_string().contains(needle), "{body}: {e}");
            assert!(!e.to_string().contains("ya29.ok"), "never the token: {e}");
            assert!(!e.to_string().contains('\n') && !e.to_string().contains('\r'), "one line: {e:?}");
        }
    }

    #[test]
    fn token_types_and_tokens() {
        for good in ["Bearer", "bearer", "N_A", "DPoP", "urn:ietf:params:oauth:token-type:jwt", "https://x.example/t#a"]
        {
            assert!(check_token_type(good, "token_type", false).is_ok(), "{good}");
        }
        assert!(check_token_type(&"a".repeat(257), "token_type", false).is_err());
        assert!(check_token_type("1urn:x", "issued_token_type", true).is_err());
        assert_eq!(token_flaw("eyJ.eyJ.sig_-+/="), None);
        assert_eq!(token_flaw("a\tb"), Some("holds a control character"));
        assert_eq!(token_flaw(""), Some("is empty"));
    }

    #[test]
    fn expiry_sources() {
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"x","expires_in":"3599"}"#).unwrap();
        let at = t.expires_at(&Secret::new("x")).unwrap().unix();
        assert!((at - clock::now_unix() - 3599).abs() <= 2);
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"x","expires_on":"2000000000"}"#).unwrap();
        assert_eq!(t.expires_at(&Secret::new("x")).unwrap().to_string(), clock::rfc3339(2_000_000_000));
    }
}
