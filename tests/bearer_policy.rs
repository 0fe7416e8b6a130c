//! wif-serve's bearer clients beside certificate clients: sessions, identities, the
//! allow-list, the policy, the ledger, the logs and the metrics (spec §4).

use crate::common::jwt;
use serde_json::json;

#[test]
fn test_keys_sign_tokens_that_verify_with_their_jwks() {
    for key in [jwt::signing_key_rsa(), jwt::signing_key_ec()] {
        let claims = jwt::claims("https://issuer.test", "wif-serve", "workload-1");
        let token = jwt::sign(&key, &json!({}), &claims);
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwt::jwks_json(&[&key])).unwrap();
        let jwk = jwks.find(&key.kid).expect("the key is in its JWKS");
        let alg: jsonwebtoken::Algorithm = key.alg().parse().unwrap();
        let mut v = jsonwebtoken::Validation::new(alg);
        v.set_audience(&["wif-serve"]);
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &v)
                .unwrap_or_else(|e| panic!("{} token does not verify: {e}", key.alg()));
        assert_eq!(data.claims["sub"], "workload-1");
        // A token without kid, and one whose payload is swapped, do not verify.
        let no_kid = jwt::sign(&key, &json!({"kid": null}), &claims);
        let header: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                no_kid.split('.').next().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(header.get("kid").is_none(), "{header}");
        let other = jwt::sign(&key, &json!({}), &jwt::claims("https://issuer.test", "wif-serve", "workload-2"));
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], other.split('.').nth(1).unwrap(), parts[2]);
        assert!(jsonwebtoken::decode::<serde_json::Value>(
            &tampered,
            &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
            &v
        )
        .is_err());
    }
}

use crate::common::jwt::SigningKey;
use crate::common::prom::{parse, Samples};
use crate::common::server::*;
use crate::common::*;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;

const TOKEN: &str = "ya29.bearer-policy-served-token-0123456789";
const ISS: &str = "https://issuer.test";
const AUD: &str = "wif-serve";

/// A token file, a JWKS file with a test-held ES256 key and an issuers file trusting it as
/// `test` (keeping the claims `team` and `roles`).
struct Bench {
    dir: tempfile::TempDir,
    token: PathBuf,
    key: SigningKey,
}

impl Bench {
    fn new() -> Bench {
        let (dir, token) = token_dir();
        write_token(&token, TOKEN, 3600);
        let key = jwt::signing_key_ec();
        std::fs::write(dir.path().join("jwks.json"), jwt::jwks_json(&[&key])).unwrap();
        let issuers = json!({"version": 1, "issuers": [{
            "name": "test", "issuer": ISS, "audience": AUD, "jwks_file": "jwks.json", "claims": ["team", "roles"]
        }]});
        std::fs::write(dir.path().join("issuers.json"), issuers.to_string()).unwrap();
        Bench { dir, token, key }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// wif-serve with bearer clients on, plus `extra`.
    fn serve(&self, extra: &[&str]) -> Server {
        let mut args = vec!["--bearer-issuers".to_string(), self.path("issuers.json")];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::start(&self.token, &args)
    }

    /// A token of `sub` with `extra` claims.
    fn token_for(&self, sub: &str, extra: Value) -> String {
        let mut claims = jwt::claims(ISS, AUD, sub);
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        jwt::sign(&self.key, &json!({}), &claims)
    }

    fn write_policy(&self, policy: Value) -> String {
        let p = self.path("policy.json");
        std::fs::write(&p, policy.to_string()).unwrap();
        p
    }
}

fn request(path: &str, token: Option<&str>) -> String {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}\r\n")
}

/// One request on a new connection without a client certificate.
fn bearer_get(port: u16, path: &str, token: Option<&str>) -> Resp {
    request_raw(port, None, request(path, token).as_bytes(), false).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// The answer on an open connection.
fn send(s: &mut Tls, path: &str, token: Option<&str>) -> std::io::Result<Resp> {
    s.write_all(request(path, token).as_bytes())?;
    s.flush()?;
    read_response(s, false)
}

fn bearer_conn(port: u16) -> Tls {
    connect(port, client_config(None, "ca-chain.crt", None))
}

fn requests(srv: &mut Server) -> Vec<Value> {
    srv.drain();
    srv.seen.iter().filter(|v| v["event"] == "request").cloned().collect()
}

fn scrape(srv: &Server) -> Samples {
    let addr = srv.first["metrics_address"].as_str().expect("metrics_address");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200);
    parse(&String::from_utf8(r.body).unwrap())
}

/// Status, the JSON body, and the headers but Date (which moves), of one answer.
fn shape(r: &Resp) -> (u16, Value, Vec<(String, String)>) {
    let body = serde_json::from_slice(&r.body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&r.body)));
    let mut headers: Vec<(String, String)> =
        r.headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("date")).cloned().collect();
    headers.sort();
    (r.status, body, headers)
}

#[test]
fn certificate_clients_get_the_same_answers_with_bearer_on_and_an_authorization_header_is_ignored() {
    let b = Bench::new();
    let bearer_token = b.token_for("alice", json!({}));
    let off = Server::start(&b.token, &[]);
    let on = b.serve(&[]);
    for path in ["/get_wif_token", "/healthz", "/nope"] {
        let plain = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let with_auth = request(path, Some("not-a-token"));
        let with_bearer = request(path, Some(&bearer_token));
        let want = shape(&request_raw(off.port, Some("client"), plain.as_bytes(), false).unwrap());
        for raw in [&plain, &with_auth, &with_bearer] {
            for port in [off.port, on.port] {
                let got = shape(&request_raw(port, Some("client"), raw.as_bytes(), false).unwrap());
                if path == "/healthz" {
                    // expires_in_secs may tick between the two answers.
                    assert_eq!((got.0, &got.2), (want.0, &want.2), "{path} on {port}");
                } else {
                    assert_eq!(got, want, "{path} on {port} with {raw:?}");
                }
            }
        }
    }
    let mut on = on;
    let lines = requests(&mut on);
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(l["subject"].as_str().unwrap().contains("CN=wif-client"), "{l}");
        assert!(l.get("auth").is_none() && l.get("bearer").is_none() && l.get("code").is_none(), "{l}");
    }
    on.finish_checking_secrecy(&[TOKEN, &bearer_token]);
}

#[test]
fn without_bearer_a_client_without_certificate_fails_in_the_handshake_and_with_it_gets_401() {
    let b = Bench::new();
    let mut off = Server::start(&b.token, &[]);
    assert!(request_raw(off.port, None, request("/healthz", None).as_bytes(), false).is_err());
    off.wait_for("no_certificate", |v| v["event"] == "handshake_failed" && v["code"] == "no_certificate");

    let mut on = b.serve(&[]);
    for path in ["/get_wif_token", "/healthz", "/nope"] {
        let r = bearer_get(on.port, path, None);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"wif-serve\""));
        assert_eq!(r.header("connection"), Some("close"));
        assert_eq!(r.json()["error"], "unauthorized");
    }
    let r = bearer_get(on.port, "/get_wif_token", Some("abc.def"));
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_request");
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer realm=\"wif-serve\", error=\"invalid_request\", error_description=\""), "{challenge}");
    let lines = requests(&mut on);
    assert_eq!(lines.len(), 4);
    for l in &lines[..3] {
        assert_eq!((l["status"].as_u64(), l["auth"].as_str(), l["code"].as_str()), (Some(401), Some("bearer"), Some("no_token")), "{l}");
        assert!(l.get("subject").is_none() && l.get("fingerprint").is_none() && l.get("bearer").is_none(), "{l}");
    }
    assert_eq!(lines[3]["code"], "malformed");
    assert!(on.seen.iter().all(|v| v["event"] != "handshake_failed"), "{:?}", on.seen);
}

#[test]
fn a_bearer_client_is_served_logged_and_recorded_without_its_token() {
    let b = Bench::new();
    let ledger = b.path("ledger.jsonl");
    let mut srv = b.serve(&["--ledger", &ledger, "--metrics-listen", "127.0.0.1:0"]);
    let token = b.token_for("alice", json!({"team": "data", "roles": ["reader", "deployer"], "jti": "jti-alice-1"}));
    let r = bearer_get(srv.port, "/get_wif_token", Some(&token));
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body, TOKEN.as_bytes());
    assert_eq!(bearer_get(srv.port, "/healthz", Some(&token)).status, 200);
    let _ = bearer_get(srv.port, "/healthz", None);

    let lines = requests(&mut srv);
    let line = &lines[0];
    assert_eq!(line["auth"], "bearer");
    assert_eq!(line["status"], 200);
    assert!(line.get("subject").is_none() && line.get("fingerprint").is_none() && line.get("code").is_none(), "{line}");
    let digest = &wif::core::keys::sha256_hex(token.as_bytes())[..16];
    assert_eq!(line["bearer"], json!({"issuer": "test", "sub": "alice", "jti": "jti-alice-1", "token_sha256": digest}));

    let text = std::fs::read_to_string(&ledger).unwrap();
    let entries: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(entries.len(), 1, "{text}");
    let client = &entries[0]["client"];
    assert_eq!(client["kind"], "bearer");
    assert_eq!((client["issuer"].as_str(), client["iss"].as_str(), client["sub"].as_str()), (Some("test"), Some(ISS), Some("alice")));
    assert_eq!(client["claims"], json!({"team": "data", "roles": ["reader", "deployer"]}));
    assert_eq!((client["jti"].as_str(), client["token_sha256"].as_str()), (Some("jti-alice-1"), Some(digest)));
    let exp = wif::core::clock::parse_rfc3339(client["token_expires_at"].as_str().unwrap()).unwrap();
    assert!((exp - jwt::now() - 600).abs() <= 5, "{client}");
    assert!(!text.contains(&token) && !text.contains(TOKEN));

    let m = scrape(&srv);
    assert_eq!(m.get("wif_serve_bearer_accepted_total", &[("issuer", "test")]), 2.0);
    assert_eq!(m.get("wif_serve_bearer_refused_total", &[("reason", "no_token")]), 1.0);
    for code in ["expired", "identity_changed", "unknown_kid", "jwks_unavailable", "token_in_query"] {
        assert_eq!(m.get("wif_serve_bearer_refused_total", &[("reason", code)]), 0.0, "{code}");
    }
    assert_eq!(m.get("wif_serve_jwks_keys", &[("issuer", "test")]), 1.0);
    assert!(m.get("wif_serve_jwks_fetches_total", &[("issuer", "test"), ("result", "ok")]) >= 1.0);
    assert!(m.find("wif_serve_jwks_age_seconds", &[("issuer", "test")]).is_some());
    srv.finish_checking_secrecy(&[TOKEN, &token]);

    // A certificate client's ledger line says its kind.
    let cert_ledger = b.path("cert-ledger.jsonl");
    let srv = b.serve(&["--ledger", &cert_ledger]);
    assert_eq!(get(srv.port, "client", "/get_wif_token").status, 200);
    // The ledger line is written just after the answer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(&cert_ledger).unwrap_or_default().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(srv);
    let line: Value = serde_json::from_str(std::fs::read_to_string(&cert_ledger).unwrap().trim()).unwrap();
    assert_eq!(line["client"]["kind"], "certificate");
    assert!(line["client"]["subject"].as_str().unwrap().contains("wif-client"), "{line}");
}

#[test]
fn a_connection_is_bound_to_its_first_identity() {
    let b = Bench::new();
    let mut srv = b.serve(&[]);
    let (alice, alice2, bob) =
        (b.token_for("alice", json!({})), b.token_for("alice", json!({"team": "x"})), b.token_for("bob", json!({})));
    let mut s = bearer_conn(srv.port);
    assert_eq!(send(&mut s, "/healthz", Some(&alice)).unwrap().status, 200);
    // Another token of the same identity is fine; a request without one is not.
    assert_eq!(send(&mut s, "/healthz", Some(&alice2)).unwrap().status, 200);
    let r = send(&mut s, "/healthz", Some(&bob)).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(r.header("www-authenticate").unwrap().contains("error=\"invalid_token\""));
    assert!(send(&mut s, "/healthz", Some(&alice)).is_err(), "the connection is closed after a 401");
    let lines = requests(&mut srv);
    let refused = lines.iter().find(|l| l["code"] == "identity_changed").expect("identity_changed logged");
    assert_eq!(refused["bearer"]["sub"], "bob");
    assert!(refused["reason"].as_str().unwrap().contains("alice"), "{refused}");
    srv.finish_checking_secrecy(&[&alice, &alice2, &bob]);
}

#[test]
fn the_connection_limit_counts_one_issuer_and_sub_together() {
    let b = Bench::new();
    let mut srv = b.serve(&["--max-connections-per-client", "1"]);
    let (alice, bob) = (b.token_for("system:serviceaccount:batch:report", json!({})), b.token_for("bob", json!({})));
    let mut first = bearer_conn(srv.port);
    assert_eq!(send(&mut first, "/healthz", Some(&alice)).unwrap().status, 200);
    // Another client's connection leaves alice's alone ...
    let mut other = bearer_conn(srv.port);
    assert_eq!(send(&mut other, "/healthz", Some(&bob)).unwrap().status, 200);
    assert_eq!(send(&mut first, "/healthz", Some(&alice)).unwrap().status, 200);
    // ... a second of alice's takes the place of her idle one.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut second = bearer_conn(srv.port);
    assert_eq!(send(&mut second, "/healthz", Some(&alice)).unwrap().status, 200);
    srv.wait_for("evicted", |v| v["event"] == "connection_closed" && v["code"] == "evicted");
    assert!(send(&mut first, "/healthz", Some(&alice)).is_err(), "alice's first connection was closed");
    assert_eq!(send(&mut other, "/healthz", Some(&bob)).unwrap().status, 200);
}

#[test]
fn the_allow_list_takes_bearer_forms_and_keeps_them_apart_from_certificate_forms() {
    let b = Bench::new();
    let sa = "system:serviceaccount:batch:report";
    let mut srv = b.serve(&["--allow", &format!("bearer:test:{sa}"), "--allow", "cn:wif-client"]);
    assert_eq!(bearer_get(srv.port, "/get_wif_token", Some(&b.token_for(sa, json!({})))).status, 200);
    let r = bearer_get(srv.port, "/get_wif_token", Some(&b.token_for("system:serviceaccount:batch:other", json!({}))));
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["message"], "this client is not on the server's allow-list");
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(get(srv.port, "client", "/get_wif_token").status, 200);
    assert_eq!(get(srv.port, "client2", "/get_wif_token").status, 403);
    let lines = requests(&mut srv);
    let refused = lines.iter().find(|l| l["code"] == "not_allowed").expect("not_allowed logged");
    assert_eq!(refused["bearer"]["sub"], "system:serviceaccount:batch:other");
    drop(srv);

    // Only issuer forms: every token of the issuer; no certificate client.
    let srv = b.serve(&["--allow", "bearer:test"]);
    assert_eq!(bearer_get(srv.port, "/get_wif_token", Some(&b.token_for("anyone", json!({})))).status, 200);
    assert_eq!(get(srv.port, "client", "/get_wif_token").status, 403);
    drop(srv);

    // An issuer that is not configured is a usage error at start.
    for args in [
        vec!["--bearer-issuers".to_string(), b.path("issuers.json"), "--allow".into(), "bearer:other".into()],
        vec!["--allow".into(), "bearer:test".into()],
    ] {
        let mut all = server_args(&pki_file("ca-chain.crt"), &b.token);
        all.extend(args);
        let out = bin("wif-serve").args(&all).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("bearer:"), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn policy_rules_match_bearer_clients_by_issuer_sub_and_claims() {
    let b = Bench::new();
    let policy = b.write_policy(json!({
        "version": 1,
        "rules": [
            {"name": "report", "match": {"issuer": "test", "sub": "system:serviceaccount:batch:report"}},
            {"name": "deployers", "match": {"issuer": "test", "claims": {"team": "data", "roles": "deployer"}}},
            {"name": "certs", "match": {"cn": "wif-client"}},
            {"name": "alice-cert", "match": {"cn": "alice"}},
        ]
    }));
    let mut srv = b.serve(&["--policy", &policy]);
    let rule = |r: &Resp| r.header("x-wif-rule").map(str::to_string);
    let report = bearer_get(srv.port, "/get_wif_token", Some(&b.token_for("system:serviceaccount:batch:report", json!({}))));
    assert_eq!((report.status, rule(&report).as_deref()), (200, Some("report")));
    let deployer = b.token_for("carol", json!({"team": "data", "roles": ["reader", "deployer"]}));
    let r = bearer_get(srv.port, "/get_wif_token", Some(&deployer));
    assert_eq!((r.status, rule(&r).as_deref()), (200, Some("deployers")));
    // Every claim named must match; a certificate rule never matches a bearer client.
    for token in [
        b.token_for("dave", json!({"team": "data", "roles": ["reader"]})),
        b.token_for("erin", json!({"roles": "deployer"})),
        b.token_for("wif-client", json!({})),
    ] {
        let r = bearer_get(srv.port, "/get_wif_token", Some(&token));
        assert_eq!(r.status, 403);
        assert_eq!(r.json()["message"], "no rule of the server's policy matches this client");
        assert_eq!(r.header("connection"), Some("close"));
    }
    let r = get(srv.port, "client", "/get_wif_token");
    assert_eq!((r.status, rule(&r).as_deref()), (200, Some("certs")));
    let lines = requests(&mut srv);
    assert_eq!(lines.iter().filter(|l| l["code"] == "no_policy_match").count(), 3, "{lines:?}");
    let ledger: Vec<&Value> = srv.seen.iter().filter(|v| v["event"] == "credential_issued").collect();
    assert_eq!(ledger.len(), 3);
    assert_eq!((ledger[0]["client"]["kind"].as_str(), ledger[0]["rule"].as_str()), (Some("bearer"), Some("report")));
    assert_eq!(ledger[2]["client"]["kind"], "certificate");
    drop(srv);

    // `any` serves both kinds; an issuer the server does not trust stops the start.
    let policy = b.write_policy(json!({"version": 1, "rules": [{"name": "all", "match": {"any": true}}]}));
    let srv = b.serve(&["--policy", &policy]);
    assert_eq!(bearer_get(srv.port, "/get_wif_token", Some(&b.token_for("x", json!({})))).status, 200);
    assert_eq!(get(srv.port, "client", "/get_wif_token").status, 200);
    drop(srv);
    let policy = b.write_policy(json!({"version": 1, "rules": [{"name": "r", "match": {"issuer": "nope"}}]}));
    let mut all = server_args(&pki_file("ca-chain.crt"), &b.token);
    all.extend(["--bearer-issuers".to_string(), b.path("issuers.json"), "--policy".into(), policy]);
    let out = bin("wif-serve").args(&all).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("rules[0].match.issuer[0]"), "{err}");
}
