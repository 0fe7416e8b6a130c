//! The listeners: plain HTTP and (optionally) HTTPS with rustls, a thread per connection,
//! HTTP/1.1 with keep-alive parsed by httparse, one JSON log line per request on stdout.

use crate::core::error::{Error, Kind, Result};
use crate::server::{http, Framing, Response};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;
const MAX_CONNECTIONS: usize = 128;

/// What answers the requests a listener reads (the emulator's state): the listener knows
/// nothing else of it.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, req: &Req) -> Response;
    /// Records one answered request.
    fn log_request(&self, req: &Req, resp: &Response, took: Duration);
    /// The handler's clock (Unix seconds), for the `Date` header of every answer.
    fn now(&self) -> i64;
}

/// What the log records of an answer never sent: the listener closes the connection instead
/// (an injected `reset`).
const RESET: &str = "injected_reset";

/// An answer that is never sent: the listener closes the connection without answering.
pub fn reset() -> Response {
    Response::new(0, "text/plain", Vec::new()).because(RESET)
}

/// Whether `r` is [`reset`]'s.
pub fn is_reset(r: &Response) -> bool {
    r.reason.as_deref() == Some(RESET)
}

/// One HTTP request as the handlers see it.
pub struct Req {
    /// Method.
    pub method: String,
    /// Path (percent-encoded, no query).
    pub path: String,
    /// Query string (without `?`).
    pub query: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The `Host` header (else the listener's address).
    pub host: String,
    /// The client certificate chain presented in the TLS handshake (DER, leaf first); empty
    /// on plain HTTP or when none was presented. Shared by the requests of its connection.
    pub peer_certs: Arc<[Vec<u8>]>,
}

impl Req {
    /// A header value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The token of an `Authorization: Bearer …` header (scheme case-insensitive, token
    /// trimmed); `None` without one.
    pub fn bearer(&self) -> Option<&str> {
        let (scheme, token) = self.header("authorization")?.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    /// `scheme://host`, the base of the URLs clients used to reach us.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    /// Whether the body is JSON by its content type.
    pub fn is_json(&self) -> bool {
        self.header("content-type").is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json"))
    }

    /// Whether the body is a form by its content type.
    pub fn is_form(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
    }
}

/// The headers of every emulator answer around its own: `Date` (the emulator's clock, `now`)
/// first; `Connection: close` last when the connection closes after it.
fn write_resp(w: &mut impl Write, r: &Response, close: bool, now: i64) -> std::io::Result<()> {
    let date = crate::core::clock::http_date(now);
    let first = [("Date", date.as_str())];
    let standard = [("Cache-Control", "no-store"), ("Pragma", "no-cache")];
    let last: &[(&str, &str)] = if close { &[("Connection", "close")] } else { &[] };
    let framing = Framing { first: &first, standard: &standard, last };
    w.write_all(&r.encode(&framing, false).bytes)?;
    w.flush()
}

fn plain(status: u16, text: &str) -> Response {
    Response::new(status, "text/plain; charset=utf-8", text.as_bytes().to_vec()).because("bad_http")
}

/// A parsed request head: the request (without its body) and how the body is framed.
struct Head {
    len: usize,
    req: Req,
    close: bool,
    content_length: usize,
    expect_continue: bool,
}

/// Parses a request head from the start of `buf`: `Ok(None)` if more bytes are needed,
/// `Err` with the answer for a request that cannot be served.
fn parse_head(buf: &[u8], scheme: &'static str, local: &str) -> std::result::Result<Option<Head>, Response> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) | Err(_) => return Err(plain(400, "malformed request")),
    };
    let hdrs: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).trim().to_string()))
        .collect();
    let get = |name: &str| hdrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let lower = |name: &str| get(name).map(|v| v.to_ascii_lowercase());
    let connection = lower("connection").unwrap_or_default();
    let close = connection.contains("close") || (parsed.version == Some(0) && !connection.contains("keep-alive"));
    if lower("transfer-encoding").is_some() {
        return Err(plain(411, "Content-Length required"));
    }
    let content_length = match lower("content-length").map(|v| v.parse::<usize>()) {
        None => 0,
        Some(Ok(l)) if l <= MAX_BODY => l,
        _ => return Err(plain(413, "body too large")),
    };
    let target = parsed.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let req = Req {
        method: parsed.method.unwrap_or("GET").to_string(),
        path: path.to_string(),
        query: query.to_string(),
        host: get("host").unwrap_or_else(|| local.to_string()),
        headers: hdrs.clone(),
        body: Vec::new(),
        scheme,
        peer_certs: Arc::default(),
    };
    let expect_continue = lower("expect").is_some_and(|e| e == "100-continue");
    Ok(Some(Head { len, req, close, content_length, expect_continue }))
}

/// Reads more bytes into `buf`; false at end of stream or on an error (time-out).
fn read_more(s: &mut impl Read, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match s.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// Serves requests on one connection until it closes or asks to; `peer` is the client's
/// certificate chain from the TLS handshake.
fn serve_conn<S: Read + Write>(
    mut s: S,
    scheme: &'static str,
    local: String,
    peer: Arc<[Vec<u8>]>,
    state: &impl Handler,
) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head = loop {
            match parse_head(&buf, scheme, &local) {
                Ok(Some(h)) => break h,
                Ok(None) if read_more(&mut s, &mut buf) => {}
                Ok(None) => return,
                Err(resp) => {
                    let _ = write_resp(&mut s, &resp, true, state.now());
                    return;
                }
            }
        };
        buf.drain(..head.len);
        if head.expect_continue
            && buf.len() < head.content_length
            && s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").and_then(|_| s.flush()).is_err()
        {
            return;
        }
        let mut req = head.req;
        req.peer_certs = peer.clone();
        let Ok(body) = http::read_body(&mut s, &mut buf, head.content_length) else { return };
        req.body = body;
        let started = Instant::now();
        let resp = state.handle(&req);
        state.log_request(&req, &resp, started.elapsed());
        if is_reset(&resp) || write_resp(&mut s, &resp, head.close, state.now()).is_err() || head.close {
            return;
        }
    }
}

/// Runs an accept loop until `stop` is set; each connection gets a thread.
pub fn accept_loop<H: Handler>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<H>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    listener.set_nonblocking(true).map_err(|e| Error::new(Kind::Io, format!("setting up the listener: {e}")))?;
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::SeqCst) {
        let (stream, _) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(25));
                continue;
            }
            Err(_) => {
                // Out of file descriptors and the like: do not spin.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            continue; // dropping the stream closes it
        }
        let (state, tls, local, active) = (state.clone(), tls.clone(), local.clone(), active.clone());
        active.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            handle_stream(stream, tls, &local, &*state);
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }
    // Let requests in flight finish (idle keep-alive connections are not waited for long).
    let deadline = Instant::now() + Duration::from_secs(2);
    while active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn handle_stream(stream: TcpStream, tls: Option<Arc<rustls::ServerConfig>>, local: &str, state: &impl Handler) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve_conn(stream, "http", local.to_string(), Arc::default(), state),
        Some(cfg) => {
            let Ok(conn) = rustls::ServerConnection::new(cfg) else { return };
            let mut tls_stream = rustls::StreamOwned::new(conn, stream);
            // Finish the handshake first so failures end the connection quietly.
            while tls_stream.conn.is_handshaking() {
                if tls_stream.conn.complete_io(&mut tls_stream.sock).is_err() {
                    return;
                }
            }
            let peer: Arc<[Vec<u8>]> = tls_stream
                .conn
                .peer_certificates()
                .map(|chain| chain.iter().map(|c| c.to_vec()).collect())
                .unwrap_or_default();
            serve_conn(tls_stream, "https", local.to_string(), peer, state);
        }
    }
}

/// The rustls server configuration for `--tls-listen`: a client certificate is requested,
/// optional, and proven by the handshake signature (see `mtls.rs`).
pub fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> Result<Arc<rustls::ServerConfig>> {
    let chain = crate::core::keys::load_certs(cert)
        .map_err(|e| e.file_setting("--tls-cert", "the emulator's TLS certificate chain (PEM, leaf first)"))?;
    let bundle = crate::core::keys::load_key(key, None)
        .map_err(|e| e.file_setting("--tls-key", "the private key of --tls-cert (PEM)"))?;
    let cfg = rustls::ServerConfig::builder()
        .with_client_cert_verifier(Arc::new(super::mtls::AnyClientCert))
        .with_single_cert(chain, bundle.key)
        .map_err(|e| Error::input(format!("the TLS certificate and key do not fit: {e}")))?;
    Ok(Arc::new(cfg))
}

/// Writes one JSON line on stdout (the log and the start event), flushed.
pub fn emit(line: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The log line for one request: never a token, secret or query string.
pub fn log_line(req: &Req, resp: &Response, took: Duration) -> serde_json::Value {
    json!({
        "time": crate::core::clock::rfc3339(crate::core::clock::now_unix()),
        "event": "request",
        "scheme": req.scheme,
        "method": req.method,
        "path": req.path,
        "status": resp.status,
        "outcome": resp.reason.as_deref().unwrap_or_default(),
        "ms": took.as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_form, percent_decode};

    #[test]
    fn heads_parse_or_are_refused() {
        let h = parse_head(b"POST /a/b?x=1 HTTP/1.1\r\nHost: h:1\r\nContent-Length: 3\r\n\r\nabc", "http", "l:2")
            .unwrap()
            .unwrap();
        assert_eq!((h.req.path.as_str(), h.req.query.as_str(), h.req.host.as_str()), ("/a/b", "x=1", "h:1"));
        assert_eq!((h.content_length, h.close, h.expect_continue), (3, false, false));
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: h", "http", "l").unwrap().is_none());
        let h = parse_head(b"GET / HTTP/1.0\r\n\r\n", "https", "l:2").unwrap().unwrap();
        assert!(h.close);
        assert_eq!(h.req.base_url(), "https://l:2");
        let status = |b: &[u8]| parse_head(b, "http", "l").err().map(|r| r.status);
        assert_eq!(status(b"GARBAGE\x01\r\n\r\n"), Some(400));
        assert_eq!(status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), Some(411));
        assert_eq!(status(b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"), Some(413));
    }

    #[test]
    fn forms_decode() {
        let f = parse_form(b"a=1+2&b=%2F%3d&c&d=%zz&e=%4");
        assert_eq!(f[0], ("a".into(), "1 2".into()));
        assert_eq!(f[1], ("b".into(), "/=".into()));
        assert_eq!(f[2], ("c".into(), "".into()));
        assert_eq!(f[3], ("d".into(), "%zz".into()));
        assert_eq!(f[4], ("e".into(), "%4".into()));
        assert_eq!(percent_decode("sa%40p.com", false), "sa@p.com");
        assert_eq!(percent_decode("a+b", false), "a+b");
    }
}
