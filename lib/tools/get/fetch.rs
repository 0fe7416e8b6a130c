//! The fetch itself: one GET over mutual TLS (or with a bearer token) with the shared
//! client, the answer judged (the token, or why there is none) and failures told in
//! wif-get's words.

use super::args::TOOL;
use super::identity::{BearerToken, Credential, Identity};
use super::plan::Plan;
use crate::core::error::{Error, Kind, Result};
use crate::core::secret::Secret;
use crate::http::failure::IoDetail;
use crate::http::{
    Attempt, Body, Client, GiveUp, Handshake, HttpOptions, Request, Response, Roots, Status, TlsFailure, Wording, Words,
};
use rustls_pki_types::CertificateDer;
use serde::Deserialize;

/// The response header carrying the token's expiry (RFC 3339), set by wif-serve.
pub const EXPIRES_HEADER: &str = "x-token-expires-at";
/// The response header carrying the token's type, set by wif-serve.
pub const TYPE_HEADER: &str = "x-token-type";
/// Largest token accepted; real tokens are a few kilobytes.
pub const MAX_TOKEN_BYTES: u64 = 64 * 1024;
/// Most characters of a server's error message quoted in wif-get's own.
const MAX_REASON_CHARS: usize = 300;

/// A successful answer.
pub(crate) struct Answer {
    /// The HTTP status (200).
    pub(crate) status: u16,
    /// The token.
    pub(crate) token: Secret,
    /// The server's X-Token-Expires-At, if sent.
    pub(crate) expires_header: Option<String>,
    /// The server's X-Token-Type, if sent and not empty.
    pub(crate) token_type: Option<String>,
}

/// The shared HTTP client as wif-get uses it: the client certificate presented (none with a
/// bearer token), only `roots` trusted, retries within --retries and --max-time, answers up
/// to a token's size.
pub(crate) fn client(plan: &Plan, credential: &Credential, roots: Vec<CertificateDer<'static>>) -> Result<Client> {
    Client::new(HttpOptions {
        timeout: plan.timeout,
        retries: plan.retries,
        max_total: plan.max_time,
        give_up: GiveUp::Firmly { flag: "--max-time" },
        roots: Roots::Only(roots),
        identity: credential.tls(),
        max_body: MAX_TOKEN_BYTES,
        user_agent: concat!("wif-get/", env!("CARGO_PKG_VERSION")),
        tool: TOOL.into(),
        wording: match credential {
            Credential::Certificate(_) => &WORDING,
            Credential::Bearer(_) => &BEARER_WORDING,
        },
        ..Default::default()
    })
}

/// Fetches the token: GET --url (with the bearer token, if that is the credential), the
/// answer judged by [`judge`].
pub(crate) fn fetch(client: &Client, plan: &Plan, credential: &Credential) -> Result<Answer> {
    let request = Request {
        method: "GET",
        url: &plan.url,
        headers: vec![("Accept", "text/plain, application/jwt, */*".into())],
        bearer: credential.bearer(),
        body: Body::Empty,
    };
    client.exchange(&request, |resp| judge(resp, credential))
}

/// What one answer comes to: the token from a 200, or why there is none (and whether
/// asking again may help).
fn judge(resp: Response, credential: &Credential) -> Attempt<Answer> {
    if resp.status != 200 {
        let error = match credential {
            Credential::Bearer(token) if Status::of(resp.status) == Status::Denied => bearer_refused(&resp, token),
            Credential::Bearer(_) => status_error(&resp, None),
            Credential::Certificate(id) => status_error(&resp, Some(id)),
        };
        if Status::of(resp.status).retries() {
            return Attempt::Again { why: error.to_string(), retry_after: resp.retry_after, last: Err(error) };
        }
        return Attempt::Done(Err(error));
    }
    if resp.cut_at.is_some() {
        return Attempt::Done(Err(Error::input(format!(
            "the answer is larger than {MAX_TOKEN_BYTES} bytes; that is not a token"
        ))
        .hint("is the URL the /get_wif_token route of wif-serve?")));
    }
    let expires_header = resp.header(EXPIRES_HEADER).map(str::to_string);
    let token_type = resp.header(TYPE_HEADER).filter(|t| !t.is_empty()).map(str::to_string);
    Attempt::Done(parse_token(resp.body).map(|token| Answer { status: 200, token, expires_header, token_type }))
}

/// The token from a 200 body: UTF-8, no whitespace inside (a trailing newline is dropped).
fn parse_token(body: Vec<u8>) -> Result<Secret> {
    let text = String::from_utf8(body).map_err(|_| Error::input("the answer is not text; that is not a token"))?;
    let token = text.trim_matches(['\r', '\n']);
    match crate::core::token::bare_token(token) {
        Ok(token) => Ok(Secret::new(token)),
        Err(_) if token.is_empty() => Err(Error::new(Kind::Unavailable, "the server answered 200 with an empty body")
            .hint("the server's token file is empty; check its refresh job")),
        Err(flaw) => Err(Error::input(format!("the answer {flaw}; that is not a token"))
            .hint("is the URL the /get_wif_token route of wif-serve?")),
    }
}

/// The `message` of a JSON error body (wif-serve's `{"error": code, "message": why}`, which
/// names no server path), fit to quote (`secret::quote`: a server could echo a secret), at
/// most MAX_REASON_CHARS characters. Any other body
/// (the seed's HTML, a proxy's page) gives none.
fn server_reason(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: String,
    }
    let body: ErrorBody = serde_json::from_slice(body).ok()?;
    let reason = crate::core::secret::quote(&body.message, MAX_REASON_CHARS);
    (!reason.is_empty()).then_some(reason)
}

/// The error for a 401 or 403 to a bearer token (never retried): the server's reason quoted,
/// and a hint at what to check, from the token's claims (read without verifying).
fn bearer_refused(resp: &Response, token: &BearerToken) -> Error {
    let code = resp.status;
    let because = server_reason(&resp.body).map(|r| format!(": {r}")).unwrap_or_default();
    let file = token.file.display();
    let who = token.who();
    let (why, hint) = if code == 401 {
        (
            format!("the server refused the bearer token (HTTP 401){because}"),
            format!(
                "the token from {file} ({who}) must come from an issuer the server trusts (wif-serve --bearer-issuers), \
                 name the server in its audience, be unexpired and within the server's maximum lifetime; check what writes \
                 the file: a Kubernetes projected volume (serviceAccountToken audience, expirationSeconds) or a job asking \
                 GitHub's ACTIONS_ID_TOKEN_REQUEST_URL with &audience="
            ),
        )
    } else {
        (
            format!("the server refused this client (HTTP {code}){because}"),
            format!(
                "the token verified but its issuer and subject ({who}) are not on the server's allow-list or match no rule \
                 of its policy; ask its operator to allow them (wif-serve --allow bearer:ISSUER:SUB, or a policy rule with \
                 issuer and sub)"
            ),
        )
    };
    Error::new(Kind::Refused, why).hint(hint)
}

/// The error for an answer other than 200: its kind from the shared [`Status`], the words
/// wif-get's (the client certificate's subject, if any, for a refusal; the server's reason
/// for a 5xx).
fn status_error(resp: &Response, id: Option<&Identity>) -> Error {
    let status = Status::of(resp.status);
    let code = resp.status;
    let because = server_reason(&resp.body).map(|r| format!(": {r}")).unwrap_or_default();
    let (why, hint) = match status {
        Status::Denied => (
            format!("the server refused this client (HTTP {code})"),
            id.map(|id| format!(
                "the certificate verified but is not on the server's allow-list; ask its operator to allow subject \"{}\" (SHA-256 {})",
                id.subject, id.sha256
            )),
        ),
        Status::NotFound => (
            "the server has no such route (HTTP 404)".into(),
            Some("the token is served at https://HOST:PORT/get_wif_token".into()),
        ),
        // With a bearer token, a 503 may also mean the server has no keys of its issuer yet.
        Status::Unavailable if id.is_none() => (
            format!("the server cannot give a token now (HTTP 503){because}"),
            Some("its token is missing or expired (check its refresh job), or it has no keys of the bearer token's issuer yet (check that wif-serve can fetch the issuer's JWKS)".into()),
        ),
        Status::Unavailable => (
            format!("the server has no fresh token to give (HTTP 503){because}"),
            Some("the server's token is missing or expired: check the refresh job (wif-sign | … | wif-impersonate --token-out) on the server".into()),
        ),
        Status::Failing => (format!("the server failed (HTTP {code}){because}"), None),
        Status::Success | Status::Unexpected => (
            format!("the server answered HTTP {code}"),
            Some("wif-get expects 200 with the token from GET /get_wif_token".into()),
        ),
    };
    Error::new(status.kind(), why).hint_if(hint)
}

/// How wif-get tells of transport failures: in terms of wif-serve and of its own flags.
pub(crate) const WORDING: Wording = Wording {
    refused_hint: Some("nothing listens at that address: is wif-serve running, and is the port right?"),
    reset: "the server reset the connection",
    closed_early: "the server closed the connection without answering",
    timeout_hint: None,
    network: IoDetail::Words,
    host_hint: "check the host in --url and DNS",
    redirect_hint: "give the final URL",
    body_read: "reading the answer failed",
    handshake: handshake_words,
    no_usable_root: "--ca holds no usable CA certificate",
    unusable_identity: "loading --cert and --key",
};

/// How wif-get tells of transport failures when it presents a bearer token: as [`WORDING`],
/// but a server that refuses the handshake wants a client certificate.
pub(crate) const BEARER_WORDING: Wording = Wording { handshake: bearer_handshake_words, ..WORDING };

/// Explains a TLS failure when no client certificate was presented: the server's alert
/// means it requires one, so it does not take bearer tokens.
fn bearer_handshake_words(f: &TlsFailure) -> Words {
    match &f.what {
        Handshake::Alert(alert) => Words {
            what: format!("the server requires a client certificate (TLS alert {alert:?}); --bearer-file presents none"),
            hint: Some("the server does not accept bearer tokens: wif-serve takes them only with --bearer-issuers; otherwise use --cert/--key"),
        },
        Handshake::Other => Words {
            what: format!("TLS failed: {}", f.error),
            hint: Some("check --ca and the host in --url against the server's setup"),
        },
        _ => handshake_words(f),
    }
}

/// Explains a TLS failure: whose certificate failed, and what to check.
fn handshake_words(f: &TlsFailure) -> Words {
    let (what, hint) = match &f.what {
        Handshake::UnknownIssuer => (
            "the server's certificate is not issued by a CA in --ca".to_string(),
            "give the CA chain that issued the server's certificate with --ca; certificates from another CA hierarchy (e.g. CA 13 vs CA 13.1) fail here",
        ),
        Handshake::WrongHost => (
            "the server's certificate is not issued for the host in --url".to_string(),
            "use the host name or address listed in the server certificate's subjectAltName (openssl x509 -noout -ext subjectAltName -in server.crt)",
        ),
        Handshake::Expired => (
            "the server's certificate has expired".to_string(),
            "renew the server certificate (or fix this machine's clock)",
        ),
        Handshake::Certificate(other) => (
            format!("the server's certificate was rejected: {other:?}"),
            "check the server certificate and --ca",
        ),
        Handshake::Alert(alert) => (
            format!("the server refused our client certificate (TLS alert {alert:?})"),
            "the server does not accept --cert: it must be issued by a CA the server trusts (same hierarchy, e.g. CA 13 not CA 13.1), be unexpired and unrevoked, and allow clientAuth",
        ),
        Handshake::Other => {
            (format!("TLS failed: {}", f.error), "check --cert, --key and --ca against the server's setup")
        }
    };
    Words { what, hint: Some(hint) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classification is shared; the words are wif-get's, naming its flags and wif-serve.
    #[test]
    fn transport_failures_in_wif_gets_words() {
        use crate::http::Trouble;
        let refused = Trouble::Refused.error(&WORDING);
        assert_eq!((refused.kind(), refused.to_string()), (Kind::Unavailable, "connection refused".to_string()));
        assert!(refused.hint_text().unwrap().contains("is wif-serve running"));
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let tls = Trouble::Handshake(TlsFailure { what: Handshake::of(&unknown), error: unknown }).error(&WORDING);
        assert_eq!(tls.kind(), Kind::Refused);
        assert_eq!(tls.to_string(), "TLS handshake failed: the server's certificate is not issued by a CA in --ca");
        assert!(tls.hint_text().unwrap().contains("CA 13.1"));
    }

    #[test]
    fn token_bodies() {
        assert_eq!(parse_token(b"abc.def\n".to_vec()).unwrap().expose(), "abc.def");
        assert!(parse_token(b"\n".to_vec()).is_err());
        assert!(parse_token(b"<html> error </html>".to_vec()).is_err());
        assert!(parse_token(vec![0xff, 0xfe]).is_err());
    }

    #[test]
    fn the_servers_reason_is_quoted_scrubbed_and_bounded() {
        let body = |message: &str| serde_json::json!({"error": "token_unavailable", "message": message}).to_string();
        assert_eq!(server_reason(body("there is no token file").as_bytes()).as_deref(), Some("there is no token file"));
        // Not JSON (the seed's HTML), no message, an empty one: nothing to quote.
        assert_eq!(server_reason(b"<html>Service Unavailable</html>"), None);
        assert_eq!(server_reason(br#"{"error":"x"}"#), None);
        assert_eq!(server_reason(body(" \n ").as_bytes()), None);
        // A token in the message never reaches the error; neither do line breaks.
        let leaky =
            server_reason(body("expired: ya29.a0AfH6SMBleakedleakedleaked\r\nX-Injected: 1").as_bytes()).unwrap();
        assert!(!leaky.contains("ya29.a0AfH6SMB") && !leaky.contains('\n') && !leaky.contains('\r'), "{leaky}");
        let long = server_reason(body(&"why ".repeat(500)).as_bytes()).unwrap();
        assert_eq!(long.chars().count(), MAX_REASON_CHARS + 1, "{long}");
        assert!(long.ends_with('…'));
    }
}
