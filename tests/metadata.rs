//! `wif-get --metadata-server`: a real wif-serve with real mTLS on loopback, wif-get keeping
//! the token fresh from it, and unmodified google-auth (Compute Engine credentials) using it.

use crate::common::server::{read_response, write_token, Resp, Server};
use crate::common::*;
use serde_json::{json, Value};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "ya29.c.metadata-server-token-A_0123456789abcdef";
const TOKEN_B: &str = "ya29.c.metadata-server-token-B_fedcba9876543210";
const EMAIL: &str = "wif-demo@wif-demo.iam.gserviceaccount.com";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A running `wif-get --metadata-server`; killed when dropped.
pub(crate) struct Mds {
    child: Child,
    host: String,
    lines: Receiver<String>,
    err: Arc<Mutex<Vec<String>>>,
}

impl Mds {
    /// Starts it against wif-serve on `port` with the good client identity, plus `extra`.
    pub(crate) fn start(port: u16, extra: &[&str]) -> Mds {
        let url = format!("https://localhost:{port}/get_wif_token");
        let mut args: Vec<String> =
            ["--url", &url, "--cert", &pki_file("client.crt"), "--key", &pki_file("client.key")]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend(["--ca".into(), pki_file("ca-chain.crt"), "--metadata-server".into(), "127.0.0.1:0".into()]);
        args.extend(["--service-account".into(), EMAIL.into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        Mds::spawn(&args).unwrap_or_else(|(code, err)| panic!("wif-get exited {code:?} at start: {err}"))
    }

    /// Spawns wif-get with `args`; the exit code and stderr if it ends before listening.
    pub(crate) fn spawn(args: &[String]) -> Result<Mds, (Option<i32>, String)> {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("wif-get"));
        for (k, _) in std::env::vars() {
            if k.starts_with("WIF_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting wif-get");
        let (tx, lines) = std::sync::mpsc::channel();
        let err = Arc::new(Mutex::new(Vec::new()));
        let (stderr, collected) = (child.stderr.take().unwrap(), err.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                collected.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        if first.is_empty() {
            let code = child.wait().unwrap().code();
            std::thread::sleep(Duration::from_millis(100));
            return Err((code, err.lock().unwrap().join("\n")));
        }
        let v: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("first line {first:?}: {e}"));
        assert_eq!(v["event"], "listening", "{v}");
        assert_eq!(v["metadata_host"], v["address"]);
        let host = v["address"].as_str().unwrap().to_string();
        assert!(host.starts_with("127.0.0.1:") && !host.ends_with(":0"), "{host}");
        Ok(Mds { child, host, lines, err })
    }

    /// Waits for a stderr line containing `what`.
    pub(crate) fn wait_stderr(&self, what: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        if let Some(l) = self.err.lock().unwrap().iter().find(|l| l.contains(what)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => {}
                Err(_) => panic!("no stderr line with {what:?}; stderr: {:#?}", self.err.lock().unwrap()),
            }
        }
    }

    pub(crate) fn stderr(&self) -> String {
        self.err.lock().unwrap().join("\n")
    }

    /// One request with the given extra header lines.
    fn request(&self, method: &str, path: &str, headers: &[&str]) -> Resp {
        let host = format!("Host: {}", self.host);
        self.raw(method, path, &[&[host.as_str()][..], headers].concat())
    }

    /// One request with exactly these header lines (and `Connection: close`).
    fn raw(&self, method: &str, path: &str, headers: &[&str]) -> Resp {
        let mut s = TcpStream::connect(&self.host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut raw = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        for h in headers {
            raw.push_str(h);
            raw.push_str("\r\n");
        }
        raw.push_str("\r\n");
        s.write_all(raw.as_bytes()).unwrap();
        read_response(&mut s, method == "HEAD").unwrap_or_else(|e| panic!("{method} {path} {headers:?}: {e}"))
    }

    /// The port it listens on.
    fn port(&self) -> u16 {
        self.host.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// POST with `Metadata-Flavor: Google` and a JSON `body`, sent in two writes.
    fn post(&self, path: &str, body: &str) -> Resp {
        let mut s = TcpStream::connect(&self.host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nMetadata-Flavor: Google\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.host,
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // The server may answer (413) before taking all of a large body.
        let _ = s.write_all(body.as_bytes());
        read_response(&mut s, false).unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// GET with `Metadata-Flavor: Google`, as client libraries send it.
    fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &["Metadata-Flavor: Google"])
    }

    pub(crate) fn token(&self) -> Resp {
        self.get("/computeMetadata/v1/instance/service-accounts/default/token")
    }

    /// Waits (up to 20 s) for the process to end after `what`; its exit code.
    fn wait_exit(&mut self, what: &str) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "wif-get did not end after {what}");
            std::thread::sleep(Duration::from_millis(20));
        };
        // Let the stderr reader take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        status.code()
    }

    /// SIGTERM; expects exit 0 and no token on stderr.
    pub(crate) fn stop_cleanly(mut self, secrets: &[&str]) {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
        let code = self.wait_exit("SIGTERM");
        let err = self.stderr();
        assert_eq!(code, Some(0), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        for s in secrets {
            assert!(!err.contains(s), "the token appeared on stderr");
        }
    }
}

impl Drop for Mds {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, token: &str, ttl: i64) -> (Server, String) {
    let path = dir.join("wif_token.txt");
    let exp = write_token(&path, token, ttl);
    (Server::start(&path, &[]), exp)
}

/// wif-serve with TOKEN for an hour, and a metadata server (with a project number) that has
/// fetched it.
fn serving(dir: &Path) -> (Server, Mds) {
    let (server, _) = serve(dir, TOKEN, 3600);
    let mds = Mds::start(server.port, &["--project-number", "123456789012"]);
    mds.wait_stderr("fetched the token", 20);
    (server, mds)
}

/// A file of tests/interop.
fn interop_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop").join(name)
}

/// `program args` as a Google client library runs on a consumer host: pointed at the
/// metadata server `mds` by the environment alone, with no other credentials around.
fn google_client<A: AsRef<OsStr>>(mds: &Mds, dir: &Path, program: impl AsRef<OsStr>, args: &[A]) -> Command {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("GCE_METADATA_HOST", &mds.host)
        .env("GCE_METADATA_IP", &mds.host)
        .env("HOME", &home)
        .env("CLOUDSDK_CONFIG", home.join("gcloud"))
        .env("GCE_METADATA_DETECT_RETRIES", "1");
    for var in [
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_CLOUD_PROJECT",
        "GCLOUD_PROJECT",
        "GCE_METADATA_ROOT",
        "GCE_METADATA_MTLS_MODE",
        "NO_GCE_CHECK",
        "GOOGLE_CLOUD_QUOTA_PROJECT",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn nodejs_google_auth_library_gets_our_token() {
    let Some(node_modules) = interop::node_modules() else { return };
    let dir = tempdir();
    let (server, exp) = serve(dir.path(), TOKEN, 3600);
    let mds = Mds::start(server.port, &["--project-id", "wif-demo"]);
    mds.wait_stderr("fetched the token", 20);
    let out = google_client(&mds, dir.path(), "node", &[interop_file("node/google_auth_metadata.js")])
        .env("NODE_PATH", node_modules)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("node printed no JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out))
    });
    assert!(out.status.success(), "{v}\n{}", stderr(&out));
    assert_eq!(v["available"], true, "{v}");
    assert_eq!(v["client"], "Compute", "{v}");
    assert_eq!(v["project"], "wif-demo");
    assert_eq!(v["token"], TOKEN);
    assert_eq!(v["client_email"], EMAIL);
    // expiry_date is milliseconds, computed from our expires_in.
    let want = wif::core::clock::parse_rfc3339(&exp).unwrap() * 1000;
    let got = v["expiry_date"].as_i64().unwrap();
    assert!((got - want).abs() <= 5000, "google-auth-library's expiry {got} vs the token's {want}");
    mds.stop_cleanly(&[TOKEN]);
}

/// Google's Go libraries (golang.org/x/oauth2/google's ComputeTokenSource and Application
/// Default Credentials, cloud.google.com/go/compute/metadata), as Debian packages them.
#[test]
fn go_oauth2_google_and_metadata_get_our_token() {
    let Some(client) = interop::go_client() else { return };
    let dir = tempdir();
    let (server, exp) = serve(dir.path(), TOKEN, 3600);
    let mds = Mds::start(server.port, &["--project-id", "wif-demo", "--project-number", "123456789012"]);
    mds.wait_stderr("fetched the token", 20);
    let out = google_client(&mds, dir.path(), client, &["metadata"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("the Go client printed no JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out))
    });
    assert!(out.status.success(), "{v}\n{}", stderr(&out));
    assert_eq!(v["on_gce"], true, "{v}");
    assert_eq!(v["project_id"], "wif-demo");
    assert_eq!(v["numeric_project_id"], "123456789012");
    assert_eq!(v["email"], EMAIL);
    assert_eq!(v["scopes"], json!([CLOUD_PLATFORM]));
    assert_eq!(v["default_project_id"], "wif-demo");
    let want = wif::core::clock::parse_rfc3339(&exp).unwrap();
    for how in ["compute", "default"] {
        let t = &v[how];
        assert_eq!(t["token_sha256"], wif::core::keys::sha256_hex(TOKEN.as_bytes()), "{how}: {v}");
        assert_eq!(t["token_length"], TOKEN.len(), "{how}: {v}");
        assert_eq!((&t["token_type"], &t["valid"]), (&json!("Bearer"), &json!(true)), "{how}: {v}");
        let got = t["expiry"].as_i64().unwrap();
        assert!((got - want).abs() <= 5, "{how}: the Go library's expiry {got} vs the token's {want}");
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains(TOKEN) && !stderr(&out).contains(TOKEN));
    mds.stop_cleanly(&[TOKEN]);
}

/// gcloud itself (not a library): it detects a metadata server by reading
/// `project/numeric-project-id` (digits required), then takes the account and the token from it.
/// gcloud cannot be installed in CI (not packaged there), so unlike the other interop tests
/// this one skips wherever gcloud is missing, CI included.
#[test]
fn gcloud_gets_our_token_and_account() {
    let present = Command::new("gcloud").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !present.is_ok_and(|s| s.success()) {
        not_run("gcloud", "the Google Cloud CLI is not in Debian or the registries CI reaches; install it by hand");
        return;
    }
    let dir = tempdir();
    let (server, _) = serve(dir.path(), TOKEN, 3600);
    let mds = Mds::start(server.port, &["--project-id", "wif-demo", "--project-number", "123456789012"]);
    mds.wait_stderr("fetched the token", 20);
    let config = dir.path().join("gcloud");
    let gcloud = |args: &[&str]| {
        let mut cmd = Command::new("gcloud");
        // No proxies, no settings of the user's; a fresh config directory (where gcloud
        // would also cache a failed detection).
        for (k, _) in std::env::vars() {
            if (k.starts_with("CLOUDSDK_") && k != "CLOUDSDK_PYTHON")
                || k.starts_with("GCE_METADATA")
                || k.to_lowercase().ends_with("_proxy")
            {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("GOOGLE_APPLICATION_CREDENTIALS");
        cmd.args(args)
            .env("GCE_METADATA_ROOT", &mds.host)
            .env("GCE_METADATA_IP", &mds.host)
            .env("CLOUDSDK_CONFIG", &config)
            .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
            .env("HOME", dir.path())
            .stdin(Stdio::null());
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "gcloud {args:?}: {}", stderr(&out));
        out.stdout
    };
    let token = gcloud(&["auth", "print-access-token"]);
    assert_eq!(String::from_utf8_lossy(&token).trim(), TOKEN);
    let accounts: Value = serde_json::from_slice(&gcloud(&["auth", "list", "--format=json"])).unwrap();
    assert_eq!(accounts, json!([{"account": EMAIL, "status": "ACTIVE"}]));
    mds.stop_cleanly(&[TOKEN]);
}

fn body_json(r: &Resp) -> Value {
    r.json()
}

#[test]
fn google_auth_compute_engine_credentials_get_our_token() {
    if !python_has("google.auth,requests") {
        return;
    }
    let dir = tempdir();
    let (server, exp) = serve(dir.path(), TOKEN, 3600);
    let mds = Mds::start(server.port, &["--project-id", "wif-demo", "--project-number", "123456789012"]);
    mds.wait_stderr("fetched the token", 20);

    let out = google_client(&mds, dir.path(), "python3", &[interop_file("google_auth_metadata.py")]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("google-auth printed no JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out))
    });
    assert!(out.status.success(), "{v}\n{}", stderr(&out));
    assert_eq!(v["on_gce"], true, "{v}");
    assert_eq!(v["default_type"], "google.auth.compute_engine.credentials.Credentials", "{v}");
    assert_eq!(v["default_project"], "wif-demo");
    assert_eq!(v["token"], TOKEN);
    assert_eq!(v["service_account_email"], EMAIL);
    assert_eq!(v["scopes"], json!([CLOUD_PLATFORM]));
    assert_eq!(v["valid"], true);
    let want = wif::core::clock::parse_rfc3339(&exp).unwrap();
    let got = v["expiry"].as_i64().unwrap();
    assert!((got - want).abs() <= 5, "google-auth's expiry {got} vs the token's {want}");
    mds.stop_cleanly(&[TOKEN]);
}

#[test]
fn answers_like_the_metadata_server() {
    let dir = tempdir();
    let (server, exp) = serve(dir.path(), TOKEN, 3600);
    let mds = Mds::start(server.port, &["--project-id", "wif-demo", "--scopes", "a,b"]);
    mds.wait_stderr("fetched the token", 20);

    // The detection probe needs no header; every answer carries Metadata-Flavor: Google.
    let r = mds.request("GET", "/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("metadata-flavor"), Some("Google"));
    assert_eq!(r.header("content-type"), Some("application/text"));

    let r = mds.token();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("metadata-flavor"), Some("Google"));
    let t = body_json(&r);
    assert_eq!(t["access_token"], TOKEN);
    assert_eq!(t["token_type"], "Bearer");
    let left = wif::core::clock::parse_rfc3339(&exp).unwrap() - wif::core::clock::now_unix();
    assert!((t["expires_in"].as_i64().unwrap() - left).abs() <= 3, "{t} vs {left}");
    // The email alias, and requested scopes (served the token as issued).
    let r = mds.get(&format!("/computeMetadata/v1/instance/service-accounts/{EMAIL}/token?scopes=x,y"));
    assert_eq!(body_json(&r)["access_token"], TOKEN);

    let r = mds.get("/computeMetadata/v1/instance/service-accounts/default/email");
    assert_eq!((r.status, r.header("content-type")), (200, Some("application/text")));
    assert_eq!(r.body, EMAIL.as_bytes());
    let r = mds.get("/computeMetadata/v1/instance/service-accounts/default/scopes");
    assert_eq!(String::from_utf8(r.body).unwrap().lines().collect::<Vec<_>>(), ["a", "b"]);
    let r = mds.get("/computeMetadata/v1/instance/service-accounts/default/?recursive=true");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(body_json(&r), json!({"aliases": ["default"], "email": EMAIL, "scopes": ["a", "b"]}));
    let r = mds.get("/computeMetadata/v1/instance/service-accounts/");
    assert_eq!(String::from_utf8(r.body).unwrap().lines().collect::<Vec<_>>(), ["default/", &format!("{EMAIL}/")]);
    let r = mds.get("/computeMetadata/v1/project/project-id");
    assert_eq!((r.status, r.body.as_slice()), (200, b"wif-demo".as_slice()));
    // Not configured, not served; gcloud needs it, and wif-get said so once at start.
    assert_eq!(mds.get("/computeMetadata/v1/project/numeric-project-id").status, 404);
    let warned = mds.wait_stderr("warning", 5);
    assert!(
        warned.contains("gcloud and gsutil will not detect this metadata server without --project-number"),
        "{warned}"
    );
    assert_eq!(mds.stderr().matches("--project-number").count(), 1, "{}", mds.stderr());
    assert_eq!(mds.get("/computeMetadata/v1/instance/zone").status, 404);
    assert_eq!(mds.get("/elsewhere").status, 404);

    // Without Metadata-Flavor: Google, or through a proxy: 403, still with the flavor header.
    for headers in
        [&[][..], &["Metadata-Flavor: Other"][..], &["Metadata-Flavor: Google", "X-Forwarded-For: 10.1.2.3"][..]]
    {
        let r = mds.request("GET", "/computeMetadata/v1/instance/service-accounts/default/token", headers);
        assert_eq!(r.status, 403, "{headers:?}");
        assert_eq!(r.header("metadata-flavor"), Some("Google"));
        assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN));
    }
    assert_eq!(mds.request("GET", "/", &["X-Forwarded-For: 10.1.2.3"]).status, 403);
    assert_eq!(mds.request("POST", "/computeMetadata/v1/project/project-id", &["Metadata-Flavor: Google"]).status, 405);
    // google-auth POSTs for the token, with a certificate chain, when it finds an Agent
    // Identity certificate: the body is read and ignored, the token served as issued.
    let chain = json!({"certificate_chain": "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"});
    let r = mds.post("/computeMetadata/v1/instance/service-accounts/default/token", &chain.to_string());
    assert_eq!(r.status, 200);
    assert_eq!(body_json(&r)["access_token"], TOKEN);
    let r = mds.post("/computeMetadata/v1/instance/service-accounts/default/token", &"x".repeat(100_000));
    assert_eq!(r.status, 413);

    // Clients that connect and say nothing do not hold up the others.
    let idle: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(&mds.host).unwrap();
            s.write_all(b"GET /computeMetadata/v1/ HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    assert_eq!(body_json(&mds.token())["access_token"], TOKEN);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    drop(idle);
    assert!(mds.stderr().contains("asked for scopes x,y"), "{}", mds.stderr());
    mds.stop_cleanly(&[TOKEN]);
}

#[test]
fn slow_clients_are_cut_off_and_a_full_house_makes_room() {
    let dir = tempdir();
    let (_server, mds) = serving(dir.path());

    // All 128 slots held by requests that never finish (half a head, half a body): a client
    // library is still answered at once, in the slot of the oldest, which is closed unanswered.
    let mut held: Vec<TcpStream> = (0..128)
        .map(|i| {
            let mut s = TcpStream::connect(&mds.host).unwrap();
            let partial: &[u8] = if i % 2 == 0 {
                b"GET / HTTP/1.1\r\n"
            } else {
                b"POST /computeMetadata/v1/instance/service-accounts/default/token HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                  Metadata-Flavor: Google\r\nContent-Length: 1000\r\n\r\n{"
            };
            s.write_all(partial).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(body_json(&mds.token())["access_token"], TOKEN);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let oldest = &mut held[0];
    oldest.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(std::io::Read::read(oldest, &mut [0u8; 64]).unwrap(), 0, "the oldest was closed, unanswered");
    drop(held);

    // A client sending a byte every 500 ms (each read is quick) is cut off 10 s after it
    // connected, with 408: a whole-request deadline, not a per-read one.
    let mut s = TcpStream::connect(&mds.host).unwrap();
    let started = Instant::now();
    let mut writer = s.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for b in b"GET /computeMetadata/v1/ HTTP/1.1\r\nX-Slow: ".iter().chain(std::iter::repeat(&b'a')).take(60) {
            if writer.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    s.set_read_timeout(Some(Duration::from_secs(25))).unwrap();
    let mut got = Vec::new();
    let end = std::io::Read::read_to_end(&mut s, &mut got);
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(9) && took < Duration::from_secs(13), "cut off after {took:?} ({end:?})");
    // The 408 may be lost to a reset if a trickled byte crossed the close.
    if !got.is_empty() {
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408 ") && text.contains("Metadata-Flavor: Google"), "{text}");
    }
    drop(s);
    trickle.join().unwrap();
    mds.stop_cleanly(&[TOKEN]);
}

/// DNS rebinding: a page at http://attacker.example:PORT/ whose name then resolves to
/// 127.0.0.1 fetches the token as same-origin, free to add `Metadata-Flavor: Google`. What
/// reaches the server is what Chromium sends for that fetch: the page's name as the Host.
/// Refused with 403 and no token, as are requests with `Origin` or a browser's
/// `Sec-Fetch-Site`; each refusal is one line on stderr. What client libraries send is served.
#[test]
fn dns_rebinding_and_browser_requests_get_403_and_no_token() {
    let dir = tempdir();
    let (_server, mds) = serving(dir.path());
    let port = mds.port();
    let token = "/computeMetadata/v1/instance/service-accounts/default/token";
    let own = format!("Host: {}", mds.host);
    let rebound = format!("Host: attacker.example:{port}");
    let browser = [
        "Metadata-Flavor: Google",
        "Sec-Fetch-Site: same-origin",
        "Sec-Fetch-Mode: cors",
        "Sec-Fetch-Dest: empty",
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Accept: */*",
    ];
    let other_port = format!("Host: 127.0.0.1:{}", port.wrapping_add(1));
    let attacks: Vec<(&str, Vec<&str>)> = vec![
        ("the rebound page, as Chromium sends it", [&[rebound.as_str()][..], &browser[..]].concat()),
        ("the rebound name alone", vec!["Host: attacker.example", "Metadata-Flavor: Google"]),
        ("the rebound name with our port", vec![rebound.as_str(), "Metadata-Flavor: Google"]),
        ("loopback on another port", vec![other_port.as_str(), "Metadata-Flavor: Google"]),
        ("a cross-origin page (Origin)", vec![own.as_str(), "Metadata-Flavor: Google", "Origin: http://evil.example"]),
        ("Sec-Fetch-Site: cross-site", vec![own.as_str(), "Metadata-Flavor: Google", "Sec-Fetch-Site: cross-site"]),
        ("Sec-Fetch-Site: same-site", vec![own.as_str(), "Metadata-Flavor: Google", "Sec-Fetch-Site: same-site"]),
    ];
    for (i, (what, headers)) in attacks.iter().enumerate() {
        // google-auth's POST for the token too.
        for method in if i == 0 { &["GET", "POST"][..] } else { &["GET"][..] } {
            let r = mds.raw(method, token, headers);
            assert_eq!(r.status, 403, "{what}, {method}");
            assert_eq!(r.header("metadata-flavor"), Some("Google"), "{what}");
            assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN), "{what}: the token in the answer");
        }
    }
    // Not even the detection probe answers a page.
    assert_eq!(mds.raw("GET", "/", &["Host: attacker.example"]).status, 403);
    // HTTP/1.1 requires one Host, exactly.
    assert_eq!(mds.raw("GET", token, &["Metadata-Flavor: Google"]).status, 400);
    assert_eq!(mds.raw("GET", token, &[own.as_str(), "Host: attacker.example", "Metadata-Flavor: Google"]).status, 400);

    // One line each on stderr, saying what and why; never the token.
    let line = mds.wait_stderr("attacker.example", 5);
    assert!(
        line.starts_with(&format!(
            "wif-get: warning: metadata server: refused GET {token}: Host \"attacker.example:{port}\""
        )) && line.contains("not a name of this server"),
        "{line}"
    );
    mds.wait_stderr("Origin: \"http://evil.example\"", 5);
    mds.wait_stderr("Sec-Fetch-Site: \"cross-site\"", 5);
    std::thread::sleep(Duration::from_millis(200));
    let refused = mds.stderr().lines().filter(|l| l.contains("metadata server: refused")).count();
    assert_eq!(refused, attacks.len() + 2, "{}", mds.stderr());
    assert!(!mds.stderr().contains(TOKEN));
    // A short name that a search domain, LLMNR or a DHCP-registered name could resolve to an
    // attacker's host, the link-local metadata address, a port with a sign, and a proxy that
    // says so the RFC 7239 way: refused too (after the log's cap, so not counted above).
    let short = format!("Host: metadata:{port}");
    let signed = format!("Host: localhost:+{port}");
    for headers in [
        vec![short.as_str(), "Metadata-Flavor: Google"],
        vec!["Host: 169.254.169.254", "Metadata-Flavor: Google"],
        vec![signed.as_str(), "Metadata-Flavor: Google"],
        vec![own.as_str(), "Metadata-Flavor: Google", "Forwarded: for=10.1.2.3"],
    ] {
        let r = mds.raw("GET", token, &headers);
        assert_eq!(r.status, 403, "{headers:?}");
        assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN), "{headers:?}");
    }

    // What client libraries and tools send: GCE_METADATA_HOST as given, or the metadata
    // server's name where a hosts file points it here.
    for host in [
        mds.host.clone(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("127.0.0.53:{port}"),
        "metadata.google.internal".into(),
        format!("metadata.google.internal.:{port}"),
    ] {
        let r = mds.raw("GET", token, &[&format!("Host: {host}"), "Metadata-Flavor: Google"]);
        assert_eq!((r.status, body_json(&r)["access_token"].as_str()), (200, Some(TOKEN)), "{host}");
    }
    // A URL typed into the address bar (Sec-Fetch-Site: none) is no page's request; it only
    // cannot send Metadata-Flavor.
    assert_eq!(mds.request("GET", "/", &["Sec-Fetch-Site: none"]).status, 200);
    assert_eq!(mds.request("GET", token, &["Sec-Fetch-Site: none"]).status, 403);
    mds.stop_cleanly(&[TOKEN]);
}

#[test]
fn refreshes_when_the_token_runs_low_and_serves_the_last_good_one_through_failures() {
    let dir = tempdir();
    let path = dir.path().join("wif_token.txt");
    write_token(&path, TOKEN, 12);
    let server = Server::start(&path, &[]);
    let mds = Mds::start(server.port, &["--min-ttl", "6s", "--retries", "0"]);
    mds.wait_stderr("fetched the token", 20);
    assert_eq!(body_json(&mds.token())["access_token"], TOKEN);
    // The server's token changes; wif-get picks it up when A has 6 s left.
    write_token(&path, TOKEN_B, 3600);
    let deadline = Instant::now() + Duration::from_secs(20);
    let t = loop {
        let t = body_json(&mds.token());
        if t["access_token"] == TOKEN_B {
            break t;
        }
        assert!(Instant::now() < deadline, "still serving A: {}", mds.stderr());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(t["expires_in"].as_i64().unwrap() > 3500, "{t}");
    let fetched = mds.stderr().lines().filter(|l| l.contains("fetched the token")).count();
    assert_eq!(fetched, 2, "{}", mds.stderr());
    drop(server);
    mds.stop_cleanly(&[TOKEN, TOKEN_B]);

    // wif-serve goes away: the last good token is served until it expires, then 503.
    let dir = tempdir();
    let (server, _) = serve(dir.path(), TOKEN, 10);
    let mds = Mds::start(server.port, &["--min-ttl", "8s", "--retries", "0"]);
    mds.wait_stderr("fetched the token", 20);
    drop(server);
    let failed = mds.wait_stderr("refreshing the token failed", 20);
    assert!(failed.contains("serving the previous token until"), "{failed}");
    assert_eq!(body_json(&mds.token())["access_token"], TOKEN);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = mds.token();
        if r.status == 503 {
            assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN));
            break;
        }
        assert_eq!(body_json(&r)["access_token"], TOKEN);
        assert!(Instant::now() < deadline, "an expired token is still served");
        std::thread::sleep(Duration::from_millis(250));
    }
    mds.stop_cleanly(&[TOKEN]);
}

#[test]
fn wif_serve_down_at_start_is_retried_until_it_answers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mds = Mds::start(port, &["--retries", "0"]);
    let failed = mds.wait_stderr("refreshing the token failed", 20);
    assert!(failed.contains("connection refused") && failed.contains("no token to serve yet"), "{failed}");
    let retry = &crate::common::retry_lines(&failed, "wif-get")[0];
    assert_eq!((retry.attempt, retry.of), (1, None), "the metadata server retries until wif-serve answers: {failed}");
    // Detection still works; the token is 503 (client libraries retry that).
    assert_eq!(mds.request("GET", "/", &[]).status, 200);
    let r = mds.token();
    assert_eq!(r.status, 503);
    assert_eq!(r.header("metadata-flavor"), Some("Google"));

    let dir = tempdir();
    let path = dir.path().join("wif_token.txt");
    write_token(&path, TOKEN, 3600);
    let mut args = crate::common::server::server_args(&pki_file("ca-chain.crt"), &path);
    args[1] = format!("127.0.0.1:{port}");
    let _server = Server::spawn(&args, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while mds.token().status != 200 {
        assert!(Instant::now() < deadline, "never fetched: {}", mds.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(body_json(&mds.token())["access_token"], TOKEN);
    mds.stop_cleanly(&[TOKEN]);
}

#[test]
fn refused_at_start_exits_with_the_error() {
    let dir = tempdir();
    let (server, _) = serve(dir.path(), TOKEN, 3600);
    let args: Vec<String> = [
        "--url",
        &format!("https://localhost:{}/get_wif_token", server.port),
        "--cert",
        &pki_file("other-client.crt"),
        "--key",
        &pki_file("other-client.key"),
        "--ca",
        &pki_file("ca-chain.crt"),
        "--metadata-server",
        "127.0.0.1:0",
        "--service-account",
        EMAIL,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut mds = Mds::spawn(&args).unwrap_or_else(|e| panic!("exited before listening: {e:?}"));
    let code = mds.wait_exit("a refused client certificate");
    let err = mds.stderr();
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("wif-get: starting the metadata server: fetching https://localhost:"), "{err}");
    assert!(err.contains("refused our client certificate") && err.contains("wif-get: hint:"), "{err}");
}

#[test]
fn only_loopback_and_complete_settings_are_accepted() {
    let base = |addr: &str| -> Vec<String> {
        ["--url", "https://localhost:1/get_wif_token", "--cert", "c", "--key", "k", "--ca", "ca"]
            .iter()
            .map(|s| s.to_string())
            .chain(["--metadata-server".to_string(), addr.to_string()])
            .collect()
    };
    for addr in ["0.0.0.0:0", "192.0.2.1:8080", "[::]:0", "8080"] {
        let out = bin("wif-get").args(base(addr)).args(["--service-account", EMAIL]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{addr}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("is not a loopback ADDRESS:PORT") && err.contains("wif-get: hint:"), "{err}");
        assert!(out.stdout.is_empty());
    }
    // The service account is required, and must look like one.
    let out = bin("wif-get").args(base("127.0.0.1:0")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("WIF_GET_SERVICE_ACCOUNT") && stderr(&out).contains("get_service_account"));
    let out = bin("wif-get").args(base("127.0.0.1:0")).args(["--service-account", "default"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = bin("wif-get")
        .args(base("127.0.0.1:0"))
        .args(["--service-account", EMAIL, "--project-number", "wif-demo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--project-number"));
}

#[test]
fn settings_come_from_the_config() {
    let dir = tempdir();
    let (server, _) = serve(dir.path(), TOKEN, 3600);
    let cfg = dir.path().join("get.json");
    let config = json!({
        "get_url": format!("https://localhost:{}/get_wif_token", server.port),
        "get_cert": pki_file("client.crt"),
        "get_key": pki_file("client.key"),
        "get_ca": pki_file("ca-chain.crt"),
        "get_metadata_server": "127.0.0.1:0",
        "get_service_account": EMAIL,
        "get_project_id": "from-config",
        "get_project_number": 123456789012u64,
        "get_scopes": [CLOUD_PLATFORM, "https://www.googleapis.com/auth/userinfo.email"],
    });
    std::fs::write(&cfg, config.to_string()).unwrap();
    let mds = Mds::spawn(&["--config".to_string(), cfg.display().to_string()]).unwrap_or_else(|e| panic!("{e:?}"));
    mds.wait_stderr("fetched the token", 20);
    assert!(!mds.stderr().contains("warning"), "{}", mds.stderr());
    let r = mds.get("/computeMetadata/v1/project/?recursive=true");
    assert_eq!(body_json(&r), json!({"numericProjectId": 123456789012u64, "projectId": "from-config"}));
    let r = mds.get("/computeMetadata/v1/instance/service-accounts/default/?recursive=true");
    assert_eq!(body_json(&r)["scopes"], config["get_scopes"]);
    mds.stop_cleanly(&[TOKEN]);
}
