//! A response as the client hands it over: status, headers, the body read up to a limit.

use crate::core::error::{Error, Kind, Result};

/// A response, its body read in full up to the client's limit ([`MAX_BODY_BYTES`] unless
/// set otherwise). Its `Debug` shows the status and the body's length, never the body.
#[derive(Clone, Default)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// Seconds from `Retry-After`, if given.
    pub retry_after: Option<u64>,
    /// The body.
    pub body: Vec<u8>,
    /// The header fields, as received (names in lower case).
    pub headers: Vec<(String, String)>,
    /// `Some(limit)` when the body was longer than the limit and was cut after it.
    pub cut_at: Option<u64>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Response({}, {} body bytes)", self.status, self.body.len())
    }
}

impl Response {
    /// A header's value, trimmed (`name` in lower case), if the answer has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim())
    }

    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Decodes a JSON body, with a clear message for truncated or non-JSON bodies.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let what = if self.body.is_empty() {
                "an empty body".to_string()
            } else if e.is_eof() {
                "a truncated JSON body".to_string()
            } else if !self.is_json_type() {
                format!("a body that is not JSON (content type {})", self.content_type.as_deref().unwrap_or("none"))
            } else {
                format!("JSON that does not fit ({})", crate::core::document::scrub(&e))
            };
            Error::new(Kind::Unavailable, format!("the server answered HTTP {} with {what}", self.status))
        })
    }

    fn is_json_type(&self) -> bool {
        self.content_type.as_deref().is_some_and(|c| c.contains("json"))
    }

    /// A short, printable excerpt of a non-JSON error body (HTML error pages, proxies).
    pub fn excerpt(&self) -> String {
        let quoted = crate::core::secret::quote(&String::from_utf8_lossy(&self.body), 160);
        if quoted.is_empty() {
            "(empty body)".into()
        } else {
            quoted
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_body() {
        let resp = Response {
            status: 200,
            body: b"ya29.secret-token".to_vec(),
            headers: vec![("x-token-type".into(), " Bearer ".into())],
            ..Default::default()
        };
        assert_eq!(format!("{resp:?}"), "Response(200, 17 body bytes)");
        assert_eq!(resp.header("x-token-type"), Some("Bearer"));
    }
}
