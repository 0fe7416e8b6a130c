//! An attacker's look at the credential broker and the emulated storage: ways to get a
//! broader credential than the policy grants, or to see a token where none should be.

use crate::common::broker::{get_with, write_json};
use crate::common::server::*;
use crate::common::*;
use crate::emulator::{example, full_pipeline, post, Emu};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wif::http::encode_component as enc;

const VIEWER: &str = "inRole:roles/storage.objectViewer";

/// A boundary with one rule on `bucket`, with an optional condition.
fn boundary(bucket: &str, condition: Option<&str>) -> Value {
    let mut rule = json!({
        "availableResource": format!("//storage.googleapis.com/projects/_/buckets/{bucket}"),
        "availablePermissions": [VIEWER],
    });
    if let Some(c) = condition {
        rule["availabilityCondition"] = json!({"expression": c});
    }
    json!({"accessBoundaryRules": [rule]})
}

/// wif-serve with `--token token --policy policy`, downscoping at `sts` within 3 s, plus `extra`.
fn broker(token: &Path, policy: &Path, sts: &str, extra: &[&str]) -> Server {
    let flags: Vec<&str> = ["--sts-timeout", "3s"].iter().chain(extra).copied().collect();
    crate::common::broker::broker(token, policy, sts, &flags)
}

/// A directory with a token file (`ya29.`-less, so only the held-secret scrubbing can hide
/// it) and a policy path.
fn setup(token: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempdir();
    let tok = dir.path().join("wif_token.txt");
    write_token(&tok, token, 3600);
    let policy = dir.path().join("policy.json");
    (dir, tok, policy)
}

const GET: &[u8] = b"GET /get_wif_token HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// An STS (or a proxy before it) whose refusal quotes the subject token it was sent: the
/// broker logs why the narrowed credential could not be minted, and that reason must not
/// carry the source token — in Google's OAuth shape or in its API error shape.
#[test]
fn an_sts_refusal_quoting_the_source_token_keeps_it_out_of_the_log() {
    let source = "opaque-source-token-0123456789abcdef";
    let echo = format!("the subject_token {source} is not valid");
    let sts = RoutedServer::start(vec![
        ("/oauth", vec![Canned::json(400, json!({"error": "invalid_grant", "error_description": echo}))]),
        (
            "/google",
            vec![Canned::json(400, json!({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": echo}}))],
        ),
    ]);
    let (_dir, tok, policy) = setup(source);
    write_json(
        &policy,
        &json!({"version": 1, "rules": [
            {"name": "narrow", "match": {"any": true}, "access_boundary": boundary("team-a-data", None)},
        ]}),
    );
    // Each refusal shape from its own path of the fake STS.
    for shape in ["oauth", "google"] {
        let mut server = broker(&tok, &policy, &format!("{}/{shape}", sts.url), &[]);
        let r = get(server.port, "client", "/get_wif_token");
        assert_eq!(r.status, 503, "{shape}: {:?}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["error"], "credential_unavailable");
        server.wait_for("the refused request", |v| v["event"] == "request" && v["status"] == 503);
        server.finish_checking_secrecy(&[source]);
    }
    assert_eq!(sts.requests().len(), 2, "both refusals came from STS");
}

/// A FIFO put where the ledger goes: opening it for writing would wait for a reader for
/// ever, and wif-serve would never start (nor say why). It must be refused at once.
#[test]
fn a_fifo_in_place_of_the_ledger_is_refused_at_start_not_waited_on() {
    let (dir, tok, policy) = setup("opaque-source-token-for-the-fifo-test");
    write_json(&policy, &json!({"version": 1, "rules": [{"name": "all", "match": {"any": true}}]}));
    let fifo = dir.path().join("ledger.jsonl");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut args = server_args(&pki_file("ca-chain.crt"), &tok);
    args.extend(["--policy", policy.to_str().unwrap(), "--ledger", fifo.to_str().unwrap()].map(String::from));
    let err = start_fails(&args);
    assert!(err.contains("ledger"), "{err}");
}

/// Runs wif-serve with `args`, expecting it to refuse to start (within a few seconds, not
/// hanging); its stderr.
fn start_fails(args: &[String]) -> String {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("wif-serve"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wif-serve neither started nor refused to: it hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "wif-serve started: {err}");
    err
}

/// A policy value with white space around it names another identity than the one it would
/// match once trimmed (`"wif-client "` is not `wif-client`): refused, not trimmed into a
/// match for a different client.
#[test]
fn a_match_value_with_space_around_it_is_refused_not_trimmed() {
    let (_dir, tok, policy) = setup("opaque-source-token-spaced-values-1");
    for value in ["wif-client ", " wif-client", "wif-client\\n"] {
        let text = format!(r#"{{"version": 1, "rules": [{{"name": "r", "match": {{"cn": ["x", "{value}"]}}}}]}}"#);
        std::fs::write(&policy, text).unwrap();
        let mut args = server_args(&pki_file("ca-chain.crt"), &tok);
        args.extend(["--policy".to_string(), policy.to_str().unwrap().to_string()]);
        let err = start_fails(&args);
        assert!(err.contains("rules[0].match.cn[1]"), "{value:?}: {err}");
    }
}

/// A keep-alive connection opened under one policy is answered under the policy in force
/// at each request: after a reload that no longer matches the client, its next request on
/// the same connection is refused, never served from what the old policy granted.
#[test]
fn a_keep_alive_connection_gets_the_new_policy_at_once() {
    let (_dir, tok, policy) = setup("opaque-source-token-keep-alive-0123");
    write_json(&policy, &json!({"version": 1, "rules": [{"name": "mine", "match": {"cn": "wif-client"}}]}));
    let mut server = broker(&tok, &policy, "http://127.0.0.1:9/v1/token", &[]);
    let mut s = connect(server.port, client_config(Some("client"), "ca-chain.crt", None));
    s.write_all(GET).unwrap();
    let first = read_response(&mut s, false).unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.header("X-Wif-Rule"), Some("mine"));
    std::thread::sleep(Duration::from_millis(1100));
    write_json(&policy, &json!({"version": 1, "rules": [{"name": "other", "match": {"cn": "wif-client-2"}}]}));
    server.wait_count("the new policy", 2, |v| v["event"] == "policy_loaded");
    s.write_all(GET).unwrap();
    let second = read_response(&mut s, false).unwrap();
    assert_eq!(second.status, 403, "{:?}", String::from_utf8_lossy(&second.body));
    assert_eq!(second.json()["error"], "forbidden");
    assert!(second.header("X-Wif-Rule").is_none());
}

/// Rule matching quirks: a CN differing in case, a URI SAN differing by a trailing slash or
/// in case, and an AND whose second key fails must not match; a DNS SAN matches in any case;
/// a list matches when one entry does. The client certificate reaches only the last rule.
#[test]
fn near_misses_in_a_match_do_not_match() {
    let (_dir, tok, policy) = setup("opaque-source-token-near-misses-01");
    let rules = json!([
        {"name": "cn-case", "match": {"cn": "WIF-CLIENT"}},
        {"name": "uri-slash", "match": {"uri": "spiffe://example.org/wif-client/"}},
        {"name": "uri-case", "match": {"uri": "spiffe://example.org/WIF-CLIENT"}},
        {"name": "and-fails", "match": {"cn": "wif-client", "uri": "spiffe://example.org/wif-client-2"}},
        {"name": "dns-any-case", "match": {"dns": ["nobody.example.org", "CLIENT.Example.ORG"]}},
    ]);
    write_json(&policy, &json!({"version": 1, "rules": rules}));
    let server = broker(&tok, &policy, "http://127.0.0.1:9/v1/token", &[]);
    let r = get(server.port, "client", "/get_wif_token");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Wif-Rule"), Some("dns-any-case"));
    // The second client has no such DNS name (and not the others' identities): refused.
    let r = get(server.port, "client2", "/get_wif_token");
    assert_eq!(r.status, 403);
}

/// Emulated Cloud Storage with a bucket whose name is a prefix of another's (`team-a` and
/// `team-a-data`), the example's objects, and the service account allowed on both.
fn emu_with_prefix_buckets() -> Emu {
    let mut config = example();
    let buckets = config["google"]["storage"]["buckets"].as_array_mut().unwrap();
    let members = buckets[0]["iam"].clone();
    buckets.push(json!({"name": "team-a", "iam": members, "objects": [{"name": "reports/a.csv", "content": "a\n"}]}));
    Emu::start(&config, &[])
}

/// A downscoped token of the service account, or the test fails.
fn downscoped(emu: &Emu, subject: &str, boundary: &Value) -> String {
    let body = format!(
        "grant_type={}&subject_token_type={}&requested_token_type={}&subject_token={}&options={}",
        enc("urn:ietf:params:oauth:grant-type:token-exchange"),
        enc("urn:ietf:params:oauth:token-type:access_token"),
        enc("urn:ietf:params:oauth:token-type:access_token"),
        enc(subject),
        enc(&json!({"accessBoundary": boundary}).to_string()),
    );
    let (status, v) = post(&format!("{}/v1/token", emu.url), "application/x-www-form-urlencoded", &body, None);
    assert_eq!(status, 200, "{v}");
    v["access_token"].as_str().unwrap().to_string()
}

/// A GET on the emulated storage with `token`; the status and body.
fn storage_get(emu: &Emu, path: &str, token: &str) -> (u16, String) {
    let (status, body) = get_with(&format!("{}{path}", emu.url), token);
    (status, String::from_utf8(body).unwrap())
}

/// The emulator must be no laxer than Cloud Storage: a boundary on `team-a` gives nothing
/// in `team-a-data`; a condition on `reports/` is not passed by case, by `..`, by a
/// percent-encoded slash or by a list prefix without the slash, on either download route.
#[test]
fn emulated_storage_holds_the_boundary_against_near_names() {
    let emu = emu_with_prefix_buckets();
    let sa = full_pipeline(&emu, "app-rsa.key", "app-rsa.crt", &[]).1;
    let a_only = downscoped(&emu, &sa, &boundary("team-a", None));
    assert_eq!(storage_get(&emu, "/storage/v1/b/team-a/o/reports%2Fa.csv?alt=media", &a_only).0, 200);
    for path in [
        "/storage/v1/b/team-a-data/o",
        "/storage/v1/b/team-a-data/o/reports%2Fq1.csv",
        "/download/storage/v1/b/team-a-data/o/reports%2Fq1.csv?alt=media",
        "/storage/v1/b/team-a%2Ddata/o/reports%2Fq1.csv?alt=media",
        "/storage/v1/b/TEAM-A/o/reports%2Fa.csv?alt=media",
    ] {
        assert_eq!(storage_get(&emu, path, &a_only).0, 403, "{path}");
    }

    let cond = "resource.name.startsWith('projects/_/buckets/team-a-data/objects/reports/') || api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('reports/')";
    let reports = downscoped(&emu, &sa, &boundary("team-a-data", Some(cond)));
    let (status, body) = storage_get(&emu, "/storage/v1/b/team-a-data/o/reports%2Fq1.csv?alt=media", &reports);
    assert_eq!((status, body.as_str()), (200, "quarter,revenue\nq1,100\n"));
    for path in [
        "/storage/v1/b/team-a-data/o/private%2Fsalaries.csv?alt=media",
        "/download/storage/v1/b/team-a-data/o/private%2Fsalaries.csv?alt=media",
        "/storage/v1/b/team-a-data/o/REPORTS%2Fq1.csv?alt=media",
        "/storage/v1/b/team-a-data/o?prefix=reports",
        "/storage/v1/b/team-a-data/o?prefix=private%2F",
        "/storage/v1/b/team-a-data/o",
        "/storage/v1/b/team-a/o/reports%2Fa.csv?alt=media",
    ] {
        assert_eq!(storage_get(&emu, path, &reports).0, 403, "{path}");
    }
    // `..` is part of an object name, never a way out of the prefix.
    let (status, body) =
        storage_get(&emu, "/storage/v1/b/team-a-data/o/reports%2F..%2Fprivate%2Fsalaries.csv?alt=media", &reports);
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("alice"));
    // A listing under the allowed prefix shows only what is under it, however it is paged.
    let (status, body) = storage_get(&emu, "/storage/v1/b/team-a-data/o?prefix=reports%2F&maxResults=1", &reports);
    assert_eq!(status, 200);
    let page: Value = serde_json::from_str(&body).unwrap();
    let token = page["nextPageToken"].as_str().unwrap();
    let (_, body) = storage_get(
        &emu,
        &format!("/storage/v1/b/team-a-data/o?prefix=reports%2F&pageToken={token}&prefix=private%2F"),
        &reports,
    );
    assert!(!body.contains("salaries"), "{body}");
}
