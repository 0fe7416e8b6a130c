//! Issue 18 against wif-serve: bearer clients (no certificate, `Authorization: Bearer`) from
//! each kind of issuer accepted, every refusal of the verifier with its status, body,
//! challenge and logged code, key-choosing headers ignored, JWKS outages, the unknown-kid
//! rate limit, key rotation (emulator and file), certificate clients unaffected, and no
//! token anywhere in the server's output.

use crate::common::bearer::{github_token, jwks_path, k8s_token, rotate, Kind};
use crate::common::bearer_serve::*;
use crate::common::jwt::{self, claims, now, SigningKey};
use crate::common::server::request_raw;
use crate::common::*;
use crate::emulator::{post, Emu, TENANT};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ISS: &str = "https://issuer.test.example";
const AUD: &str = "wif-serve";
const K8S_ISS: &str = "https://kubernetes.default.svc.cluster.local";
const GH_ISS: &str = "https://token.actions.githubusercontent.com";
const GH_REQUEST_TOKEN: &str = "gh-request-token-1";

/// An issuer entry trusting `jwks_file` (relative to the issuers file).
fn file_issuer(name: &str, iss: &str, jwks_file: &str) -> Value {
    json!({"name": name, "issuer": iss, "audience": AUD, "jwks_file": jwks_file})
}

/// A folder holding `jwks.json` with `keys`.
fn dir_with_jwks(keys: &[&SigningKey]) -> tempfile::TempDir {
    let dir = tempdir();
    replace_text(dir.path(), "jwks.json", &jwt::jwks_json(keys));
    dir
}

/// `claims` signed by `key` with its own header.
fn signed(key: &SigningKey, claims: &Value) -> String {
    jwt::sign(key, &json!({}), claims)
}

/// The path of the emulator's Kubernetes JWKS, as its request log shows it.
fn k8s_jwks() -> String {
    jwks_path(Kind::Kubernetes, "prod")
}

// ---- the emulator's issuers ------------------------------------------------------------

/// The example emulator configuration: a Kubernetes issuer `prod` (account batch/report), a
/// GitHub issuer `actions` (a run of octo-org/app, environment prod, request token
/// [`GH_REQUEST_TOKEN`]), and an Azure app `wif-serve-caller` with a secret that may get
/// tokens for `api://wif-serve`.
fn emulator_config() -> Value {
    let cfg = crate::emulator::example();
    assert_eq!(cfg["kubernetes"][0]["name"], "prod", "{}", cfg["kubernetes"]);
    assert_eq!(cfg["github"][0]["runs"][0]["request_token"], GH_REQUEST_TOKEN, "{}", cfg["github"]);
    cfg
}

/// The app id of the emulator's `api://wif-serve` resource: a v2 token's `aud`.
fn wif_serve_app_id(cfg: &Value) -> String {
    let resources = cfg["azure"]["resources"].as_array().unwrap();
    let ours = resources.iter().find(|r| r["identifier_uris"].as_array().unwrap().contains(&json!("api://wif-serve")));
    ours.unwrap()["app_id"].as_str().unwrap().to_string()
}

/// An Azure AD v2 app token for `api://wif-serve`: client credentials of the example's
/// `wif-serve-caller` app with its secret.
fn azure_token(emu: &str, cfg: &Value) -> String {
    let apps = cfg["azure"]["apps"].as_array().unwrap();
    let app = apps.iter().find(|a| a["name"] == "wif-serve-caller").expect("the example's wif-serve-caller app");
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        app["client_id"].as_str().unwrap(),
        crate::common::bearer::query_escape(app["secrets"][0].as_str().unwrap()),
        crate::common::bearer::query_escape("api://wif-serve/.default"),
    );
    let (status, v) =
        post(&format!("{emu}/{TENANT}/oauth2/v2.0/token"), "application/x-www-form-urlencoded", &form, None);
    assert_eq!(status, 200, "Azure token: {v}");
    v["access_token"].as_str().unwrap().to_string()
}

/// How many times the emulator served `path`.
fn fetches(emu: &Emu, path: &str) -> usize {
    emu.requests().iter().filter(|r| r["path"] == path).count()
}

fn kid_of(token: &str) -> String {
    let (header, _) = wif::core::jwt::decode_unverified(token).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// The issuers trusting the emulator's Kubernetes issuer (and, with `all`, its GitHub and
/// Azure ones), all by `jwks_uri`.
fn emulator_issuers(emu: &Emu, cfg: &Value, all: bool) -> Value {
    let mut issuers = vec![json!({"name": "k8s-prod", "kind": "kubernetes", "issuer": K8S_ISS, "audience": AUD,
        "jwks_uri": format!("{}{}", emu.url, k8s_jwks())})];
    if all {
        issuers.push(json!({"name": "github", "kind": "github", "issuer": GH_ISS, "audience": AUD,
            "jwks_uri": format!("{}/github/actions/.well-known/jwks", emu.url)}));
        issuers.push(json!({"name": "azure", "kind": "azure",
            "issuer": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
            "audience": ["api://wif-serve", wif_serve_app_id(cfg)],
            "jwks_uri": format!("{}/{TENANT}/discovery/v2.0/keys", emu.url)}));
    }
    json!({"version": 1, "issuers": issuers})
}

/// Waits for the `jwks_loaded` line of each issuer named.
fn wait_loaded(b: &mut BearerServe, names: &[&str]) {
    for name in names {
        b.srv.wait_for("jwks_loaded", |v| v["event"] == "jwks_loaded" && v["what"] == *name);
    }
}

#[test]
fn each_issuer_kind_is_accepted() {
    let cfg = emulator_config();
    let emu = Emu::start(&cfg, &[]);
    let es = jwt::signing_key_ec();
    let dir = dir_with_jwks(&[&es]);
    let mut issuers = emulator_issuers(&emu, &cfg, true);
    let mut local = file_issuer("local-es", ISS, "jwks.json");
    local["algorithms"] = json!(["ES256"]);
    issuers["issuers"].as_array_mut().unwrap().push(local);
    let mut b = BearerServe::start(dir, &issuers, &[]);
    wait_loaded(&mut b, &["k8s-prod", "github", "azure", "local-es"]);

    let k8s = k8s_token(&emu.url, "prod", "batch", "report", &[AUD], 3600);
    let line = b.accepted("kubernetes", &k8s, "k8s-prod", "system:serviceaccount:batch:report");
    let (_, k8s_claims) = wif::core::jwt::decode_unverified(&k8s).unwrap();
    assert_eq!(line["bearer"]["jti"], k8s_claims["jti"], "{line}");

    let gh = github_token(&emu.url, "actions", GH_REQUEST_TOKEN, AUD);
    b.accepted("github", &gh, "github", "repo:octo-org/app:environment:prod");

    let az = azure_token(&emu.url, &cfg);
    let (_, az_claims) = wif::core::jwt::decode_unverified(&az).unwrap();
    assert_eq!((az_claims["ver"].as_str(), az_claims["roles"][0].as_str()), (Some("2.0"), Some("Credentials.Fetch")));
    b.accepted("azure v2", &az, "azure", az_claims["sub"].as_str().unwrap());

    let es_token = signed(&es, &claims(ISS, AUD, "es-client"));
    b.accepted("ES256 from a jwks_file", &es_token, "local-es", "es-client");

    // The same GitHub job's token for another audience is not for this server.
    let other = github_token(&emu.url, "actions", GH_REQUEST_TOKEN, "https://tokens.example.org");
    b.refused("a GitHub token for another audience", &other, "wrong_audience");
    b.keep_secret(GH_REQUEST_TOKEN);
    b.keep_secret(cfg["azure"]["apps"][1]["secrets"][0].as_str().unwrap());
    b.finish();
}

/// A server trusting one file issuer (an RSA and an EC key) and a second issuer with a key of
/// its own; tokens up to `max_token_bytes`.
fn refusal_server(max_token_bytes: usize) -> (BearerServe, SigningKey, SigningKey, SigningKey) {
    let (rsa, ec, other) = (jwt::signing_key_rsa(), jwt::signing_key_ec(), jwt::signing_key_rsa());
    let dir = dir_with_jwks(&[&rsa, &ec]);
    replace_text(dir.path(), "other.json", &jwt::jwks_json(&[&other]));
    let issuers = json!({"version": 1, "max_token_bytes": max_token_bytes, "issuers": [
        file_issuer("local", ISS, "jwks.json"),
        file_issuer("other", "https://other.test.example", "other.json")]});
    let b = BearerServe::start(dir, &issuers, &[]);
    (b, rsa, ec, other)
}

#[test]
fn every_refusal_has_its_status_body_challenge_and_logged_code() {
    let (mut b, rsa, ec, other) = refusal_server(1024);
    let good = claims(ISS, AUD, "client-1");
    let token = signed(&rsa, &good);
    b.accepted("a good RS256 token", &token, "local", "client-1");
    b.accepted("a good ES256 token", &signed(&ec, &good), "local", "client-1");
    let now = now();

    // The header itself.
    b.refused_request("no Authorization", "/get_wif_token", &[], "no_token");
    b.refused_request("no token on /healthz", "/healthz", &[], "no_token");
    b.refused_request("Basic", "/get_wif_token", &[("Authorization", "Basic dXNlcjpwYXNz")], "no_token");
    b.refused_request("empty Bearer", "/get_wif_token", &[("Authorization", "Bearer ")], "no_token");
    let auth = format!("Bearer {token}");
    let two = [("Authorization", auth.as_str()), ("Authorization", auth.as_str())];
    b.refused_request("two Authorization headers", "/get_wif_token", &two, "malformed");
    let lower = format!("bearer {token}");
    b.accepted_with("the scheme in lower case", &[("Authorization", &lower)], &token, "local", "client-1");

    // Time.
    b.refused("expired", &signed(&rsa, &with(&good, json!({"exp": now - 120, "iat": now - 600}))), "expired");
    b.accepted("expired inside the leeway", &signed(&rsa, &with(&good, json!({"exp": now - 10}))), "local", "client-1");
    b.refused("expired just outside the leeway", &signed(&rsa, &with(&good, json!({"exp": now - 45}))), "expired");
    b.refused("nbf in the future", &signed(&rsa, &with(&good, json!({"nbf": now + 120}))), "not_yet_valid");
    b.refused("iat in the future", &signed(&rsa, &with(&good, json!({"iat": now + 120}))), "not_yet_valid");
    b.accepted("nbf inside the leeway", &signed(&rsa, &with(&good, json!({"nbf": now + 10}))), "local", "client-1");
    b.refused("nbf outside the leeway", &signed(&rsa, &with(&good, json!({"nbf": now + 60}))), "not_yet_valid");
    let long = with(&good, json!({"iat": now, "exp": now + 3 * 3600}));
    b.refused("lives three hours", &signed(&rsa, &long), "lifetime_too_long");

    // Who issued it, for whom, about whom.
    b.refused("wrong iss", &signed(&rsa, &with(&good, json!({"iss": "https://evil.example"}))), "wrong_issuer");
    b.refused("no iss", &signed(&rsa, &with(&good, json!({"iss": null}))), "wrong_issuer");
    b.refused(
        "iss with a trailing slash",
        &signed(&rsa, &with(&good, json!({"iss": format!("{ISS}/")}))),
        "wrong_issuer",
    );
    let others = signed(&other, &good);
    b.refused("our iss, signed by the other issuer's key", &others, "unknown_kid");
    b.refused("wrong aud", &signed(&rsa, &with(&good, json!({"aud": "someone-else"}))), "wrong_audience");
    b.refused("no aud", &signed(&rsa, &with(&good, json!({"aud": null}))), "wrong_audience");
    let list = with(&good, json!({"aud": ["https://tokens.example.org", AUD]}));
    b.accepted("an aud list holding ours", &signed(&rsa, &list), "local", "client-1");
    b.refused("no sub", &signed(&rsa, &with(&good, json!({"sub": null}))), "missing_claim");
    b.refused("empty sub", &signed(&rsa, &with(&good, json!({"sub": ""}))), "missing_claim");
    b.refused("no exp", &signed(&rsa, &with(&good, json!({"exp": null}))), "missing_claim");
    b.refused("exp a string", &signed(&rsa, &with(&good, json!({"exp": (now + 600).to_string()}))), "missing_claim");

    // The key and the signature.
    b.refused("unknown kid", &jwt::sign(&rsa, &json!({"kid": "not-published"}), &good), "unknown_kid");
    b.refused("alg none, empty signature", &jwt::sign_none(&rsa.kid, &good), "alg_not_allowed");
    b.refused("alg none with a signature", &jwt::sign(&rsa, &json!({"alg": "none"}), &good), "alg_not_allowed");
    let pem = jwt::sign_hs256(rsa.public_pem().as_bytes(), &rsa.kid, &good);
    b.refused("HS256 keyed with the PEM", &pem, "alg_not_allowed");
    b.refused("HS256 keyed with the DER", &jwt::sign_hs256(&rsa.public_der(), &rsa.kid, &good), "alg_not_allowed");
    let ps = jwt::sign(&rsa, &json!({"alg": "PS256"}), &good);
    b.refused("an algorithm the issuer is not trusted with", &ps, "alg_not_allowed");
    let (_, line) = b.bearer(&jwt::sign(&rsa, &json!({"alg": "ES256"}), &good));
    let code = line["code"].as_str().unwrap_or_default().to_string();
    assert!(["unknown_kid", "bad_signature"].contains(&code.as_str()), "an RS256 signature claiming ES256: {line}");
    b.refused("RS256 signature, header ES256 (again)", &jwt::sign(&rsa, &json!({"alg": "ES256"}), &good), &code);

    let parts: Vec<&str> = token.split('.').collect();
    let changed = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        with(&good, json!({"sub": "admin"})).to_string(),
    );
    b.refused("payload changed, signature kept", &format!("{}.{changed}.{}", parts[0], parts[2]), "bad_signature");
    let mut sig: Vec<char> = parts[2].chars().collect();
    sig[40] = if sig[40] == 'A' { 'B' } else { 'A' };
    let tampered: String = sig.into_iter().collect();
    b.refused("signature changed", &format!("{}.{}.{tampered}", parts[0], parts[1]), "bad_signature");

    // Shapes.
    let padded = with(&good, json!({"padding": "x".repeat(1200)}));
    b.refused("oversized", &signed(&rsa, &padded), "oversized");
    b.refused("two segments", &format!("{}.{}", parts[0], parts[1]), "malformed");
    b.refused("a JWE (five segments)", &format!("{}.{}.{}.{}.{}", parts[0], "", "aXY", parts[1], "dGFn"), "malformed");
    b.refused("not base64url", &format!("{}.{}.{}!", parts[0], parts[1], parts[2]), "malformed");
    b.refused("crit", &jwt::sign(&rsa, &json!({"crit": ["exp"], "exp": 1}), &good), "malformed");

    // The query string: refused even beside a good Authorization header.
    let fresh = signed(&rsa, &good);
    let auth = format!("Bearer {fresh}");
    for (what, query, headers) in [
        ("access_token in the query", "access_token", &[("Authorization", auth.as_str())][..]),
        ("Access_Token in the query", "Access_Token", &[][..]),
        ("a JWT-shaped query value", "x", &[("Authorization", auth.as_str())][..]),
    ] {
        b.refused_request(what, &format!("/get_wif_token?{query}={fresh}"), headers, "token_in_query");
    }
    b.keep_secret(&fresh);
    b.finish();
}

#[test]
fn headers_naming_a_key_never_choose_it() {
    let (mut b, rsa, _ec, _other) = refusal_server(4096);
    let attacker = jwt::signing_key_rsa();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let jku = format!("http://127.0.0.1:{}/jwks.json", listener.local_addr().unwrap().port());
    let good = claims(ISS, AUD, "admin");

    let embedded = json!({"jwk": attacker.jwk()});
    b.refused("an embedded jwk of the attacker's key", &jwt::sign(&attacker, &embedded, &good), "unknown_kid");
    let as_ours = json!({"jwk": attacker.jwk(), "kid": rsa.kid});
    b.refused("an embedded jwk under our kid", &jwt::sign(&attacker, &as_ours, &good), "bad_signature");
    b.refused("a jku to the attacker", &jwt::sign(&attacker, &json!({"jku": jku}), &good), "unknown_kid");
    let jku_ours = json!({"jku": jku, "kid": rsa.kid});
    b.refused("a jku under our kid", &jwt::sign(&attacker, &jku_ours, &good), "bad_signature");
    let x5u = json!({"x5u": jku, "kid": null});
    b.refused("an x5u and no kid (our one RSA key is tried)", &jwt::sign(&attacker, &x5u, &good), "bad_signature");
    std::thread::sleep(Duration::from_millis(500));
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("wif-serve connected to the attacker's URL: {other:?}"),
    }
    b.finish();
}

#[test]
fn a_jwks_uri_down_at_start_is_503_then_recovers() {
    let key = jwt::signing_key_rsa();
    let port = free_port();
    let issuers = json!({"version": 1, "issuers": [{"name": "late", "issuer": ISS, "audience": AUD,
        "jwks_uri": format!("http://127.0.0.1:{port}/jwks")}]});
    let started = Instant::now();
    let mut b = BearerServe::start(tempdir(), &issuers, &[]);
    let failed = b.srv.wait_for("jwks_failed", |v| v["event"] == "jwks_failed" && v["what"] == "late");
    assert!(failed["reason"].as_str().is_some_and(|r| !r.is_empty()), "{failed}");
    let token = signed(&key, &claims(ISS, AUD, "late-client"));
    b.refused("the issuer's keys never loaded", &token, "jwks_unavailable");

    let jwks_server = FixedJwks::start(port, &jwt::jwks_json(&[&key]));
    // The next try is at most 10 s after the failed one (plus the 1 s watch loop's tick).
    let loaded = |v: &Value| v["event"] == "jwks_loaded" && v["what"] == "late";
    while !b.srv.drain().iter().any(loaded) {
        assert!(started.elapsed() < Duration::from_secs(14), "not loaded {:?} after the start", started.elapsed());
    }
    b.accepted("after the issuer came up", &token, "late", "late-client");
    assert_eq!(jwks_server.hits.load(std::sync::atomic::Ordering::SeqCst), 1, "one successful fetch");
    b.finish();
}

/// wif-emulate, and wif-serve trusting its Kubernetes issuer by `jwks_uri`, keys loaded with
/// the one fetch at start.
fn emulator_and_k8s_issuer() -> (Emu, BearerServe) {
    let cfg = emulator_config();
    let emu = Emu::start(&cfg, &[]);
    let mut b = BearerServe::start(tempdir(), &emulator_issuers(&emu, &cfg, false), &[]);
    wait_loaded(&mut b, &["k8s-prod"]);
    assert_eq!(fetches(&emu, &k8s_jwks()), 1, "one fetch at start");
    (emu, b)
}

#[test]
fn an_unknown_kid_flood_costs_at_most_one_jwks_fetch() {
    let (emu, mut b) = emulator_and_k8s_issuer();
    let before = fetches(&emu, &k8s_jwks());

    let attacker = jwt::signing_key_rsa();
    let base = claims(K8S_ISS, AUD, "system:serviceaccount:batch:report");
    let tokens: Vec<String> =
        (0..200).map(|i| jwt::sign(&attacker, &json!({"kid": format!("made-up-{i}-{}", rand_hex())}), &base)).collect();
    let port = b.srv.port;
    let started = Instant::now();
    let statuses: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = tokens
            .chunks(25)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|t| {
                            let raw =
                                format!("GET /get_wif_token HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\r\n");
                            let r = request_raw(port, None, raw.as_bytes(), false).expect("an answer");
                            (r.status, r.json())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(started.elapsed() < Duration::from_secs(30), "the flood took {:?}", started.elapsed());
    assert_eq!(statuses.len(), 200);
    for (status, body) in &statuses {
        assert_eq!(*status, 401, "{body}");
    }
    let lines = b.srv.wait_count("200 refusals", 200, |v| v["event"] == "request" && v["code"] == "unknown_kid");
    assert_eq!(lines.len(), 200);
    let after = fetches(&emu, &k8s_jwks());
    assert!(after - before <= 1, "{} JWKS fetches for a flood of unknown kids", after - before);
    for t in &tokens {
        b.keep_secret(t);
    }
    b.finish();
}

fn rand_hex() -> String {
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_rotated_kubernetes_key_is_used_on_its_first_token() {
    let (emu, mut b) = emulator_and_k8s_issuer();
    let sub = "system:serviceaccount:batch:report";
    let old = k8s_token(&emu.url, "prod", "batch", "report", &[AUD], 3600);
    b.accepted("before rotation", &old, "k8s-prod", sub);
    assert_eq!(fetches(&emu, &k8s_jwks()), 1);

    let new_kid = rotate(&emu.url, "kubernetes", "prod", false);
    let new = k8s_token(&emu.url, "prod", "batch", "report", &[AUD], 3600);
    assert_eq!(kid_of(&new), new_kid);
    assert_ne!(kid_of(&new), kid_of(&old));
    b.accepted("the first token of the new key", &new, "k8s-prod", sub);
    assert_eq!(fetches(&emu, &k8s_jwks()), 2, "one refetch for the new kid");
    b.accepted("the old key is still published", &old, "k8s-prod", sub);
    b.accepted("the new key again, no fetch", &new, "k8s-prod", sub);
    assert_eq!(fetches(&emu, &k8s_jwks()), 2);

    // Within the minute, another new kid is not fetched for: refused at once.
    let newest_kid = rotate(&emu.url, "kubernetes", "prod", true);
    let newest = k8s_token(&emu.url, "prod", "batch", "report", &[AUD], 3600);
    assert_eq!(kid_of(&newest), newest_kid);
    b.refused("a second rotation within the minute", &newest, "unknown_kid");
    assert_eq!(fetches(&emu, &k8s_jwks()), 2, "no second refetch within a minute");
    b.accepted("the keys held stay until a refetch succeeds", &old, "k8s-prod", sub);
    b.finish();
}

#[test]
fn a_replaced_jwks_file_is_picked_up_within_two_seconds() {
    let (first, second) = (jwt::signing_key_ec(), jwt::signing_key_ec());
    let dir = dir_with_jwks(&[&first]);
    let mut local = file_issuer("local", ISS, "jwks.json");
    local["algorithms"] = json!(["ES256"]);
    let mut b = BearerServe::start(dir, &json!({"version": 1, "issuers": [local]}), &[]);
    let c = claims(ISS, AUD, "file-client");
    b.accepted("the first key", &signed(&first, &c), "local", "file-client");
    b.refused("a key not yet in the file", &signed(&second, &c), "unknown_kid");

    let loads = |b: &mut BearerServe| b.srv.drain().iter().filter(|v| v["event"] == "jwks_loaded").count();
    let before = loads(&mut b);
    replace_text(b.dir.path(), "jwks.json", &jwt::jwks_json(&[&second]));
    let replaced = Instant::now();
    while loads(&mut b) == before {
        assert!(replaced.elapsed() < Duration::from_secs(5), "the new file was not loaded");
    }
    assert!(
        replaced.elapsed() < Duration::from_millis(3000),
        "loaded after {:?} (the files are looked at every second)",
        replaced.elapsed()
    );
    b.accepted("the new key", &signed(&second, &c), "local", "file-client");
    b.refused("the key no longer in the file", &signed(&first, &c), "unknown_kid");

    let oct = json!({"keys": [{"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}]});
    replace_text(b.dir.path(), "jwks.json", &oct.to_string());
    b.srv.wait_for("jwks_failed", |v| v["event"] == "jwks_failed" && v["what"] == "local");
    b.accepted("a bad new file keeps the keys", &signed(&second, &c), "local", "file-client");
    b.finish();
}

#[test]
fn a_certificate_with_a_bearer_header_is_a_certificate_request() {
    let (mut b, rsa, _ec, _other) = refusal_server(4096);
    let bad = signed(&rsa, &with(&claims(ISS, AUD, "x"), json!({"exp": now() - 3600, "iat": now() - 4000})));
    let good = signed(&rsa, &claims(ISS, AUD, "bearer-client"));
    for (what, token) in [("an expired token", bad.as_str()), ("a good token", good.as_str()), ("junk", "junk")] {
        let raw = format!("GET /get_wif_token HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n");
        let r = request_raw(b.srv.port, Some("client"), raw.as_bytes(), false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, SERVED.as_bytes()), "certificate + {what}");
        let line = b.request_line();
        assert!(line["subject"].as_str().unwrap().contains("CN=wif-client"), "{line}");
        assert!(line["fingerprint"].is_string(), "{line}");
        assert_ne!(line["auth"], "bearer", "{line}");
        assert!(line.get("bearer").map_or(true, Value::is_null), "{line}");
        b.keep_secret(token);
    }
    b.finish();
}
