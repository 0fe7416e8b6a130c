//! Shared test helpers: the binaries, a test PKI made once per run by
//! `scripts/gen-test-pki.sh`, temporary directories and a recording HTTP test double.

#![allow(dead_code)]

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

pub mod bearer;
pub mod bearer_serve;
pub mod broker;
pub mod https;
pub mod interop;
pub mod jwt;
pub mod manpages;
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

/// Runs openssl in `dir`; the test fails with openssl's stderr if it fails.
pub fn openssl_in(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Makes in `dir` an RSA 2048 leaf for `CN=cn` issued by the test intermediate CA with the
/// extensions `ext` (openssl extension-file lines): `rsa.crt`, its key as PKCS#8 `rsa8.key`
/// and as PKCS#1 `rsa1.key`.
pub fn rsa_leaf(dir: &Path, cn: &str, ext: &str) {
    std::fs::write(dir.join("ext.cnf"), format!("basicConstraints=critical,CA:FALSE\n{ext}\n")).unwrap();
    let subject = format!("/CN={cn}");
    openssl_in(
        dir,
        &["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "rsa8.key", "-subj", &subject, "-out", "rsa.csr"],
    );
    let (ca, ca_key) = (pki_file("intermediate-ca.crt"), pki_file("intermediate-ca.key"));
    openssl_in(
        dir,
        &[
            "x509", "-req", "-in", "rsa.csr", "-CA", &ca, "-CAkey", &ca_key, "-days", "1", "-extfile", "ext.cnf",
            "-out", "rsa.crt",
        ],
    );
    openssl_in(dir, &["pkey", "-in", "rsa8.key", "-traditional", "-out", "rsa1.key"]);
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
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
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

/// Records that the running test, or the part of it that needs `missing`, did not run, and
/// what would make it run (`hint`, a command where there is one). cargo shows a skipped test
/// as `ok` and hides what it prints, so each skip is also appended, as one line
/// `TEST<TAB>MISSING<TAB>HINT`, to the file `WIF_TEST_SKIPS` names (scripts/test.sh sets it
/// and reports these tests as not run at the end).
pub fn not_run(missing: &str, hint: &str) {
    not_run_in(std::thread::current().name().unwrap_or("(a test helper thread)"), missing, hint)
}

/// [`not_run`] for the test named `test`.
fn not_run_in(test: &str, missing: &str, hint: &str) {
    eprintln!("{test}: not run: {missing} is missing ({hint})");
    let Some(file) = std::env::var_os("WIF_TEST_SKIPS") else { return };
    let field = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let line = format!("{}\t{}\t{}\n", field(test), field(missing), field(hint));
    // One write of a short line with O_APPEND: lines of parallel tests do not interleave.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    if let Err(e) = written {
        panic!("{test} did not run and cannot say so in WIF_TEST_SKIPS={}: {e}", file.to_string_lossy());
    }
}

/// Whether an external program or library a test needs is present. A missing one skips the
/// test and records it per [`not_run`] with `hint`; in CI (`CI` is set, as `.ci/run`
/// installs everything) it fails the test, so interop tests can never pass by skipping there.
pub fn needs(what: &str, present: bool, hint: &str) -> bool {
    if !present {
        assert!(std::env::var_os("CI").is_none(), "{what} is required in CI (.ci/run installs it)");
        not_run(what, hint);
    }
    present
}

/// [`needs`], with .ci/run (which installs everything the tests use) as the hint.
pub fn available(what: &str, present: bool) -> bool {
    needs(what, present, "sudo bash .ci/run (it installs every tool the tests use)")
}

/// Whether a program answers `PROGRAM ARG` with success.
pub fn runs(program: &str, arg: &str) -> bool {
    std::process::Command::new(program).arg(arg).output().is_ok_and(|o| o.status.success())
}

/// The Debian command that installs `packages`, as a skip's hint.
pub fn apt(packages: &str) -> String {
    format!("sudo apt-get install -y {packages}")
}

/// Whether python3 can import `modules` (comma-separated), per [`available`]. scripts/test.sh
/// puts a virtual environment with `.ci/requirements.txt` first on `PATH`.
pub fn python_has(modules: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    let hint = if runs("python3", "--version") {
        "scripts/test.sh (it installs .ci/requirements.txt into a virtual environment)".to_string()
    } else {
        apt("python3 python3-venv")
    };
    needs(&format!("python3 with {modules}"), ok, &hint)
}

/// Whether this process runs as root, which `test` needs to give files to another user.
/// Otherwise the test is recorded as not run ([`not_run`]); in CI (`CI` is set, and CI runs
/// as root) it fails instead, so an attack test can never pass there by not running.
pub fn root_available(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        assert!(std::env::var_os("CI").is_none(), "{test} needs root (to chown files), and CI runs as root");
        let name = std::thread::current().name().map(str::to_string).unwrap_or_else(|| test.to_string());
        not_run_in(&name, "root (to chown files to another user)", "sudo scripts/test.sh");
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
    let planted = wif::core::secret::Secret::new("ya29.planted-by-someone-else");
    wif::core::files::write_token(token, &planted, "access_token", Some("2099-01-01T00:00:00Z"), "wif-impersonate")
        .unwrap();
    spoil(token);
    spoil(&wif::core::files::meta_path(token));
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

/// Starts one host of a wif-get fleet: `wif-get --url URL` with the good client certificate,
/// `extra` and `--out OUT` (removed first), none of the caller's WIF_ settings, its output
/// piped; the child and OUT.
pub fn spawn_wif_get(url: &str, out: std::path::PathBuf, extra: &[&str]) -> (std::process::Child, std::path::PathBuf) {
    let _ = std::fs::remove_file(&out);
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("wif-get"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("WIF_")) {
        c.env_remove(k);
    }
    c.args(["--url", url, "--cert", &pki_file("client.crt"), "--key", &pki_file("client.key")])
        .args(["--ca", &pki_file("ca-chain.crt")])
        .args(extra)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    (c.spawn().unwrap(), out)
}
