//! wif-serve with `--bearer-issuers` for the bearer tests (keys and tokens: tests/common/jwt.rs):
//! an issuers file, requests from a client without a certificate (any headers, any
//! path) read back with the server's request line, and the checks every refusal must pass
//! (status, JSON body, `WWW-Authenticate`, `Connection: close`, the logged `code`).

use super::server::*;
use super::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What wif-serve hands out in these tests.
pub const SERVED: &str = "ya29.c.bearer-test-token-Jq62";

/// `claims` with members replaced by `changes` (a `null` removes one).
pub fn with(claims: &Value, changes: Value) -> Value {
    let mut out = claims.clone();
    for (k, v) in changes.as_object().unwrap() {
        match v {
            Value::Null => out.as_object_mut().unwrap().remove(k),
            _ => out.as_object_mut().unwrap().insert(k.clone(), v.clone()),
        };
    }
    out
}

/// The token's signature segment.
pub fn signature_of(token: &str) -> &str {
    token.rsplit('.').next().unwrap()
}

/// A challenge `Bearer realm="…", error="…", …` as its scheme and parameters.
pub fn parse_challenge(value: &str) -> (String, BTreeMap<String, String>) {
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("not a challenge: {value}"));
        let (v, after) = after.split_once('"').unwrap_or_else(|| panic!("unterminated parameter: {value}"));
        params.insert(name.trim().to_string(), v.to_string());
        rest = after.trim_start_matches(',').trim();
    }
    (scheme.to_string(), params)
}

/// The status and the body's `error` a refusal code gets (spec §3; for the 503 the spec's
/// table says `invalid_token`, the server says `temporarily_unavailable`: the token is not
/// at fault there, and a client must not drop it).
pub fn expected_answer(code: &str) -> (u16, &'static str) {
    match code {
        "no_token" => (401, "unauthorized"),
        "token_in_query" | "malformed" => (401, "invalid_request"),
        "jwks_unavailable" => (503, "temporarily_unavailable"),
        _ => (401, "invalid_token"),
    }
}

/// A running wif-serve with `--bearer-issuers` and the tokens sent to it so far (which must
/// never show in its output).
pub struct BearerServe {
    /// The server.
    pub srv: Server,
    /// The folder of the issuers file, the token file and any JWKS files.
    pub dir: tempfile::TempDir,
    requests: usize,
    secrets: Vec<String>,
}

impl BearerServe {
    /// Writes `issuers` to `issuers.json` in `dir` (with what else the test put there) and
    /// starts wif-serve with it and `extra` flags, serving [`SERVED`].
    pub fn start(dir: tempfile::TempDir, issuers: &Value, extra: &[&str]) -> BearerServe {
        let path = issuers_file(dir.path(), issuers);
        let token = dir.path().join("wif_token.txt");
        write_token(&token, SERVED, 3600);
        let mut args = vec!["--bearer-issuers", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let srv = Server::start(&token, &args);
        BearerServe { srv, dir, requests: 0, secrets: Vec::new() }
    }

    /// A secret that must never reach the server's output (besides the tokens sent).
    pub fn keep_secret(&mut self, s: &str) {
        self.secrets.push(s.to_string());
    }

    /// Sends `GET path` with `headers` from a client without a certificate (on a connection
    /// of its own); the answer and the server's request line for it.
    pub fn ask(&mut self, path: &str, headers: &[(&str, &str)]) -> (Resp, Value) {
        let mut raw = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
        for (k, v) in headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
            if let Some(t) = v.strip_prefix("Bearer ") {
                self.secrets.push(t.to_string());
            }
        }
        raw.push_str("\r\n");
        let resp = request_raw(self.srv.port, None, raw.as_bytes(), false)
            .unwrap_or_else(|e| panic!("GET {} without a certificate: {e}", path.split('?').next().unwrap()));
        (resp, self.request_line())
    }

    /// The request line of the request just answered (the lines come in order).
    pub fn request_line(&mut self) -> Value {
        self.requests += 1;
        self.srv.wait_count("the request line", self.requests, |v| v["event"] == "request").pop().unwrap()
    }

    /// Sends `token` as `Authorization: Bearer` to `/get_wif_token`.
    pub fn bearer(&mut self, token: &str) -> (Resp, Value) {
        self.ask("/get_wif_token", &[("Authorization", &format!("Bearer {token}"))])
    }

    /// Expects `token` to be served, with the request line naming the issuer and `sub`.
    pub fn accepted(&mut self, what: &str, token: &str, issuer: &str, sub: &str) -> Value {
        self.accepted_with(what, &[("Authorization", &format!("Bearer {token}"))], token, issuer, sub)
    }

    /// [`BearerServe::accepted`] for a request sending `token` with `headers` as they are.
    pub fn accepted_with(
        &mut self,
        what: &str,
        headers: &[(&str, &str)],
        token: &str,
        issuer: &str,
        sub: &str,
    ) -> Value {
        let (resp, line) = self.ask("/get_wif_token", headers);
        assert_eq!(resp.status, 200, "{what}: {} {line}", String::from_utf8_lossy(&resp.body));
        assert_eq!(resp.body, SERVED.as_bytes(), "{what}");
        assert_eq!(line["status"], 200, "{what}: {line}");
        assert_eq!(line["auth"], "bearer", "{what}: {line}");
        assert_eq!(line["bearer"]["issuer"], issuer, "{what}: {line}");
        assert_eq!(line["bearer"]["sub"], sub, "{what}: {line}");
        let sha = line["bearer"]["token_sha256"].as_str().unwrap_or_default();
        let full = wif::core::keys::sha256_hex(token.as_bytes());
        assert!(sha.len() == 16 && full.starts_with(sha), "{what}: token_sha256 {sha:?} is not the token's");
        assert!(line.get("code").map_or(true, Value::is_null), "{what}: {line}");
        line
    }

    /// Expects `token` refused with `code` (see [`BearerServe::check_refusal`]).
    pub fn refused(&mut self, what: &str, token: &str, code: &str) -> (Resp, Value) {
        let (resp, line) = self.bearer(token);
        check_refusal(what, &resp, &line, code);
        (resp, line)
    }

    /// Expects `GET path` with `headers` refused with `code`.
    pub fn refused_request(&mut self, what: &str, path: &str, headers: &[(&str, &str)], code: &str) -> Value {
        let (resp, line) = self.ask(path, headers);
        check_refusal(what, &resp, &line, code);
        line
    }

    /// Stops the server; no token sent (nor its signature segment) nor any other secret
    /// appears in its stdout or stderr.
    pub fn finish(self) {
        let mut all: Vec<String> = Vec::new();
        for s in &self.secrets {
            all.push(s.clone());
            let sig = signature_of(s);
            if s.contains('.') && sig.len() >= 16 {
                all.push(sig.to_string());
            }
        }
        let refs: Vec<&str> = all.iter().map(String::as_str).filter(|s| s.len() >= 8).collect();
        self.srv.finish_checking_secrecy(&refs);
    }
}

/// A refusal as spec §3 says: status, JSON `error` and `message`, the RFC 6750 challenge
/// (no error parameters for `no_token`), `Retry-After: 5` for a 503, `Connection: close`
/// after a 401, and the request line with the status and `code`.
pub fn check_refusal(what: &str, resp: &Resp, line: &Value, code: &str) {
    let (status, error) = expected_answer(code);
    let body = resp.json();
    assert_eq!((resp.status, line["code"].as_str()), (status, Some(code)), "{what}: {body} {line}");
    assert_eq!(line["status"], status, "{what}: {line}");
    assert_eq!(body["error"], error, "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty() && !message.contains(['"', '\\']), "{what}: message {message:?}");
    if status == 503 {
        assert_eq!(resp.header("retry-after"), Some("5"), "{what}: {:?}", resp.headers);
        return;
    }
    assert_eq!(resp.header("connection").map(str::to_ascii_lowercase).as_deref(), Some("close"), "{what}");
    let challenge = resp.header("www-authenticate").unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
    let (scheme, params) = parse_challenge(challenge);
    assert_eq!(scheme, "Bearer", "{what}: {challenge}");
    assert_eq!(params.get("realm").map(String::as_str), Some("wif-serve"), "{what}: {challenge}");
    if code == "no_token" {
        assert_eq!(params.len(), 1, "{what}: no error parameters without a token: {challenge}");
    } else {
        assert_eq!(params.get("error").map(String::as_str), Some(error), "{what}: {challenge}");
        assert_eq!(params.get("error_description").map(String::as_str), Some(message), "{what}: {challenge}");
    }
}

/// Writes an issuers file `issuers.json` in `dir`; its path.
pub fn issuers_file(dir: &Path, issuers: &Value) -> PathBuf {
    let path = dir.join("issuers.json");
    std::fs::write(&path, serde_json::to_vec_pretty(issuers).unwrap()).unwrap();
    set_mode(&path, 0o600);
    path
}

/// Writes `text` to `dir/name` through a renamed temporary file (as a careful operator or a
/// configuration manager replaces a file).
pub fn replace_text(dir: &Path, name: &str, text: &str) {
    let staged = dir.join(format!(".{name}.staged"));
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, dir.join(name)).unwrap();
}

/// A plain-HTTP server on a chosen loopback port answering every request with `body` and
/// counting them: an issuer's JWKS endpoint that can come up after wif-serve started.
pub struct FixedJwks {
    server: std::sync::Arc<tiny_http::Server>,
    /// How many requests it answered.
    pub hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FixedJwks {
    /// Serves `body` (JSON text) on 127.0.0.1:`port`.
    pub fn start(port: u16, body: &str) -> FixedJwks {
        let server = std::sync::Arc::new(tiny_http::Server::http(("127.0.0.1", port)).expect("bind the JWKS port"));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (srv, count, body) = (server.clone(), hits.clone(), body.to_string());
        let thread = std::thread::spawn(move || {
            for rq in srv.incoming_requests() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let header = tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
                let _ = rq.respond(tiny_http::Response::from_string(body.clone()).with_header(header));
            }
        });
        FixedJwks { server, hits, thread: Some(thread) }
    }
}

impl Drop for FixedJwks {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A loopback port nothing listens on (bound, then let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
