//! The four exchange steps against recording test doubles on loopback: every field sent,
//! every section written, and every failure mode with its exit code.

use crate::common::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::path::Path;

const APP: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "contoso.onmicrosoft.com";
const AUDIENCE: &str =
    "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/pool-1/providers/azure";
const SA: &str = "deployer@my-project.iam.gserviceaccount.com";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn azure_token() -> String {
    fake_jwt(
        json!({"iss": format!("https://sts.windows.net/{TENANT}/"), "aud": "api://wif", "sub": "sub-123", "exp": now() + 3600}),
    )
}

/// Runs wif-sign for the Azure endpoint at `authority` and returns its stdout document.
fn sign_doc(authority: &str, extra: &[&str]) -> Vec<u8> {
    let (key, cert) = (pki_file("app-rsa.key"), pki_file("app-rsa.crt"));
    let out = bin("wif-sign")
        .args(["--client-id", APP, "--tenant-id", TENANT, "--authority", authority, "--key", &key, "--cert", &cert])
        .args(extra)
        .write_stdin("")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    out.stdout
}

fn public_key_pem(cert: &str) -> Vec<u8> {
    let out = std::process::Command::new("openssl").args(["x509", "-noout", "-pubkey", "-in", cert]).output().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn verify(token: &str, cert: &str, alg: jsonwebtoken::Algorithm, aud: &str) -> Value {
    let pem = public_key_pem(cert);
    let key = match alg {
        jsonwebtoken::Algorithm::ES256 => jsonwebtoken::DecodingKey::from_ec_pem(&pem).unwrap(),
        _ => jsonwebtoken::DecodingKey::from_rsa_pem(&pem).unwrap(),
    };
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_audience(&[aud]);
    v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    jsonwebtoken::decode::<Value>(token, &key, &v).expect("assertion verifies with the certificate's key").claims
}

fn sha1_b64url(cert_pem: &str) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha1", "-in", cert_pem])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.trim().rsplit('=').next().unwrap().replace(':', "");
    let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn sign_makes_an_msal_style_assertion_that_verifies() {
    let doc: Value = serde_json::from_slice(&sign_doc("https://login.microsoftonline.com", &[])).unwrap();
    let a = &doc["assertion"];
    let endpoint = format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token");
    assert_eq!(doc["version"], 1);
    assert_eq!(a["token_endpoint"], endpoint);
    assert_eq!(a["client_id"], APP);
    assert_eq!(a["token_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    let token = a["token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.x5t.as_deref(), Some(sha1_b64url(&pki_file("app-rsa.crt")).as_str()));
    let claims = verify(token, &pki_file("app-rsa.crt"), jsonwebtoken::Algorithm::RS256, &endpoint);
    assert_eq!(claims["iss"], APP);
    assert_eq!(claims["sub"], APP);
    let t = now();
    // nbf/iat are back-dated by 30 s for clock skew; exp is now + the 10 min lifetime.
    assert!((claims["iat"].as_i64().unwrap() - (t - 30)).abs() < 5);
    assert_eq!(claims["nbf"], claims["iat"]);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 630);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
    // The section shows what was signed, and never the key.
    assert_eq!(a["claims"], claims);
    assert!(!String::from_utf8_lossy(&sign_doc("https://login.microsoftonline.com", &[])).contains("PRIVATE"));
}

#[test]
fn sign_supports_every_key_format() {
    let cases: Vec<(Vec<String>, jsonwebtoken::Algorithm, &str)> = vec![
        (
            vec!["--key".into(), pki_file("app-rsa-pkcs1.key"), "--cert".into(), pki_file("app-rsa.crt")],
            jsonwebtoken::Algorithm::RS256,
            "app-rsa.crt",
        ),
        (
            vec!["--key".into(), pki_file("app-ec.key"), "--cert".into(), pki_file("app-ec.crt")],
            jsonwebtoken::Algorithm::ES256,
            "app-ec.crt",
        ),
        (
            vec!["--key".into(), pki_file("app-ec-sec1.key"), "--cert".into(), pki_file("app-ec.crt")],
            jsonwebtoken::Algorithm::ES256,
            "app-ec.crt",
        ),
        (
            vec!["--key".into(), pki_file("app.p12"), "--key-password-file".into(), pki_file("app.p12.pass")],
            jsonwebtoken::Algorithm::RS256,
            "app-rsa.crt",
        ),
        (
            vec![
                "--key".into(),
                pki_file("app-rsa.key"),
                "--cert".into(),
                pki_file("app-rsa.crt"),
                "--thumbprint".into(),
                "sha256".into(),
            ],
            jsonwebtoken::Algorithm::PS256,
            "app-rsa.crt",
        ),
    ];
    for (args, alg, cert) in cases {
        let out = bin("wif-sign").args(["--client-id", APP, "--tenant-id", TENANT]).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let doc = json_out(&out);
        let token = doc["assertion"]["token"].as_str().unwrap();
        let endpoint = doc["assertion"]["token_endpoint"].as_str().unwrap();
        verify(token, &pki_file(cert), alg, endpoint);
        let h = jsonwebtoken::decode_header(token).unwrap();
        if alg == jsonwebtoken::Algorithm::PS256 {
            assert!(h.x5t.is_none() && h.x5t_s256.is_some());
        } else {
            assert!(h.x5t.is_some());
        }
    }
    // The PKCS#12 password may also come from an environment variable, and x5c carries the chain.
    let pw = std::fs::read_to_string(pki_file("app.p12.pass")).unwrap();
    let out = bin("wif-sign")
        .args([
            "--client-id",
            APP,
            "--tenant-id",
            TENANT,
            "--key",
            &pki_file("app.p12"),
            "--key-password-env",
            "P12PW",
            "--x5c",
        ])
        .env("P12PW", pw.trim_end())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let x5c = json_out(&out)["assertion"]["header"]["x5c"].clone();
    assert_eq!(x5c.as_array().unwrap().len(), 1);
}

#[test]
fn sign_refuses_bad_keys_with_clear_errors() {
    let dir = tempdir();
    let ed = dir.path().join("ed.key");
    let st = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ED25519", "-out"])
        .arg(&ed)
        .status()
        .unwrap();
    assert!(st.success());
    let wrong_pw = dir.path().join("wrong.pass");
    std::fs::write(&wrong_pw, "nope\n").unwrap();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec!["--key".into(), pki_file("app-ec.key"), "--cert".into(), pki_file("app-rsa.crt")],
            3,
            "does not belong to the certificate",
        ),
        (
            vec!["--key".into(), pki_file("app.p12"), "--key-password-file".into(), wrong_pw.display().to_string()],
            3,
            "wrong password",
        ),
        (
            vec!["--key".into(), ed.display().to_string(), "--cert".into(), pki_file("app-rsa.crt")],
            3,
            "unsupported key type",
        ),
        (vec!["--key".into(), pki_file("app-rsa.crt"), "--cert".into(), pki_file("app-rsa.crt")], 3, "no private key"),
        (
            vec!["--key".into(), "/nonexistent/key.pem".into(), "--cert".into(), pki_file("app-rsa.crt")],
            6,
            "no such file",
        ),
        (vec!["--key".into(), pki_file("app-rsa.key")], 2, "--cert is required"),
        (
            vec![
                "--key".into(),
                pki_file("app-rsa.key"),
                "--cert".into(),
                pki_file("app-rsa.crt"),
                "--authority".into(),
                "http://login.example.com".into(),
            ],
            2,
            "not loopback",
        ),
    ];
    for (args, code, msg) in cases {
        let out = bin("wif-sign").args(["--client-id", APP, "--tenant-id", TENANT]).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "nothing on stdout when a step fails");
        let err = stderr(&out);
        assert!(err.starts_with("wif-sign: "), "{err}");
        assert!(err.contains(msg), "{args:?}: {err}");
        assert!(!err.contains("MII"), "no key material in errors");
    }
}

#[test]
fn azure_v2_client_credentials_sends_exactly_the_assertion_grant() {
    let token = azure_token();
    let srv = TestServer::start(vec![Canned::json(
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
    )]);
    let doc = sign_doc(&srv.url, &[]);
    let assertion = serde_json::from_slice::<Value>(&doc).unwrap()["assertion"]["token"].clone();
    let out = bin("wif-azure").args(["--scope", "api://wif/.default"]).write_stdin(doc).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(r.header("content-type"), Some("application/x-www-form-urlencoded"));
    let mut form = r.form();
    form.sort();
    let mut want = vec![
        ("client_assertion".to_string(), assertion.as_str().unwrap().to_string()),
        ("client_assertion_type".into(), "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()),
        ("client_id".into(), APP.into()),
        ("grant_type".into(), "client_credentials".into()),
        ("scope".into(), "api://wif/.default".into()),
    ];
    want.sort();
    assert_eq!(form, want);
    let doc = json_out(&out);
    let az = &doc["azure"];
    assert_eq!(az["token"], token);
    assert_eq!(az["source"], "azure-v2");
    assert_eq!(az["subject_token_type"], "urn:ietf:params:oauth:token-type:jwt");
    assert_eq!(az["claims"]["sub"], "sub-123");
    assert_eq!(az["claims"]["iss"], format!("https://sts.windows.net/{TENANT}/"));
    let exp = time_of(az["expires_at"].as_str().unwrap());
    assert!((exp - now() - 3599).abs() < 30);
    assert!(doc["assertion"].is_object(), "earlier sections pass through");
}

fn time_of(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap().unix_timestamp()
}

#[test]
fn azure_v1_resource_and_string_expiry() {
    let srv = TestServer::start(vec![Canned::json(
        200,
        json!({"token_type": "Bearer", "expires_in": "3599", "expires_on": "1999999999", "resource": "api://wif", "access_token": azure_token()}),
    )]);
    let doc = sign_doc(&srv.url, &["--audience", &format!("{}/{TENANT}/oauth2/token", srv.url)]);
    let out = bin("wif-azure").args(["--resource", "api://wif"]).write_stdin(doc).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &srv.requests()[0];
    assert_eq!(r.path, format!("/{TENANT}/oauth2/token"));
    assert_eq!(r.field("resource").as_deref(), Some("api://wif"));
    assert_eq!(r.field("scope"), None);
    assert_eq!(json_out(&out)["azure"]["source"], "azure-v1");
    // --resource with a v2 assertion is a usage error, before any request.
    let doc = sign_doc(&srv.url, &[]);
    let out = bin("wif-azure").args(["--resource", "api://wif"]).write_stdin(doc).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(srv.requests().len(), 1);
}

#[test]
fn generic_issuer_jwt_bearer_and_client_secret() {
    let srv = TestServer::start(vec![Canned::json(
        200,
        json!({"access_token": azure_token(), "token_type": "Bearer", "expires_in": 3600}),
    )]);
    let url = format!("{}/v1/token", srv.url);
    let doc = sign_doc(&srv.url, &["--audience", &url]);
    let out = bin("wif-azure")
        .args(["--grant", "jwt-bearer", "--token-url", &url, "--audience", AUDIENCE])
        .write_stdin(doc)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &srv.requests()[0];
    assert_eq!(r.field("grant_type").as_deref(), Some("urn:ietf:params:oauth:grant-type:jwt-bearer"));
    assert_eq!(r.field("audience").as_deref(), Some(AUDIENCE));
    assert!(r.field("assertion").unwrap().starts_with("ey"));
    assert_eq!(r.field("client_id").as_deref(), Some(APP));

    // ServiceAuthCentral's client_credentials with a secret from a file and an audience.
    let dir = tempdir();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cr3t-value\n").unwrap();
    let out = bin("wif-azure")
        .args(["--token-url", &url, "--client-id", "sac-client", "--audience", AUDIENCE, "--client-secret-file"])
        .arg(&secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &srv.requests()[1];
    let mut form = r.form();
    form.sort();
    assert_eq!(
        form,
        vec![
            ("audience".to_string(), AUDIENCE.to_string()),
            ("client_id".into(), "sac-client".into()),
            ("client_secret".into(), "s3cr3t-value".into()),
            ("grant_type".into(), "client_credentials".into()),
        ]
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cr3t"), "the secret is not written to the document");
}

#[test]
fn external_token_sources() {
    let token = azure_token();
    let dir = tempdir();
    let f = dir.path().join("token.jwt");
    std::fs::write(&f, format!("{token}\n")).unwrap();
    let out = bin("wif-azure").arg("--from-file").arg(&f).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json_out(&out);
    assert_eq!(doc["azure"]["token"], token);
    assert_eq!(doc["azure"]["source"], "file");
    assert_eq!(doc["azure"]["claims"]["sub"], "sub-123");

    let srv = TestServer::start(vec![Canned::json(200, json!({"id_token": token}))]);
    let out = bin("wif-azure")
        .args(["--from-url", &format!("{}/token", srv.url), "--header", "X-Custom: yes", "--field", "id_token"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_out(&out)["azure"]["token"], token);
    assert_eq!(srv.requests()[0].header("x-custom"), Some("yes"));

    let imds = TestServer::start(vec![Canned::json(
        200,
        json!({"access_token": token, "expires_in": "86399", "expires_on": "1999999999", "resource": "api://wif", "token_type": "Bearer"}),
    )]);
    let out = bin("wif-azure")
        .args([
            "--imds",
            "--resource",
            "api://wif",
            "--imds-endpoint",
            &format!("{}/metadata/identity/oauth2/token", imds.url),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &imds.requests()[0];
    assert_eq!(r.header("metadata"), Some("true"));
    assert_eq!(r.path, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=api%3A%2F%2Fwif");
    assert_eq!(json_out(&out)["azure"]["source"], "imds");

    let gh = TestServer::start(vec![Canned::json(200, json!({"value": token}))]);
    let out = bin("wif-azure")
        .args(["--github-actions", "--audience", "https://github.com/org"])
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", format!("{}/idtoken?api-version=2.0", gh.url))
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "gh-request-token")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &gh.requests()[0];
    assert_eq!(r.path, "/idtoken?api-version=2.0&audience=https%3A%2F%2Fgithub.com%2Forg");
    assert_eq!(r.header("authorization"), Some("Bearer gh-request-token"));
}

fn azure_doc() -> String {
    json!({"version": 1, "note": {"kept": true}, "azure": {
        "token": azure_token(), "token_type": "Bearer", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "source": "azure-v2", "endpoint": "https://x", "claims": {"sub": "sub-123", "exp": now() + 3600}}})
    .to_string()
}

#[test]
fn sts_sends_exactly_the_rfc8693_fields() {
    let srv = TestServer::start(vec![Canned::json(
        200,
        json!({"access_token": "ya29.federated", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer", "expires_in": 3599}),
    )]);
    let input = azure_doc();
    let subject = serde_json::from_str::<Value>(&input).unwrap()["azure"]["token"].as_str().unwrap().to_string();
    let out = bin("wif-sts")
        .args(["--audience", AUDIENCE, "--token-url", &format!("{}/v1/token", srv.url)])
        .write_stdin(input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &srv.requests()[0];
    assert_eq!(r.path, "/v1/token");
    let mut form = r.form();
    form.sort();
    let mut want: Vec<(String, String)> = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("audience", AUDIENCE),
        ("scope", "https://www.googleapis.com/auth/cloud-platform"),
        ("requested_token_type", "urn:ietf:params:oauth:token-type:access_token"),
        ("subject_token", &subject),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    want.sort();
    assert_eq!(form, want);
    let doc = json_out(&out);
    assert_eq!(doc["sts"]["token"], "ya29.federated");
    assert_eq!(doc["sts"]["audience"], AUDIENCE);
    assert_eq!(doc["note"], json!({"kept": true}));

    // Built audience, other scope, options, and the id_token type.
    let out = bin("wif-sts")
        .args([
            "--project-number",
            "123456789",
            "--pool",
            "pool-1",
            "--provider",
            "azure",
            "--scope",
            "https://www.googleapis.com/auth/iam",
        ])
        .args([
            "--subject-token-type",
            "id_token",
            "--options",
            r#"{"userProject":"p"}"#,
            "--token-url",
            &format!("{}/v1/token", srv.url),
        ])
        .write_stdin(azure_doc())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &srv.requests()[1];
    assert_eq!(r.field("audience").as_deref(), Some(AUDIENCE));
    assert_eq!(r.field("scope").as_deref(), Some("https://www.googleapis.com/auth/iam"));
    assert_eq!(r.field("subject_token_type").as_deref(), Some("urn:ietf:params:oauth:token-type:id_token"));
    assert_eq!(r.field("options").as_deref(), Some(r#"{"userProject":"p"}"#));
}

#[test]
fn sts_reads_a_credential_configuration() {
    let srv = TestServer::start(vec![Canned::json(
        200,
        json!({"access_token": "ya29.fed", "token_type": "Bearer", "expires_in": 3599}),
    )]);
    let dir = tempdir();
    let tok = dir.path().join("azure.jwt");
    std::fs::write(&tok, json!({"id_token": azure_token()}).to_string()).unwrap();
    let cfg = dir.path().join("cred.json");
    std::fs::write(
        &cfg,
        json!({"type": "external_account", "audience": AUDIENCE, "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("{}/v1/token", srv.url),
            "credential_source": {"file": tok, "format": {"type": "json", "subject_token_field_name": "id_token"}},
            "service_account_impersonation_url": format!("https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{SA}:generateAccessToken")})
        .to_string(),
    )
    .unwrap();
    let out = bin("wif-sts").arg("--credential-config").arg(&cfg).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(srv.requests()[0].field("audience").as_deref(), Some(AUDIENCE));
    let doc = json_out(&out);
    assert!(doc["sts"]["service_account_impersonation_url"].as_str().unwrap().contains(SA));
}

/// Every field of Google's credential configuration wif has a use for is honoured (a
/// workforce pool's user project goes to STS, the impersonation lifetime on to
/// wif-impersonate unless its own settings say otherwise), and the fields it has no use for
/// are named in one warning line.
#[test]
fn sts_honours_the_credential_configuration_and_names_what_it_ignores() {
    const WORKFORCE: &str = "//iam.googleapis.com/locations/global/workforcePools/wf-pool/providers/azure";
    let srv = RoutedServer::start(vec![
        (
            "/v1/token",
            vec![Canned::json(200, json!({"access_token": "ya29.fed", "token_type": "Bearer", "expires_in": 3599}))],
        ),
        (
            ":generateAccessToken",
            vec![Canned::json(200, json!({"accessToken": "ya29.sa", "expireTime": rfc(now() + 1800)}))],
        ),
    ]);
    let dir = tempdir();
    let tok = dir.path().join("azure.jwt");
    std::fs::write(&tok, azure_token()).unwrap();
    let cfg = dir.path().join("cred.json");
    let config = |audience: &str, source: Value| {
        json!({"type": "external_account", "audience": audience, "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("{}/v1/token", srv.url), "credential_source": source,
            "service_account_impersonation_url": format!("{}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken", srv.url),
            "service_account_impersonation": {"token_lifetime_seconds": 1800, "delegates_hint": "x"},
            "workforce_pool_user_project": "billed-project", "universe_domain": "googleapis.com",
            "quota_project_id": "quota", "client_id": "oauth-client", "token_info_url": "https://sts.googleapis.com/v1/introspect",
            "client_secret": null})
    };
    let file_source = json!({"file": tok, "format": {"type": "text"}});
    std::fs::write(&cfg, config(WORKFORCE, file_source.clone()).to_string()).unwrap();
    let out = bin("wif-sts").arg("--credential-config").arg(&cfg).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let warnings: Vec<String> =
        stderr(&out).lines().filter(|l| l.starts_with("wif-sts: warning: ")).map(str::to_string).collect();
    assert_eq!(
        warnings,
        ["wif-sts: warning: the credential configuration's client_id, quota_project_id, service_account_impersonation.delegates_hint, token_info_url are not used by wif and ignored"],
        "one line, the null client_secret not among them"
    );
    let sts = &srv.requests()[0];
    assert_eq!(sts.field("audience").as_deref(), Some(WORKFORCE));
    let options: Value = serde_json::from_str(&sts.field("options").unwrap()).unwrap();
    assert_eq!(options, json!({"userProject": "billed-project"}));
    let doc = json_out(&out);
    assert_eq!(doc["sts"]["service_account_impersonation"], json!({"token_lifetime_seconds": 1800}));
    assert!(doc["sts"].get("universe_domain").is_none(), "the default universe is not carried");

    // wif-impersonate asks IAM for the configuration's lifetime, at its URL...
    let out = bin("wif-impersonate").write_stdin(out.stdout.clone()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let iam = srv.requests().pop().unwrap();
    assert!(iam.path.ends_with(&format!("/v1/projects/-/serviceAccounts/{SA}:generateAccessToken")), "{}", iam.path);
    assert_eq!(iam.json()["lifetime"], "1800s");
    assert_eq!(json_out(&out)["impersonated"]["lifetime"], "1800s");
    // ...unless its own command line (or environment) says otherwise.
    let sts_out = json_out(&bin("wif-sts").arg("--credential-config").arg(&cfg).output().unwrap()).to_string();
    let out = bin("wif-impersonate").args(["--lifetime", "10m"]).write_stdin(sts_out.clone()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(srv.requests().pop().unwrap().json()["lifetime"], "600s");
    let out = bin("wif-impersonate").env("WIF_IMPERSONATE_LIFETIME", "900s").write_stdin(sts_out).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(srv.requests().pop().unwrap().json()["lifetime"], "900s");

    // What wif cannot honour is refused with the reason, not silently skipped.
    let refusals = [
        (
            config(AUDIENCE, file_source.clone()),
            "workforce_pool_user_project is set but the audience is not a workforce pool",
        ),
        (config(WORKFORCE, json!({"executable": {"command": "/bin/true"}})), "executable-sourced credentials"),
        (config(WORKFORCE, json!({"file": tok, "url": "http://127.0.0.1:1/token"})), "both file and url"),
        (config(WORKFORCE, json!({"file": tok, "format": {"type": "xml"}})), "format.type is \"xml\""),
    ];
    for (bad, why) in refusals {
        std::fs::write(&cfg, bad.to_string()).unwrap();
        let out = bin("wif-sts").arg("--credential-config").arg(&cfg).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{why}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{why}: {}", stderr(&out));
    }
}

fn sts_doc() -> String {
    let mut d: Value = serde_json::from_str(&azure_doc()).unwrap();
    d["sts"] = json!({"token": "ya29.federated", "token_type": "Bearer", "expires_at": rfc(now() + 3600), "endpoint": "https://sts",
        "audience": AUDIENCE, "scope": "https://www.googleapis.com/auth/cloud-platform", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"});
    d.to_string()
}

fn rfc(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn impersonate_writes_the_token_file_atomically_with_mode_0600() {
    let expire = rfc(now() + 3600).replace(".000", "");
    let srv = TestServer::start(vec![Canned::json(
        200,
        json!({"accessToken": "ya29.service-account", "expireTime": expire}),
    )]);
    let dir = tempdir();
    let out_file = dir.path().join("wif_token.txt");
    let out = bin("wif-impersonate")
        .args(["--service-account", SA, "--endpoint", &srv.url, "--token-out"])
        .arg(&out_file)
        .write_stdin(sts_doc())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &srv.requests()[0];
    assert_eq!(r.path, format!("/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"));
    assert_eq!(r.header("authorization"), Some("Bearer ya29.federated"));
    assert_eq!(r.json(), json!({"scope": ["https://www.googleapis.com/auth/cloud-platform"], "lifetime": "3600s"}));
    assert_eq!(std::fs::read(&out_file).unwrap(), b"ya29.service-account");
    assert_mode_600(&out_file);
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("wif_token.txt.meta.json")).unwrap()).unwrap();
    assert_eq!(time_of(meta["expires_at"].as_str().unwrap()), time_of(&expire));
    let doc = json_out(&out);
    assert_eq!(doc["impersonated"]["service_account"], SA);
    assert_eq!(doc["impersonated"]["token_type"], "access_token");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temp files left");

    // ID tokens: generateIdToken with audience and includeEmail.
    let id = fake_jwt(json!({"aud": "https://svc", "exp": now() + 3600, "email": SA}));
    let srv = TestServer::start(vec![Canned::json(200, json!({"token": id}))]);
    let out = bin("wif-impersonate")
        .args([
            "--service-account",
            SA,
            "--endpoint",
            &srv.url,
            "--id-token",
            "--audience",
            "https://svc",
            "--include-email",
        ])
        .write_stdin(sts_doc())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &srv.requests()[0];
    assert!(r.path.ends_with(":generateIdToken"));
    assert_eq!(r.json(), json!({"audience": "https://svc", "includeEmail": true}));
    assert_eq!(json_out(&out)["impersonated"]["token_type"], "id_token");
}

fn assert_mode_600(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn the_whole_pipeline_in_one_shell_line() {
    let expire = rfc(now() + 3600).replace(".000", "");
    let srv = TestServer::start(vec![
        Canned::json(200, json!({"token_type": "Bearer", "expires_in": 3599, "access_token": azure_token()})),
        Canned::json(200, json!({"access_token": "ya29.fed", "token_type": "Bearer", "expires_in": 3599})),
        Canned::json(200, json!({"accessToken": "ya29.final", "expireTime": expire})),
    ]);
    let dir = tempdir();
    let bins = Path::new(env!("CARGO_BIN_EXE_wif-sign")).parent().unwrap().to_path_buf();
    let script = format!(
        "set -o pipefail; wif-sign --client-id {APP} --tenant-id {TENANT} --authority {u} --key {k} --cert {c} \
         | wif-azure --scope api://wif/.default | wif-sts --audience {AUDIENCE} --token-url {u}/v1/token \
         | wif-impersonate --service-account {SA} --endpoint {u} --token-out wif_token.txt > doc.json",
        u = srv.url,
        k = pki_file("app-rsa.key"),
        c = pki_file("app-rsa.crt")
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir.path())
        .env("PATH", format!("{}:{}", bins.display(), std::env::var("PATH").unwrap()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dir.path().join("wif_token.txt")).unwrap(), b"ya29.final");
    assert_mode_600(&dir.path().join("wif_token.txt"));
    let doc: Value = serde_json::from_slice(&std::fs::read(dir.path().join("doc.json")).unwrap()).unwrap();
    for s in ["assertion", "azure", "sts", "impersonated"] {
        assert!(doc[s]["token"].is_string(), "{s}");
    }
    assert_eq!(srv.requests().len(), 3);
    assert!(stderr(&out).is_empty(), "a good run is quiet: {}", stderr(&out));
}

/// Runs a step that must fail: checks the exit code, empty stdout, the message, and that
/// the previous token file is byte-for-byte intact.
fn expect_failure(tool: &str, args: &[&str], stdin: String, code: i32, needles: &[&str]) -> String {
    let dir = tempdir();
    let tok = dir.path().join("wif_token.txt");
    std::fs::write(&tok, b"previous-good-token").unwrap();
    let out = bin(tool)
        .args(args)
        .arg("--token-out")
        .arg(&tok)
        .arg("--retries")
        .arg("1")
        .write_stdin(stdin)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(code), "{tool} {args:?}: {}", stderr(&out));
    assert!(out.stdout.is_empty(), "stdout must be empty on failure");
    let err = stderr(&out);
    assert!(err.starts_with(&format!("{tool}: ")), "{err}");
    for n in needles {
        assert!(err.contains(n), "{tool} {args:?}: missing {n:?} in {err}");
    }
    assert_eq!(std::fs::read(&tok).unwrap(), b"previous-good-token");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp files left");
    for secret in ["ya29.federated", "previous-good-token"] {
        assert!(!err.contains(secret), "secret on stderr: {err}");
    }
    err
}

#[test]
fn bad_documents_and_usage() {
    let e = expect_failure(
        "wif-sts",
        &["--audience", AUDIENCE],
        "{\"azure\": {\"token\": \"ya29.federated".into(),
        3,
        &["not valid JSON"],
    );
    assert!(e.contains("reading the document on stdin"));
    expect_failure("wif-sts", &["--audience", AUDIENCE], "[1,2]".into(), 3, &["not an object"]);
    expect_failure(
        "wif-sts",
        &["--audience", AUDIENCE],
        "".into(),
        3,
        &["no \"azure\" section", "hint: ", "wif-azure"],
    );
    expect_failure("wif-impersonate", &["--service-account", SA], azure_doc(), 3, &["no \"sts\" section"]);
    expect_failure(
        "wif-sts",
        &["--audience", "//iam.googleapis.com/projects/my-proj/locations/global/workloadIdentityPools/p/providers/r"],
        azure_doc(),
        2,
        &["NUMBER"],
    );
    expect_failure(
        "wif-sts",
        &["--audience", AUDIENCE, "--token-url", "http://sts.example.com/v1/token"],
        azure_doc(),
        2,
        &["not loopback"],
    );
    expect_failure("wif-impersonate", &["--service-account", SA, "--lifetime", "13h"], sts_doc(), 2, &["43200s"]);
    // An expired subject token is caught before STS sees it.
    let mut d: Value = serde_json::from_str(&azure_doc()).unwrap();
    d["azure"]["claims"]["exp"] = json!(now() - 10);
    expect_failure(
        "wif-sts",
        &["--audience", AUDIENCE, "--token-url", "http://127.0.0.1:9/v1/token"],
        d.to_string(),
        3,
        &["expired"],
    );
}

#[test]
fn remote_refusals_have_hints_and_exit_4() {
    let srv = TestServer::start(vec![Canned::json(
        401,
        json!({"error": "invalid_client", "error_description": "AADSTS700027: Client assertion contains an invalid signature. [Reason - The key was not found.]\r\nTrace ID: abc\r\nCorrelation ID: def", "error_codes": [700027]}),
    )]);
    let doc = String::from_utf8(sign_doc(&srv.url, &[])).unwrap();
    let e = expect_failure(
        "wif-azure",
        &[],
        doc,
        4,
        &["requesting a token at", "invalid_client: AADSTS700027", "hint: ", "thumbprint"],
    );
    assert!(!e.contains("Trace ID"), "only the first line of Azure's description: {e}");

    for (code, needle) in [
        (700016, "not registered in this tenant"),
        (7000215, "secret"),
        (700024, "clock"),
        (70011, "scope"),
        (500011, "resource"),
        (50196, "loop"),
    ] {
        let srv = TestServer::start(vec![Canned::json(
            400,
            json!({"error": "invalid_request", "error_description": format!("AADSTS{code}: x"), "error_codes": [code]}),
        )]);
        let doc = String::from_utf8(sign_doc(&srv.url, &[])).unwrap();
        expect_failure("wif-azure", &[], doc, 4, &[&format!("AADSTS{code}"), needle]);
    }

    for (err, desc, needle) in [
        (
            "invalid_grant",
            "The audience in ID Token [api://x] does not match the expected audience.",
            "allowed audience",
        ),
        ("invalid_grant", "The issuer in ID Token does not match the expected issuer.", "issuer URI"),
        ("invalid_grant", "The given credential is rejected by the attribute condition.", "attribute condition"),
        ("invalid_grant", "ID Token issued at 1700000000 is stale to sign-in.", "run the pipeline"),
        ("invalid_target", "The target service indicated by the \"audience\" parameters is invalid.", "does not exist"),
        (
            "invalid_request",
            "Invalid value for \"audience\". This value should be the full resource name of the Identity Provider.",
            "PROJECT_NUMBER",
        ),
    ] {
        let srv = TestServer::start(vec![Canned::json(400, json!({"error": err, "error_description": desc}))]);
        let url = format!("{}/v1/token", srv.url);
        let e =
            expect_failure("wif-sts", &["--audience", AUDIENCE, "--token-url", &url], azure_doc(), 4, &[err, needle]);
        assert!(e.contains("exchanging the subject token at"), "{e}");
    }

    let srv = TestServer::start(vec![Canned::json(
        403,
        json!({"error": {"code": 403, "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).", "status": "PERMISSION_DENIED"}}),
    )]);
    expect_failure(
        "wif-impersonate",
        &["--service-account", SA, "--endpoint", &srv.url],
        sts_doc(),
        4,
        &[
            "PERMISSION_DENIED",
            "roles/iam.workloadIdentityUser",
            "principal://iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/pool-1/subject/sub-123",
        ],
    );
}

#[test]
fn unavailable_and_broken_remotes_exit_5() {
    // Retryable status: retried (one stderr line per retry), then exit 5.
    let srv = TestServer::start(vec![Canned::raw(503, "text/html", "<html>Service Unavailable</html>")]);
    let e = expect_failure(
        "wif-impersonate",
        &["--service-account", SA, "--endpoint", &srv.url],
        sts_doc(),
        5,
        &["HTTP 503"],
    );
    // The same line as wif-get's (tests/get.rs): what, why, which retry of how many, the pause.
    let retries = retry_lines(&e, "wif-impersonate");
    assert_eq!(retries.len(), 1, "{e}");
    let r = &retries[0];
    assert_eq!(r.what, format!("POST {}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken", srv.url));
    assert_eq!((r.why.as_str(), r.attempt, r.of), ("HTTP 503", 1, Some(1)));
    assert!((0.3..=0.7).contains(&r.delay_s), "the first backoff is 0.5 s ± 25 %: {e}");
    assert_eq!(srv.requests().len(), 2);

    // Truncated and non-JSON bodies.
    let srv = TestServer::start(vec![Canned::raw(200, "application/json", "{\"access_token\": \"ya29.tru")]);
    expect_failure("wif-sts", &["--audience", AUDIENCE, "--token-url", &srv.url], azure_doc(), 5, &["truncated JSON"]);
    let srv = TestServer::start(vec![Canned::raw(200, "text/html", "<html>proxy login</html>")]);
    expect_failure("wif-sts", &["--audience", AUDIENCE, "--token-url", &srv.url], azure_doc(), 5, &["not JSON"]);
    let srv = TestServer::start(vec![Canned::raw(404, "text/html", "<h1>Not Found</h1>")]);
    expect_failure(
        "wif-sts",
        &["--audience", AUDIENCE, "--token-url", &srv.url],
        azure_doc(),
        4,
        &["HTTP 404", "URL is wrong"],
    );

    // A dead server and a silent one.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    expect_failure(
        "wif-sts",
        &["--audience", AUDIENCE, "--token-url", &format!("http://127.0.0.1:{dead}/v1/token")],
        azure_doc(),
        5,
        &["connection refused"],
    );
    let mut slow = Canned::json(200, json!({"access_token": "late"}));
    slow.delay = std::time::Duration::from_secs(3);
    let srv = TestServer::start(vec![slow]);
    let started = std::time::Instant::now();
    expect_failure(
        "wif-sts",
        &["--audience", AUDIENCE, "--token-url", &srv.url, "--timeout", "1s"],
        azure_doc(),
        5,
        &["no answer within 1 s"],
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn settings_precedence_flag_env_document_file() {
    let dir = tempdir();
    let cfg = dir.path().join("wif.json");
    std::fs::write(&cfg, json!({"client_id": "from-file", "tenant_id": TENANT, "key": pki_file("app-rsa.key"), "cert": pki_file("app-rsa.crt")}).to_string()).unwrap();
    let client = |out: &std::process::Output| json_out(out)["assertion"]["client_id"].as_str().unwrap().to_string();

    let out = bin("wif-sign").arg("--config").arg(&cfg).output().unwrap();
    assert_eq!(client(&out), "from-file");
    let doc = json!({"config": {"client_id": "from-doc"}}).to_string();
    let out = bin("wif-sign").arg("--config").arg(&cfg).write_stdin(doc.clone()).output().unwrap();
    assert_eq!(client(&out), "from-doc");
    let out = bin("wif-sign")
        .arg("--config")
        .arg(&cfg)
        .env("WIF_CLIENT_ID", "from-env")
        .write_stdin(doc.clone())
        .output()
        .unwrap();
    assert_eq!(client(&out), "from-env");
    let out = bin("wif-sign")
        .arg("--config")
        .arg(&cfg)
        .env("WIF_CLIENT_ID", "from-env")
        .args(["--client-id", "from-flag"])
        .write_stdin(doc)
        .output()
        .unwrap();
    assert_eq!(client(&out), "from-flag");
    // The merged config travels on, so later steps see the file's settings too.
    assert_eq!(json_out(&out)["config"]["tenant_id"], TENANT);
    // Unknown keys are flagged; secrets are refused.
    std::fs::write(&cfg, json!({"client_secret": "s3cr3t", "tenant_id": TENANT}).to_string()).unwrap();
    let out = bin("wif-sign").arg("--config").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(!stderr(&out).contains("s3cr3t"));
}

#[test]
fn empty_stdin_is_an_empty_document() {
    let out = bin("wif-sign")
        .args([
            "--client-id",
            APP,
            "--tenant-id",
            TENANT,
            "--key",
            &pki_file("app-rsa.key"),
            "--cert",
            &pki_file("app-rsa.crt"),
        ])
        .pipe_stdin("/dev/null")
        .unwrap()
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_out(&out)["version"], 1);
}

#[test]
fn printed_credential_config_round_trips_through_wif_sts() {
    let srv = TestServer::start(vec![Canned::json(
        200,
        json!({"access_token": "ya29.fed", "token_type": "Bearer", "expires_in": 3599}),
    )]);
    let dir = tempdir();
    let tok = dir.path().join("azure.jwt");
    std::fs::write(&tok, azure_token()).unwrap();
    let out = bin("wif-sts")
        .args(["--print-credential-config", "--project-number", "123456789", "--pool", "pool-1", "--provider", "azure"])
        .args(["--service-account", SA, "--token-url", &format!("{}/v1/token", srv.url), "--credential-file"])
        .arg(&tok)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = json_out(&out);
    assert_eq!(cfg["type"], "external_account");
    assert_eq!(cfg["audience"], AUDIENCE);
    assert_eq!(cfg["credential_source"]["format"]["type"], "text");
    assert!(cfg["service_account_impersonation_url"].as_str().unwrap().ends_with(&format!("{SA}:generateAccessToken")));
    let file = dir.path().join("cred.json");
    std::fs::write(&file, out.stdout).unwrap();
    let out = bin("wif-sts").arg("--credential-config").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(srv.requests()[0].field("subject_token"), Some(azure_token_from(&tok)));
    assert_eq!(json_out(&out)["sts"]["service_account_impersonation_url"], cfg["service_account_impersonation_url"]);
    // A relative --credential-file is written absolute: client libraries run elsewhere.
    let out = bin("wif-sts")
        .current_dir(dir.path())
        .args(["--print-credential-config", "--project-number", "123456789", "--pool", "pool-1", "--provider", "azure"])
        .args(["--credential-file", "azure.jwt"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let file = json_out(&out)["credential_source"]["file"].as_str().unwrap().to_string();
    assert_eq!(std::fs::canonicalize(&file).unwrap(), std::fs::canonicalize(&tok).unwrap(), "{file}");
    assert!(Path::new(&file).is_absolute(), "{file}");
}

fn azure_token_from(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn the_example_config_uses_only_known_keys() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/wif.json")).unwrap();
    let cfg: Value = serde_json::from_str(&text).unwrap();
    for key in cfg.as_object().unwrap().keys() {
        assert!(wif::core::settings::KNOWN_KEYS.contains(&key.as_str()), "{key}");
    }
}

#[test]
fn sts_answer_with_a_header_injecting_token_type_is_refused_and_the_old_token_kept() {
    let dir = tempdir();
    let tok = dir.path().join("wif_token.txt");
    let meta = dir.path().join("wif_token.txt.meta.json");
    std::fs::write(&tok, b"previous-good-token").unwrap();
    std::fs::write(&meta, b"{\"previous\": true}\n").unwrap();
    let srv = TestServer::start(vec![Canned::json(
        200,
        json!({"access_token": "ya29.injected-answer-token", "token_type": "Bearer\r\nX-Injected: yes",
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "expires_in": 3600}),
    )]);
    let out = bin("wif-sts")
        .args(["--audience", AUDIENCE, "--token-url", &format!("{}/v1/token", srv.url), "--token-out"])
        .arg(&tok)
        .write_stdin(azure_doc())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "an answer no genuine STS gives: {err}");
    assert!(out.stdout.is_empty());
    assert!(
        err.contains(r#"the token_type in the answer, "Bearer\r\nX-Injected: yes", holds a line break"#),
        "says what is wrong, escaped: {err}"
    );
    assert!(err.lines().all(|l| l.starts_with("wif-sts: ")), "nothing forged on stderr: {err}");
    assert!(!err.contains("ya29.injected"), "never the token: {err}");
    assert_eq!(std::fs::read(&tok).unwrap(), b"previous-good-token");
    assert_eq!(std::fs::read(&meta).unwrap(), b"{\"previous\": true}\n");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temp files left");
}

#[test]
fn every_upstream_field_that_reaches_a_file_or_a_header_is_validated() {
    let exp = |secs: i64| rfc(now() + secs).replace(".000", "");
    let sts_answer = |extra: Value| {
        let mut a = json!({"access_token": "ya29.federated", "token_type": "Bearer",
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "expires_in": 3599});
        a.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        Canned::json(200, a)
    };
    let sts_cases = [
        (
            json!({"access_token": "ya29.federated\r\nX-Injected: yes"}),
            "the access_token in the answer holds a line break",
        ),
        (json!({"access_token": "ya29.federated with-space"}), "the access_token in the answer holds a space"),
        (json!({"issued_token_type": "urn:x\nX-Injected: yes"}), "the issued_token_type in the answer"),
        (json!({"issued_token_type": "access_token"}), "is not a URI"),
        (json!({"expires_in": -60}), "not a positive number of seconds"),
        (json!({"expires_in": 315_360_000}), "longer than any token service grants"),
        (json!({"expires_in": "an hour"}), "expires_in is not a number of seconds"),
    ];
    for (extra, needle) in sts_cases {
        let srv = TestServer::start(vec![sts_answer(extra)]);
        expect_failure("wif-sts", &["--audience", AUDIENCE, "--token-url", &srv.url], azure_doc(), 5, &[needle]);
    }

    // Azure AD: the token_type and the v1 absolute expiry reach the token file's metadata.
    for (answer, needle) in [
        (
            json!({"access_token": azure_token(), "token_type": "Bearer\r\nX-Injected: yes", "expires_in": 3599}),
            "token_type",
        ),
        (json!({"access_token": azure_token(), "token_type": "Bearer", "expires_on": "99999999999"}), "expires_on"),
    ] {
        let srv = TestServer::start(vec![Canned::json(200, answer)]);
        let doc = String::from_utf8(sign_doc(&srv.url, &[])).unwrap();
        expect_failure("wif-azure", &[], doc, 5, &[needle]);
    }

    let iam_cases = [
        (
            json!({"accessToken": "ya29.sa\r\nX-Injected: yes", "expireTime": exp(3600)}),
            "the accessToken in the answer holds a line break",
        ),
        (
            json!({"accessToken": "ya29.sa", "expireTime": "tomorrow"}),
            "the expireTime in the answer, \"tomorrow\", is not an RFC 3339 time",
        ),
        (json!({"accessToken": "ya29.sa", "expireTime": exp(30 * 86_400)}), "longer than any token service grants"),
        (
            json!({"accessToken": "ya29.sa", "expireTime": "9999-12-31T23:59:59Z"}),
            "longer than any token service grants",
        ),
    ];
    for (answer, needle) in iam_cases {
        let srv = TestServer::start(vec![Canned::json(200, answer)]);
        expect_failure("wif-impersonate", &["--service-account", SA, "--endpoint", &srv.url], sts_doc(), 5, &[needle]);
    }
    let srv = TestServer::start(vec![Canned::json(200, json!({"token": "eyJ.eyJ.sig\r\nX-Injected: yes"}))]);
    expect_failure(
        "wif-impersonate",
        &["--service-account", SA, "--endpoint", &srv.url, "--id-token", "--audience", "https://svc"],
        sts_doc(),
        5,
        &["the token in the answer holds a line break"],
    );
}

/// One tool run whose file setting names no file.
struct MissingFile {
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    stdin: String,
    /// The setting as the message must name it.
    origin: &'static str,
    /// The missing file.
    path: String,
}

impl MissingFile {
    fn new(args: &[&[&str]], origin: &'static str, path: String) -> MissingFile {
        MissingFile { args: s(&args.concat()), env: vec![], stdin: String::new(), origin, path }
    }
    fn env(mut self, name: &'static str, value: &str) -> MissingFile {
        self.env.push((name, value.to_string()));
        self
    }
    fn stdin(mut self, doc: String) -> MissingFile {
        self.stdin = doc;
        self
    }
}

/// A file setting that names no file: exit 6, the message names the setting the way the user
/// gave it (flag, environment variable or config key) and the path, and the hint says to
/// check that setting. Nothing on stdout.
#[test]
fn a_missing_file_names_the_setting_that_gave_it_and_hints_at_the_fix() {
    let dir = tempdir();
    let gone = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (key, cert, ca) = (pki_file("app-rsa.key"), pki_file("app-rsa.crt"), pki_file("ca-chain.crt"));
    let (client_crt, client_key) = (pki_file("client.crt"), pki_file("client.key"));
    let (server_crt, server_key) = (pki_file("server-chain.crt"), pki_file("server.key"));
    let sign: &[&str] = &["wif-sign", "--client-id", APP, "--tenant-id", TENANT];
    let get: &[&str] = &["wif-get", "--url", "https://127.0.0.1:1/get_wif_token"];
    let serve: &[&str] = &["wif-serve", "--listen", "127.0.0.1:0", "--token", "/nonexistent/wif_token.txt"];
    let in_config = |key: &str, path: String| json!({"config": {key: path}}).to_string();
    let cases = [
        MissingFile::new(&[sign, &["--key", &gone("k.pem"), "--cert", &cert]], "--key", gone("k.pem")),
        MissingFile::new(&[sign, &["--cert", &cert]], "WIF_KEY", gone("k.pem")).env("WIF_KEY", &gone("k.pem")),
        MissingFile::new(&[sign, &["--cert", &cert]], "config key \"key\"", gone("k.pem"))
            .stdin(in_config("key", gone("k.pem"))),
        MissingFile::new(&[sign, &["--key", &key, "--cert", &gone("c.crt")]], "--cert", gone("c.crt")),
        MissingFile::new(
            &[sign, &["--key", &pki_file("app.p12"), "--key-password-file", &gone("pw")]],
            "--key-password-file",
            gone("pw"),
        ),
        MissingFile::new(&[sign, &["--config", &gone("wif.json")]], "--config", gone("wif.json")),
        MissingFile::new(&[&["wif-azure", "--from-file", &gone("t.jwt")]], "--from-file", gone("t.jwt")),
        MissingFile::new(&[&["wif-emulate", "--config", &gone("emu.json")]], "--config", gone("emu.json")),
        MissingFile::new(
            &[&["wif-azure", "--client-id", APP, "--token-url", "http://127.0.0.1:1/token"]],
            "WIF_CLIENT_SECRET_FILE",
            gone("secret"),
        )
        .env("WIF_CLIENT_SECRET_FILE", &gone("secret")),
        MissingFile::new(
            &[&["wif-sts", "--audience", AUDIENCE, "--ca-file", &gone("ca.pem")]],
            "--ca-file",
            gone("ca.pem"),
        )
        .stdin(azure_doc()),
        MissingFile::new(&[&["wif-impersonate", "--service-account", SA]], "SSL_CERT_FILE", gone("ca.pem"))
            .env("SSL_CERT_FILE", &gone("ca.pem"))
            .stdin(sts_doc()),
        MissingFile::new(
            &[get, &["--cert", &gone("c.crt"), "--key", &client_key, "--ca", &ca]],
            "--cert",
            gone("c.crt"),
        ),
        MissingFile::new(
            &[get, &["--cert", &client_crt, "--key", &gone("c.key"), "--ca", &ca]],
            "--key",
            gone("c.key"),
        ),
        MissingFile::new(&[get, &["--cert", &client_crt, "--key", &client_key]], "WIF_GET_CA", gone("ca.pem"))
            .env("WIF_GET_CA", &gone("ca.pem")),
        MissingFile::new(
            &[serve, &["--cert", &gone("s.crt"), "--key", &server_key, "--client-ca", &ca]],
            "--cert",
            gone("s.crt"),
        ),
        MissingFile::new(
            &[serve, &["--cert", &server_crt, "--key", &gone("s.key"), "--client-ca", &ca]],
            "--key",
            gone("s.key"),
        ),
        MissingFile::new(
            &[serve, &["--cert", &server_crt, "--key", &server_key]],
            "config key \"client_ca\"",
            gone("ca.pem"),
        )
        .stdin(in_config("client_ca", gone("ca.pem"))),
        MissingFile::new(
            &[serve, &["--cert", &server_crt, "--key", &server_key, "--client-ca", &ca, "--crl", &gone("crl.pem")]],
            "--crl",
            gone("crl.pem"),
        ),
    ];
    for MissingFile { args, env, stdin, origin, path } in cases {
        let mut cmd = bin(&args[0]);
        cmd.args(&args[1..]).write_stdin(stdin).envs(env.iter().map(|(k, v)| (k, v)));
        let out = cmd.output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(6), "{args:?} {env:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let mut lines = err.lines().filter(|l| !l.contains(": warning: "));
        let (message, hint) = (lines.next().unwrap_or_default(), lines.next().unwrap_or_default());
        assert!(message.contains(&format!("({origin})")), "{args:?} {env:?}: the message names {origin}: {err}");
        assert!(message.ends_with(&format!("{path}: no such file or directory")), "{args:?}: {err}");
        let hint = hint.strip_prefix(&format!("{}: hint: ", args[0])).unwrap_or_else(|| panic!("a hint: {err}"));
        assert!(hint.starts_with(&format!("there is no file at that path: check {origin}; it names ")), "{hint}");
    }
}

fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}
