//! wif-serve as a credential broker (`--policy`): per-client credentials over real mutual
//! TLS, downscoped at the emulated STS and checked against the emulated Cloud Storage.
//! Integration tests: the binaries run as users run them, against servers on loopback.

use crate::common::broker::*;
use crate::common::server::{token_dir, Server};
use crate::common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// What every broker test starts from: the emulator, a service-account token from the
/// pipeline in `dir/wif_token.txt`, and a policy file (`dir/policy.json`) with `rules`.
struct Bench {
    emu: Emu,
    dir: tempfile::TempDir,
    token_file: std::path::PathBuf,
    policy: std::path::PathBuf,
    source: String,
}

impl Bench {
    fn new(rules: &[Value]) -> Bench {
        let emu = Emu::start();
        let (dir, token_file) = token_dir();
        let source = sa_token(&emu, &token_file);
        let policy = dir.path().join("policy.json");
        write_policy(&policy, rules);
        Bench { emu, dir, token_file, policy, source }
    }

    /// wif-serve with the policy, STS at the emulator, plus `extra`.
    fn serve(&self, extra: &[&str]) -> Server {
        broker(&self.token_file, &self.policy, &self.emu.sts(), extra)
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

fn request_lines(srv: &mut Server, status: u16) -> Vec<Value> {
    srv.drain().into_iter().filter(|v| v["event"] == "request" && v["status"] == status).collect()
}

#[test]
fn two_clients_get_their_own_token_and_each_reads_only_its_own_bucket() {
    let b = Bench::new(&team_rules());
    let srv = b.serve(&[]);
    let (ra, a) = token_for(srv.port, "client");
    let (rb, tb) = token_for(srv.port, "client2");
    assert_ne!(a, tb, "two rules, two tokens");
    assert_ne!(a, b.source, "team A got a downscoped token, not the source");
    assert_ne!(tb, b.source, "team B got a downscoped token, not the source");
    assert_eq!(ra.header("x-wif-rule"), Some("team-a"));
    assert_eq!(rb.header("x-wif-rule"), Some("team-b"));
    assert_eq!(ra.header("x-wif-access-boundary"), Some(boundary_digest(&team_rules()[0]["access_boundary"]).as_str()));
    assert_eq!(rb.header("x-wif-access-boundary"), Some(boundary_digest(&team_rules()[1]["access_boundary"]).as_str()));
    assert_eq!(ra.header("x-token-type"), Some("access_token"));
    let expires = ra.header("x-token-expires-at").expect("X-Token-Expires-At");
    let source_meta: Value =
        serde_json::from_slice(&std::fs::read(wif::core::files::meta_path(&b.token_file)).unwrap()).unwrap();
    let at = |t: &str| wif::core::clock::parse_rfc3339(t).unwrap_or_else(|e| panic!("{t}: {e:?}"));
    let source_expiry = at(source_meta["expires_at"].as_str().unwrap());
    assert_eq!(at(expires), source_expiry, "the emulator's downscoped token expires with its source");

    // The source token reads both buckets: only the boundaries keep the teams apart.
    assert_eq!(read_object(&b.emu, &b.source, BUCKET_B, "builds/app.tar").0, 200);
    assert_eq!(read_object(&b.emu, &a, BUCKET_A, "reports/q1.csv"), (200, REPORT.as_bytes().to_vec()));
    assert_eq!(read_object(&b.emu, &tb, BUCKET_B, "builds/app.tar"), (200, BUILD.as_bytes().to_vec()));
    let (status, body) = read_object(&b.emu, &a, BUCKET_B, "builds/app.tar");
    assert_eq!(status, 403, "team A on team B's bucket: {}", String::from_utf8_lossy(&body));
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(err["error"]["code"], 403, "{err}");
    assert_eq!(err["error"]["errors"][0]["reason"], "forbidden", "{err}");
    assert_eq!(read_object(&b.emu, &tb, BUCKET_A, "reports/q1.csv").0, 403, "team B on team A's bucket");
    // Team A's condition: its reports, not the rest of its bucket.
    assert_eq!(read_object(&b.emu, &a, BUCKET_A, "private/salaries.csv").0, 403, "outside reports/");
    let (status, listed) = list_objects(&b.emu, &a, BUCKET_A, "reports/");
    assert_eq!(status, 200, "{listed}");
    let names: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["reports/q1.csv"]);
    assert_eq!(list_objects(&b.emu, &a, BUCKET_A, "private/").0, 403, "a list outside reports/");
    assert_eq!(list_objects(&b.emu, &a, BUCKET_B, "").0, 403);
    assert_eq!(list_objects(&b.emu, &tb, BUCKET_B, "").0, 200);
    stop_checking_secrecy(srv, &[&a, &tb, &b.source]);
}

#[test]
fn an_unmatched_client_gets_403_and_is_logged_with_its_identity() {
    let b = Bench::new(&team_rules()[..1]);
    let mut srv = b.serve(&["--metrics-listen", "127.0.0.1:0"]);
    rsa_leaf(b.dir.path(), "wif-stranger", "extendedKeyUsage=clientAuth\nsubjectAltName=DNS:stranger.example.org");
    let stranger = client_files(&b.dir.path().join("rsa.crt"), &b.dir.path().join("rsa8.key"));
    for client in [stranger, pki_client("client2")] {
        let r = fetch_as(srv.port, client, "GET");
        assert_eq!(r.status, 403);
        assert_eq!(
            r.json(),
            json!({"error":"forbidden","message":"no rule of the server's policy matches this client"})
        );
        assert!(r.header("x-wif-rule").is_none());
    }
    let lines = srv.wait_count("two 403s", 2, |v| v["event"] == "request" && v["status"] == 403);
    let subjects: Vec<&str> = lines.iter().map(|l| l["subject"].as_str().unwrap()).collect();
    assert!(subjects.iter().any(|s| s.contains("wif-stranger")), "{lines:?}");
    assert!(subjects.iter().any(|s| s.contains("wif-client-2")), "{lines:?}");
    for l in &lines {
        assert_eq!(l["fingerprint"].as_str().map(str::len), Some(64), "{l}");
        assert!(l["reason"].as_str().is_some_and(|r| r.contains("polic")), "the reason names the policy: {l}");
    }
    let m = metrics(&srv);
    assert_eq!(m.get("wif_serve_handshakes_refused_total", &[("reason", "no_policy_match")]), 2.0);
    // The matched client still gets its credential.
    let (_, a) = token_for(srv.port, "client");
    assert_eq!(b.emu.sts_calls(), 2, "the pipeline's exchange and one downscoping, none for the refused");
    stop_checking_secrecy(srv, &[&a, &b.source]);
}

#[test]
fn sts_down_means_503_with_retry_after_never_the_source_and_recovery_when_it_is_back() {
    let b = Bench::new(&team_rules());
    let gate = Gate::new(&b.emu);
    gate.set(false);
    let mut srv = broker(&b.token_file, &b.policy, &gate.url, &["--metrics-listen", "127.0.0.1:0"]);
    for method in ["GET", "GET", "HEAD"] {
        let r = fetch_as(srv.port, pki_client("client"), method);
        assert_eq!(r.status, 503, "{method}");
        assert_eq!(r.header("retry-after"), Some("5"));
        if method == "GET" {
            assert_eq!(
                r.json(),
                json!({"error":"credential_unavailable","message":"the credential for this client cannot be issued right now; retry later"})
            );
        }
        assert_no_token("a 503 answer", &String::from_utf8_lossy(&r.body), &[&b.source]);
    }
    // A closed port as the endpoint fails the same way.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = broker(&b.token_file, &b.policy, &format!("http://127.0.0.1:{closed}/v1/token"), &[]);
    assert_eq!(fetch_as(dead.port, pki_client("client2"), "GET").status, 503);
    let why = request_lines(&mut srv, 503);
    assert!(why.iter().all(|l| l["reason"].as_str().is_some_and(|r| !r.is_empty())), "{why:?}");
    let m = metrics(&srv);
    assert!(m.get("wif_serve_grants_total", &[("rule", "team-a"), ("outcome", "unavailable")]) >= 2.0);
    assert!(m.get("wif_serve_downscope_calls_total", &[("rule", "team-a"), ("result", "failed")]) >= 1.0);
    // Back up: after the 5 s a failure is remembered, the next request is served.
    gate.set(true);
    std::thread::sleep(Duration::from_millis(5200));
    let (r, a) = token_for(srv.port, "client");
    assert_eq!(r.header("x-wif-rule"), Some("team-a"));
    assert_ne!(short_sha(&a), short_sha(&b.source), "the downscoped token, not the source");
    assert_eq!(read_object(&b.emu, &a, BUCKET_B, "builds/app.tar").0, 403, "and it is bounded");
    stop_checking_secrecy(dead, &[&b.source]);
    stop_checking_secrecy(srv, &[&a, &b.source]);
}

#[test]
fn fifty_concurrent_requests_for_one_rule_make_one_sts_call() {
    let b = Bench::new(&team_rules());
    let srv = b.serve(&["--metrics-listen", "127.0.0.1:0"]);
    let before = b.emu.sts_calls();
    let port = srv.port;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let client = pki_client("client");
                barrier.wait();
                let r = fetch_as(port, client, "GET");
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                String::from_utf8(r.body).unwrap()
            })
        })
        .collect();
    let tokens: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(tokens.iter().all(|t| t == &tokens[0]), "every request got the same downscoped token");
    assert_ne!(tokens[0], b.source);
    assert_eq!(b.emu.sts_calls() - before, 1, "one STS call for 50 concurrent requests");
    let m = metrics(&srv);
    assert_eq!(m.get("wif_serve_downscope_calls_total", &[("rule", "team-a"), ("result", "ok")]), 1.0);
    assert_eq!(m.get("wif_serve_grants_total", &[("rule", "team-a"), ("outcome", "issued")]), 50.0);
    assert_eq!(m.get("wif_serve_downscope_cache_hits_total", &[("rule", "team-a")]), 49.0);
    stop_checking_secrecy(srv, &[&tokens[0], &b.source]);
}

#[test]
fn the_cache_serves_until_the_source_token_changes() {
    let b = Bench::new(&team_rules());
    let ledger_file = b.path("ledger.jsonl");
    let srv = b.serve(&["--ledger", &ledger_file]);
    let calls = b.emu.sts_calls();
    let (_, first) = token_for(srv.port, "client");
    let (_, again) = token_for(srv.port, "client");
    assert_eq!(first, again, "the second fetch is served from the cache");
    assert_eq!(b.emu.sts_calls(), calls + 1);
    let source2 = renew(&b.emu, &b.token_file);
    let calls = b.emu.sts_calls();
    // The server notices the new file on the next request (or soon after).
    let fresh = wait_for_change(srv.port, &first);
    assert_ne!(fresh, first, "a new source token, a new downscoped token");
    assert_eq!(b.emu.sts_calls(), calls + 1, "one new STS call");
    assert_eq!(read_object(&b.emu, &fresh, BUCKET_A, "reports/q1.csv").0, 200);
    let lines = ledger(Path::new(&ledger_file));
    let via: Vec<&str> = lines.iter().map(|l| l["via"].as_str().unwrap()).collect();
    assert_eq!(via.first(), Some(&"sts"), "{via:?}");
    assert_eq!(via.get(1), Some(&"cache"), "{via:?}");
    assert_eq!(via.last(), Some(&"sts"), "{via:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["source_sha256"], short_sha(&source2));
    assert_eq!(last["issued_sha256"], short_sha(&fresh));
    assert_eq!(lines[0]["source_sha256"], short_sha(&b.source));
    stop_checking_secrecy(srv, &[&first, &fresh, &b.source, &source2]);
}

/// Fetches as `client` until the token differs from `old` (up to 10 s); returns it.
fn wait_for_change(port: u16, old: &str) -> String {
    for _ in 0..100 {
        let (_, t) = token_for(port, "client");
        if t != old {
            return t;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the server kept serving the token of the old source");
}

#[test]
fn a_changed_policy_is_followed_and_a_bad_one_refused_while_the_old_one_serves() {
    let b = Bench::new(&team_rules()[..1]);
    let mut srv = b.serve(&["--metrics-listen", "127.0.0.1:0"]);
    let loaded = srv.wait_for("policy_loaded", |v| v["event"] == "policy_loaded");
    assert_eq!((loaded["rules"].as_u64(), loaded["version"].as_u64()), (Some(1), Some(1)), "{loaded}");
    let (_, a) = token_for(srv.port, "client");
    assert_eq!(read_object(&b.emu, &a, BUCKET_A, "reports/q1.csv").0, 200);
    // Team A moves to bucket B.
    let moved = rule("team-a", json!({ "cn": ["someone-else", "wif-client"] }), Some(boundary(BUCKET_B, None)));
    write_policy(&b.policy, &[moved]);
    let moved_digest = boundary_digest(&boundary(BUCKET_B, None));
    let moved_token = wait_for_boundary(srv.port, &moved_digest);
    srv.wait_count("the second policy_loaded", 2, |v| v["event"] == "policy_loaded");
    assert_eq!(read_object(&b.emu, &moved_token, BUCKET_B, "builds/app.tar").0, 200);
    assert_eq!(read_object(&b.emu, &moved_token, BUCKET_A, "reports/q1.csv").0, 403);
    // A policy with a bucket that is not Cloud Storage's, then SIGHUP: refused, the old one serves.
    let mut bad = boundary(BUCKET_A, None);
    bad["accessBoundaryRules"][0]["availableResource"] = json!("//bigquery.googleapis.com/projects/p/datasets/d");
    write_policy(&b.policy, &[rule("team-a", json!({ "cn": "wif-client" }), Some(bad))]);
    srv.signal("-HUP");
    let refused = srv.wait_for("policy_refused", |v| v["event"] == "policy_refused");
    assert!(refused["file"].as_str().is_some_and(|f| f.ends_with("policy.json")), "{refused}");
    let reason = refused["reason"].as_str().unwrap();
    assert!(reason.contains("rules[0].access_boundary.accessBoundaryRules[0].availableResource"), "{reason}");
    let (r, still) = token_for(srv.port, "client");
    assert_eq!(r.header("x-wif-rule"), Some("team-a"));
    assert_eq!(r.header("x-wif-access-boundary"), Some(moved_digest.as_str()), "the old policy still serves");
    assert_eq!(read_object(&b.emu, &still, BUCKET_B, "builds/app.tar").0, 200);
    let m = metrics(&srv);
    assert_eq!(m.get("wif_serve_policy_reloads_total", &[("result", "refused")]), 1.0);
    assert!(m.get("wif_serve_policy_reloads_total", &[("result", "ok")]) >= 1.0);
    assert_eq!(m.get("wif_serve_policy_rules", &[]), 1.0);
    stop_checking_secrecy(srv, &[&a, &moved_token, &still, &b.source]);
}

/// Fetches as `client` until the answer's boundary digest is `digest` (up to 10 s: the server
/// notices a changed policy file within a second); returns that token.
fn wait_for_boundary(port: u16, digest: &str) -> String {
    for _ in 0..100 {
        let (r, t) = token_for(port, "client");
        if r.header("x-wif-access-boundary") == Some(digest) {
            return t;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the server did not follow the changed policy");
}

#[test]
fn a_bad_policy_at_start_is_refused_with_its_json_path() {
    let b = Bench::new(&team_rules());
    let mut doc = json!({ "version": 1, "rules": team_rules() });
    doc["rules"][1]["access_boundary"]["accessBoundaryRules"][0]["availablePermissions"] = json!([]);
    write_json(&b.policy, &doc);
    let args = ["--policy", b.policy.to_str().unwrap(), "--sts-endpoint", &b.emu.sts()];
    let mut all = crate::common::server::server_args(&pki_file("ca-chain.crt"), &b.token_file);
    all.extend(args.iter().map(|s| s.to_string()));
    let out = bin("wif-serve").args(&all).output().unwrap();
    assert!(matches!(out.status.code(), Some(2 | 3)), "a usage or input error: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("policy.json"), "{err}");
    assert!(err.contains("rules[1].access_boundary.accessBoundaryRules[0].availablePermissions"), "{err}");
    for (change, path) in [
        (json!({ "version": 2 }), "version"),
        (json!({ "extra": true }), "extra"),
        (json!({ "rules": [rule("r", json!({}), None)] }), "rules[0].match"),
        (json!({ "rules": [rule("r", json!({ "any": true, "cn": "x" }), None)] }), "rules[0].match"),
        (json!({ "rules": [{ "name": "r", "match": { "any": true }, "token": "nope" }] }), "rules[0].token"),
    ] {
        let mut doc = json!({ "version": 1, "rules": team_rules() });
        for (k, v) in change.as_object().unwrap() {
            doc[k] = v.clone();
        }
        write_json(&b.policy, &doc);
        let out = bin("wif-serve").args(&all).output().unwrap();
        assert!(matches!(out.status.code(), Some(2 | 3)), "{change}: {}", stderr(&out));
        assert!(stderr(&out).contains(path), "{change}: {}", stderr(&out));
    }
}

#[test]
fn the_ledger_has_one_line_per_credential_in_the_file_or_on_stdout() {
    let rules = vec![team_rules()[0].clone(), rule("plain", json!({ "spki_sha256": spki_of("client2.crt") }), None)];
    let b = Bench::new(&rules);
    let ledger_file = b.path("ledger.jsonl");
    let srv = b.serve(&["--ledger", &ledger_file]);
    let (_, a) = token_for(srv.port, "client");
    token_for(srv.port, "client");
    let (r, plain) = token_for(srv.port, "client2");
    assert_eq!(plain, b.source, "a rule without a boundary hands out the source as it is");
    assert!(r.header("x-wif-access-boundary").is_none());
    assert_eq!(fetch_as(srv.port, pki_client("client"), "HEAD").status, 200, "HEAD is not an issuance");
    let lines = ledger(Path::new(&ledger_file));
    assert_eq!(lines.len(), 3, "{lines:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&ledger_file).unwrap().permissions().mode() & 0o777, 0o600);
    let first = &lines[0];
    assert_eq!(first["event"], "credential_issued");
    assert!(wif::core::clock::parse_rfc3339(first["time"].as_str().unwrap()).is_ok(), "{first}");
    assert!(first["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{first}");
    let client = &first["client"];
    assert_eq!(client["cn"], json!(["wif-client"]));
    assert!(client["subject"].as_str().unwrap().contains("CN=wif-client"), "{client}");
    assert_eq!(client["dns"], json!(["client.example.org"]));
    assert_eq!(client["uris"], json!(["spiffe://example.org/wif-client"]));
    assert_eq!(client["spki_sha256"], spki_of("client.crt"));
    assert_eq!(client["fingerprint"].as_str().map(str::len), Some(64));
    assert_eq!((first["rule"].as_str(), first["token_source"].as_str()), (Some("team-a"), Some("default")));
    assert_eq!(first["source_sha256"], short_sha(&b.source));
    assert_eq!(first["issued_sha256"], short_sha(&a));
    assert_eq!(first["boundary_sha256"], boundary_digest(&team_rules()[0]["access_boundary"]));
    assert!(wif::core::clock::parse_rfc3339(first["expires_at"].as_str().unwrap()).is_ok());
    assert_eq!((first["via"].as_str(), lines[1]["via"].as_str()), (Some("sts"), Some("cache")));
    let third = &lines[2];
    assert_eq!((third["rule"].as_str(), third["via"].as_str()), (Some("plain"), Some("file")));
    assert_eq!(third["boundary_sha256"], Value::Null);
    assert_eq!(third["issued_sha256"], third["source_sha256"]);
    let text = std::fs::read_to_string(&ledger_file).unwrap();
    assert_no_token("the ledger", &text, &[&a, &b.source]);
    stop_checking_secrecy(srv, &[&a, &b.source]);

    // A ledger others can write proves nothing: the server refuses to start with it.
    set_mode(Path::new(&ledger_file), 0o666);
    let mut all = crate::common::server::server_args(&pki_file("ca-chain.crt"), &b.token_file);
    all.extend(["--policy", b.policy.to_str().unwrap(), "--ledger", &ledger_file].map(String::from));
    let out = bin("wif-serve").args(&all).output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("ledger"), "{}", stderr(&out));

    // Without --ledger, the same lines come on stdout among the log lines.
    let mut srv = b.serve(&[]);
    token_for(srv.port, "client");
    let issued = srv.wait_for("a credential_issued line", |v| v["event"] == "credential_issued");
    assert_eq!((issued["rule"].as_str(), issued["via"].as_str()), (Some("team-a"), Some("sts")), "{issued}");
    assert_eq!(issued["client"]["cn"], json!(["wif-client"]));
    stop_checking_secrecy(srv, &[&a, &b.source]);
}

/// The SHA-256 of a test PKI certificate's public key (hex), as openssl computes it.
fn spki_of(cert: &str) -> String {
    let der = wif::core::keys::load_certs(Path::new(&pki_file(cert))).unwrap().remove(0);
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    wif::core::keys::sha256_hex(parsed.public_key().raw)
}

#[test]
fn several_token_sources_one_per_service() {
    let b = Bench::new(&team_rules());
    let deploy_file = b.dir.path().join("deploy").join("wif_token.txt");
    std::fs::create_dir(deploy_file.parent().unwrap()).unwrap();
    let deploy = sa_token(&b.emu, &deploy_file);
    let doc = json!({
        "version": 1,
        "tokens": { "deploy": "deploy/wif_token.txt" },
        "rules": [
            { "name": "deployer", "match": { "uri": "spiffe://example.org/wif-client-2" }, "token": "deploy" },
            { "name": "readers", "match": { "any": true }, "access_boundary": boundary(BUCKET_A, None) },
        ],
    });
    write_json(&b.policy, &doc);
    let mut srv = b.serve(&["--metrics-listen", "127.0.0.1:0"]);
    let (r, got) = token_for(srv.port, "client2");
    assert_eq!((got.as_str(), r.header("x-wif-rule")), (deploy.as_str(), Some("deployer")));
    let (r, read) = token_for(srv.port, "client");
    assert_eq!(r.header("x-wif-rule"), Some("readers"));
    assert_ne!(read, b.source);
    let health = srv_healthz(&mut srv);
    assert_eq!(health["status"], "ok", "{health}");
    for name in ["default", "deploy"] {
        assert_eq!(health["tokens"][name]["status"], "ok", "{health}");
    }
    assert!(!health.to_string().contains(b.dir.path().to_str().unwrap()), "no paths: {health}");
    stop_checking_secrecy(srv, &[&deploy, &read, &b.source]);
}

/// `GET /healthz` as the good client; its JSON.
fn srv_healthz(srv: &mut Server) -> Value {
    let r = crate::common::server::get(srv.port, "client", "/healthz");
    r.json()
}

#[test]
fn wif_get_and_its_metadata_server_work_unchanged_against_a_policy() {
    let b = Bench::new(&team_rules());
    let srv = b.serve(&[]);
    let out_file = b.path("fetched.txt");
    let url = format!("https://localhost:{}/get_wif_token", srv.port);
    let out = bin("wif-get")
        .args(["--url", &url, "--cert", &pki_file("client2.crt"), "--key", &pki_file("client2.key")])
        .args(["--ca", &pki_file("ca-chain.crt"), "--out", &out_file])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let fetched = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(read_object(&b.emu, &fetched, BUCKET_B, "builds/app.tar").0, 200);
    assert_eq!(read_object(&b.emu, &fetched, BUCKET_A, "reports/q1.csv").0, 403);
    // wif-get's document names the token by its whole SHA-256 (by design); the token itself
    // never appears, and nothing of it reaches stderr.
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&fetched), "the token in wif-get's document");
    assert_no_token("wif-get's stderr", &stderr(&out), &[&fetched]);
    if python_has("google.cloud.storage") {
        gcs_client_conformance(&b, &out_file);
    }
    // The metadata server, as client (team A).
    let mds = crate::metadata::Mds::start(srv.port, &[]);
    mds.wait_stderr("fetched the token", 20);
    let served = mds.token().json();
    let token = served["access_token"].as_str().unwrap().to_string();
    assert_eq!(read_object(&b.emu, &token, BUCKET_A, "reports/q1.csv").0, 200);
    assert_eq!(read_object(&b.emu, &token, BUCKET_B, "builds/app.tar").0, 403);
    mds.stop_cleanly(&[&token]);
    stop_checking_secrecy(srv, &[&fetched, &token, &b.source]);
}

/// The official google-cloud-storage client (tests/interop/gcs_client.py) with team B's
/// token as wif-get wrote it: lists and reads team B's bucket, is refused team A's.
fn gcs_client_conformance(b: &Bench, token_file: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/gcs_client.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args(["--endpoint", &b.emu.url, "--token-file", token_file, "--project", "wif-demo"])
        .args(["--list", &format!("{BUCKET_B}/builds/"), "--read", &format!("{BUCKET_B}/builds/app.tar")])
        .args(["--read", &format!("{BUCKET_A}/reports/q1.csv"), "--list", BUCKET_A])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("gcs_client.py printed no JSON ({e}): {}", stderr(&out)));
    assert!(out.status.success(), "{v} {}", stderr(&out));
    let r = &v["results"];
    assert_eq!((r[0]["ok"].as_bool(), &r[0]["items"]), (Some(true), &json!(["builds/app.tar"])), "{v}");
    let sha = wif::core::keys::sha256_hex(BUILD.as_bytes());
    assert_eq!((r[1]["status"].as_u64(), r[1]["sha256"].as_str()), (Some(200), Some(sha.as_str())), "{v}");
    assert_eq!((r[2]["ok"].as_bool(), r[2]["status"].as_u64()), (Some(false), Some(403)), "{v}");
    assert_eq!((r[3]["ok"].as_bool(), r[3]["status"].as_u64()), (Some(false), Some(403)), "{v}");
}

#[test]
fn without_a_policy_there_are_no_new_headers_and_no_ledger() {
    let (_d, tok) = token_dir();
    crate::common::server::write_token(&tok, "ya29.no-policy-token-Xq1", 3600);
    let mut srv = Server::start(&tok, &[]);
    let r = fetch_as(srv.port, pki_client("client2"), "GET");
    assert_eq!((r.status, r.body.as_slice()), (200, b"ya29.no-policy-token-Xq1".as_slice()));
    assert!(r.header("x-token-expires-at").is_some());
    assert!(r.header("x-wif-rule").is_none() && r.header("x-wif-access-boundary").is_none(), "{:?}", r.headers);
    let log = srv.drain();
    assert!(log.iter().all(|v| v["event"] != "credential_issued" && v["event"] != "policy_loaded"), "{log:?}");
    let health = srv_healthz(&mut srv);
    assert!(health.get("tokens").is_none(), "today's /healthz body: {health}");
    stop_checking_secrecy(srv, &["ya29.no-policy-token-Xq1"]);
}
