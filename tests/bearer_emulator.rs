//! wif-emulate's bearer issuers (spec §7): Kubernetes TokenRequest and GitHub Actions
//! id-tokens verified against the JWKS the emulator publishes, their claims and headers,
//! refusals in the real APIs' shapes, configured RSA / EC signing keys, key rotation, faults,
//! the request log, and Azure AD tokens for wif-serve.

use crate::common::bearer::{self, Kind};
use crate::common::server::now;
use crate::common::*;
use crate::emulator::{example, Emu, TENANT};
use serde_json::{json, Value};

const K8S_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const GH_ISSUER: &str = "https://token.actions.githubusercontent.com";
const GH_TOKEN: &str = "gh-request-token-1";

/// Verifies `token` with the key its `kid` names in `jwks`, for `aud` (exactly the
/// header's algorithm); returns the claims.
fn verify(jwks: &Value, token: &str, aud: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).expect("a JWT header");
    let kid = header.kid.clone().expect("a kid in the header");
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).expect("the kid is published");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["alg"].as_str(), Some(format!("{:?}", header.alg).as_str()));
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[aud]);
    jsonwebtoken::decode::<Value>(token, &key, &v).expect("the token verifies with the published JWKS").claims
}

#[test]
fn kubernetes_tokens_have_the_api_servers_shape_and_verify() {
    let emu = Emu::start(&example(), &[]);
    let body = bearer::token_request_body(&["wif-serve", "other"], 1800);
    let (status, tr) = bearer::k8s_token_request(&emu.url, "prod", "batch", "report", &body);
    assert_eq!(status, 201, "{tr}");
    assert_eq!(
        (tr["kind"].as_str(), tr["apiVersion"].as_str()),
        (Some("TokenRequest"), Some("authentication.k8s.io/v1"))
    );
    assert_eq!(tr["metadata"]["namespace"], "batch");
    assert_eq!(tr["spec"]["audiences"], json!(["wif-serve", "other"]));
    assert_eq!(tr["spec"]["expirationSeconds"], 1800);
    let token = tr["status"]["token"].as_str().unwrap();
    let (header, _) = bearer::decode_unverified(token);
    assert_eq!(header.as_object().unwrap().keys().collect::<Vec<_>>(), ["alg", "kid"], "{header}");
    assert_eq!(header["alg"], "RS256");
    let jwks = bearer::jwks(&emu.url, Kind::Kubernetes, "prod");
    let c = verify(&jwks, token, "wif-serve");
    assert_eq!(c["iss"], K8S_ISSUER);
    assert_eq!(c["sub"], "system:serviceaccount:batch:report");
    assert_eq!(c["aud"], json!(["wif-serve", "other"]));
    assert_eq!(c["kubernetes.io"]["namespace"], "batch");
    assert_eq!(c["kubernetes.io"]["serviceaccount"]["name"], "report");
    assert_eq!(c["kubernetes.io"]["serviceaccount"]["uid"].as_str().unwrap().len(), 36);
    let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert_eq!((exp - iat, c["nbf"].as_i64()), (1800, Some(iat)));
    assert!((iat - now()).abs() < 60);
    assert_eq!(tr["status"]["expirationTimestamp"].as_str(), Some(wif::core::clock::rfc3339(exp).as_str()));
    assert_eq!(c["jti"].as_str().unwrap().len(), 36);

    // Defaults: an hour, and the API server's own audience (the issuer).
    let (status, tr) = bearer::k8s_token_request(&emu.url, "prod", "batch", "report", &json!({"spec": {}}));
    assert_eq!(status, 201, "{tr}");
    let c = verify(&jwks, tr["status"]["token"].as_str().unwrap(), K8S_ISSUER);
    assert_eq!((c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), &c["aud"]), (3600, &json!([K8S_ISSUER])));

    // Discovery names the JWKS the helper reads.
    let mut resp = ureq::get(&bearer::discovery_url(&emu.url, Kind::Kubernetes, "prod")).call().unwrap();
    let d: Value = serde_json::from_reader(resp.body_mut().as_reader()).unwrap();
    assert_eq!(d["issuer"], K8S_ISSUER);
    assert_eq!(d["jwks_uri"].as_str(), Some(bearer::jwks_url(&emu.url, Kind::Kubernetes, "prod").as_str()));
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert_eq!(d["subject_types_supported"], json!(["public"]));
    assert_eq!(d["response_types_supported"], json!(["id_token"]));
}

/// Asserts a Kubernetes `Status` failure with `code` and `reason`.
fn k8s_refused(answer: (u16, Value), code: u16, reason: &str) -> Value {
    let (status, v) = answer;
    assert_eq!(status, code, "{v}");
    assert_eq!(
        (v["kind"].as_str(), v["apiVersion"].as_str(), v["status"].as_str()),
        (Some("Status"), Some("v1"), Some("Failure")),
        "{v}"
    );
    assert_eq!((v["reason"].as_str(), v["code"].as_u64()), (Some(reason), Some(code as u64)), "{v}");
    v
}

#[test]
fn token_requests_are_refused_as_the_api_server_refuses_them() {
    let emu = Emu::start(&example(), &[]);
    let req = |ns: &str, sa: &str, body: Value| bearer::k8s_token_request(&emu.url, "prod", ns, sa, &body);
    let ok = bearer::token_request_body(&["wif-serve"], 3600);
    // Below ten minutes: the API server's validation error (422 Invalid, with its cause).
    let v = k8s_refused(req("batch", "report", bearer::token_request_body(&["wif-serve"], 599)), 422, "Invalid");
    assert_eq!(v["details"]["causes"][0]["field"], "spec.expirationSeconds");
    assert!(v["message"].as_str().unwrap().contains("may not specify a duration less than 10 minutes"), "{v}");
    assert_eq!(
        req("batch", "report", bearer::token_request_body(&["wif-serve"], 600)).0,
        201,
        "ten minutes is allowed"
    );
    let v = k8s_refused(req("batch", "nobody", ok.clone()), 404, "NotFound");
    assert_eq!(v["message"], "serviceaccounts \"nobody\" not found");
    assert_eq!(v["details"], json!({"name": "nobody", "kind": "serviceaccounts"}));
    k8s_refused(req("other", "report", ok.clone()), 404, "NotFound");
    k8s_refused(req("batch", "report", json!({"kind": "Pod", "spec": {}})), 400, "BadRequest");
    k8s_refused(req("batch", "report", json!({"apiVersion": "v1", "spec": {}})), 400, "BadRequest");
    k8s_refused(req("batch", "report", json!({"spec": {"expirationSeconds": "soon"}})), 400, "BadRequest");
    let bound = json!({"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web-0"}}});
    assert_eq!(k8s_refused(req("batch", "report", bound), 404, "NotFound")["message"], "pods \"web-0\" not found");
    // An issuer that is not configured: the API server's answer to an unknown path.
    let (status, v) = bearer::k8s_token_request(&emu.url, "staging", "batch", "report", &ok);
    k8s_refused((status, v), 404, "NotFound");
    // Not JSON.
    let url = format!("{}/k8s/prod/api/v1/namespaces/batch/serviceaccounts/report/token", emu.url);
    let (status, v) = crate::emulator::post(&url, "text/plain", "{}", None);
    k8s_refused((status, v), 415, "UnsupportedMediaType");
}

#[test]
fn github_tokens_carry_the_runs_claims_and_verify() {
    let emu = Emu::start(&example(), &[]);
    let (status, v) = bearer::github_request(&emu.url, "actions", Some(GH_TOKEN), Some("https://tokens.example.org"));
    assert_eq!(status, 200, "{v}");
    let token = v["value"].as_str().unwrap();
    assert_eq!(
        v["count"].as_u64(),
        Some(token.len() as u64),
        "count is the value's length, as GitHub's service writes it"
    );
    let (header, _) = bearer::decode_unverified(token);
    assert_eq!((header["typ"].as_str(), header["alg"].as_str()), (Some("JWT"), Some("RS256")));
    let jwks = bearer::jwks(&emu.url, Kind::Github, "actions");
    let c = verify(&jwks, token, "https://tokens.example.org");
    assert_eq!(c["iss"], GH_ISSUER);
    assert_eq!(c["aud"], "https://tokens.example.org");
    assert_eq!(c["sub"], "repo:octo-org/app:environment:prod");
    let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert_eq!((exp - iat, c["nbf"].as_i64()), (300, Some(iat)));
    for (claim, value) in [
        ("repository", "octo-org/app"),
        ("repository_owner", "octo-org"),
        ("ref", "refs/heads/main"),
        ("ref_type", "branch"),
        ("environment", "prod"),
        ("workflow", "deploy"),
        ("job_workflow_ref", "octo-org/app/.github/workflows/deploy.yml@refs/heads/main"),
        ("actor", "octocat"),
        ("event_name", "push"),
        ("run_attempt", "1"),
        ("runner_environment", "github-hosted"),
    ] {
        assert_eq!(c[claim].as_str(), Some(value), "{claim} in {c}");
    }
    for claim in ["jti", "sha", "repository_id", "run_id"] {
        assert!(c[claim].as_str().is_some_and(|s| !s.is_empty()), "{claim} in {c}");
    }
    assert_eq!(c["sha"].as_str().unwrap().len(), 40);
    assert!(c["repository_id"].as_str().unwrap().chars().all(|ch| ch.is_ascii_digit()));

    // No audience: GitHub's default, the owner's URL.
    let (_, v) = bearer::github_request(&emu.url, "actions", Some(GH_TOKEN), None);
    let c = verify(&jwks, v["value"].as_str().unwrap(), "https://github.com/octo-org");
    assert_eq!(c["aud"], "https://github.com/octo-org");

    // The helper's path: a token for one audience.
    let t = bearer::github_token(&emu.url, "actions", GH_TOKEN, "wif-serve");
    assert_eq!(verify(&jwks, &t, "wif-serve")["sub"], "repo:octo-org/app:environment:prod");

    let mut resp = ureq::get(&bearer::discovery_url(&emu.url, Kind::Github, "actions")).call().unwrap();
    let d: Value = serde_json::from_reader(resp.body_mut().as_reader()).unwrap();
    assert_eq!(d["issuer"], GH_ISSUER);
    assert_eq!(d["jwks_uri"].as_str(), Some(bearer::jwks_url(&emu.url, Kind::Github, "actions").as_str()));
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
}

#[test]
fn github_refuses_a_missing_or_wrong_request_token_and_names_refs_without_environment() {
    let mut config = example();
    config["github"][0]["runs"].as_array_mut().unwrap().push(json!({
        "request_token": "tag-run", "repository": "octo-org/lib", "ref": "refs/tags/v1.2.0",
        "workflow": "release", "actor": "hubot", "event_name": "push", "run_id": "4242",
    }));
    let emu = Emu::start(&config, &[]);
    for token in [None, Some("gh-request-token-2"), Some("")] {
        let (status, v) = bearer::github_request(&emu.url, "actions", token, Some("wif-serve"));
        assert_eq!(status, 401, "{token:?}: {v}");
        assert!(v["message"].as_str().is_some(), "{v}");
    }
    // Basic is not Bearer, even with the right token.
    let url = format!("{}/github/actions/idtoken?api-version=2.0", emu.url);
    let resp = ureq::get(&url)
        .config()
        .http_status_as_error(false)
        .build()
        .header("Authorization", &format!("Basic {GH_TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers().get("www-authenticate").and_then(|h| h.to_str().ok()), Some("Bearer"));
    let t = bearer::github_token(&emu.url, "actions", "tag-run", "wif-serve");
    let c = verify(&bearer::jwks(&emu.url, Kind::Github, "actions"), &t, "wif-serve");
    assert_eq!(c["sub"], "repo:octo-org/lib:ref:refs/tags/v1.2.0");
    assert_eq!((c["ref_type"].as_str(), c["run_id"].as_str()), (Some("tag"), Some("4242")));
    assert!(c.get("environment").is_none(), "{c}");
    // An issuer that is not configured.
    assert_eq!(bearer::github_request(&emu.url, "other", Some(GH_TOKEN), None).0, 404);
    // Nothing secret in the log: neither the request token nor the tokens.
    let log = emu.raw_log();
    assert!(!log.contains(GH_TOKEN) && !log.contains("tag-run") && !log.contains(&t), "{log}");
}

#[test]
fn configured_signing_keys_sign_rs256_and_es256() {
    let mut config = example();
    config["kubernetes"][0]["signing_key"] = json!("pki/app-ec-sec1.key");
    config["github"][0]["signing_key"] = json!("pki/app-rsa-pkcs1.key");
    let emu = Emu::start(&config, &[]);
    let token = bearer::k8s_token(&emu.url, "prod", "batch", "report", &["wif-serve"], 3600);
    let (header, _) = bearer::decode_unverified(&token);
    assert_eq!(header["alg"], "ES256");
    let jwks = bearer::jwks(&emu.url, Kind::Kubernetes, "prod");
    let jwk = &jwks["keys"][0];
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );
    assert_eq!(verify(&jwks, &token, "wif-serve")["sub"], "system:serviceaccount:batch:report");
    // The same configured key across restarts: the same kid.
    let again = Emu::start(&config, &[]);
    assert_eq!(bearer::jwks(&again.url, Kind::Kubernetes, "prod")["keys"][0]["kid"], jwk["kid"]);
    // A rotation keeps the algorithm.
    let kid = bearer::rotate(&emu.url, "kubernetes", "prod", false);
    let token = bearer::k8s_token(&emu.url, "prod", "batch", "report", &["wif-serve"], 3600);
    let (header, _) = bearer::decode_unverified(&token);
    assert_eq!((header["alg"].as_str(), header["kid"].as_str()), (Some("ES256"), Some(kid.as_str())));
    verify(&bearer::jwks(&emu.url, Kind::Kubernetes, "prod"), &token, "wif-serve");
    let gh = bearer::github_token(&emu.url, "actions", GH_TOKEN, "wif-serve");
    assert_eq!(bearer::decode_unverified(&gh).0["alg"], "RS256");
    verify(&bearer::jwks(&emu.url, Kind::Github, "actions"), &gh, "wif-serve");
}

/// Starts wif-emulate with `config` expecting it to refuse; its stderr.
fn start_refused(config: &Value) -> String {
    let dir = tempdir();
    std::os::unix::fs::symlink(pki(), dir.path().join("pki")).unwrap();
    let path = dir.path().join("emulator.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = bin("wif-emulate").arg("--config").arg(&path).output().unwrap();
    assert!(!out.status.success(), "wif-emulate started with a flawed config");
    stderr(&out)
}

#[test]
fn config_flaws_are_named_by_json_path() {
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = example();
        f(&mut c);
        start_refused(&c)
    };
    let err = with(&|c| c["kubernetes"][0]["signing_key"] = json!("pki/client-p384.key"));
    assert!(err.contains("kubernetes[0].signing_key") && err.contains("P-384"), "{err}");
    let err = with(&|c| c["github"][0]["signing_key"] = json!("pki/no-such.key"));
    assert!(err.contains("github[0].signing_key"), "{err}");
    let err = with(&|c| c["kubernetes"][0]["service_accounts"][0]["namespace"] = json!("Batch"));
    assert!(err.contains("kubernetes[0].service_accounts[0].namespace"), "{err}");
    let err = with(&|c| c["github"][0]["runs"][0]["repository"] = json!("app"));
    assert!(err.contains("github[0].runs[0].repository"), "{err}");
    let err = with(&|c| c["github"][0]["runs"][0]["colour"] = json!("red"));
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn rotation_publishes_the_new_key_first_and_retire_drops_the_old() {
    let emu = Emu::start(&example(), &[]);
    let old_token = bearer::k8s_token(&emu.url, "prod", "batch", "report", &["wif-serve"], 3600);
    let old_kid = bearer::decode_unverified(&old_token).0["kid"].as_str().unwrap().to_string();
    let (status, v) = bearer::rotate_request(&emu.url, "kubernetes", "prod", false);
    assert_eq!(status, 200, "{v}");
    let new_kid = v["kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, old_kid);
    assert_eq!(v["kids"], json!([new_kid, old_kid]));
    let jwks = bearer::jwks(&emu.url, Kind::Kubernetes, "prod");
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);
    // Tokens from now on carry the new kid; the old token still verifies (its key is kept).
    let new_token = bearer::k8s_token(&emu.url, "prod", "batch", "report", &["wif-serve"], 3600);
    assert_eq!(bearer::decode_unverified(&new_token).0["kid"], new_kid.as_str());
    verify(&jwks, &new_token, "wif-serve");
    verify(&jwks, &old_token, "wif-serve");
    // The GitHub issuer's keys are its own: untouched.
    let gh_kids = bearer::jwks(&emu.url, Kind::Github, "actions")["keys"].as_array().unwrap().len();
    assert_eq!(gh_kids, 1);
    let retired = bearer::rotate(&emu.url, "kubernetes", "prod", true);
    let jwks = bearer::jwks(&emu.url, Kind::Kubernetes, "prod");
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], retired.as_str());
    let gh_kid = bearer::rotate(&emu.url, "github", "actions", false);
    let gh = bearer::github_token(&emu.url, "actions", GH_TOKEN, "wif-serve");
    assert_eq!(bearer::decode_unverified(&gh).0["kid"], gh_kid.as_str());
    // Unknown issuers and kinds, and the wrong method.
    assert_eq!(bearer::rotate_request(&emu.url, "kubernetes", "staging", false).0, 404);
    assert_eq!(bearer::rotate_request(&emu.url, "azure", "prod", false).0, 404);
    let resp = ureq::get(&format!("{}/_emulator/rotate/kubernetes/prod", emu.url))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
}

#[test]
fn faults_hit_the_kubernetes_and_github_issuers() {
    let emu = Emu::start(&example(), &["--fault", "kubernetes=unavailable:1", "--fault", "github=refused"]);
    let body = bearer::token_request_body(&["wif-serve"], 3600);
    let url = format!("{}/k8s/prod/api/v1/namespaces/batch/serviceaccounts/report/token", emu.url);
    let resp = ureq::post(&url)
        .config()
        .http_status_as_error(false)
        .build()
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers().get("retry-after").and_then(|h| h.to_str().ok()), Some("1"));
    let mut resp = resp;
    let v: Value = serde_json::from_reader(resp.body_mut().as_reader()).unwrap();
    assert_eq!((v["kind"].as_str(), v["reason"].as_str()), (Some("Status"), Some("ServiceUnavailable")));
    // Only the first request: then the API answers.
    bearer::k8s_token(&emu.url, "prod", "batch", "report", &["wif-serve"], 3600);
    for _ in 0..2 {
        assert_eq!(bearer::github_request(&emu.url, "actions", Some(GH_TOKEN), None).0, 401);
    }
    let logged: Vec<Value> =
        emu.requests().into_iter().filter(|r| r["path"].as_str().unwrap().starts_with("/github/")).collect();
    assert!(logged.iter().all(|r| r["outcome"] == "injected_github_refused"), "{logged:?}");
    // Other services are not affected.
    assert_eq!(caller_token(&emu.url, "api://wif-serve/.default").0, 200);
}

#[test]
fn each_jwks_fetch_is_one_request_line_with_its_path() {
    let emu = Emu::start(&example(), &[]);
    for _ in 0..3 {
        bearer::jwks(&emu.url, Kind::Kubernetes, "prod");
    }
    bearer::jwks(&emu.url, Kind::Github, "actions");
    let count = |path: &str| emu.requests().iter().filter(|r| r["method"] == "GET" && r["path"] == path).count();
    assert_eq!(count(&bearer::jwks_path(Kind::Kubernetes, "prod")), 3);
    assert_eq!(count(&bearer::jwks_path(Kind::Github, "actions")), 1);
}

/// The example's wif-serve caller app: client credentials with its test secret.
const CALLER: &str = "3f2e1d0c-9b8a-4c7d-8e6f-5a4b3c2d1e0f";
const CALLER_OBJECT: &str = "8c7b6a59-4837-4261-9f5e-4d3c2b1a0f9e";
const WIF_SERVE_APP: &str = "a4b5c6d7-e8f9-4a0b-9c1d-2e3f4a5b6c7d";

/// The caller app's client-credentials request at the v2 endpoint (`scope`, ending in
/// `/.default`) or the v1 endpoint (`resource`): status and answer.
fn caller_token(emu_url: &str, scope_or_resource: &str) -> (u16, Value) {
    let (path, key) = if scope_or_resource.ends_with("/.default") {
        ("oauth2/v2.0/token", "scope")
    } else {
        ("oauth2/token", "resource")
    };
    let form = format!(
        "grant_type=client_credentials&client_id={CALLER}&client_secret=wif-serve-caller-test-secret&{key}={}",
        bearer::query_escape(scope_or_resource)
    );
    crate::emulator::post(&format!("{emu_url}/{TENANT}/{path}"), "application/x-www-form-urlencoded", &form, None)
}

#[test]
fn azure_tokens_for_wif_serve_are_shaped_as_azure_writes_them() {
    let emu = Emu::start(&example(), &[]);
    let (status, v) = caller_token(&emu.url, "api://wif-serve/.default");
    assert_eq!(status, 200, "{v}");
    let token = v["access_token"].as_str().unwrap();
    let mut resp = ureq::get(&format!("{}/{TENANT}/discovery/v2.0/keys", emu.url)).call().unwrap();
    let jwks: Value = serde_json::from_reader(resp.body_mut().as_reader()).unwrap();
    let c = verify(&jwks, token, WIF_SERVE_APP);
    assert_eq!(c["iss"].as_str(), Some(format!("https://login.microsoftonline.com/{TENANT}/v2.0").as_str()));
    assert_eq!((c["sub"].as_str(), c["oid"].as_str()), (Some(CALLER_OBJECT), Some(CALLER_OBJECT)));
    assert_eq!((c["tid"].as_str(), c["azp"].as_str(), c["ver"].as_str()), (Some(TENANT), Some(CALLER), Some("2.0")));
    assert_eq!(c["azpacr"], "1");
    assert_eq!(c["roles"], json!(["Credentials.Fetch"]));
    assert!(c.get("appid").is_none(), "{c}");
    // The v1 endpoint for a resource that accepts v2 tokens still gets a v2 token.
    let (status, v) = caller_token(&emu.url, "api://wif-serve");
    assert_eq!(status, 200, "{v}");
    let c = verify(&jwks, v["access_token"].as_str().unwrap(), WIF_SERVE_APP);
    assert_eq!((c["ver"].as_str(), c["azp"].as_str()), (Some("2.0"), Some(CALLER)));
}
