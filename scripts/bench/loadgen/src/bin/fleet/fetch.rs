//! One attempt of a simulated client: a new TCP connection, a full TLS handshake with the
//! client certificate, `GET /get_wif_token` with `Connection: close`, and what the answer
//! comes to.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use wif_loadgen::{find, Target};

/// The most a token answer may hold (wif-get's limit is larger; a token is 1.5 KB here).
const MAX_ANSWER: usize = 64 * 1024;

/// What one attempt came to.
#[derive(Debug)]
pub enum Outcome {
    /// 200 with the token; its expiry (Unix seconds) from `X-Token-Expires-At`.
    Token { expires_at: i64 },
    /// 503 `overloaded`: the server shed the connection (`--max-handshake-queue`).
    Shed { retry_after: Option<u64> },
    /// Another answer wif-get retries (5xx, 429), e.g. the per-client connection limit.
    Busy { status: u16, retry_after: Option<u64> },
    /// An answer wif-get does not retry (4xx, or a 200 that is not a token).
    Refused { status: u16 },
    /// No answer: the connection or the handshake failed (retried, like wif-get does).
    Broken(String),
}

/// Everything an attempt needs, shared by all simulated clients: one `ClientConfig`.
pub struct Fetcher {
    pub config: Arc<ClientConfig>,
    pub target: Target,
    pub server_name: ServerName<'static>,
    pub request: Vec<u8>,
    pub timeout: Duration,
}

impl Fetcher {
    /// Builds the request once.
    pub fn new(config: Arc<ClientConfig>, target: Target, timeout: Duration) -> Result<Fetcher, String> {
        let server_name = ServerName::try_from(target.host.clone())
            .map_err(|e| format!("{}: not a server name: {e}", target.host))?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: wif-fleet\r\nAccept: text/plain, application/jwt, */*\r\n\
             Connection: close\r\n\r\n",
            target.path, target.addr
        )
        .into_bytes();
        Ok(Fetcher { config, target, server_name, request, timeout })
    }

    /// One attempt.
    pub fn attempt(&self) -> Outcome {
        match self.exchange() {
            Ok(answer) => judge(&answer),
            Err(e) => Outcome::Broken(e.to_string()),
        }
    }

    fn exchange(&self) -> io::Result<Vec<u8>> {
        let tcp = TcpStream::connect_timeout(&self.target.addr, self.timeout)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(self.timeout))?;
        tcp.set_write_timeout(Some(self.timeout))?;
        let conn = ClientConnection::new(self.config.clone(), self.server_name.clone()).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(conn, tcp);
        tls.write_all(&self.request)?;
        tls.flush()?;
        read_answer(&mut tls)
    }
}

/// Reads the answer until the server closes (or Content-Length is in hand).
fn read_answer(tls: &mut StreamOwned<ClientConnection, TcpStream>) -> io::Result<Vec<u8>> {
    let mut answer = Vec::with_capacity(4096);
    let mut buf = [0u8; 4096];
    loop {
        let n = match tls.read(&mut buf) {
            Ok(n) => n,
            // A close without close_notify after a whole answer is still an answer.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && complete(&answer) => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            if answer.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before an answer"));
            }
            return Ok(answer);
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.len() > MAX_ANSWER {
            return Err(io::Error::other("answer larger than 64 KiB"));
        }
        if complete(&answer) {
            return Ok(answer);
        }
    }
}

/// Whether the head and the Content-Length bytes of body are in hand.
fn complete(answer: &[u8]) -> bool {
    let Some(end) = find(answer, b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&answer[..end]);
    header(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|len| answer.len() >= end + 4 + len)
}

/// The value of header `name` in a response head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// What an answer comes to, by wif-get's rules (`judge` in lib/tools/get/fetch.rs).
fn judge(answer: &[u8]) -> Outcome {
    let Some(end) = find(answer, b"\r\n\r\n") else {
        return Outcome::Broken("answer without a complete head".into());
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let body = &answer[end + 4..];
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let retry_after = header(&head, "retry-after").and_then(|v| v.parse::<u64>().ok());
    match status {
        200 => match header(&head, "x-token-expires-at").map(wif::core::clock::parse_rfc3339) {
            Some(Ok(expires_at)) if !body.is_empty() => Outcome::Token { expires_at },
            _ => Outcome::Refused { status },
        },
        503 if error_code(body).as_deref() == Some("overloaded") => Outcome::Shed { retry_after },
        429 | 500..=599 => Outcome::Busy { status, retry_after },
        _ => Outcome::Refused { status },
    }
}

/// The `error` field of a JSON error body.
fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("error")?.as_str().map(str::to_string)
}
