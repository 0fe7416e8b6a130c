//! HTTP/1.1 for one purpose: small GET/HEAD requests without bodies. Request heads are
//! bounded (`MAX_HEAD`), bodies are refused, and everything else is a clear 4xx.

use std::io::{ErrorKind, Read};

/// The most bytes a request line plus headers may take.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most header lines a request may have.
pub const MAX_HEADERS: usize = 64;

/// The path that serves the token.
pub const TOKEN_PATH: &str = "/get_wif_token";
/// The health route.
pub const HEALTH_PATH: &str = "/healthz";

/// A parsed request head (all the server reads of a request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target's path, without the query.
    pub path: String,
    /// The query after `?`, empty when there is none.
    pub query: String,
    /// Whether the client wants the connection kept open afterwards.
    pub keep_alive: bool,
    /// Whether the request announces a body (which is refused).
    pub has_body: bool,
    /// The Content-Length, 0 when absent (a chunked body has `has_body` and 0 here).
    pub content_length: u64,
}

/// A request that cannot be served, with the status to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 413 or 431.
    pub status: u16,
    /// Why, for the log and the error body.
    pub reason: &'static str,
}

/// What the bytes received so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole request head that took this many bytes.
    Complete(Request, usize),
    /// More bytes are needed.
    Partial,
    /// A request that cannot be served.
    Invalid(Refusal),
}

fn refuse(status: u16, reason: &'static str) -> Parsed {
    Parsed::Invalid(Refusal { status, reason })
}

/// Parses a request head from the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    parse_with(buf, &mut |_, _| {})
}

/// [`parse`], also handing every header of a complete head to `on_header` (name, value),
/// for callers that need more of the head than [`Request`] keeps.
pub fn parse_with(buf: &[u8], on_header: &mut dyn FnMut(&str, &[u8])) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return refuse(431, "the request line and headers are too large")
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return refuse(431, "too many header lines"),
        Err(httparse::Error::Version) => return refuse(400, "not an HTTP/1.x request"),
        Err(_) => return refuse(400, "malformed request"),
    };
    if len > MAX_HEAD {
        return refuse(431, "the request line and headers are too large");
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return refuse(400, "malformed request");
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if !path.starts_with('/') {
        return refuse(400, "the request target must be a path");
    }
    let mut keep_alive = minor >= 1;
    let mut has_body = false;
    let mut content_length: Option<u64> = None;
    for h in req.headers.iter() {
        on_header(h.name, h.value);
        let value = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            has_body = true;
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let Ok(n) = value.trim().parse::<u64>() else { return refuse(400, "invalid Content-Length") };
            if content_length.is_some_and(|m| m != n) {
                return refuse(400, "conflicting Content-Length headers");
            }
            content_length = Some(n);
            has_body |= n > 0;
        }
    }
    let request = Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        keep_alive,
        has_body,
        content_length: content_length.unwrap_or(0),
    };
    Parsed::Complete(request, len)
}

/// How reading a request ended.
#[derive(Debug)]
pub enum Incoming {
    /// A request head; the bytes after it stay in the buffer.
    Request(Request),
    /// A request that cannot be served.
    Invalid(Refusal),
    /// The client closed the connection (or sent nothing) between requests.
    Closed,
    /// The client went quiet: idle time-out.
    TimedOut,
    /// The client closed the connection in the middle of a request, or another I/O error.
    Broken(std::io::Error),
}

/// Reads one request head from `r`. `buf` holds bytes already received (pipelining) and
/// keeps what follows the head. A server that must tell a connection waiting between
/// requests from one whose request has begun calls [`await_request`] first.
pub fn read_request(r: &mut impl Read, buf: &mut Vec<u8>) -> Incoming {
    read_request_with(r, buf, &mut |_, _| {})
}

/// [`read_request`], handing the request's headers to `on_header` as [`parse_with`] does.
pub fn read_request_with(r: &mut impl Read, buf: &mut Vec<u8>, on_header: &mut dyn FnMut(&str, &[u8])) -> Incoming {
    loop {
        if !buf.is_empty() {
            match parse_with(buf, on_header) {
                Parsed::Complete(req, n) => {
                    buf.drain(..n);
                    return Incoming::Request(req);
                }
                Parsed::Invalid(r) => return Incoming::Invalid(r),
                Parsed::Partial => {}
            }
        }
        if let Err(end) = fill(r, buf) {
            return end;
        }
    }
}

/// Waits until the next request's first bytes are in `buf` (at once if some already are):
/// `None` then, else how the wait ended (closed, timed out, broken). Lets a server tell a
/// connection waiting between requests from one whose request has begun.
pub fn await_request(r: &mut impl Read, buf: &mut Vec<u8>) -> Option<Incoming> {
    while buf.is_empty() {
        if let Err(end) = fill(r, buf) {
            return Some(end);
        }
    }
    None
}

/// Reads once into `buf` (up to `MAX_HEAD` in all); `Err` with how reading ended.
fn fill(r: &mut impl Read, buf: &mut Vec<u8>) -> Result<(), Incoming> {
    let mut chunk = [0u8; 4096];
    let room = MAX_HEAD.saturating_sub(buf.len()).clamp(1, chunk.len());
    match r.read(&mut chunk[..room]) {
        Ok(0) if buf.is_empty() => Err(Incoming::Closed),
        Ok(0) => Err(Incoming::Broken(ErrorKind::UnexpectedEof.into())),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Err(Incoming::TimedOut),
        // A client that closes without close_notify between requests is common (curl does).
        Err(e) if e.kind() == ErrorKind::UnexpectedEof && buf.is_empty() => Err(Incoming::Closed),
        Err(e) => Err(Incoming::Broken(e)),
    }
}

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET`/`HEAD /get_wif_token`.
    Token,
    /// `GET`/`HEAD /healthz`.
    Health,
    /// A known path with another method: 405.
    MethodNotAllowed,
    /// Anything else: 404.
    NotFound,
}

/// Routes a request.
pub fn route(method: &str, path: &str) -> Route {
    let known = match path {
        TOKEN_PATH => Route::Token,
        HEALTH_PATH => Route::Health,
        _ => return Route::NotFound,
    };
    match method {
        "GET" | "HEAD" => known,
        _ => Route::MethodNotAllowed,
    }
}

/// An answer: status, content type, extra headers and body.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Headers beyond the standard ones.
    pub headers: Vec<(&'static str, String)>,
    /// The body (left out of the wire for HEAD).
    pub body: Vec<u8>,
    /// Why the request was refused, for the log.
    pub reason: Option<String>,
}

impl Response {
    /// A JSON answer.
    pub fn json(status: u16, body: &impl serde::Serialize) -> Response {
        let mut bytes = serde_json::to_vec(body).unwrap_or_default();
        bytes.push(b'\n');
        Response { status, content_type: "application/json", headers: Vec::new(), body: bytes, reason: None }
    }

    /// A JSON error answer `{"error": code, "message": text}`.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(status, &serde_json::json!({"error": code, "message": message}))
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Records why the request was refused (for the log only).
    pub fn because(mut self, reason: impl Into<String>) -> Response {
        self.reason = Some(reason.into());
        self
    }

    /// The bytes on the wire; `head_only` for HEAD (Content-Length still tells the size).
    ///
    /// A header whose value would split the head (CR, LF, NUL or another control
    /// character, e.g. a token type from a tampered metadata file) is left out and the
    /// omission logged: the client gets the answer without that header, never a header
    /// of someone else's making.
    pub fn to_bytes(&self, head_only: bool, keep_alive: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, crate::http::reason_phrase(self.status));
        let length = self.body.len().to_string();
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let standard = [
            ("Content-Type", self.content_type),
            ("Content-Length", length.as_str()),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("Connection", connection),
        ];
        for (name, value) in standard.into_iter().chain(self.headers.iter().map(|(k, v)| (*k, v.as_str()))) {
            if !crate::http::push_header(&mut head, name, value) {
                crate::tools::serve::log::Event::new("header_refused")
                    .what(name)
                    .reason("its value holds a line break or a control character; the answer went without it")
                    .emit();
            }
        }
        head.push_str("\r\n");
        out.extend_from_slice(head.as_bytes());
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (Request, usize) {
        match parse(buf) {
            Parsed::Complete(r, n) => (r, n),
            other => panic!("not complete: {other:?}"),
        }
    }

    fn status(buf: &[u8]) -> u16 {
        match parse(buf) {
            Parsed::Invalid(r) => r.status,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn simple_get_with_query_and_keep_alive() {
        let raw = b"GET /get_wif_token?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /next";
        let (r, n) = complete(raw);
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, TOKEN_PATH);
        assert!(r.keep_alive && !r.has_body);
        assert_eq!(&raw[n..], b"GET /next");
    }

    #[test]
    fn connection_header_and_http10() {
        assert!(!complete(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").0.keep_alive);
        assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").0.keep_alive);
        assert!(complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").0.keep_alive);
    }

    #[test]
    fn partial_until_the_blank_line() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Parsed::Partial);
        assert_eq!(parse(b"GE"), Parsed::Partial);
    }

    #[test]
    fn bodies_are_flagged() {
        assert!(complete(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").0.has_body);
        assert!(complete(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").0.has_body);
        assert!(!complete(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").0.has_body);
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), 400);
    }

    #[test]
    fn garbage_and_oversized_heads_are_refused() {
        assert_eq!(status(b"\x16\x03\x01\x00garbage\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), 400);
        assert_eq!(status(b"GET example.org HTTP/1.1\r\n\r\n"), 400);
        let mut big = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat(b'a').take(MAX_HEAD));
        assert_eq!(status(&big), 431);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(status(&many), 431);
    }

    #[test]
    fn reading_keeps_pipelined_bytes_and_sees_eof() {
        let mut input = std::io::Cursor::new(b"GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\n".to_vec());
        let mut buf = Vec::new();
        assert!(matches!(read_request(&mut input, &mut buf), Incoming::Request(r) if r.path == "/a"));
        assert!(matches!(read_request(&mut input, &mut buf), Incoming::Request(r) if r.method == "HEAD"));
        assert!(matches!(read_request(&mut input, &mut buf), Incoming::Closed));
        let mut cut = std::io::Cursor::new(b"GET /a HTT".to_vec());
        assert!(matches!(read_request(&mut cut, &mut Vec::new()), Incoming::Broken(_)));
    }

    #[test]
    fn reading_stops_at_the_size_limit() {
        let mut endless = std::io::repeat(b'a');
        let mut buf = b"GET / HTTP/1.1\r\nX: ".to_vec();
        assert!(matches!(read_request(&mut endless, &mut buf), Incoming::Invalid(Refusal { status: 431, .. })));
        assert!(buf.len() <= MAX_HEAD);
    }

    #[test]
    fn routes() {
        assert_eq!(route("GET", TOKEN_PATH), Route::Token);
        assert_eq!(route("HEAD", TOKEN_PATH), Route::Token);
        assert_eq!(route("GET", HEALTH_PATH), Route::Health);
        assert_eq!(route("POST", TOKEN_PATH), Route::MethodNotAllowed);
        assert_eq!(route("GET", "/get_wif_token/"), Route::NotFound);
        assert_eq!(route("GET", "/"), Route::NotFound);
    }

    #[test]
    fn header_values_that_would_split_the_head_are_left_out() {
        let r = Response::error(503, "x", "y")
            .header("X-Token-Type", "Bearer\r\nX-Injected: yes")
            .header("X-Token-Expires-At", "2099-01-01T00:00:00Z\r\n")
            .header("Retry-After", "30");
        let text = String::from_utf8(r.to_bytes(false, false)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(!head.contains("X-Injected") && !head.contains("X-Token"), "{head}");
        assert!(head.ends_with("\r\nRetry-After: 30"), "the other headers stay: {head}");
        assert_eq!(body.as_bytes(), r.body);
    }

    #[test]
    fn head_answers_keep_the_length_and_drop_the_body() {
        let r = Response::error(404, "not_found", "no");
        let full = String::from_utf8(r.to_bytes(false, true)).unwrap();
        let head = String::from_utf8(r.to_bytes(true, false)).unwrap();
        assert!(full.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(full.contains(&format!("Content-Length: {}\r\n", r.body.len())));
        assert!(head.contains(&format!("Content-Length: {}\r\n", r.body.len())));
        assert!(head.ends_with("Connection: close\r\n\r\n"));
        assert!(full.contains("Cache-Control: no-store\r\n"));
    }
}
