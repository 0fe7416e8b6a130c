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
