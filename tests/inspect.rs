//! wif-inspect on what the other tools make: wif-sign's assertions, documents with several
//! token sections, token files with metadata, certificates; signature verification.

use crate::common::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

const APP: &str = "11111111-2222-3333-4444-555555555555";

fn signed_doc() -> (Vec<u8>, Value) {
    let out = bin("wif-sign")
        .args(["--client-id", APP, "--tenant-id", "contoso.onmicrosoft.com"])
        .args(["--key", &pki_file("app-rsa.key"), "--cert", &pki_file("app-rsa.crt")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json_out(&out);
    (out.stdout, doc)
}

fn inspect(stdin: &[u8], args: &[&str]) -> std::process::Output {
    bin("wif-inspect").args(args).write_stdin(stdin.to_vec()).output().unwrap()
}

#[test]
fn decodes_a_signed_assertion_without_showing_it() {
    let (raw, doc) = signed_doc();
    let jwt = doc["assertion"]["token"].as_str().unwrap().to_string();
    let signature = jwt.rsplit('.').next().unwrap().to_string();
    for args in [&["--json"][..], &[][..]] {
        let out = inspect(&raw, args);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains(&jwt) && !text.contains(&signature), "token or signature printed: {text}");
        assert!(!stderr(&out).contains(&jwt));
    }
    let report = json_out(&inspect(&raw, &["--json"]));
    let t = &report["tokens"][0];
    assert_eq!(t["source"], "assertion");
    assert_eq!(t["kind"], "jwt");
    assert_eq!(t["claims"]["sub"], APP);
    assert_eq!(t["claims"]["iss"], APP);
    assert_eq!(t["claims"]["aud"], "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
    assert_eq!(t["header"]["alg"], "RS256");
    assert_eq!(t["bytes"], jwt.len());
    assert_eq!(t["expired"], false);
    assert!(t["expiry"].as_str().unwrap().starts_with("expires in "), "{}", t["expiry"]);
    let exp = doc["assertion"]["claims"]["exp"].as_i64().unwrap();
    assert_eq!(t["times"]["exp"]["unix"], exp);
    assert_eq!(t["times"]["exp"]["utc"], wif::core::clock::rfc3339(exp));
    assert_eq!(t["facts"]["client_id"], APP);
    assert!(t.get("token").is_none() && t.get("signature").is_none());
    assert_eq!(report["document"]["fields"], json!(["version", "assertion"]));

    let out = inspect(&raw, &["--json", "--show-secrets"]);
    let t = &json_out(&out)["tokens"][0];
    assert_eq!(t["token"], jwt.as_str());
    assert_eq!(t["signature"], signature.as_str());
}

#[test]
fn claim_picks_the_azure_token_first() {
    let (_, mut doc) = signed_doc();
    let azure = fake_jwt(
        json!({"iss": "https://sts.windows.net/t/", "sub": "azure-subject-42", "aud": ["api://wif", "x"], "exp": wif::core::clock::now_unix() + 3000}),
    );
    doc["azure"] = json!({"token": azure, "token_type": "urn:ietf:params:oauth:token-type:jwt", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "source": "azure-v2", "endpoint": "https://x"});
    let input = serde_json::to_vec(&doc).unwrap();
    let out = inspect(&input, &["--claim", "sub"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "azure-subject-42\n");
    let out = inspect(&input, &["--claim", "sub", "--section", "assertion"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{APP}\n"));
    // Non-string claims print as JSON.
    let out = inspect(&input, &["--claim", "aud"]);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), json!(["api://wif", "x"]));
    // A bare JWT works too.
    let out = inspect(azure.as_bytes(), &["--claim", "iss"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "https://sts.windows.net/t/\n");
    // A missing claim is bad input and names the claims there are.
    let out = inspect(&input, &["--claim", "oid"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("no claim \"oid\"") && stderr(&out).contains("sub"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    // A section that is not there.
    let out = inspect(&input, &["--claim", "sub", "--section", "sts"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn certificate_thumbprints_match_what_wif_sign_sent() {
    let (_, doc) = signed_doc();
    let x5t = doc["assertion"]["header"]["x5t"].as_str().unwrap().to_string();
    let out = inspect(b"", &["--cert", &pki_file("app-rsa.crt"), "--key", &pki_file("app-rsa.key"), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = &json_out(&out)["certificates"][0];
    assert_eq!(c["x5t"], x5t.as_str());
    assert_eq!(c["subject"], "CN=wif-app");
    assert_eq!(c["key_matches"], true);
    assert_eq!(c["expired"], false);
    // The portal's thumbprint is the same SHA-1 as upper-case hex (openssl agrees).
    let fp = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha1", "-in", &pki_file("app-rsa.crt")])
        .output()
        .unwrap();
    let hex = String::from_utf8(fp.stdout).unwrap().trim().rsplit('=').next().unwrap().replace(':', "");
    assert_eq!(c["thumbprint_sha1_hex"], hex.as_str());
    let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    assert_eq!(c["x5t"], URL_SAFE_NO_PAD.encode(&bytes));
    assert_eq!(c["x5t#S256"].as_str().unwrap().len(), 43);
    // Another key does not match.
    let out = inspect(b"", &["--cert", &pki_file("app-rsa.crt"), "--key", &pki_file("other-app-rsa.key"), "--json"]);
    assert_eq!(json_out(&out)["certificates"][0]["key_matches"], false);
    // With a token too: does its header name this certificate?
    let raw = serde_json::to_vec(&doc).unwrap();
    let out = inspect(&raw, &["--cert", &pki_file("app-rsa.crt"), "--json"]);
    assert_eq!(json_out(&out)["tokens"][0]["thumbprint_matches_cert"], true);
    let out = inspect(&raw, &["--cert", &pki_file("other-app-rsa.crt"), "--json"]);
    assert_eq!(json_out(&out)["tokens"][0]["thumbprint_matches_cert"], false);
    // The same certificate in a PKCS#12 keystore.
    let out =
        inspect(&raw, &["--cert", &pki_file("app.p12"), "--key-password-file", &pki_file("app.p12.pass"), "--json"]);
    assert_eq!(json_out(&out)["tokens"][0]["thumbprint_matches_cert"], true, "{}", stderr(&out));
}

#[test]
fn verify_with_the_right_certificate_passes_and_with_another_fails() {
    let (raw, doc) = signed_doc();
    let out = inspect(&raw, &["--verify", "--verify-cert", &pki_file("app-rsa.crt"), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = &json_out(&out)["tokens"][0]["verification"];
    assert_eq!(v["valid"], true);
    assert_eq!(v["signature_valid"], true);

    let out = inspect(&raw, &["--verify", "--verify-cert", &pki_file("other-app-rsa.crt"), "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let v = &json_out(&out)["tokens"][0]["verification"];
    assert_eq!(v["valid"], false);
    assert_eq!(v["signature_valid"], false);
    assert!(stderr(&out).contains("verification failed"));

    // A tampered token (claims changed, signature kept) fails with the right key.
    let jwt = doc["assertion"]["token"].as_str().unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    let forged_claims =
        URL_SAFE_NO_PAD.encode(json!({"sub": "attacker", "exp": wif::core::clock::now_unix() + 600}).to_string());
    let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
    let out = inspect(forged.as_bytes(), &["--verify-cert", &pki_file("app-rsa.crt"), "--claim", "sub"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty(), "a claim of an unverified token is not printed when verification fails");
}

#[test]
fn verify_with_a_jwks_file_and_url() {
    let (raw, doc) = signed_doc();
    let pem = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-modulus", "-in", &pki_file("app-rsa.crt")])
        .output()
        .unwrap();
    let modulus_hex = String::from_utf8(pem.stdout).unwrap().trim().trim_start_matches("Modulus=").to_string();
    let n: Vec<u8> =
        (0..modulus_hex.len()).step_by(2).map(|i| u8::from_str_radix(&modulus_hex[i..i + 2], 16).unwrap()).collect();
    let x5t = doc["assertion"]["header"]["x5t"].as_str().unwrap();
    let jwks = json!({"keys": [
        {"kty": "RSA", "use": "sig", "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB", "x5t": x5t}
    ]});
    let dir = tempdir();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let out = inspect(&raw, &["--jwks", file.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_out(&out)["tokens"][0]["verification"]["valid"], true);

    // The same set served over loopback HTTP, behind an OpenID discovery document.
    let keys = TestServer::start(vec![Canned::json(200, jwks.clone())]);
    let discovery = TestServer::start(vec![Canned::json(200, json!({"jwks_uri": format!("{}/keys", keys.url)}))]);
    let url = format!("{}/.well-known/openid-configuration", discovery.url);
    let out = inspect(&raw, &["--jwks", &url, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_out(&out)["tokens"][0]["verification"]["valid"], true);
    assert_eq!(keys.requests().len(), 1);
}

#[test]
fn token_file_with_metadata_and_opaque_preview() {
    let dir = tempdir();
    let token = "ya29.a0AfB_byC-opaque-google-access-token-xyz";
    let file = dir.path().join("wif_token.txt");
    std::fs::write(&file, token).unwrap();
    let exp = wif::core::clock::now_unix() + 41 * 60 + 30;
    let meta = json!({
        "expires_at": wif::core::clock::rfc3339(exp), "token_type": "Bearer", "written_at": wif::core::clock::rfc3339(wif::core::clock::now_unix()),
        "written_by": "wif-impersonate", "bytes": token.len(), "sha256": wif::core::keys::sha256_hex(token.as_bytes())
    });
    std::fs::write(dir.path().join("wif_token.txt.meta.json"), meta.to_string()).unwrap();
    let out = bin("wif-inspect").arg("--token-file").arg(&file).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let t = &json_out(&out)["tokens"][0];
    assert_eq!(t["kind"], "opaque");
    assert_eq!(t["preview"], "ya29.a…");
    assert_eq!(t["bytes"], token.len());
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_at"], wif::core::clock::rfc3339(exp));
    assert_eq!(t["expiry"], "expires in 41 min");
    assert_eq!(t["facts"]["written_by"], "wif-impersonate");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(token));
    // Human output says the same, without the token.
    let out = bin("wif-inspect").arg("--token-file").arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("expires in 41 min") && text.contains("ya29.a…") && !text.contains(token), "{text}");
    // Metadata that belongs to another token is not believed.
    std::fs::write(&file, "ya29.other-token-entirely").unwrap();
    let out = bin("wif-inspect").arg("--token-file").arg(&file).arg("--json").output().unwrap();
    assert!(out.status.success());
    assert!(json_out(&out)["tokens"][0].get("expires_at").is_none());
    assert!(stderr(&out).contains("does not belong"));
}

#[test]
fn expired_tokens_and_bad_input() {
    let old = fake_jwt(json!({"sub": "s", "exp": wif::core::clock::now_unix() - 200}));
    let out = inspect(old.as_bytes(), &["--json"]);
    assert!(out.status.success());
    let t = &json_out(&out)["tokens"][0];
    assert_eq!(t["expired"], true);
    assert_eq!(t["expiry"], "expired 3 min ago");
    // Nothing to inspect is a usage error; garbage is bad input, and not echoed.
    let out = inspect(b"", &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = inspect(b"{\"azure\": {\"token\": \"s3cret", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(!stderr(&out).contains("s3cret"));
    let out = inspect(b"two words", &[]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn fetched_sections_and_oauth_responses() {
    // wif-get's section holds facts, not the token.
    let doc = json!({"version": 1, "fetched": {"url": "https://h/get_wif_token", "status": 200, "token_type": "access_token",
        "expires_at": wif::core::clock::rfc3339(wif::core::clock::now_unix() + 630), "bytes": 30, "sha256": "ab", "fetched_at": "2026-01-01T00:00:00Z"}});
    let out = inspect(doc.to_string().as_bytes(), &["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t = &json_out(&out)["tokens"][0];
    assert_eq!(t["kind"], "withheld");
    assert_eq!(t["bytes"], 30);
    assert_eq!(t["expiry"], "expires in 10 min");
    // An OAuth token response.
    let id = fake_jwt(json!({"sub": "oauth-sub", "exp": wif::core::clock::now_unix() + 60}));
    let resp =
        json!({"access_token": "ya29.opaque-token-value", "id_token": id, "token_type": "Bearer", "expires_in": 3599});
    let out = inspect(resp.to_string().as_bytes(), &["--claim", "sub"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "oauth-sub\n");
}

#[test]
fn verify_es256_and_ps256() {
    for (key, cert, extra, alg) in [
        ("app-ec.key", "app-ec.crt", &[][..], "ES256"),
        ("app-rsa.key", "app-rsa.crt", &["--thumbprint", "sha256"][..], "PS256"),
    ] {
        let out = bin("wif-sign")
            .args(["--client-id", APP, "--tenant-id", "t", "--key", &pki_file(key), "--cert", &pki_file(cert)])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let raw = out.stdout;
        let out = inspect(&raw, &["--verify-cert", &pki_file(cert), "--json"]);
        assert!(out.status.success(), "{alg}: {}", stderr(&out));
        let t = &json_out(&out)["tokens"][0];
        assert_eq!(t["header"]["alg"], alg);
        assert_eq!(t["verification"]["valid"], true, "{alg}");
        let other = if alg == "ES256" { "client.crt" } else { "other-app-rsa.crt" };
        let out = inspect(&raw, &["--verify-cert", &pki_file(other), "--json"]);
        assert_eq!(out.status.code(), Some(3), "{alg} with {other}");
        // The x5t#S256 header names the certificate too.
        let out = inspect(&raw, &["--cert", &pki_file(cert), "--json"]);
        assert_eq!(json_out(&out)["tokens"][0]["thumbprint_matches_cert"], true, "{alg}");
    }
}

#[test]
fn pkcs12_keystore_shows_its_certificate_and_key() {
    let out =
        inspect(b"", &["--cert", &pki_file("app.p12"), "--key-password-file", &pki_file("app.p12.pass"), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let from_p12 = json_out(&out)["certificates"][0].clone();
    assert_eq!(from_p12["key_matches"], true);
    let out = inspect(b"", &["--cert", &pki_file("app-rsa.crt"), "--json"]);
    assert_eq!(json_out(&out)["certificates"][0]["x5t"], from_p12["x5t"]);
    // The password can come from an environment variable too; a wrong one is bad input.
    let out = bin("wif-inspect")
        .args(["--cert", &pki_file("app.p12"), "--key-password-env", "P12_PW", "--json"])
        .env("P12_PW", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("wrong password"), "{}", stderr(&out));
}

#[test]
fn redact_prints_the_document_with_tokens_shortened() {
    let (bytes, doc) = signed_doc();
    let token = doc["assertion"]["token"].as_str().unwrap().to_string();
    let mut with_more = doc.clone();
    with_more["azure"] = json!({"token": fake_jwt(json!({"sub": "s"})), "claims": {"sub": "s"}, "note": "kept"});
    with_more["extra"] = json!({"client_secret_file": "/etc/wif/secret", "echo": "ya29.abcdefghijklmnopqrstuvwxyz"});
    let out = inspect(with_more.to_string().as_bytes(), &["--redact"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = json_out(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(&token), "the assertion is not printed whole");
    assert!(!text.contains("abcdefghijklmnop"), "token-shaped strings anywhere are shortened");
    let preview = shown["assertion"]["token"].as_str().unwrap();
    assert!(preview.starts_with(&token[..6]) && preview.ends_with(&format!("({} bytes)", token.len())), "{preview}");
    // Everything that is not a secret is passed through as is.
    assert_eq!(shown["assertion"]["claims"], doc["assertion"]["claims"]);
    assert_eq!(shown["azure"]["note"], "kept");
    assert_eq!(shown["extra"]["client_secret_file"], "/etc/wif/secret", "a path to a secret is not a secret");

    let out = inspect(&bytes, &["--redact", "--section", "assertion"]);
    let shown = json_out(&out);
    assert_eq!(shown.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["assertion"]);
    let out = inspect(&bytes, &["--redact", "--section", "sts"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("no \"sts\" section"), "{}", stderr(&out));
}
