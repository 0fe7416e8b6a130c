//! The credential broker's test bench: wif-emulate with two Cloud Storage buckets, real
//! service-account tokens from the pipeline, policies written the careful way, a gate that
//! takes STS down and brings it back, clients with any certificate, storage requests with a
//! token, and the checks that no token reaches a log or the ledger.

use super::server::{client_builder, connect, read_response, Resp, Server};
use super::*;
use serde_json::{json, Value};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// The service account examples/emulator.json lets the pipeline impersonate.
pub(crate) use crate::emulator::SA;
/// Team A's bucket: `reports/q1.csv` and `private/salaries.csv`.
pub const BUCKET_A: &str = "team-a-data";
/// Team B's bucket: `builds/app.tar`.
pub const BUCKET_B: &str = "team-b-data";
/// The content of team A's report.
pub const REPORT: &str = "a,b\n1,2\n";
/// The content of team B's build.
pub const BUILD: &str = "build artefact v1\n";

/// examples/emulator.json with two buckets the service account may read (objectViewer on both),
/// so only a boundary keeps a token to one of them.
pub fn emulator_config() -> Value {
    let mut config = crate::emulator::example();
    let viewer = json!([{ "role": "roles/storage.objectViewer", "members": [format!("serviceAccount:{SA}")] }]);
    config["google"]["storage"] = json!({ "buckets": [
        { "name": BUCKET_A, "iam": viewer, "objects": [
            { "name": "reports/q1.csv", "content": REPORT, "content_type": "text/csv" },
            { "name": "private/salaries.csv", "content": "who,what\n", "content_type": "text/csv" },
        ]},
        { "name": BUCKET_B, "iam": viewer, "objects": [
            { "name": "builds/app.tar", "content": BUILD, "content_type": "application/x-tar" },
        ]},
    ]});
    config
}

/// A running wif-emulate (plain HTTP on loopback) with its request log; killed when dropped.
pub struct Emu {
    inner: crate::emulator::Emu,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Emu {
    /// Starts the emulator with [`emulator_config`].
    pub fn start() -> Emu {
        Emu::with(&emulator_config())
    }

    /// Starts the emulator with `config` (certificate paths relative to the test PKI).
    pub fn with(config: &Value) -> Emu {
        let inner = crate::emulator::Emu::start(config, &[]);
        Emu { url: inner.url.clone(), inner }
    }

    /// The STS endpoint.
    pub fn sts(&self) -> String {
        format!("{}/v1/token", self.url)
    }

    /// Every request line logged so far (after a moment for the log reader).
    pub fn requests(&self) -> Vec<Value> {
        self.inner.requests()
    }

    /// How many STS requests (`POST /v1/token`) the emulator has answered so far.
    pub fn sts_calls(&self) -> usize {
        self.requests().iter().filter(|r| r["method"] == "POST" && r["path"] == "/v1/token").count()
    }

    /// The emulator's log as text, for secrecy checks.
    pub fn log_text(&self) -> String {
        self.inner.raw_log()
    }
}

/// The whole pipeline against `emu`, the service account's token written to `token_file`
/// (with its metadata, as wif-serve reads it); returns the token.
pub fn sa_token(emu: &Emu, token_file: &Path) -> String {
    crate::emulator::pipeline_to(&emu.inner, "app-rsa.key", "app-rsa.crt", &[], token_file);
    std::fs::read_to_string(token_file).unwrap()
}

/// A new token for `token_file` from the pipeline, renamed over the old one (as
/// `--token-out` does); returns it.
pub fn renew(emu: &Emu, token_file: &Path) -> String {
    let staged = tempdir();
    let token = sa_token(emu, &staged.path().join("wif_token.txt"));
    for (from, to) in [
        (staged.path().join("wif_token.txt.meta.json"), wif::core::files::meta_path(token_file)),
        (staged.path().join("wif_token.txt"), token_file.to_path_buf()),
    ] {
        std::fs::rename(&from, &to)
            .unwrap_or_else(|e| panic!("renaming {} over {}: {e}", from.display(), to.display()));
    }
    token
}

/// A Credential Access Boundary for `bucket` with objectViewer; with `prefix`, only its
/// objects under it (and lists of that prefix), as Google's documentation writes it.
pub fn boundary(bucket: &str, prefix: Option<&str>) -> Value {
    let mut rule = json!({
        "availableResource": format!("//storage.googleapis.com/projects/_/buckets/{bucket}"),
        "availablePermissions": ["inRole:roles/storage.objectViewer"],
    });
    if let Some(p) = prefix {
        let expression = format!(
            "resource.name.startsWith('projects/_/buckets/{bucket}/objects/{p}') || \
             api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('{p}')"
        );
        rule["availabilityCondition"] = json!({ "expression": expression, "title": format!("{p} only") });
    }
    json!({ "accessBoundaryRules": [rule] })
}

/// The `X-Wif-Access-Boundary` value: the first 16 hex of SHA-256 of the compact JSON.
pub fn boundary_digest(boundary: &Value) -> String {
    wif::core::keys::sha256_hex(boundary.to_string().as_bytes())[..16].to_string()
}

/// A rule: its name, match and (optional) boundary.
pub fn rule(name: &str, matches: Value, boundary: Option<Value>) -> Value {
    let mut r = json!({ "name": name, "match": matches });
    if let Some(b) = boundary {
        r["access_boundary"] = b;
    }
    r
}

/// The two teams' rules: `wif-client` (by CN) reads team A's reports, `wif-client-2` (by
/// SPIFFE ID) reads team B's bucket.
pub fn team_rules() -> Vec<Value> {
    vec![
        rule("team-a", json!({ "cn": "wif-client" }), Some(boundary(BUCKET_A, Some("reports/")))),
        rule("team-b", json!({ "uri": "spiffe://example.org/wif-client-2" }), Some(boundary(BUCKET_B, None))),
    ]
}

/// Writes a version 1 policy with `rules` to `file` the careful way (a new file renamed
/// over the old), so a reloading server never reads half of it.
pub fn write_policy(file: &Path, rules: &[Value]) {
    write_json(file, &json!({ "version": 1, "rules": rules }));
}

/// Writes any JSON document to `file` the careful way.
pub fn write_json(file: &Path, doc: &Value) {
    let staged = file.with_extension("staged");
    std::fs::write(&staged, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    std::fs::rename(&staged, file).unwrap();
}

/// wif-serve with the test PKI, `--token token`, `--policy policy`, STS at `sts`, plus `extra`.
pub fn broker(token: &Path, policy: &Path, sts: &str, extra: &[&str]) -> Server {
    let mut args: Vec<&str> = vec!["--policy", policy.to_str().unwrap(), "--sts-endpoint", sts];
    args.extend(extra);
    Server::start(token, &args)
}

/// A stand-in for STS that forwards to the real one while open and drops every connection
/// at once while closed (as a dead endpoint does). Its listener lives until the test ends.
pub struct Gate {
    /// Its STS URL, `http://127.0.0.1:PORT/v1/token`.
    pub url: String,
    open: Arc<AtomicBool>,
}

impl Gate {
    /// A gate in front of `emu`, open.
    pub fn new(emu: &Emu) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = emu.url.trim_start_matches("http://").to_string();
        let open = Arc::new(AtomicBool::new(true));
        let is_open = open.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                if is_open.load(Ordering::SeqCst) {
                    if let Ok(up) = TcpStream::connect(&upstream) {
                        splice(conn, up);
                    }
                }
            }
        });
        Gate { url: format!("http://127.0.0.1:{port}/v1/token"), open }
    }

    /// Opens (`true`) or closes the gate.
    pub fn set(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
    }
}

/// Copies bytes both ways between two connections, each way on its own thread.
fn splice(a: TcpStream, b: TcpStream) {
    for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }
}

/// A client configuration with the certificate and key files `cert` and `key` (any
/// certificate, e.g. one made with [`rsa_leaf`]), trusting the test PKI's CA.
pub fn client_files(cert: &Path, key: &Path) -> Arc<rustls::ClientConfig> {
    let chain = wif::core::keys::load_certs(cert).unwrap();
    let key = wif::core::keys::load_key(key, None).unwrap().key;
    Arc::new(client_builder("ca-chain.crt", None).with_client_auth_cert(chain, key).unwrap())
}

/// The test PKI's client `name` (`client`, `client2`) as a client configuration.
pub fn pki_client(name: &str) -> Arc<rustls::ClientConfig> {
    super::server::client_config(Some(name), "ca-chain.crt", None)
}

/// `METHOD /get_wif_token` over a new mutual TLS connection as `client`.
pub fn fetch_as(port: u16, client: Arc<rustls::ClientConfig>, method: &str) -> Resp {
    let mut s = connect(port, client);
    s.write_all(format!("{method} /get_wif_token HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).unwrap();
    s.flush().unwrap();
    read_response(&mut s, method == "HEAD").unwrap_or_else(|e| panic!("{method} /get_wif_token: {e}"))
}

/// `GET /get_wif_token` as the test PKI's client `name`; asserts 200 and returns the answer
/// and the token.
pub fn token_for(port: u16, name: &str) -> (Resp, String) {
    let r = fetch_as(port, pki_client(name), "GET");
    assert_eq!(r.status, 200, "{name}: {}", String::from_utf8_lossy(&r.body));
    let token = String::from_utf8(r.body.clone()).unwrap();
    (r, token)
}

/// A GET with `token` as the bearer at `url`; the status and body.
pub fn get_with(url: &str, token: &str) -> (u16, Vec<u8>) {
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut r = agent.get(url).header("Authorization", format!("Bearer {token}")).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_vec().unwrap())
}

/// Reads `bucket/object`'s bytes from the emulator's storage with `token`: status and body.
pub fn read_object(emu: &Emu, token: &str, bucket: &str, object: &str) -> (u16, Vec<u8>) {
    let name = percent_encoding::utf8_percent_encode(object, percent_encoding::NON_ALPHANUMERIC);
    get_with(&format!("{}/storage/v1/b/{bucket}/o/{name}?alt=media", emu.url), token)
}

/// Lists `bucket` under `prefix` with `token`: status and the decoded answer.
pub fn list_objects(emu: &Emu, token: &str, bucket: &str, prefix: &str) -> (u16, Value) {
    let (status, body) = get_with(&format!("{}/storage/v1/b/{bucket}/o?prefix={prefix}", emu.url), token);
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The ways a token could leak: itself, base64 (standard and URL-safe), hex, and the hex of
/// its whole SHA-256 (a 16-hex prefix, as the ledger writes, is not a leak).
pub fn encodings(token: &str) -> Vec<String> {
    use base64::Engine;
    let b = token.as_bytes();
    vec![
        token.to_string(),
        base64::engine::general_purpose::STANDARD.encode(b),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b),
        hex::encode(b),
        wif::core::keys::sha256_hex(b),
    ]
}

/// Fails when any encoding of any of `tokens` occurs in `text` (named `what`).
pub fn assert_no_token(what: &str, text: &str, tokens: &[&str]) {
    for (i, t) in tokens.iter().enumerate() {
        for (j, e) in encodings(t).iter().enumerate() {
            assert!(!text.contains(e.as_str()), "token #{i} (encoding #{j}) appeared in {what}");
        }
    }
}

/// Stops `srv` and checks no encoding of `tokens` reached its stdout or stderr.
pub fn stop_checking_secrecy(srv: Server, tokens: &[&str]) {
    let all: Vec<String> = tokens.iter().flat_map(|t| encodings(t)).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    srv.finish_checking_secrecy(&refs);
}

/// The ledger file's lines, decoded (each must be JSON).
pub fn ledger(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("ledger line not JSON ({e}): {l}")))
        .collect()
}

/// The first 16 hex of a token's SHA-256, as the ledger writes it.
pub fn short_sha(token: &str) -> String {
    wif::core::keys::sha256_hex(token.as_bytes())[..16].to_string()
}

/// Scrapes the server's `/metrics` (it must run with `--metrics-listen`).
pub fn metrics(srv: &Server) -> prom::Samples {
    let addr = srv.first["metrics_address"].as_str().expect("metrics_address in the first log line");
    let mut r = ureq::get(&format!("http://{addr}/metrics")).call().unwrap();
    prom::parse_both(&r.body_mut().read_to_string().unwrap())
}
