//! wif-get against the seed's mTLS server (Python `ssl`, configured as the seed's Flask app:
//! CERT_REQUIRED over ca-chain.crt, server-chain.crt + server.key), over real TLS on loopback.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "ya29.c.b0AXv0zTPk-opaque-access-token-for-tests_0123456789";

fn now() -> i64 {
    wif::core::clock::now_unix()
}

/// The seed server, killed when dropped.
pub(crate) struct Seed {
    child: Child,
    pub(crate) port: u16,
}

impl Seed {
    fn start(token_file: &Path, extra: &[&str]) -> Seed {
        Self::start_with(token_file, "server-chain.crt", "server.key", extra)
    }

    fn start_with(token_file: &Path, cert: &str, key: &str, extra: &[&str]) -> Seed {
        Self::spawn("seed_server.py", token_file, cert, key, extra)
    }

    /// The seed's own Flask app (tests/interop/seed_flask.py, on the real flask package),
    /// serving the text of `token_file` and nothing else.
    pub(crate) fn flask(token_file: &Path) -> Seed {
        Self::spawn("seed_flask.py", token_file, "server-chain.crt", "server.key", &[])
    }

    /// Runs `script` from tests/interop with the test PKI; it prints {"port": N} first.
    fn spawn(script: &str, token_file: &Path, cert: &str, key: &str, extra: &[&str]) -> Seed {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop").join(script);
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--cert", &pki_file(cert), "--key", &pki_file(key), "--client-ca", &pki_file("ca-chain.crt")])
            .arg("--token")
            .arg(token_file)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the seed server");
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut first).unwrap();
        let v: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("seed server said {first:?}: {e}"));
        Seed { port: v["port"].as_u64().unwrap() as u16, child }
    }

    pub(crate) fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/get_wif_token", self.port)
    }

    /// Stops the server and returns one JSON line per request (or dropped connection).
    fn log(mut self) -> Vec<Value> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut rest = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut rest).unwrap();
        rest.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token_file(dir: &Path, token: &str) -> std::path::PathBuf {
    let p = dir.join("wif_token.txt");
    std::fs::write(&p, token).unwrap();
    p
}

/// wif-get with the good client identity and CA for `url`.
pub(crate) fn get(url: &str) -> assert_cmd::Command {
    let mut c = bin("wif-get");
    c.args(["--url", url, "--cert", &pki_file("client.crt"), "--key", &pki_file("client.key")])
        .args(["--ca", &pki_file("ca-chain.crt")]);
    c
}

fn retry_lines(err: &str) -> usize {
    crate::common::retry_lines(err, "wif-get").len()
}

fn assert_no_token(out: &std::process::Output, token: &str) {
    assert!(!stderr(out).contains(token), "the token leaked to stderr");
}

#[test]
fn fetches_the_token_writes_it_0600_with_meta() {
    let dir = tempdir();
    let exp = wif::core::clock::rfc3339(now() + 3600);
    let seed = Seed::start(&token_file(dir.path(), TOKEN), &["--expires-at", &exp]);
    let out_file = dir.path().join("token.txt");
    let out = get(&seed.url("localhost"))
        .arg("--out")
        .arg(&out_file)
        .write_stdin(r#"{"version":1,"custom":{"keep":true}}"#)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_token(&out, TOKEN);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(TOKEN), "the token is printed without --show-token");
    let doc = json_out(&out);
    assert_eq!(doc["custom"], json!({"keep": true}));
    let f = &doc["fetched"];
    assert_eq!(f["status"], 200);
    assert_eq!(f["url"], seed.url("localhost"));
    assert_eq!(f["expires_at"], exp.as_str());
    assert_eq!(f["expires_from"], "header");
    assert_eq!(f["bytes"], TOKEN.len());
    assert_eq!(f["sha256"], wif::core::keys::sha256_hex(TOKEN.as_bytes()));
    assert_eq!(f["out"], out_file.display().to_string());
    assert!(f.get("token").is_none());
    assert_eq!(std::fs::read(&out_file).unwrap(), TOKEN.as_bytes());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777, 0o600);
    let meta: Value = serde_json::from_slice(&std::fs::read(dir.path().join("token.txt.meta.json")).unwrap()).unwrap();
    assert_eq!(meta["expires_at"], exp.as_str());
    assert_eq!(meta["written_by"], "wif-get");
    assert_eq!(meta["sha256"], f["sha256"]);
    assert_eq!(seed.log().len(), 1);
}

#[test]
fn jwt_expiry_and_executable_format() {
    let dir = tempdir();
    let exp = now() + 1800;
    let jwt = fake_jwt(json!({"iss": "https://sts.windows.net/t/", "sub": "s", "aud": "api://wif", "exp": exp}));
    let seed = Seed::start(&token_file(dir.path(), &jwt), &["--expires-at", "none"]);
    let out_file = dir.path().join("token.txt");
    let out =
        get(&seed.url("localhost")).arg("--out").arg(&out_file).args(["--format", "executable"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_token(&out, &jwt);
    let resp = json_out(&out);
    assert_eq!(resp["version"], 1);
    assert_eq!(resp["success"], true);
    assert_eq!(resp["token_type"], "urn:ietf:params:oauth:token-type:jwt");
    assert_eq!(resp["id_token"], jwt.as_str());
    assert_eq!(resp["expiration_time"], exp);
    let meta: Value = serde_json::from_slice(&std::fs::read(dir.path().join("token.txt.meta.json")).unwrap()).unwrap();
    assert_eq!(meta["expires_at"], wif::core::clock::rfc3339(exp));
    assert_eq!(meta["token_type"], "jwt");
}

#[test]
fn executable_format_tells_an_azure_access_token_from_an_id_token() {
    let dir = tempdir();
    let exp = now() + 1800;
    // An Azure AD v2 app-only access token (client credentials): azp, but also azpacr, idtyp.
    let access = fake_jwt(json!({"aud": "api://wif", "iss": "https://login.microsoftonline.com/t/v2.0", "exp": exp,
        "azp": "11111111-2222-3333-4444-555555555555", "azpacr": "2", "idtyp": "app", "roles": ["Token.Read"],
        "oid": "o", "sub": "o", "tid": "t", "ver": "2.0"}));
    // A Google ID token from generateIdToken: azp and email.
    let id =
        fake_jwt(json!({"aud": "https://wif.example", "azp": "1234567890", "email": "sa@p.iam.gserviceaccount.com",
        "iss": "https://accounts.google.com", "sub": "1234567890", "exp": exp}));
    let file = dir.path().join("served.txt");
    let seed = Seed::start(&file, &["--expires-at", "none"]);
    let executable = |token: &str, extra: &[&str]| {
        std::fs::write(&file, token).unwrap();
        let out = get(&seed.url("localhost")).args(["--format", "executable"]).args(extra).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_no_token(&out, token);
        let resp = json_out(&out);
        assert_eq!((resp["id_token"].as_str(), resp["expiration_time"].as_i64()), (Some(token), Some(exp)));
        resp["token_type"].as_str().unwrap().to_string()
    };
    assert_eq!(executable(&access, &[]), "urn:ietf:params:oauth:token-type:jwt");
    assert_eq!(executable(&id, &[]), "urn:ietf:params:oauth:token-type:id_token");
    // The user says what it is.
    assert_eq!(executable(&access, &["--subject-token-type", "id_token"]), "urn:ietf:params:oauth:token-type:id_token");
    assert_eq!(executable(&id, &["--subject-token-type", "jwt"]), "urn:ietf:params:oauth:token-type:jwt");
    let out =
        get(&seed.url("localhost")).args(["--format", "executable", "--subject-token-type", "saml2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("needs a SAML assertion"), "{}", stderr(&out));
    // Only --format executable has a subject token type.
    let out = get(&seed.url("localhost")).args(["--subject-token-type", "jwt"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn token_and_export_formats() {
    let dir = tempdir();
    let exp = wif::core::clock::rfc3339(now() + 3600);
    let seed = Seed::start(&token_file(dir.path(), TOKEN), &["--expires-at", &exp]);
    let out = get(&seed.url("localhost")).args(["--format", "token"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, TOKEN.as_bytes());
    let out = get(&seed.url("localhost"))
        .args(["--format", "export", "--export-name", "CLOUDSDK_AUTH_ACCESS_TOKEN"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("export CLOUDSDK_AUTH_ACCESS_TOKEN='{TOKEN}'\n"));
    let out = get(&seed.url("localhost")).arg("--show-token").output().unwrap();
    assert_eq!(json_out(&out)["fetched"]["token"], TOKEN);
    // An opaque access token is not a subject token for google-auth's executable source.
    let out = get(&seed.url("localhost")).args(["--format", "executable"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert_no_token(&out, TOKEN);
}

#[test]
fn gcloud_and_terraform_formats() {
    let dir = tempdir();
    let exp = wif::core::clock::rfc3339(now() + 3600);
    let seed = Seed::start(&token_file(dir.path(), TOKEN), &["--expires-at", &exp]);
    // Terraform's google provider reads GOOGLE_OAUTH_ACCESS_TOKEN: the default export name.
    let out = get(&seed.url("localhost")).args(["--format", "export"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("export GOOGLE_OAUTH_ACCESS_TOKEN='{TOKEN}'\n"));
    // gcloud reads the file named by CLOUDSDK_AUTH_ACCESS_TOKEN_FILE; the line names --out, absolute.
    let sub = dir.path().join("it's here");
    std::fs::create_dir_all(&sub).unwrap();
    let out = get(&seed.url("localhost"))
        .current_dir(&sub)
        .args(["--out", "token.txt", "--format", "gcloud"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(!line.contains(TOKEN));
    assert!(line.starts_with("export CLOUDSDK_AUTH_ACCESS_TOKEN_FILE='/"), "{line}");
    let sh = Command::new("sh")
        .args(["-c", "eval \"$1\" && cd / && cat \"$CLOUDSDK_AUTH_ACCESS_TOKEN_FILE\"", "sh", &line])
        .output()
        .unwrap();
    assert!(sh.status.success(), "{}", String::from_utf8_lossy(&sh.stderr));
    assert_eq!(sh.stdout, TOKEN.as_bytes());
    // Without --out there is no file for gcloud to read.
    let out = get(&seed.url("localhost")).args(["--format", "gcloud"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--format gcloud needs --out"), "{}", stderr(&out));
    assert_eq!(seed.log().len(), 2);
}

#[test]
fn pkcs12_client_certificate() {
    let dir = tempdir();
    let exp = wif::core::clock::rfc3339(now() + 3600);
    let seed = Seed::start(&token_file(dir.path(), TOKEN), &["--expires-at", &exp]);
    let out = bin("wif-get")
        .args(["--url", &seed.url("localhost"), "--cert", &pki_file("client.p12")])
        .args(["--key-password-file", &pki_file("app.p12.pass"), "--ca", &pki_file("ca-chain.crt")])
        .args(["--format", "token"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, TOKEN.as_bytes());
    // The password from an environment variable named by --key-password-env.
    let out = bin("wif-get")
        .args(["--url", &seed.url("localhost"), "--cert", &pki_file("client.p12"), "--ca", &pki_file("ca-chain.crt")])
        .args(["--key-password-env", "CLIENT_P12_PASSWORD", "--format", "token"])
        .env("CLIENT_P12_PASSWORD", "correct horse battery staple")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, TOKEN.as_bytes());
    // The same keystore named as both --cert and --key, without a .p12 name: its contents
    // decide, not its extension.
    let keystore = dir.path().join("client.keystore");
    std::fs::copy(pki_file("client.p12"), &keystore).unwrap();
    let keystore = keystore.to_str().unwrap();
    let out = bin("wif-get")
        .args(["--url", &seed.url("localhost"), "--cert", keystore, "--key", keystore])
        .args(["--key-password-file", &pki_file("app.p12.pass"), "--ca", &pki_file("ca-chain.crt")])
        .args(["--format", "token"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, TOKEN.as_bytes());
    // Without the password the PKCS#12 file cannot be opened: bad input, nothing fetched.
    let out = bin("wif-get")
        .args(["--url", &seed.url("localhost"), "--cert", &pki_file("client.p12"), "--ca", &pki_file("ca-chain.crt")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("--key-password-file"));
    assert_eq!(seed.log().len(), 3);
}

/// wif-get hands its key to the TLS client re-encoded as PEM under the label of its form:
/// each form a user may give (PKCS#8, PKCS#1 RSA, SEC1 EC) must come through a real mTLS
/// handshake.
#[test]
fn client_keys_in_pkcs8_pkcs1_and_sec1() {
    let dir = tempdir();
    let d = dir.path();
    rsa_leaf(d, "wif-client", "extendedKeyUsage=clientAuth");
    openssl_in(d, &["ec", "-in", &pki_file("client.key"), "-out", "ec1.key"]);
    let path = |name: &str| d.join(name).to_string_lossy().into_owned();
    let seed = Seed::start(&token_file(d, TOKEN), &["--expires-at", &wif::core::clock::rfc3339(now() + 3600)]);
    let cases = [
        (path("rsa.crt"), path("rsa8.key"), "-----BEGIN PRIVATE KEY-----"),
        (path("rsa.crt"), path("rsa1.key"), "-----BEGIN RSA PRIVATE KEY-----"),
        (pki_file("client.crt"), pki_file("client.key"), "-----BEGIN PRIVATE KEY-----"),
        (pki_file("client.crt"), path("ec1.key"), "-----BEGIN EC PRIVATE KEY-----"),
    ];
    for (cert, key, header) in &cases {
        assert!(std::fs::read_to_string(key).unwrap().starts_with(header), "{key}");
        let out = bin("wif-get")
            .args(["--url", &seed.url("localhost"), "--cert", cert, "--key", key, "--ca", &pki_file("ca-chain.crt")])
            .args(["--format", "token"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{key}: {}", stderr(&out));
        assert_eq!(out.stdout, TOKEN.as_bytes(), "{key}");
    }
    assert_eq!(seed.log().len(), cases.len());
}

#[test]
fn server_from_another_ca_hierarchy_is_refused() {
    let dir = tempdir();
    let seed = Seed::start_with(&token_file(dir.path(), TOKEN), "other-server-chain.crt", "other-server.key", &[]);
    let started = Instant::now();
    let out = get(&seed.url("localhost")).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("not issued by a CA in --ca"), "{err}");
    assert!(err.contains("wif-get: hint:") && err.contains("CA 13.1"), "{err}");
    assert_eq!(retry_lines(&err), 0, "TLS verification failures are not retried");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(out.stdout.is_empty());
    assert!(seed.log().is_empty());
}

#[test]
fn host_not_in_the_certificate_is_refused() {
    // 127.0.0.2 is loopback too, but not in the server certificate's SAN.
    if std::net::TcpListener::bind("127.0.0.2:0").is_err() {
        not_run("the loopback address 127.0.0.2", "a machine whose lo answers all of 127.0.0.0/8 (Linux does)");
        return;
    }
    let dir = tempdir();
    let seed = Seed::start(&token_file(dir.path(), TOKEN), &["--bind", "127.0.0.2"]);
    let out = get(&seed.url("127.0.0.2")).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("not issued for the host in --url"), "{err}");
    assert!(err.contains("subjectAltName"), "{err}");
    assert!(seed.log().is_empty());
}

#[test]
fn server_refuses_a_client_from_another_hierarchy() {
    let dir = tempdir();
    let seed = Seed::start(&token_file(dir.path(), TOKEN), &[]);
    let out = bin("wif-get")
        .args(["--url", &seed.url("localhost"), "--cert", &pki_file("other-client.crt")])
        .args(["--key", &pki_file("other-client.key"), "--ca", &pki_file("ca-chain.crt"), "--retries", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("refused our client certificate"), "{err}");
    assert_eq!(retry_lines(&err), 0);
    assert!(seed.log().is_empty(), "no HTTP request gets through");
}

#[test]
fn connection_refused_is_retried_within_bounds_then_exit_5() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let out = get(&format!("https://localhost:{port}/get_wif_token")).args(["--retries", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    let retries = crate::common::retry_lines(&err, "wif-get");
    assert_eq!(retries.len(), 2, "{err}");
    for (i, r) in retries.iter().enumerate() {
        assert_eq!((r.attempt, r.of), (i as u32 + 1, Some(2)), "{err}");
        assert_eq!(r.what, format!("GET https://localhost:{port}/get_wif_token"));
        assert!(r.why.contains("connection refused"), "{err}");
    }
    // Backoff 0.5 s then 1 s, each ±25 %.
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    // --max-time bounds the whole run even with many retries allowed.
    let started = Instant::now();
    let out = get(&format!("https://localhost:{port}/get_wif_token"))
        .args(["--retries", "50", "--max-time", "2s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

#[test]
fn unavailable_503_is_retried_honouring_retry_after() {
    let dir = tempdir();
    let exp = wif::core::clock::rfc3339(now() + 3600);
    let seed = Seed::start(
        &token_file(dir.path(), TOKEN),
        &["--expires-at", &exp, "--fail-first", "2", "--fail-status", "503", "--retry-after", "1"],
    );
    let started = Instant::now();
    let out = get(&seed.url("localhost")).args(["--format", "token"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, TOKEN.as_bytes());
    let err = stderr(&out);
    let retries = crate::common::retry_lines(&err, "wif-get");
    assert_eq!(retries.len(), 2, "{err}");
    assert!(retries[0].why.starts_with("the server has no fresh token"), "{err}");
    assert_eq!(retries[0].delay_s, 1.0, "Retry-After: 1 sets the pause");
    assert!(started.elapsed() >= Duration::from_secs(2), "Retry-After: 1 was honoured");
    let statuses: Vec<Value> = seed.log().iter().map(|l| l["status"].clone()).collect();
    assert_eq!(statuses, vec![json!(503), json!(503), json!(200)]);
}

#[test]
fn dropped_connections_are_retried() {
    let dir = tempdir();
    let exp = wif::core::clock::rfc3339(now() + 3600);
    let seed = Seed::start(&token_file(dir.path(), TOKEN), &["--expires-at", &exp, "--close-first", "1"]);
    let out = get(&seed.url("localhost")).args(["--format", "token"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(retry_lines(&stderr(&out)), 1, "{}", stderr(&out));
    assert_eq!(out.stdout, TOKEN.as_bytes());
}

#[test]
fn forbidden_is_not_retried() {
    let dir = tempdir();
    let seed = Seed::start(&token_file(dir.path(), TOKEN), &["--status", "403"]);
    let out = get(&seed.url("localhost")).args(["--retries", "3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("HTTP 403") && err.contains("allow-list") && err.contains("wif-client"), "{err}");
    assert_eq!(retry_lines(&err), 0);
    assert_eq!(seed.log().len(), 1, "exactly one request");
}

#[test]
fn failure_leaves_the_previous_token_file_untouched() {
    let dir = tempdir();
    let out_file = dir.path().join("token.txt");
    let meta_file = dir.path().join("token.txt.meta.json");
    let exp = wif::core::clock::rfc3339(now() + 3600);
    let good = Seed::start(&token_file(dir.path(), TOKEN), &["--expires-at", &exp]);
    let out = get(&good.url("localhost")).arg("--out").arg(&out_file).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    drop(good);
    let (before, meta_before) = (std::fs::read(&out_file).unwrap(), std::fs::read(&meta_file).unwrap());

    let other = tempdir();
    let failing = Seed::start(&token_file(other.path(), "ya29.new-token"), &["--status", "503"]);
    let out = get(&failing.url("localhost")).arg("--out").arg(&out_file).args(["--retries", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("HTTP 503"));
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read(&out_file).unwrap(), before);
    assert_eq!(std::fs::read(&meta_file).unwrap(), meta_before);
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files.len(), 3, "no temporary files left: {files:?}");
}

#[test]
fn min_ttl_skips_the_fetch_while_the_token_is_fresh() {
    let dir = tempdir();
    let out_file = dir.path().join("token.txt");
    let exp = wif::core::clock::rfc3339(now() + 3600);
    let seed = Seed::start(&token_file(dir.path(), TOKEN), &["--expires-at", &exp]);
    let url = seed.url("localhost");
    let out = get(&url).arg("--out").arg(&out_file).args(["--min-ttl", "10m"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(json_out(&out)["fetched"].get("skipped").is_none());
    // Fresh for another 10 minutes: nothing fetched.
    let out = get(&url).arg("--out").arg(&out_file).args(["--min-ttl", "10m"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let f = &json_out(&out)["fetched"];
    assert_eq!(f["skipped"], true);
    assert_eq!(f["expires_at"], exp.as_str());
    assert_eq!(f["sha256"], wif::core::keys::sha256_hex(TOKEN.as_bytes()));
    // Not fresh for 2 hours: fetched again.
    let out = get(&url).arg("--out").arg(&out_file).args(["--min-ttl", "2h"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_out(&out)["fetched"]["status"], 200);
    assert_eq!(seed.log().len(), 2);
}

#[test]
fn settings_come_from_the_config() {
    let dir = tempdir();
    let exp = wif::core::clock::rfc3339(now() + 3600);
    let seed = Seed::start(&token_file(dir.path(), TOKEN), &["--expires-at", &exp]);
    let out_file = dir.path().join("t.txt");
    let config = json!({
        "get_url": seed.url("localhost"),
        "get_cert": pki_file("client.crt"),
        "get_key": pki_file("client.key"),
        "get_ca": pki_file("ca-chain.crt"),
        "get_out": out_file,
    });
    let cfg = dir.path().join("get.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let out = bin("wif-get").arg("--config").arg(&cfg).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&out_file).unwrap(), TOKEN.as_bytes());
    // Missing --url names the flag, the variable and the key.
    let out = bin("wif-get").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("WIF_GET_URL"));
}

#[test]
fn expired_client_certificate_warns_and_is_refused() {
    let dir = tempdir();
    let seed = Seed::start(&token_file(dir.path(), TOKEN), &[]);
    let out = bin("wif-get")
        .args(["--url", &seed.url("localhost"), "--cert", &pki_file("client-expired.crt")])
        .args(["--key", &pki_file("client-expired.key"), "--ca", &pki_file("ca-chain.crt")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("warning: the client certificate expired"), "{err}");
    assert!(err.contains("refused our client certificate"), "{err}");
    // --min-ttl checks the --out file, so it needs one.
    let out = get(&seed.url("localhost")).args(["--min-ttl", "5m"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(seed.log().is_empty());
}

/// The seed server handing out TOKEN (an hour left), and a path for --out beside it.
fn seed_serving_token() -> (tempfile::TempDir, Seed, std::path::PathBuf) {
    let dir = tempdir();
    let exp = wif::core::clock::rfc3339(now() + 3600);
    let seed = Seed::start(&token_file(dir.path(), TOKEN), &["--expires-at", &exp]);
    let out_file = dir.path().join("token.txt");
    (dir, seed, out_file)
}

#[test]
fn min_ttl_never_trusts_a_planted_token() {
    for (spoil, why) in plantings("min_ttl_never_trusts_a_planted_token") {
        let (_dir, seed, out_file) = seed_serving_token();
        plant_pair(&out_file, spoil);
        let out = get(&seed.url("localhost"))
            .arg("--out")
            .arg(&out_file)
            .args(["--min-ttl", "10m", "--format", "export"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(!printed.contains("planted"), "the planted token was printed: {printed}");
        assert_eq!(printed, format!("export GOOGLE_OAUTH_ACCESS_TOKEN='{TOKEN}'\n"));
        let err = stderr(&out);
        assert!(err.contains("warning: not using the token in --out") && err.contains(&why), "{err}");
        assert_eq!(std::fs::read(&out_file).unwrap(), TOKEN.as_bytes(), "the planted file was replaced");
        assert_eq!(seed.log().len(), 1, "the token was fetched");
    }
}

#[test]
fn a_metadata_path_that_is_a_directory_fails_before_the_token_is_touched() {
    let (_dir, seed, out_file) = seed_serving_token();
    std::fs::write(&out_file, "ya29.the-old-token").unwrap();
    std::fs::create_dir(wif::core::files::meta_path(&out_file)).unwrap();
    let out = get(&seed.url("localhost")).arg("--out").arg(&out_file).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("token.txt.meta.json"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read(&out_file).unwrap(), b"ya29.the-old-token", "the token was not replaced");
}

#[test]
fn max_time_also_bounds_an_attempt_that_gets_no_answer() {
    // Accepts connections and never says a word: each attempt waits for its time-out.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(10).collect();
        std::thread::sleep(Duration::from_secs(30));
        drop(held);
    });
    let started = Instant::now();
    let out = get(&format!("https://localhost:{port}/get_wif_token"))
        .args(["--timeout", "5s", "--max-time", "2s", "--retries", "3"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("no answer within"), "{}", stderr(&out));
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(4), "--max-time 2s took {took:?}");
}
