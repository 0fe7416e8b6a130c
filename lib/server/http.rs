//! The bounded HTTP/1.1 request reader of wif-serve, its metrics listener and the metadata
//! server (the emulator reads bodies with [`read_body`] but keeps its own head parser, whose
//! limits are part of what it emulates): a request head is bounded in size
//! (`MAX_HEAD`) and header count (`MAX_HEADERS`), must arrive before the connection's
//! deadline (see `Armed`), and a body is only read when asked for, up to a limit
//! ([`read_body`]). Anything else is a clear 4xx.

use crate::core::secret::Secret;
use std::io::{ErrorKind, Read};

/// The most bytes a request line plus headers may take.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most header lines a request may have.
pub const MAX_HEADERS: usize = 64;

/// A parsed request head (all the server reads of a request). Its `Debug` shows the
/// `Authorization` header only as its length.
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
    /// The first `Authorization` header's value as sent (not trimmed), if there was one.
    pub authorization: Option<Secret>,
    /// Whether there was more than one `Authorization` header.
    pub extra_authorization: bool,
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
    // Left uninitialized: the parser writes the ones it fills (no 2 KiB of zeros a request).
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
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
    let (mut authorization, mut extra_authorization) = (None, false);
    for h in req.headers.iter() {
        on_header(h.name, h.value);
        if h.name.eq_ignore_ascii_case("authorization") {
            if authorization.is_some() {
                extra_authorization = true;
            } else {
                // Received, not held: a server sees a new one with every client, and the
                // process's list of secrets to scrub must not grow with them.
                authorization = Some(Secret::received(String::from_utf8_lossy(h.value)));
            }
            continue;
        }
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
        authorization,
        extra_authorization,
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

/// Why a request's body did not arrive whole.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyEnd {
    /// The connection's deadline passed first.
    TimedOut,
    /// The client closed the connection, or another I/O error.
    Closed,
}

/// Reads the `len` bytes of a request's body: first those already in `buf` after the head
/// (taken out of it, so a pipelined request behind stays), then from `r`. The caller bounds
/// `len` (its body limit) before calling.
pub fn read_body(r: &mut impl Read, buf: &mut Vec<u8>, len: usize) -> Result<Vec<u8>, BodyEnd> {
    let mut body: Vec<u8> = buf.drain(..len.min(buf.len())).collect();
    let mut chunk = [0u8; 8192];
    while body.len() < len {
        let room = (len - body.len()).min(chunk.len());
        match r.read(&mut chunk[..room]) {
            Ok(0) => return Err(BodyEnd::Closed),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return Err(BodyEnd::TimedOut),
            Err(_) => return Err(BodyEnd::Closed),
        }
    }
    Ok(body)
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
        assert_eq!(r.path, "/get_wif_token");
        assert!(r.keep_alive && !r.has_body);
        assert_eq!(&raw[n..], b"GET /next");
    }

    #[test]
    fn authorization_is_kept_as_a_secret_and_a_second_one_is_flagged() {
        let (r, _) = complete(b"GET / HTTP/1.1\r\nAuthorization: Bearer abc.def.ghi\r\n\r\n");
        assert_eq!(r.authorization.as_ref().map(Secret::expose), Some("Bearer abc.def.ghi"));
        assert!(!r.extra_authorization);
        assert!(!format!("{r:?}").contains("abc.def"), "{r:?}");
        let (r, _) = complete(b"GET / HTTP/1.1\r\nauthorization: Bearer a\r\nAUTHORIZATION: Bearer b\r\n\r\n");
        assert_eq!(r.authorization.as_ref().map(Secret::expose), Some("Bearer a"));
        assert!(r.extra_authorization);
        let (r, _) = complete(b"GET / HTTP/1.1\r\n\r\n");
        assert!(r.authorization.is_none() && !r.extra_authorization);
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
    fn a_body_is_read_from_the_buffer_first_and_leaves_what_follows() {
        let mut rest = std::io::Cursor::new(b"lo, world".to_vec());
        let mut buf = b"hel".to_vec();
        assert_eq!(read_body(&mut rest, &mut buf, 5).unwrap(), b"hello");
        let mut buf = b"abcGET /".to_vec();
        assert_eq!(read_body(&mut std::io::empty(), &mut buf, 3).unwrap(), b"abc");
        assert_eq!(buf, b"GET /");
        assert_eq!(read_body(&mut std::io::empty(), &mut Vec::new(), 1), Err(BodyEnd::Closed));
    }
}
