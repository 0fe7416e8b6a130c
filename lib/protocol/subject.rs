//! Reading a subject token another system made: from a file or a URL, the whole content or
//! one field of its JSON, refused when it is not a token. wif-azure (--from-file, --from-url,
//! GitHub Actions) and wif-sts (a credential configuration's credential_source) both read here.

use crate::core::error::{Context, Error, Result};
use crate::core::secret::Secret;
use crate::http::{self, Body, Client, Request, Response};
use crate::protocol::oauth::{self, Service};
use std::path::Path;

/// Extracts the token from text content: the whole (trimmed) content, or a JSON field;
/// refuses one that is not a token (spaces, line breaks, control or non-ASCII characters).
pub fn token_from_content(content: &[u8], field: Option<&str>) -> Result<Secret> {
    let token = any_token_from_content(content, field)?;
    match crate::core::token::token_flaw(token.expose()) {
        // Empty tokens get their own message from the callers.
        Some(flaw) if !token.is_empty() => Err(Error::input(format!("the token {flaw}"))
            .hint("a token is visible ASCII only: is this the right file, URL or --field?")),
        _ => Ok(token),
    }
}

fn any_token_from_content(content: &[u8], field: Option<&str>) -> Result<Secret> {
    match field {
        None => {
            let text = std::str::from_utf8(content).map_err(|_| Error::input("the token is not UTF-8 text"))?;
            Ok(Secret::new(text.trim()))
        }
        Some(f) => {
            let v: serde_json::Value = serde_json::from_slice(content)
                .map_err(|_| Error::input(format!("the content is not JSON, so it has no field {f:?}")))?;
            match v.get(f) {
                Some(serde_json::Value::String(s)) => Ok(Secret::new(s.trim())),
                Some(_) => Err(Error::input(format!("the JSON field {f:?} is not a string"))),
                None => Err(Error::input(format!("the JSON has no field {f:?}"))),
            }
        }
    }
}

/// Reads the subject token from a file (see [`token_from_content`]); `explain` may add to
/// an error reading the file (e.g. which setting named it), not to one about its content.
pub fn read_file(path: &Path, field: Option<&str>, explain: impl FnOnce(Error) -> Error) -> Result<Secret> {
    let doing = format!("reading the subject token from {}", path.display());
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e)).context(doing.clone()).map_err(explain)?;
    token_from_content(&bytes, field).context(doing)
}

/// A URL serving a subject token.
pub struct UrlSource<'a> {
    /// The URL (GET).
    pub url: &'a str,
    /// Headers to send with it.
    pub headers: Vec<(&'a str, String)>,
    /// The JSON field holding the token, or `None` when the whole content is the token.
    pub field: Option<&'a str>,
}

/// Fetches the subject token from a URL (see [`token_from_content`]).
pub fn fetch(client: &Client, src: UrlSource<'_>) -> Result<Secret> {
    let doing = format!("fetching the subject token from {}", http::redact_query(src.url));
    let resp = get_ok(client, src.url, src.headers, None).context(doing.clone())?;
    token_from_content(&resp.body, src.field).context(doing)
}

/// Asks GitHub Actions' OIDC token service (`ACTIONS_ID_TOKEN_REQUEST_URL`, with the
/// request token as bearer) for a token, for `audience` if given.
pub fn github_actions(client: &Client, request_url: &str, bearer: &Secret, audience: Option<&str>) -> Result<Secret> {
    let url = match audience {
        Some(a) => http::with_query(request_url, &[("audience", a)]),
        None => request_url.to_string(),
    };
    let doing = "requesting the GitHub Actions OIDC token";
    let resp = get_ok(client, &url, vec![], Some(bearer)).context(doing)?;
    token_from_content(&resp.body, Some("value")).context(doing)
}

fn get_ok(client: &Client, url: &str, headers: Vec<(&str, String)>, bearer: Option<&Secret>) -> Result<Response> {
    let resp = client.send(&Request { method: "GET", url, headers, bearer, body: Body::Empty })?;
    oauth::check(resp, Service::Oauth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_extraction() {
        assert_eq!(token_from_content(b"  abc.def.ghi\n", None).unwrap().expose(), "abc.def.ghi");
        assert_eq!(token_from_content(br#"{"value":"t"}"#, Some("value")).unwrap().expose(), "t");
        assert!(token_from_content(br#"{"value":1}"#, Some("value")).is_err());
        assert!(token_from_content(b"plain", Some("value")).is_err());
        assert!(token_from_content(&[0xff, 0xfe], None).is_err());
    }
}
