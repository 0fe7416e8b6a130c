//! Shared test helpers: the binaries, a test PKI made once per run by
//! `scripts/gen-test-pki.sh`, temporary directories and a recording HTTP test double.

#![allow(dead_code)]

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

pub mod prom;
pub mod server;

/// A command for one of the package's binaries, with a clean `WIF_*` environment.
pub fn bin(name: &str) -> Command {
    let mut c = Command::cargo_bin(name).unwrap_or_else(|e| panic!("binary {name}: {e}"));
    for (k, _) in std::env::vars() {
        if k.starts_with("WIF_") || k == "SSL_CERT_FILE" {
            c.env_remove(k);
        }
    }
    c.timeout(std::time::Duration::from_secs(60));
    // Never inherit the test runner's stdin: a test that pipes nothing pipes nothing.
    c.write_stdin("");
    c
}

/// The test PKI directory (see scripts/gen-test-pki.sh for its files), made once.
pub fn pki() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("wif-test-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen-test-pki.sh");
        let out = std::process::Command::new("bash").arg(script).arg(&dir).output().expect("running gen-test-pki.sh");
        assert!(out.status.success(), "gen-test-pki.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        dir
    })
}

/// A path inside the test PKI.
pub fn pki_file(name: &str) -> String {
    pki().join(name).to_string_lossy().into_owned()
}

/// A fresh temporary directory, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Parses a tool's stdout as one JSON document.
pub fn json_out(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Stderr as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A request the test double received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// A header value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body decoded as a form.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded_parse(&self.body)
    }

    /// One form field.
    pub fn field(&self, name: &str) -> Option<String> {
        self.form().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The body decoded as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

fn form_urlencoded_parse(body: &[u8]) -> Vec<(String, String)> {
    let s = String::from_utf8_lossy(body);
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A canned answer.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    pub delay: std::time::Duration,
    pub headers: Vec<(String, String)>,
}

impl Canned {
    pub fn json(status: u16, body: Value) -> Canned {
        Canned::raw(status, "application/json", &body.to_string())
    }
    pub fn raw(status: u16, content_type: &str, body: &str) -> Canned {
        Canned {
            status,
            content_type: content_type.into(),
            body: body.into(),
            delay: Default::default(),
            headers: vec![],
        }
    }
    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Canned {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Waits the delay, then answers `rq`.
    fn respond(self, rq: tiny_http::Request) {
        std::thread::sleep(self.delay);
        let mut resp = tiny_http::Response::from_string(self.body).with_status_code(self.status);
        let headers = std::iter::once(("Content-Type".to_string(), self.content_type)).chain(self.headers);
        for (k, v) in headers {
            resp.add_header(tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("header"));
        }
        let _ = rq.respond(resp);
    }
}

/// A plain-HTTP server on 127.0.0.1 that records requests and answers from a queue of
/// canned responses (the last one repeats). Stops when dropped.
pub struct TestServer {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(answers: Vec<Canned>) -> TestServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind test server"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (srv, reqs) = (server.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for (i, mut rq) in srv.incoming_requests().enumerate() {
                let mut body = Vec::new();
                let _ = rq.as_reader().read_to_end(&mut body);
                reqs.lock().unwrap().push(Recorded {
                    method: rq.method().to_string(),
                    path: rq.url().to_string(),
                    headers: rq.headers().iter().map(|h| (h.field.to_string(), h.value.to_string())).collect(),
                    body,
                });
                answers[i.min(answers.len() - 1)].clone().respond(rq);
            }
        });
        TestServer { url: format!("http://127.0.0.1:{port}"), requests, server, thread: Some(thread) }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A plain-HTTP server on 127.0.0.1 that answers by path: the first route whose pattern
/// occurs in the request path answers from its own queue (the last answer repeats);
/// anything else gets 404. Each request is answered on its own thread, so one slow answer
/// does not hold up the others. Records every request. Stops when dropped.
pub struct RoutedServer {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RoutedServer {
    pub fn start(routes: Vec<(&str, Vec<Canned>)>) -> RoutedServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind test server"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let routes: Vec<(String, Vec<Canned>)> = routes.into_iter().map(|(p, a)| (p.to_string(), a)).collect();
        let (srv, reqs) = (server.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            let mut served = vec![0usize; routes.len()];
            for mut rq in srv.incoming_requests() {
                let mut body = Vec::new();
                let _ = rq.as_reader().read_to_end(&mut body);
                let path = rq.url().to_string();
                reqs.lock().unwrap().push(Recorded {
                    method: rq.method().to_string(),
                    path: path.clone(),
                    headers: rq.headers().iter().map(|h| (h.field.to_string(), h.value.to_string())).collect(),
                    body,
                });
                let answer = match routes.iter().position(|(p, _)| path.contains(p.as_str())) {
                    Some(r) => {
                        let queue = &routes[r].1;
                        served[r] += 1;
                        queue[(served[r] - 1).min(queue.len() - 1)].clone()
                    }
                    None => Canned::raw(404, "text/plain", "no route"),
                };
                std::thread::spawn(move || answer.respond(rq));
            }
        });
        RoutedServer { url: format!("http://127.0.0.1:{port}"), requests, server, thread: Some(thread) }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits up to `secs` seconds until at least `n` requests have arrived.
    pub fn wait_for_requests(&self, n: usize, secs: u64) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if self.requests.lock().unwrap().len() >= n {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    }
}

impl Drop for RoutedServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A JWT-shaped token with the given claims and a dummy signature (the tools never verify
/// what they receive, so tests can make the claims they need).
pub fn fake_jwt(claims: Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{h}.{c}.c2lnbmF0dXJl")
}

/// Whether an external program or library a test needs is present. Outside CI a missing
/// one skips the test with a note; in CI (`CI` is set, as `.ci/run` installs everything) it
/// fails the test, so interop tests can never pass by skipping there.
pub fn available(what: &str, present: bool) -> bool {
    if !present {
        assert!(std::env::var_os("CI").is_none(), "{what} is required in CI (.ci/run installs it)");
        eprintln!("{what} is not installed; skipping");
    }
    present
}

/// Whether python3 can import `modules` (comma-separated), per [`available`].
pub fn python_has(modules: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    available(&format!("python3 with {modules}"), ok)
}

/// Whether this process runs as root, which a test needs to give files to another user.
/// Otherwise the test says on stderr that it did not run; in CI (`CI` is set, and CI runs
/// as root) it fails instead, so an attack test can never pass there by not running.
pub fn root_available(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        assert!(std::env::var_os("CI").is_none(), "{test} needs root (to chown files), and CI runs as root");
        eprintln!("{test}: not run: needs root (to chown files to another user)");
    }
    root
}

/// Another user's uid (`nobody`), for files planted by someone else.
pub const OTHER_UID: u32 = 65534;

/// Gives `path` (not a link's target) to [`OTHER_UID`], as if that user had made it.
pub fn give_to_other_user(path: &Path) {
    std::os::unix::fs::lchown(path, Some(OTHER_UID), Some(OTHER_UID)).expect("chown (needs root)");
}

/// Sets a file's permission bits.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// One way a file can come from someone else: what makes it so, and the words that say so.
pub type Planting = (fn(&Path), String);

/// The ways a file can come from someone else: writable by others (mode 0666), and, when
/// this process is root (see [`root_available`]), owned by another user.
pub fn plantings(test: &str) -> Vec<Planting> {
    let mut ways: Vec<Planting> = vec![(|p| set_mode(p, 0o666), "(mode 0666)".into())];
    if root_available(test) {
        ways.push((give_to_other_user, format!("owned by uid {OTHER_UID}")));
    }
    ways
}

/// A token (`ya29.planted-by-someone-else`) and matching metadata expiring in 2099 at
/// `token`, as someone who can write its directory would plant them, then `spoil`ed.
pub fn plant_pair(token: &Path, spoil: fn(&Path)) {
    let planted = wif::secret::Secret::new("ya29.planted-by-someone-else");
    wif::files::write_token(token, &planted, "access_token", Some("2099-01-01T00:00:00Z"), "wif-impersonate").unwrap();
    spoil(token);
    spoil(&wif::files::meta_path(token));
}

/// One retry line, as every tool prints it: `tool: what: why; retry N/M in X s` (`retry N in
/// X s` when the retries are unbounded).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryLine {
    /// What was tried, e.g. `GET https://host/path` (up to the first `: `).
    pub what: String,
    /// Why it failed.
    pub why: String,
    /// The retry about to happen, from 1.
    pub attempt: u32,
    /// How many retries at most, if bounded.
    pub of: Option<u32>,
    /// The pause before it, seconds.
    pub delay_s: f64,
}

/// The retry lines `tool` wrote on stderr. A line of that tool that mentions a retry in any
/// other shape fails the test: there is one format.
pub fn retry_lines(stderr: &str, tool: &str) -> Vec<RetryLine> {
    let prefix = format!("{tool}: ");
    let mut found = Vec::new();
    for line in stderr.lines().filter(|l| l.starts_with(&prefix)) {
        let Some((head, tail)) = line.rsplit_once("; retry ") else {
            assert!(!line.contains("retrying"), "a retry line in another format: {line}");
            continue;
        };
        let parsed = (|| {
            let (count, rest) = tail.split_once(" in ")?;
            let delay_s = rest.strip_suffix(" s")?.parse::<f64>().ok()?;
            let (attempt, of) = match count.split_once('/') {
                Some((a, o)) => (a.parse().ok()?, Some(o.parse().ok()?)),
                None => (count.parse().ok()?, None),
            };
            let (what, why) = head[prefix.len()..].split_once(": ")?;
            Some(RetryLine { what: what.into(), why: why.into(), attempt, of, delay_s })
        })();
        found.push(parsed.unwrap_or_else(|| panic!("a retry line in another format: {line}")));
    }
    found
}
