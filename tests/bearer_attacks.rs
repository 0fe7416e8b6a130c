//! Issue 18 under attack: what a second, hostile look at the bearer fallback found, one
//! test per finding (each failed before its fix), and the attacks that held, kept so they
//! keep holding. Real wif-serve processes, real TLS on loopback, tokens signed by
//! test-held keys.

use crate::common::bearer_serve::*;
use crate::common::jwt::{self, claims, SigningKey};
use crate::common::*;
use serde_json::{json, Value};

const ISS: &str = "https://issuer.attack.example";
const AUD: &str = "wif-serve";

/// A server trusting one issuer `local` whose `jwks.json` holds `key`; the issuer entry
/// takes `extra` members (e.g. `claims`), the server `flags`.
fn server(key: &SigningKey, extra: Value, flags: &[&str]) -> BearerServe {
    let dir = tempdir();
    replace_text(dir.path(), "jwks.json", &jwt::jwks_json(&[key]));
    let mut issuer = json!({"name": "local", "issuer": ISS, "audience": AUD, "jwks_file": "jwks.json"});
    for (k, v) in extra.as_object().unwrap() {
        issuer[k] = v.clone();
    }
    BearerServe::start(dir, &json!({"version": 1, "issuers": [issuer]}), flags)
}

/// An `Authorization` value sent without a scheme is the credential itself (a GitHub
/// token, an API key): it was logged, cut at 40 characters, as "the scheme". Now the log
/// says only its length; a real scheme (`Basic …`) is still named.
#[test]
fn an_authorization_value_without_a_scheme_never_reaches_the_log() {
    let key = jwt::signing_key_rsa();
    let mut b = server(&key, json!({}), &[]);
    let pat = "ghp_R2d2C3poX1wingLuke0Skywalker7Leia9Or";
    assert_eq!(pat.len(), 40);
    for (what, value) in [
        ("a bare token", pat.to_string()),
        ("a token glued to a comma", format!("Basic,{pat}")),
        ("a token before a space", format!("{pat} trailing")),
    ] {
        let line = b.refused_request(what, "/get_wif_token", &[("Authorization", &value)], "no_token");
        let reason = line["reason"].as_str().unwrap_or_default();
        assert!(!reason.contains("ghp_") && !reason.contains("Skywalker"), "{what}: {line}");
        assert!(reason.contains(&format!("({} bytes)", value.split(' ').next().unwrap().len())), "{what}: {line}");
    }
    let line = b.refused_request("Basic", "/get_wif_token", &[("Authorization", "Basic dXNlcjpwYXNz")], "no_token");
    assert!(line["reason"].as_str().unwrap_or_default().contains("scheme Basic is not Bearer"), "{line}");
    b.keep_secret(pat);
    b.keep_secret("dXNlcjpwYXNz");
    b.finish();
}

/// Starts wif-serve with `--bearer-issuers` (issuer `local` of `key`, keeping `claims`) and
/// `--policy` holding `rules`; its exit and stderr (it is expected not to start).
fn failed_start(key: &SigningKey, claims: &[&str], rules: Value) -> (Option<i32>, String) {
    let dir = tempdir();
    replace_text(dir.path(), "jwks.json", &jwt::jwks_json(&[key]));
    let issuers = json!({"version": 1, "issuers": [
        {"name": "local", "issuer": ISS, "audience": AUD, "jwks_file": "jwks.json", "claims": claims}]});
    let issuers = issuers_file(dir.path(), &issuers);
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, json!({"version": 1, "rules": rules}).to_string()).unwrap();
    set_mode(&policy, 0o600);
    let token = dir.path().join("wif_token.txt");
    crate::common::server::write_token(&token, SERVED, 3600);
    let mut args = crate::common::server::server_args(&pki_file("ca-chain.crt"), &token);
    args.extend([
        "--bearer-issuers".into(),
        issuers.display().to_string(),
        "--policy".into(),
        policy.display().to_string(),
    ]);
    let out = bin("wif-serve").args(&args).timeout(std::time::Duration::from_secs(20)).output().unwrap();
    assert!(out.stdout.is_empty(), "nothing served: {}", String::from_utf8_lossy(&out.stdout));
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A policy rule matching on a claim its issuer does not keep could never match: the
/// claim is never in the identity. It was accepted, and the rule silently matched no one
/// (a typo, `repo` for `repository`, locked a team out with nothing said). The policy is
/// now told which claims each issuer keeps, and such a rule is a flaw named by its path.
#[test]
fn a_policy_claim_its_issuer_does_not_keep_stops_the_start_with_its_path() {
    let key = jwt::signing_key_ec();
    let rules = json!([{"name": "team", "match": {"issuer": "local", "claims": {"team": "data", "repo": "o/r"}}}]);
    let (code, err) = failed_start(&key, &["team", "repository"], rules);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("rules[0].match.claims.repo: issuer local does not keep the claim \"repo\""), "{err}");
    assert!(err.contains("\"team\", \"repository\""), "the claims it keeps are named: {err}");

    // An issuer that keeps no claims besides sub.
    let rules = json!([{"name": "ns", "match": {"issuer": "local", "claims": {"/kubernetes.io/namespace": "batch"}}}]);
    let (code, err) = failed_start(&key, &[], rules);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("rules[0].match.claims./kubernetes.io/namespace: issuer local does not keep"), "{err}");
    assert!(err.contains("none besides sub"), "{err}");
}

/// `"sub": "alice", …, "sub": "admin"`: serde_json keeps the last member, another reader
/// (or the issuer that wrote the JSON) may keep the first. RFC 7515/7519 allow keeping the
/// last; a token naming a member twice, properly signed, was served as `admin`. Now it is
/// `malformed`, in the header as in the claims, at any depth.
#[test]
fn a_token_naming_a_member_twice_is_malformed() {
    let key = jwt::signing_key_rsa();
    let mut b = server(&key, json!({"claims": ["/kubernetes.io/namespace"]}), &[]);
    let good = claims(ISS, AUD, "alice");
    let header = json!({"alg": "RS256", "kid": key.kid}).to_string();
    let text = good.to_string();
    let body = text.trim_end_matches('}');
    b.accepted("the same claims, once each", &jwt::sign_text(&key, &header, &text), "local", "alice");
    let repeated = [
        ("sub twice", header.clone(), format!("{body},\"sub\":\"admin\"}}")),
        ("sub twice, escaped", header.clone(), format!("{body},\"s\\u0075b\":\"admin\"}}")),
        (
            "a nested claim twice",
            header.clone(),
            format!("{body},\"kubernetes.io\":{{\"namespace\":\"a\",\"namespace\":\"kube-system\"}}}}"),
        ),
        ("alg twice", format!("{{\"alg\":\"HS256\",\"alg\":\"RS256\",\"kid\":\"{}\"}}", key.kid), text.clone()),
        ("kid twice", format!("{{\"alg\":\"RS256\",\"kid\":\"other\",\"kid\":\"{}\"}}", key.kid), text.clone()),
    ];
    for (what, header, claims) in repeated {
        let (_, line) = b.refused(what, &jwt::sign_text(&key, &header, &claims), "malformed");
        assert!(line["reason"].as_str().unwrap_or_default().contains("twice"), "{what}: {line}");
    }
    b.finish();
}
