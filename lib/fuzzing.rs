//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), kept in the library so the
//! regression test in `tests/fuzz_corpus.rs` replays the checked-in corpus through exactly
//! the same code on every `cargo test`. Each function must never panic, whatever the input.

use crate::core::document::{AssertionSection, AzureSection, Document, ImpersonatedSection, StsSection};
use crate::core::settings::key;
use crate::core::settings::Settings;
use crate::emulator::server::Handler as _;

/// The JSON document parser and merger: parse, merge settings, read every typed section,
/// and check that printing and re-parsing gives the same document.
pub fn document(data: &[u8]) {
    let Ok(mut doc) = Document::parse(data) else { return };
    let Ok(settings) = Settings::load(&doc, None) else { return };
    settings.pass_on(&mut doc);
    let _ = settings.pick::<String>(None, key::CLIENT_ID);
    let _ = settings.pick::<u32>(None, key::RETRIES);
    let _ = doc.section::<AssertionSection>();
    let _ = doc.section::<AzureSection>();
    let _ = doc.section::<StsSection>();
    let _ = doc.section::<ImpersonatedSection>();
    let printed = doc.to_json();
    let again = Document::parse(printed.as_bytes()).expect("a printed document parses again");
    // Keys and order survive (float digits may differ by one ulp without float_roundtrip).
    assert!(again.fields().keys().eq(doc.fields().keys()), "printing and re-parsing keeps the document");
}

/// PEM and PKCS#12 key and certificate loading, up to preparing the key for signing.
pub fn keys(data: &[u8]) {
    let _ = crate::core::keys::certs_from_bytes(data);
    if let Ok(bundle) = crate::core::keys::key_from_pem(data) {
        let _ = crate::core::keys::signing_key(&bundle.key);
    }
    let password = crate::core::secret::Secret::new("correct horse battery staple");
    if let Ok(bundle) = crate::core::keys::key_from_pkcs12(data, Some(&password)) {
        let _ = crate::core::keys::signing_key(&bundle.key);
    }
}

/// Unverified JWT decoding, as wif-inspect and wif-azure do it.
pub fn jwt(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = crate::core::jwt::decode_unverified(text);
    let _ = crate::core::jwt::unverified_exp(text);
    let _ = crate::core::secret::scrub(text);
}

/// wif-serve's HTTP/1.1 request-head parser, fed as one buffer and as a pipelined stream.
pub fn http_request(data: &[u8]) {
    use crate::server::http::{parse, read_request, Incoming, Parsed};
    use crate::tools::serve::routes::route;
    if let Parsed::Complete(req, len) = parse(data) {
        assert!(len <= data.len(), "a request head cannot be longer than the input");
        let _ = route(&req.method, &req.path);
    }
    let mut stream = std::io::Cursor::new(data);
    let mut buf = Vec::new();
    for _ in 0..64 {
        match read_request(&mut stream, &mut buf) {
            Incoming::Request(req) => {
                let _ = route(&req.method, &req.path);
            }
            _ => break,
        }
    }
}

/// The example emulator configuration with the certificate files left out (apps are then
/// registered by thumbprint only), so the fuzz target needs no files.
fn emulator_state() -> &'static crate::emulator::State {
    use crate::emulator::config::{Config, EXAMPLE};
    static STATE: std::sync::OnceLock<crate::emulator::State> = std::sync::OnceLock::new();
    STATE.get_or_init(|| {
        let mut cfg: serde_json::Value = serde_json::from_str(EXAMPLE).expect("the example config is JSON");
        let strip = |apps: &mut serde_json::Value| {
            for app in apps.as_array_mut().into_iter().flatten() {
                app["certificates"] = serde_json::json!([]);
                app["thumbprints"] = serde_json::json!(["EOasVhgP3p1bZ2KyBh_kFvYqGuo"]);
                app["secrets"] = serde_json::json!(["fuzz-secret"]);
            }
        };
        strip(&mut cfg["azure"]["apps"]);
        for issuer in cfg["issuers"].as_array_mut().into_iter().flatten() {
            for client in issuer["clients"].as_array_mut().into_iter().flatten() {
                client["certificates"] = serde_json::json!([]);
                client["secrets"] = serde_json::json!(["fuzz-secret"]);
            }
        }
        // The X.509 provider's trust store names files of the test PKI.
        for pool in cfg["google"]["pools"].as_array_mut().into_iter().flatten() {
            pool["providers"].as_array_mut().into_iter().for_each(|p| p.retain(|p| p.get("x509").is_none()));
        }
        let config = Config::parse(cfg.to_string().as_bytes(), std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("the fuzz config parses: {e}"));
        crate::emulator::State::new(config, None, 0, std::time::Duration::ZERO).expect("emulator state")
    })
}

/// wif-emulate's request handling for every endpoint: query, form and JSON bodies, the JWT
/// and thumbprint checks, STS attribute conditions, IAM bodies. The first byte picks the
/// endpoint and the content type; the rest is the body (or the query of a GET).
pub fn emulator_request(data: &[u8]) {
    use crate::emulator::server::Req;
    const TENANT: &str = "7a1c9e4b-0d2f-4c3a-9b8e-1f2a3b4c5d6e";
    let Some((&pick, rest)) = data.split_first() else { return };
    let sa = "wif-demo@wif-demo.iam.gserviceaccount.com";
    let endpoints: [(&str, String); 9] = [
        ("POST", format!("/{TENANT}/oauth2/v2.0/token")),
        ("POST", format!("/{TENANT}/oauth2/token")),
        ("POST", "/v1/token".into()),
        ("POST", format!("/v1/projects/-/serviceAccounts/{sa}:generateAccessToken")),
        ("POST", format!("/v1/projects/-/serviceAccounts/{sa}:generateIdToken")),
        ("POST", "/issuers/sac/v1/token".into()),
        ("GET", "/metadata/identity/oauth2/token".into()),
        ("GET", format!("/{TENANT}/v2.0/.well-known/openid-configuration")),
        ("POST", String::from_utf8_lossy(rest).chars().take(200).collect()),
    ];
    let (method, path) = &endpoints[pick as usize % endpoints.len()];
    let content_type = if pick & 0x80 == 0 { "application/x-www-form-urlencoded" } else { "application/json" };
    let get = *method == "GET";
    let req = Req {
        method: method.to_string(),
        path: path.clone(),
        query: if get { String::from_utf8_lossy(rest).into_owned() } else { String::new() },
        headers: vec![
            ("Content-Type".into(), content_type.into()),
            ("Metadata".into(), "true".into()),
            ("Authorization".into(), format!("Bearer {}", String::from_utf8_lossy(&rest[..rest.len().min(64)]))),
        ],
        body: if get { Vec::new() } else { rest.to_vec() },
        scheme: "http",
        host: "127.0.0.1:8080".into(),
        peer_certs: Default::default(),
    };
    let resp = emulator_state().handle(&req);
    assert!((200..600).contains(&resp.status), "a real HTTP status");
}

/// The emulator's CEL subset (attribute conditions): parse, then evaluate against claims.
pub fn cel(data: &[u8]) {
    use crate::emulator::cel::{eval, parse, Env};
    let Ok(src) = std::str::from_utf8(data) else { return };
    let Ok(expr) = parse(src) else { return };
    let env = Env {
        assertion: serde_json::json!({"sub": "s", "tid": "t", "groups": ["a", "b"], "n": 3, "nested": {"x": [1, {"y": "z"}]}}),
        google: serde_json::Map::from_iter([("subject".to_string(), serde_json::Value::from("s"))]),
        attribute: serde_json::Map::from_iter([("app".to_string(), serde_json::Value::from("a"))]),
        ..Env::default()
    };
    let _ = eval(&expr, &env);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_target_reaches_the_handlers() {
        // A valid client-secret request gets a token: the target exercises real handling,
        // not just the refusal paths.
        let body = b"grant_type=client_credentials&client_id=0b6f3d2a-5c4e-4f1a-8e7d-9a0b1c2d3e4f&client_secret=fuzz-secret&scope=api%3A%2F%2Fwif-gcp%2F.default";
        let req = crate::emulator::server::Req {
            method: "POST".into(),
            path: "/7a1c9e4b-0d2f-4c3a-9b8e-1f2a3b4c5d6e/oauth2/v2.0/token".into(),
            query: String::new(),
            headers: vec![("Content-Type".into(), "application/x-www-form-urlencoded".into())],
            body: body.to_vec(),
            scheme: "http",
            host: "127.0.0.1:8080".into(),
            peer_certs: Default::default(),
        };
        let resp = emulator_state().handle(&req);
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        emulator_request(b"\x02grant_type=x");
        cel(b"assertion.sub == 's' && attribute.app in ['a']");
    }
}
