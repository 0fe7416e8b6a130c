//! The HTTP client every exchange uses: ureq over rustls (aws-lc-rs), strict URL policy,
//! time-outs always set, bounded bodies, error bodies kept, and retries with backoff.

use crate::core::error::{Error, Kind, Result};
use crate::core::secret::Secret;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

/// Largest response body read; token responses are a few kilobytes.
pub const MAX_BODY_BYTES: u64 = 1 << 20;

/// Client settings.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Time-out for one whole attempt (connect, send, receive).
    pub timeout: Duration,
    /// Retries after the first attempt for connection errors, 429 and 5xx.
    pub retries: u32,
    /// Give up retrying once this much time has passed since the first attempt.
    pub max_total: Duration,
    /// CA bundle for HTTPS instead of the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Tool name for retry messages on stderr.
    pub tool: String,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(30),
            retries: 3,
            max_total: Duration::from_secs(120),
            ca_file: None,
            tool: "wif".into(),
        }
    }
}

/// A response, its body read in full (up to `MAX_BODY_BYTES`).
#[derive(Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// Seconds from `Retry-After`, if given.
    pub retry_after: Option<u64>,
    /// The body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Response({}, {} body bytes)", self.status, self.body.len())
    }
}

impl Response {
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

/// Azure's instance metadata service: plain HTTP by design, link-local, never routed.
pub const AZURE_IMDS_HOST: &str = "169.254.169.254";

/// The scheme and host policy: `https://` anywhere, `http://` only to loopback (and the
/// link-local Azure metadata address, which is HTTP-only by design). The URL is split by
/// `http::Uri`, the parser ureq sends with, so the host judged here is the host connected to.
pub fn check_url(url: &str) -> Result<()> {
    let bad = |why: &str| Error::usage(format!("{url:?} {why}"));
    let uri: http::Uri = url.parse().map_err(|e| {
        bad(&format!("is not a valid URL ({e})"))
            .hint("write scheme://host[:port]/path, with spaces and other characters outside URLs percent-encoded")
    })?;
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return Err(bad("is not an absolute URL"));
    };
    // An IPv6 literal comes bracketed, as in the URL.
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if is_loopback(host) || host == AZURE_IMDS_HOST => Ok(()),
        "http" => Err(bad("uses http:// to a host that is not loopback")
            .hint("tokens travel only over https://; plain http:// is allowed for 127.0.0.1, ::1 and localhost (emulators, tests)")),
        _ => Err(bad("is not an http(s) URL")),
    }
}

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A request body.
pub enum Body<'a> {
    /// No body (GET).
    Empty,
    /// `application/x-www-form-urlencoded` fields.
    Form(&'a [(&'a str, &'a str)]),
    /// A JSON body.
    Json(&'a serde_json::Value),
}

/// One request.
pub struct Request<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The URL (checked by `check_url`).
    pub url: &'a str,
    /// Extra headers; values are not logged.
    pub headers: Vec<(&'a str, String)>,
    /// `Authorization: Bearer` token.
    pub bearer: Option<&'a Secret>,
    /// The body.
    pub body: Body<'a>,
}

/// An HTTP client with the project's policies built in.
pub struct Client {
    agent: ureq::Agent,
    opts: HttpOptions,
}

impl Client {
    /// Builds a client; fails if the CA file cannot be read.
    pub fn new(opts: HttpOptions) -> Result<Client> {
        crate::core::tls::install_crypto_provider();
        let roots = match crate::core::tls::roots(opts.ca_file.as_deref())? {
            Some(certs) => {
                RootCerts::from(certs.iter().map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned()))
            }
            None => RootCerts::WebPki,
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .root_certs(roots)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(opts.timeout.min(Duration::from_secs(10))))
            .timeout_global(Some(opts.timeout))
            .user_agent(concat!("wif/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Client { agent, opts })
    }

    /// Sends a request, retrying connection failures, 429 and 5xx with exponential backoff
    /// and jitter (honouring `Retry-After`) within the configured bounds. Returns the final
    /// response whatever its status; transport failures become `Unavailable` errors.
    pub fn send(&self, req: &Request<'_>) -> Result<Response> {
        check_url(req.url)?;
        check_request_headers(req)?;
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            let outcome = self.send_once(req);
            let retry_after = match &outcome {
                Ok(r) if r.status == 429 || r.status >= 500 => Some(r.retry_after),
                Ok(_) => None,
                Err(e) if e.kind() == Kind::Unavailable => Some(None),
                Err(_) => None,
            };
            let Some(retry_after) = retry_after else { return outcome };
            let delay = backoff(attempt, retry_after);
            if attempt >= self.opts.retries || start.elapsed() + delay > self.opts.max_total {
                return outcome;
            }
            attempt += 1;
            let why = match &outcome {
                Ok(r) => format!("HTTP {}", r.status),
                Err(e) => e.cause().to_string(),
            };
            let what = format!("{} {}", req.method, redact_query(req.url));
            let retry = crate::core::diag::Retry { attempt, of: Some(self.opts.retries), delay };
            crate::core::diag::retrying(&self.opts.tool, &what, &why, retry);
            std::thread::sleep(delay);
        }
    }

    fn send_once(&self, req: &Request<'_>) -> Result<Response> {
        let result = match req.method {
            "GET" => {
                let mut r = self.agent.get(req.url);
                for (k, v) in &req.headers {
                    r = r.header(*k, v.as_str());
                }
                if let Some(b) = req.bearer {
                    r = r.header("Authorization", format!("Bearer {}", b.expose()));
                }
                r.call()
            }
            _ => {
                let mut r = self.agent.post(req.url);
                for (k, v) in &req.headers {
                    r = r.header(*k, v.as_str());
                }
                if let Some(b) = req.bearer {
                    r = r.header("Authorization", format!("Bearer {}", b.expose()));
                }
                match req.body {
                    Body::Empty => r.send_empty(),
                    Body::Form(fields) => r.send_form(fields.iter().copied()),
                    Body::Json(v) => r.send_json(v),
                }
            }
        };
        let mut resp = result.map_err(|e| transport_error(&e, self.opts.timeout))?;
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let content_type = header("content-type");
        let retry_after = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok());
        let mut body = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(MAX_BODY_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| Error::new(Kind::Unavailable, format!("reading the response body failed: {e}")))?;
        if body.len() as u64 > MAX_BODY_BYTES {
            return Err(Error::new(
                Kind::Unavailable,
                format!("the response body is larger than {MAX_BODY_BYTES} bytes"),
            )
            .hint("is the URL right? token endpoints answer with a few kilobytes"));
        }
        Ok(Response { status, content_type, retry_after, body })
    }
}

/// Refuses, before anything is sent, a request header that would not arrive as one header:
/// a name that is not an HTTP token, or a value (a bearer token too) with a line break or
/// another control character.
fn check_request_headers(req: &Request<'_>) -> Result<()> {
    for (name, value) in &req.headers {
        if !is_header_name(name) {
            return Err(Error::input(format!("{name:?} is not an HTTP header name")));
        }
        if !is_header_value(value) {
            return Err(Error::input(format!(
                "the value of the {name} header holds a line break or a control character"
            )));
        }
    }
    if req.bearer.is_some_and(|b| !is_header_value(b.expose())) {
        return Err(Error::input("the bearer token holds a line break or a control character")
            .hint("a token is visible ASCII only; make it again"));
    }
    Ok(())
}

/// Whether `name` is an HTTP field name (an RFC 9110 token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` can go into an HTTP header as it is: visible ASCII, spaces and tabs
/// (RFC 9110 field-value without obs-text). A CR or LF would end the header there and let
/// whoever chose the value write headers, or a body, of their own.
pub fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// Appends `name: value` and CRLF to a response head being written, unless the name or the
/// value fails [`is_header_name`] / [`is_header_value`]: such a header is never sent.
/// Returns whether it was appended. Used by every server wif has (wif-serve, its metrics
/// listener, wif-get's metadata server).
pub fn push_header(head: &mut String, name: &str, value: &str) -> bool {
    if !is_header_name(name) || !is_header_value(value) {
        return false;
    }
    head.push_str(name);
    head.push_str(": ");
    head.push_str(value);
    head.push_str("\r\n");
    true
}

/// Backoff before retry `attempt` (0-based): 0.5 s, 1 s, 2 s, … capped at 8 s, with ±25 %
/// jitter; a server's `Retry-After` (capped at 60 s) wins.
pub fn backoff(attempt: u32, retry_after: Option<u64>) -> Duration {
    if let Some(s) = retry_after {
        return Duration::from_secs(s.min(60));
    }
    let base_ms = (500u64 << attempt.min(4)).min(8_000);
    let mut r = [0u8; 2];
    let _ = aws_lc_rs::rand::fill(&mut r);
    let jitter = u16::from_le_bytes(r) as u64 % (base_ms / 2 + 1);
    Duration::from_millis(base_ms - base_ms / 4 + jitter)
}

/// A URL without its query string (queries can carry tokens).
pub fn redact_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The rustls failure behind a transport error: ureq reports a failed handshake as
/// `Error::Rustls`, or (certificate verification during the handshake) as an `Error::Io`
/// that wraps the rustls error.
pub fn rustls_cause(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(t) => Some(t),
        ureq::Error::Io(io) => io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    }
}

fn transport_error(e: &ureq::Error, timeout: Duration) -> Error {
    use ureq::Error as E;
    if let Some(tls) = rustls_cause(e) {
        return tls_error(tls);
    }
    match e {
        E::Timeout(_) => Error::new(Kind::Unavailable, format!("no answer within {} s", timeout.as_secs()))
            .hint("the service is slow or unreachable; check the URL, proxies and firewalls"),
        E::HostNotFound => {
            Error::new(Kind::Unavailable, "the host name does not resolve").hint("check the URL and DNS")
        }
        E::ConnectionFailed => Error::new(Kind::Unavailable, "connection failed"),
        E::Io(io) => {
            use std::io::ErrorKind as K;
            let what = match io.kind() {
                K::ConnectionRefused => "connection refused".to_string(),
                K::ConnectionReset => "connection reset by the server".to_string(),
                K::TimedOut | K::WouldBlock => format!("no answer within {} s", timeout.as_secs()),
                K::UnexpectedEof => "the server closed the connection early".to_string(),
                _ => format!("network error: {}", io.kind()),
            };
            Error::new(Kind::Unavailable, what)
        }
        E::Tls(msg) => Error::new(Kind::Refused, format!("TLS failed: {msg}")),
        E::BodyExceedsLimit(n) => Error::new(Kind::Unavailable, format!("the response body is larger than {n} bytes")),
        E::TooManyRedirects | E::RedirectFailed => Error::new(Kind::Refused, "the server answered with a redirect")
            .hint("give the final URL; token endpoints do not redirect"),
        E::BadUri(u) => Error::usage(format!("bad URL {u:?}")),
        E::Protocol(p) => Error::new(Kind::Unavailable, format!("the server broke the HTTP protocol: {p}")),
        other => Error::new(Kind::Unavailable, format!("request failed: {other}")),
    }
}

/// Explains a rustls failure with a hint for certificate problems.
pub fn tls_error(e: &rustls::Error) -> Error {
    use rustls::{CertificateError as C, Error as R};
    let hint = match e {
        R::InvalidCertificate(C::UnknownIssuer) => Some(
            "the server's certificate does not chain to a trusted CA: give the CA bundle with --ca-file (or SSL_CERT_FILE); a chain from another CA hierarchy (e.g. CA 13 vs CA 13.1) fails here",
        ),
        R::InvalidCertificate(C::Expired) | R::InvalidCertificate(C::ExpiredContext { .. }) => {
            Some("the server's certificate has expired (or this machine's clock is wrong)")
        }
        R::InvalidCertificate(C::NotValidForName) | R::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            Some("the certificate is not issued for the host in the URL; use the name in its SAN")
        }
        R::AlertReceived(_) => Some("the server refused the handshake; for mTLS check that the client certificate is issued by the CA the server trusts and has clientAuth usage"),
        _ => None,
    };
    let err = Error::new(Kind::Refused, format!("TLS handshake failed: {e}"));
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

/// RFC 3986's unreserved characters, the only ones a query component keeps as they are.
const COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes a query-string component (RFC 3986 unreserved characters stay).
pub fn encode_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// Appends `key=value` pairs to a URL's query string.
pub fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut u = url.to_string();
    for (k, v) in pairs {
        u.push(if u.contains('?') { '&' } else { '?' });
        u.push_str(&encode_component(k));
        u.push('=');
        u.push_str(&encode_component(v));
    }
    u
}

/// Decodes `application/x-www-form-urlencoded` text (also query strings).
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Percent-decoding; `plus` turns `+` into a space (forms). A `%` not followed by two hex
/// digits stays as it is, and bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(s: &str, plus: bool) -> String {
    let spaced;
    let s = if plus && s.contains('+') {
        spaced = s.replace('+', " ");
        &spaced
    } else {
        s
    };
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The reason phrase of a status that wif's servers send.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_policy() {
        for ok in [
            "https://login.microsoftonline.com/t/oauth2/v2.0/token",
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://[::1]:9/x",
            "http://127.5.5.5/",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://sts.googleapis.com/v1/token",
            "http://10.0.0.1/",
            "ftp://127.0.0.1/",
            "sts.googleapis.com",
            "http:///x",
            "http://localhost.evil.com/",
        ] {
            let e = check_url(bad).unwrap_err();
            assert_eq!(e.kind(), Kind::Usage, "{bad}");
        }
    }

    /// The host judged is the one a request goes to (http::Uri, as ureq splits the URL):
    /// userinfo, a query or a fragment cannot smuggle a loopback name past the policy.
    #[test]
    fn url_policy_edge_cases() {
        for ok in [
            "HTTP://127.0.0.1/",
            "http://user:pw@127.0.0.1/",
            "http://evil.example@127.0.0.1/",
            "http://[0:0:0:0:0:0:0:1]:8080/x",
            "http://127.0.0.1?x",
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://127.0.0.1@evil.example/", "not loopback"),
            ("http://127.0.0.1:pw@evil.example/", "not loopback"),
            ("http://evil.example#@127.0.0.1/", "not loopback"),
            ("http://evil.example?@127.0.0.1/", "not loopback"),
            ("http://[::ffff:127.0.0.1]/", "not loopback"),
            ("http://127.1/", "not loopback"),
            ("http://localhost./", "not loopback"),
            ("https://:443/", "has no host"),
            ("https:a", "not an absolute URL"),
            ("http://::1/", "not a valid URL"),
            ("http://[::1/", "not a valid URL"),
            ("https://a b/", "not a valid URL"),
            ("https://", "not a valid URL"),
            ("ws://127.0.0.1/", "not an http(s) URL"),
        ] {
            let e = check_url(bad).unwrap_err();
            assert_eq!(e.kind(), Kind::Usage, "{bad}");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn query_components_keep_only_unreserved_characters() {
        assert_eq!(encode_component("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(encode_component("api://x/.default y+z&=%"), "api%3A%2F%2Fx%2F.default%20y%2Bz%26%3D%25");
        assert_eq!(encode_component("caf\u{e9} \u{1F600}"), "caf%C3%A9%20%F0%9F%98%80");
        assert_eq!(with_query("https://h/p?a=1", &[("b c", "d/e")]), "https://h/p?a=1&b%20c=d%2Fe");
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%2fb%2Fc", false), "a/b/c");
        assert_eq!(percent_decode("a+b%2B", true), "a b+");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("%zz%4%", true), "%zz%4%");
        assert_eq!(percent_decode("%+1", false), "%+1");
        assert_eq!(percent_decode("%C3%A9%FF", false), "\u{e9}\u{fffd}");
    }

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        for a in 0..6 {
            let d = backoff(a, None).as_millis() as u64;
            let base = (500u64 << a.min(4)).min(8000);
            assert!(d >= base - base / 4 && d <= base + base / 4, "{a}: {d}");
        }
        assert_eq!(backoff(0, Some(7)).as_secs(), 7);
        assert_eq!(backoff(0, Some(9999)).as_secs(), 60);
    }

    #[test]
    fn headers_that_would_split_are_never_written() {
        let mut head = String::new();
        assert!(push_header(&mut head, "X-Token-Type", "access_token"));
        assert!(push_header(&mut head, "Content-Type", "text/html; charset=UTF-8"));
        for (name, value) in [
            ("X-Token-Type", "Bearer\r\nX-Injected: yes"),
            ("X-Token-Type", "Bearer\nX-Injected: yes"),
            ("X-Token-Type", "Bearer\r"),
            ("X-Token-Type", "a\0b"),
            ("X-Token-Type", "a\u{7f}"),
            ("X-Token-Type", "caf\u{e9}"),
            ("X-Bad Name", "v"),
            ("X-Bad:Name", "v"),
            ("", "v"),
        ] {
            assert!(!push_header(&mut head, name, value), "{name:?}: {value:?}");
        }
        assert_eq!(head, "X-Token-Type: access_token\r\nContent-Type: text/html; charset=UTF-8\r\n");
    }

    #[test]
    fn requests_with_headers_that_would_split_are_not_sent() {
        let client = Client::new(HttpOptions::default()).unwrap();
        let injected = Secret::new("ya29.token\r\nX-Injected: yes");
        for req in [
            Request {
                method: "GET",
                url: "http://127.0.0.1:9/",
                headers: vec![("Metadata", "true\r\nX: y".into())],
                bearer: None,
                body: Body::Empty,
            },
            Request {
                method: "GET",
                url: "http://127.0.0.1:9/",
                headers: vec![("Bad Name", "v".into())],
                bearer: None,
                body: Body::Empty,
            },
            Request {
                method: "GET",
                url: "http://127.0.0.1:9/",
                headers: vec![],
                bearer: Some(&injected),
                body: Body::Empty,
            },
        ] {
            assert_eq!(client.send(&req).unwrap_err().kind(), Kind::Input);
        }
    }

    #[test]
    fn query_strings_are_not_logged() {
        assert_eq!(redact_query("https://x/y?token=abc"), "https://x/y");
    }
}
