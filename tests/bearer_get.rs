//! `wif-get --bearer-file`: no client certificate, `Authorization: Bearer` with the JWT in a
//! file read again for each fetch (and before each refresh of the metadata server), against
//! a recording HTTPS server on loopback (real TLS, the test PKI) that takes connections
//! without a client certificate, and against wif-serve, which without --bearer-issuers
//! still requires one.

use crate::common::https::HttpsRecorder;
use crate::common::jwt;
use crate::common::server::{now, Server};
use crate::common::*;
use crate::metadata::Mds;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// What the server hands out (an opaque access token).
const ACCESS_TOKEN: &str = "ya29.c.bearer-get-access-token_0123456789abcdef";
const ISS: &str = "https://kubernetes.default.svc.cluster.local";
const SUB: &str = "system:serviceaccount:batch:report";

/// A projected-token-shaped JWT (unsigned: the recorder verifies nothing) for `sub`,
/// expiring `ttl` seconds from now.
fn projected_jwt(sub: &str, ttl: i64) -> String {
    let now = now();
    fake_jwt(json!({"iss": ISS, "sub": sub, "aud": ["wif-serve"], "iat": now, "nbf": now, "exp": now + ttl,
        "kubernetes.io": {"namespace": "batch", "serviceaccount": {"name": "report"}}}))
}

/// Writes the bearer token file as kubelet does: mode 0600 (0644 would do too), replaced
/// atomically, with a trailing newline that is not part of the token.
fn write_bearer(path: &Path, token: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{token}\n")).unwrap();
    set_mode(&tmp, 0o600);
    std::fs::rename(&tmp, path).unwrap();
}

/// The recorder's answer to a good request: the access token and its expiry.
fn token_answer(ttl: i64) -> Canned {
    Canned::raw(200, "text/plain", ACCESS_TOKEN)
        .header("X-Token-Expires-At", &wif::core::clock::rfc3339(now() + ttl))
        .header("X-Token-Type", "access_token")
}

/// wif-get against `url` with the bearer file, the test CA and `extra`.
fn wif_get(url: &str, bearer: &Path, extra: &[&str]) -> std::process::Output {
    bin("wif-get")
        .args(["--url", url, "--ca", &pki_file("ca-chain.crt"), "--bearer-file"])
        .arg(bearer)
        .args(extra)
        .output()
        .unwrap()
}

/// Neither stdout nor stderr holds `secret`.
fn never_shown(out: &std::process::Output, secret: &str) {
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret), "the token reached stdout");
    assert!(!stderr(out).contains(secret), "the token reached stderr: {}", stderr(out));
}

/// A new directory with the bearer token file `wif-token` holding `jwt`.
fn bearer_file(jwt: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    let path = dir.path().join("wif-token");
    write_bearer(&path, jwt);
    (dir, path)
}

#[test]
fn sends_the_file_as_a_bearer_token_without_a_client_certificate_and_says_so_in_fetched() {
    let server = HttpsRecorder::start(vec![token_answer(3600)]);
    let jwt = projected_jwt(SUB, 3600);
    let (dir, file) = bearer_file(&jwt);
    let out_file = dir.path().join("token.txt");
    let out = wif_get(&server.url(), &file, &["--out", out_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    never_shown(&out, &jwt);

    let seen = server.requests();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].request.header("authorization"), Some(format!("Bearer {jwt}").as_str()));
    assert_eq!(seen[0].request.path, "/get_wif_token");
    assert!(!seen[0].client_certificate, "a client certificate was presented beside the bearer token");

    let doc = json_out(&out);
    let fetched = &doc["fetched"];
    assert_eq!(fetched["auth"], "bearer", "{fetched}");
    assert_eq!(fetched["status"], 200);
    let exp = wif::core::jwt::unverified_exp(&jwt).unwrap();
    assert_eq!(
        fetched["bearer"],
        json!({"file": file.to_str().unwrap(), "iss": ISS, "sub": SUB,
               "expires_at": wif::core::clock::rfc3339(exp)})
    );
    assert!(fetched.get("token").is_none());
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), ACCESS_TOKEN);
}

#[test]
fn a_relative_file_is_recorded_absolute_and_a_certificate_fetch_says_auth_certificate() {
    let server = HttpsRecorder::start(vec![token_answer(3600)]);
    let (dir, file) = bearer_file(&projected_jwt(SUB, 3600));
    let out = bin("wif-get")
        .current_dir(dir.path())
        .args(["--url", &server.url(), "--ca", &pki_file("ca-chain.crt"), "--bearer-file", "wif-token"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let recorded = json_out(&out)["fetched"]["bearer"]["file"].as_str().unwrap().to_string();
    assert_eq!(Path::new(&recorded).canonicalize().unwrap(), file.canonicalize().unwrap());
    assert!(Path::new(&recorded).is_absolute(), "{recorded}");

    // With --cert/--key: the certificate is presented, no Authorization header is sent.
    let out = bin("wif-get")
        .args(["--url", &server.url(), "--ca", &pki_file("ca-chain.crt")])
        .args(["--cert", &pki_file("client.crt"), "--key", &pki_file("client.key")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let fetched = json_out(&out)["fetched"].clone();
    assert_eq!(fetched["auth"], "certificate", "{fetched}");
    assert!(fetched.get("bearer").is_none(), "{fetched}");
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].client_certificate);
    assert_eq!(seen[1].request.header("authorization"), None);
}

#[test]
fn the_file_is_read_again_for_each_fetch() {
    let server = HttpsRecorder::start(vec![token_answer(3600)]);
    let (first, second) = (projected_jwt(SUB, 3600), projected_jwt("system:serviceaccount:batch:other", 3600));
    let (_dir, file) = bearer_file(&first);
    let out = wif_get(&server.url(), &file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Rotated as kubelet does it: a new file renamed over the old one.
    write_bearer(&file, &second);
    let out = wif_get(&server.url(), &file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_out(&out)["fetched"]["bearer"]["sub"], "system:serviceaccount:batch:other");
    let sent: Vec<String> =
        server.requests().iter().map(|r| r.request.header("authorization").unwrap().to_string()).collect();
    assert_eq!(sent, [format!("Bearer {first}"), format!("Bearer {second}")]);
}

/// wif-get's metadata server fetching from `url` with the bearer token in `file`, after its
/// first fetch, which served [`ACCESS_TOKEN`].
fn metadata_server(url: &str, file: &Path) -> Mds {
    let args: Vec<String> = [
        "--url",
        url,
        "--ca",
        &pki_file("ca-chain.crt"),
        "--bearer-file",
        file.to_str().unwrap(),
        "--metadata-server",
        "127.0.0.1:0",
        "--service-account",
        "app@my-project.iam.gserviceaccount.com",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mds = Mds::spawn(&args).unwrap_or_else(|(code, err)| panic!("wif-get exited {code:?}: {err}"));
    mds.wait_stderr("fetched the token", 20);
    let served = mds.token();
    assert_eq!(served.status, 200);
    assert_eq!(served.json()["access_token"], ACCESS_TOKEN);
    mds
}

#[test]
fn the_metadata_server_reads_the_file_again_before_each_refresh() {
    // Tokens that live 6 s: refreshed every 3 s or so.
    let server = HttpsRecorder::start(vec![token_answer(6)]);
    let (first, second) = (projected_jwt(SUB, 3600), projected_jwt(SUB, 7200));
    let (_dir, file) = bearer_file(&first);
    let mds = metadata_server(&server.url(), &file);
    let seen = server.wait_for_requests(1, 10);
    assert_eq!(seen[0].request.header("authorization"), Some(format!("Bearer {first}").as_str()));
    assert!(!seen[0].client_certificate);

    write_bearer(&file, &second);
    let before = server.requests().len();
    let seen = server.wait_for_requests(before + 1, 20);
    assert_eq!(seen[before].request.header("authorization"), Some(format!("Bearer {second}").as_str()));
    mds.stop_cleanly(&[&first, &second]);
}

#[test]
fn bearer_file_and_a_client_certificate_are_a_usage_error_naming_both() {
    let server = HttpsRecorder::start(vec![token_answer(3600)]);
    let (_dir, file) = bearer_file(&projected_jwt(SUB, 3600));
    let given: [(&[&str], &str); 3] = [
        (&["--cert", "client.crt"], "--cert"),
        (&["--key", "client.key"], "--key"),
        (&["--key-password-env", "P12_PASSWORD"], "--key-password-env"),
    ];
    for (args, flag) in given {
        let out = wif_get(&server.url(), &file, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("--bearer-file") && err.contains(flag) && err.contains("cannot be used together"),
            "{err}"
        );
    }
    // From the environment too, named as given.
    let out = bin("wif-get")
        .env("WIF_GET_CERT", pki_file("client.crt"))
        .args(["--url", &server.url(), "--ca", &pki_file("ca-chain.crt"), "--bearer-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("WIF_GET_CERT"), "{}", stderr(&out));
    // And from the config.
    let cfg = file.with_file_name("get.json");
    let config = json!({"get_url": server.url(), "get_ca": pki_file("ca-chain.crt"),
        "get_bearer_file": file, "get_key": pki_file("client.key")});
    std::fs::write(&cfg, config.to_string()).unwrap();
    let out = bin("wif-get").arg("--config").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("\"get_key\"") && stderr(&out).contains("\"get_bearer_file\""), "{}", stderr(&out));
    assert!(server.requests().is_empty(), "a request was made");
}

/// A broken bearer file: how it is made, and words the error must hold.
type Spoil = (&'static str, fn(&Path), &'static str);

#[test]
fn a_bad_bearer_file_stops_before_any_request_and_never_quotes_it() {
    const SECRETISH: &str = "opaque-secret-material-0123456789";
    let spoils: Vec<Spoil> = vec![
        ("missing", |p| drop(std::fs::remove_file(p)), "does not exist"),
        ("writable by others", |p| set_mode(p, 0o666), "is not trusted: others can write it"),
        (
            "a directory",
            |p| {
                std::fs::remove_file(p).unwrap();
                std::fs::create_dir(p).unwrap();
            },
            "is not trusted: it is a directory",
        ),
        (
            "oversized",
            |p| write_bearer(p, &format!("{}.{SECRETISH}", "a".repeat(17 * 1024))),
            "is larger than 16384 bytes",
        ),
        ("not a JWT", |p| write_bearer(p, &format!("ya29.{SECRETISH}")), "does not hold a compact JWT"),
        ("two JWTs", |p| write_bearer(p, &format!("{0}\n{0}", fake_jwt(json!({"s": SECRETISH})))), "whitespace"),
        ("a JWE", |p| write_bearer(p, &format!("eyJhbGciOiJSU0EtT0FFUCJ9.{SECRETISH}.a.b.c")), "5 dot-separated"),
        ("empty", |p| write_bearer(p, "  "), "it is empty"),
        ("not UTF-8", |p| std::fs::write(p, [0xff, 0xfe, b'.', b'.']).unwrap(), "not UTF-8"),
    ];
    let mut spoils = spoils;
    if rustix::process::geteuid().is_root() {
        // Root reads a file of mode 000 all the same; it can make one another user's.
        spoils.push(("another user's", give_to_other_user, "is not trusted: it is owned by uid 65534"));
    } else {
        spoils.push(("unreadable", |p| set_mode(p, 0o000), "cannot be read"));
    }
    check_spoils(&spoils, SECRETISH);
}

fn check_spoils(spoils: &[Spoil], secretish: &str) {
    let server = HttpsRecorder::start(vec![token_answer(3600)]);
    for (what, spoil, words) in spoils {
        let (dir, file) = bearer_file(&projected_jwt(SUB, 3600));
        spoil(&file);
        let out_file = dir.path().join("token.txt");
        let out = wif_get(&server.url(), &file, &["--out", out_file.to_str().unwrap()]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{what}: {err}");
        assert!(err.contains(words), "{what}: {err}");
        assert!(err.contains(file.to_str().unwrap()) && err.contains("--bearer-file"), "{what}: names no file: {err}");
        assert!(!err.contains(secretish), "{what}: the file's content was quoted: {err}");
        assert!(!out_file.exists(), "{what}: --out was written");
        assert!(server.requests().is_empty(), "{what}: a request was made");
    }
}

#[test]
fn an_expired_token_is_sent_with_a_warning() {
    let server = HttpsRecorder::start(vec![token_answer(3600)]);
    let jwt = projected_jwt(SUB, -600);
    let (_dir, file) = bearer_file(&jwt);
    let out = wif_get(&server.url(), &file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning: the bearer token")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("expired at") && warnings[0].contains(file.to_str().unwrap()), "{err}");
    assert_eq!(server.requests().len(), 1);
    never_shown(&out, &jwt);
}

#[test]
fn a_401_is_not_retried_and_says_the_server_refused_the_bearer_token() {
    let refusal = Canned::json(401, json!({"error": "invalid_token", "message": "the token has expired"}))
        .header("WWW-Authenticate", "Bearer realm=\"wif-serve\", error=\"invalid_token\"");
    let server = HttpsRecorder::start(vec![refusal]);
    let jwt = projected_jwt(SUB, 3600);
    let (dir, file) = bearer_file(&jwt);
    let out_file = dir.path().join("token.txt");
    let out = wif_get(&server.url(), &file, &["--retries", "3", "--out", out_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(server.requests().len(), 1, "a 401 was retried");
    let err = stderr(&out);
    assert!(err.contains("the server refused the bearer token (HTTP 401): the token has expired"), "{err}");
    for words in ["audience", "issuer", "ACTIONS_ID_TOKEN_REQUEST_URL", "projected", file.to_str().unwrap(), SUB] {
        assert!(err.contains(words), "the hint lacks {words:?}: {err}");
    }
    assert!(!out_file.exists());
    never_shown(&out, &jwt);
}

#[test]
fn a_403_names_the_tokens_issuer_and_subject_not_a_certificate() {
    let refusal = Canned::json(403, json!({"error": "not_allowed", "message": "this client is not allowed"}));
    let server = HttpsRecorder::start(vec![refusal]);
    let jwt = projected_jwt(SUB, 3600);
    let (_dir, file) = bearer_file(&jwt);
    let out = wif_get(&server.url(), &file, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(server.requests().len(), 1);
    let err = stderr(&out);
    assert!(err.contains("HTTP 403): this client is not allowed"), "{err}");
    assert!(err.contains(ISS) && err.contains(SUB) && err.contains("allow-list"), "{err}");
    assert!(!err.contains("certificate"), "{err}");
    never_shown(&out, &jwt);
}

#[test]
fn a_server_that_requires_a_client_certificate_is_told_of_in_bearer_terms() {
    let (_tdir, token_file) = crate::common::server::token_dir();
    crate::common::server::write_token(&token_file, ACCESS_TOKEN, 3600);
    let mut serve = Server::start(&token_file, &[]);
    let jwt = projected_jwt(SUB, 3600);
    let (_dir, file) = bearer_file(&jwt);
    let url = format!("https://localhost:{}/get_wif_token", serve.port);
    let out = wif_get(&url, &file, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("requires a client certificate") && err.contains("--bearer-issuers"), "{err}");
    never_shown(&out, &jwt);
    let _ = serve.drain();
}

#[test]
fn json_output_never_holds_the_bearer_token_even_with_show_token() {
    let server = HttpsRecorder::start(vec![token_answer(3600)]);
    let jwt = projected_jwt(SUB, 3600);
    let (_dir, file) = bearer_file(&jwt);
    let out = wif_get(&server.url(), &file, &["--show-token"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = json_out(&out);
    assert_eq!(doc["fetched"]["token"], ACCESS_TOKEN);
    never_shown(&out, &jwt);
}

/// wif-serve with bearer clients on: one issuer `k8s` (kind kubernetes) whose JWKS is a file
/// holding a test-held RSA key, its token file served, plus `extra` flags.
struct BearerServe {
    serve: Server,
    key: jwt::SigningKey,
    _dir: tempfile::TempDir,
}

impl BearerServe {
    fn start(extra: &[&str]) -> BearerServe {
        let (dir, token_file) = crate::common::server::token_dir();
        crate::common::server::write_token(&token_file, ACCESS_TOKEN, 3600);
        let key = jwt::signing_key_rsa();
        std::fs::write(dir.path().join("jwks.json"), jwt::jwks_json(&[&key])).unwrap();
        let issuers = json!({"version": 1, "issuers": [{"name": "k8s", "kind": "kubernetes", "issuer": ISS,
            "audience": "wif-serve", "jwks_file": "jwks.json"}]});
        let issuers_file = dir.path().join("issuers.json");
        std::fs::write(&issuers_file, issuers.to_string()).unwrap();
        let mut args = vec!["--bearer-issuers", issuers_file.to_str().unwrap()];
        args.extend(extra);
        BearerServe { serve: Server::start(&token_file, &args), key, _dir: dir }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/get_wif_token", self.serve.port)
    }

    /// A projected token of `sub` signed by the issuer's key, with `changes` to its claims.
    fn token(&self, sub: &str, changes: Value) -> String {
        let mut claims = jwt::claims(ISS, "wif-serve", sub);
        claims["kubernetes.io"] = json!({"namespace": "batch", "serviceaccount": {"name": "report"}});
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        jwt::sign(&self.key, &json!({}), &claims)
    }

    /// The request lines wif-serve logged so far.
    fn requests(&mut self) -> Vec<Value> {
        self.serve.drain().into_iter().filter(|l| l["event"] == "request").collect()
    }
}

#[test]
fn end_to_end_wif_serve_verifies_the_files_token_and_each_rotation() {
    let mut srv = BearerServe::start(&[]);
    let first = srv.token(SUB, json!({}));
    let (dir, file) = bearer_file(&first);
    let out_file = dir.path().join("token.txt");
    let out = wif_get(&srv.url(), &file, &["--out", out_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), ACCESS_TOKEN);
    assert_eq!(json_out(&out)["fetched"]["bearer"]["sub"], SUB);
    never_shown(&out, &first);

    // Rotated: the next fetch presents the new token, and wif-serve sees its subject.
    let second = srv.token("system:serviceaccount:batch:other", json!({}));
    write_bearer(&file, &second);
    let out = wif_get(&srv.url(), &file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    never_shown(&out, &second);
    let lines = srv.requests();
    let subs: Vec<(&str, &str, u64)> = lines
        .iter()
        .map(|l| (l["auth"].as_str().unwrap(), l["bearer"]["sub"].as_str().unwrap(), l["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(subs, [("bearer", SUB, 200), ("bearer", "system:serviceaccount:batch:other", 200)], "{lines:#?}");
    srv.serve.finish_checking_secrecy(&[&first, &second]);
}

#[test]
fn end_to_end_refusals_are_not_retried_and_quote_wif_serves_reason() {
    let mut srv = BearerServe::start(&["--allow", &format!("bearer:k8s:{SUB}")]);
    let now = now();
    let cases = [
        ("expired", srv.token(SUB, json!({"iat": now - 900, "nbf": now - 900, "exp": now - 300})), 401),
        ("audience", srv.token(SUB, json!({"aud": "another-server"})), 401),
        ("not allowed", srv.token("system:serviceaccount:batch:intruder", json!({})), 403),
    ];
    for (what, token, status) in &cases {
        let (_dir, file) = bearer_file(token);
        let out = wif_get(&srv.url(), &file, &["--retries", "3"]);
        assert_eq!(out.status.code(), Some(4), "{what}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("(HTTP {status}): ")), "{what}: the server's reason is not quoted: {err}");
        if *status == 401 {
            assert!(err.contains("the server refused the bearer token") && err.contains("audience"), "{what}: {err}");
        } else {
            assert!(err.contains("allow-list") && err.contains("intruder"), "{what}: {err}");
        }
        assert_eq!(err.contains("warning: the bearer token"), *what == "expired", "{what}: {err}");
        never_shown(&out, token);
    }
    let lines = srv.requests();
    let codes: Vec<(&str, u64)> =
        lines.iter().map(|l| (l["code"].as_str().unwrap_or("-"), l["status"].as_u64().unwrap())).collect();
    // One request each: nothing retried.
    assert_eq!(codes, [("expired", 401), ("wrong_audience", 401), ("not_allowed", 403)], "{lines:#?}");
    let tokens: Vec<&str> = cases.iter().map(|(_, t, _)| t.as_str()).collect();
    srv.serve.finish_checking_secrecy(&tokens);
}

#[test]
fn end_to_end_the_metadata_server_fetches_with_the_bearer_file() {
    let srv = BearerServe::start(&[]);
    let jwt = srv.token(SUB, json!({}));
    let (_dir, file) = bearer_file(&jwt);
    let mds = metadata_server(&srv.url(), &file);
    mds.stop_cleanly(&[&jwt]);
    srv.serve.finish_checking_secrecy(&[&jwt]);
}

#[test]
fn a_503_is_retried_and_may_mean_the_server_lacks_the_issuers_keys() {
    let unavailable =
        Canned::json(503, json!({"error": "jwks_unavailable", "message": "the issuer's keys are not available"}))
            .header("Retry-After", "1");
    let server = HttpsRecorder::start(vec![unavailable]);
    let jwt = projected_jwt(SUB, 3600);
    let (_dir, file) = bearer_file(&jwt);
    let out = wif_get(&server.url(), &file, &["--retries", "1"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(server.requests().len(), 2, "a 503 is retried");
    let err = stderr(&out);
    assert!(err.contains("(HTTP 503): the issuer's keys are not available") && err.contains("JWKS"), "{err}");
    never_shown(&out, &jwt);
}
