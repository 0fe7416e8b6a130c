//! Drop-in with the seed, both ways, with the seed's real shapes: its Flask server (the bare
//! `ya29.` token, no expiry header, `ssl.CERT_REQUIRED`) for wif-get and the metadata
//! server, and a bare `wif_token.txt` as its Java generator writes it (no `.meta.json`) for
//! wif-serve, fetched by the seed's Python `requests` client and by wif-get.

use crate::common::server::{get as get_over_tls, now, set_mtime, token_settles, Server};
use crate::common::*;
use crate::get::{get, Seed};
use crate::metadata::Mds;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// An opaque Google access token, as the seed's generator writes it.
const TOKEN: &str = "ya29.c.b0AXv0zTPk-seed-generator-token_0123456789abcdefghij";
const TOKEN_2: &str = "ya29.c.b0AXv0zTPk-seed-generator-token-2_9876543210";
/// The lifetimes assumed by default: wif-get 5 minutes, wif-serve 55.
const GET_ASSUMES: i64 = 300;
const SERVE_ASSUMES: i64 = 3300;

/// `wif_token.txt` written as the seed's Java generator writes it (`Files.write(path,
/// token.getBytes())`: the token bytes, nothing else, no metadata, mode 0644 by the umask).
fn generator_writes(dir: &Path, token: &str) -> PathBuf {
    let p = dir.join("wif_token.txt");
    std::fs::write(&p, token).unwrap();
    p
}

/// The stderr lines of a warning containing `words`.
fn warnings<'a>(stderr: &'a str, words: &str) -> Vec<&'a str> {
    stderr.lines().filter(|l| l.contains("warning:") && l.contains(words)).collect()
}

fn rfc3339(v: &Value) -> i64 {
    wif::core::clock::parse_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap()
}

/// The seed's Flask server serving TOKEN from a generator's file (with its directory), if
/// flask is installed.
fn flask_serving_the_generators_file() -> Option<(tempfile::TempDir, Seed)> {
    if !python_has("flask") {
        return None;
    }
    let dir = tempdir();
    let seed = Seed::flask(&generator_writes(dir.path(), TOKEN));
    Some((dir, seed))
}

#[test]
fn wif_get_takes_the_bare_token_from_the_seeds_flask_server() {
    let Some((dir, seed)) = flask_serving_the_generators_file() else { return };
    let out_file = dir.path().join("token.txt");
    let out = get(&seed.url("localhost")).arg("--out").arg(&out_file).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains(TOKEN) && !String::from_utf8_lossy(&out.stdout).contains(TOKEN));
    // One warning line: no expiry from the server, what was assumed, and the flag.
    let warned = warnings(&err, "gave no expiry");
    assert_eq!((warned.len(), err.lines().count()), (1, 1), "{err}");
    assert!(warned[0].contains("5 min") && warned[0].contains("--assume-ttl"), "{err}");
    let f = &json_out(&out)["fetched"];
    assert_eq!((f["status"].as_u64(), f["expires_from"].as_str()), (Some(200), Some("assumed")));
    assert_eq!(f["assumed_ttl_seconds"], GET_ASSUMES);
    assert_eq!(rfc3339(&f["expires_at"]) - rfc3339(&f["fetched_at"]), GET_ASSUMES);
    assert_eq!((f["token_type"].as_str(), f["bytes"].as_u64()), (Some("access_token"), Some(TOKEN.len() as u64)));
    assert_eq!(f["sha256"], wif::core::keys::sha256_hex(TOKEN.as_bytes()));
    // The token bytes exactly, and metadata with the assumed expiry beside them.
    assert_eq!(std::fs::read(&out_file).unwrap(), TOKEN.as_bytes());
    let meta: Value = serde_json::from_slice(&std::fs::read(wif::core::files::meta_path(&out_file)).unwrap()).unwrap();
    assert_eq!(meta["expires_at"], f["expires_at"]);

    // --assume-ttl says otherwise, without a warning.
    let out = get(&seed.url("localhost")).args(["--assume-ttl", "20m"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(warnings(&stderr(&out), "").is_empty(), "{}", stderr(&out));
    assert_eq!(json_out(&out)["fetched"]["assumed_ttl_seconds"], 1200);
    // --assume-ttl 0 refuses a token of unknown expiry, and leaves --out as it was.
    let out = get(&seed.url("localhost")).args(["--assume-ttl", "0"]).arg("--out").arg(&out_file).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("did not say when the token expires"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&out_file).unwrap(), TOKEN.as_bytes());
}

#[test]
fn the_metadata_server_serves_the_seeds_bare_token_and_refetches_after_half_its_assumed_lifetime() {
    let Some((_dir, seed)) = flask_serving_the_generators_file() else { return };
    let mds = Mds::start(seed.port, &[]);
    // The refresh schedule as it says it: half of the 5 minutes assumed, not a 30 s poll
    // (the default --min-ttl of 5 minutes would make every fetch due at once), spread over
    // the half before that (--spread auto).
    let fetched = mds.wait_stderr("fetched the token", 20);
    assert!(fetched.contains("expires assumed") && fetched.ends_with(" s (spread over 75..150 s)"), "{fetched}");
    let wait: u64 =
        fetched.split("next refresh in ").nth(1).and_then(|t| t.split(' ').next()).unwrap().parse().unwrap();
    assert!((75..=150).contains(&wait), "{fetched}");
    let r = mds.token();
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("metadata-flavor"), Some("Google"));
    let v = r.json();
    assert_eq!((v["access_token"].as_str(), v["token_type"].as_str()), (Some(TOKEN), Some("Bearer")));
    let expires_in = v["expires_in"].as_i64().unwrap();
    assert!(expires_in > GET_ASSUMES - 60 && expires_in <= GET_ASSUMES, "{v}");
    assert_eq!(warnings(&mds.stderr(), "gave no expiry").len(), 1, "{}", mds.stderr());
    mds.stop_cleanly(&[TOKEN]);
}

#[test]
fn wif_serve_serves_a_bare_token_file_to_the_seeds_requests_client_and_wif_get_until_it_is_too_old() {
    if !python_has("requests") {
        return;
    }
    let dir = tempdir();
    let tok = generator_writes(dir.path(), TOKEN);
    let written = now() - 120;
    set_mtime(&tok, written);
    let mut srv = Server::start(&tok, &[]);
    let url = format!("https://localhost:{}/get_wif_token", srv.port);

    // The seed's client, unchanged: exactly the token's bytes.
    assert_eq!(seed_client(&url).stdout, TOKEN.as_bytes());
    // wif-get: the expiry wif-serve assumed, in its header.
    let out_file = dir.path().join("fetched.txt");
    let out = get(&url).arg("--out").arg(&out_file).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(warnings(&stderr(&out), "").is_empty(), "wif-serve sends the expiry: {}", stderr(&out));
    let f = &json_out(&out)["fetched"];
    assert_eq!((f["expires_from"].as_str(), rfc3339(&f["expires_at"])), (Some("header"), written + SERVE_ASSUMES));
    assert_eq!(std::fs::read(&out_file).unwrap(), TOKEN.as_bytes());
    // /healthz says the expiry is assumed, and how.
    let h = get_over_tls(srv.port, "client", "/healthz").json();
    assert_eq!((h["status"].as_str(), h["expires_from"].as_str()), (Some("ok"), Some("assumed")));
    assert_eq!(
        (rfc3339(&h["expires_at"]), h["assumed_ttl_secs"].as_i64()),
        (written + SERVE_ASSUMES, Some(SERVE_ASSUMES))
    );
    let reload = srv.wait_for("the read", |v| v["event"] == "reload" && v["code"] == "expiry_assumed");
    assert!(reload["reason"].as_str().unwrap().contains("wif_token.txt.meta.json"), "{reload}");

    // The generator writes again, in place and with a line end: the token, without it.
    std::fs::write(&tok, format!("{TOKEN_2}\n")).unwrap();
    token_settles();
    let r = get_over_tls(srv.port, "client", "/get_wif_token");
    assert_eq!(r.body, TOKEN_2.as_bytes());
    assert!(rfc3339(&Value::from(r.header("x-token-expires-at").unwrap())) >= now() + SERVE_ASSUMES - 5);

    // Never served past the file's modification time + 55 minutes: 503 with why, to both.
    set_mtime(&tok, now() - SERVE_ASSUMES - 60);
    token_settles();
    let r = get_over_tls(srv.port, "client", "/get_wif_token");
    assert_eq!(r.status, 503);
    let why = r.json()["message"].as_str().unwrap().to_string();
    assert!(why.contains("expired") && why.contains("no metadata"), "{why}");
    assert!(!why.contains(&dir.path().display().to_string()), "{why}");
    let seed = seed_client(&url);
    assert_eq!((seed.status.code(), seed.stdout.is_empty()), (Some(1), true));
    let out = get(&url).args(["--retries", "0"]).arg("--out").arg(&out_file).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains(&format!("the server has no fresh token to give (HTTP 503): {why}")), "{err}");
    assert!(!err.contains(TOKEN) && !err.contains(TOKEN_2), "{err}");
    assert_eq!(std::fs::read(&out_file).unwrap(), TOKEN.as_bytes(), "a failed fetch keeps the old token");

    // One warning at start and one per new version of the file, not one per request.
    srv.signal("-TERM");
    let (code, err) = srv.wait_exit();
    assert_eq!(code, Some(0), "{err}");
    let warned = warnings(&err, "has no metadata");
    assert_eq!(warned.len(), 3, "{err}");
    assert!(warned[0].contains("serving it until") && warned[0].contains("--assume-ttl"), "{err}");
    assert!(warned[2].contains("answering 503"), "{err}");
    assert!(!err.contains(TOKEN) && !err.contains(TOKEN_2), "{err}");
}

#[test]
fn wif_serve_assume_ttl_sets_or_refuses_the_lifetime_of_a_bare_token_file() {
    let dir = tempdir();
    let tok = generator_writes(dir.path(), TOKEN);
    let written = now() - 60;
    set_mtime(&tok, written);
    let srv = Server::start(&tok, &["--assume-ttl", "10m"]);
    let r = get_over_tls(srv.port, "client", "/get_wif_token");
    assert_eq!(r.body, TOKEN.as_bytes());
    assert_eq!(wif::core::clock::parse_rfc3339(r.header("x-token-expires-at").unwrap()).unwrap(), written + 600);
    drop(srv);
    // 0: a token file without metadata is not served (wif's own files always have it).
    let srv = Server::start(&tok, &["--assume-ttl", "0"]);
    let r = get_over_tls(srv.port, "client", "/get_wif_token");
    assert_eq!((r.status, r.json()["message"].as_str()), (503, Some("there is no token metadata file")));
}

/// The seed's Python client (`requests.get(url, cert=(crt, key), verify=ca)`) with the good
/// client certificate.
fn seed_client(url: &str) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/seed_client.py");
    std::process::Command::new("python3")
        .arg(script)
        .arg(url)
        .args([pki_file("client.crt"), pki_file("client.key"), pki_file("ca-chain.crt")])
        .output()
        .unwrap()
}
