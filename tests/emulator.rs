//! wif-emulate end to end: the pipeline's binaries against the emulator over real sockets
//! (plain HTTP and TLS), every refusal with its exact error code and exit status, fault
//! injection, the request log, and the official Python libraries (MSAL, google-auth).

use crate::common::server::now;
use crate::common::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};

pub(crate) const TENANT: &str = "7a1c9e4b-0d2f-4c3a-9b8e-1f2a3b4c5d6e";
pub(crate) const APP: &str = "0b6f3d2a-5c4e-4f1a-8e7d-9a0b1c2d3e4f";
const APP_OBJECT: &str = "5e4d3c2b-1a09-4f8e-8d7c-6b5a49382716";
const API_APP: &str = "c9d8e7f6-a5b4-4c3d-8e2f-1a0b9c8d7e6f";
const POOL: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/wif-pool";
pub(crate) const SA: &str = "wif-demo@wif-demo.iam.gserviceaccount.com";

pub(crate) fn provider(name: &str) -> String {
    format!("{POOL}/providers/{name}")
}

/// The example configuration shipped in examples/emulator.json.
pub(crate) fn example() -> Value {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/emulator.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A running wif-emulate; killed when dropped.
pub(crate) struct Emu {
    child: Child,
    pub(crate) url: String,
    pub(crate) tls_url: Option<String>,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Emu {
    pub(crate) fn start(config: &Value, extra: &[&str]) -> Emu {
        let dir = tempdir();
        // Certificate paths in the config are relative to it: pki/ next to the config file.
        std::os::unix::fs::symlink(pki(), dir.path().join("pki")).unwrap();
        let cfg = dir.path().join("emulator.json");
        std::fs::write(&cfg, config.to_string()).unwrap();
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("wif-emulate"))
            .arg("--config")
            .arg(&cfg)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("a first line").unwrap();
        let start: Value = serde_json::from_str(&first).unwrap();
        assert_eq!(start["event"], "listening");
        let url = start["url"].as_str().unwrap().to_string();
        assert_eq!(url, format!("http://{}", start["address"].as_str().unwrap()));
        let tls_url = start["tls_url"].as_str().map(str::to_string);
        let log = Arc::new(Mutex::new(vec![first]));
        let sink = log.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        Emu { child, url, tls_url, log, _dir: dir }
    }

    fn example(extra: &[&str]) -> Emu {
        Emu::start(&example(), extra)
    }

    /// The request log lines, decoded (each must be JSON).
    pub(crate) fn requests(&self) -> Vec<Value> {
        // The emulator logs before it answers; give the reader thread a moment.
        std::thread::sleep(std::time::Duration::from_millis(250));
        let lines = self.log.lock().unwrap().clone();
        lines
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}")))
            .filter(|v| v["event"] == "request")
            .collect()
    }

    pub(crate) fn raw_log(&self) -> String {
        std::thread::sleep(std::time::Duration::from_millis(250));
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn run(name: &str, args: &[String], stdin: &[u8]) -> Output {
    bin(name).args(args).write_stdin(stdin.to_vec()).output().unwrap()
}

pub(crate) fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

pub(crate) fn ok(out: Output, what: &str) -> Vec<u8> {
    assert!(out.status.success(), "{what} failed: {}", stderr(&out));
    out.stdout
}

/// Asserts a refusal: exit 4 and the code in stderr.
fn refused(out: &Output, code: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(4), "expected exit 4 with {code}, got {:?}: {err}", out.status.code());
    assert!(err.contains(code), "expected {code} in: {err}");
}

/// wif-sign at `authority` for a tenant and client, with the registered RSA key.
fn sign_as(authority: &str, tenant: &str, client: &str) -> Vec<u8> {
    let mut a = s(&["--authority", authority, "--tenant-id", tenant, "--client-id", client]);
    a.extend(s(&["--key", &pki_file("app-rsa.key"), "--cert", &pki_file("app-rsa.crt")]));
    ok(run("wif-sign", &a, b""), "wif-sign")
}

fn sign(emu: &Emu, key: &str, cert: &str, extra: &[&str]) -> Vec<u8> {
    let mut a = s(&["--authority", &emu.url, "--tenant-id", TENANT, "--client-id", APP]);
    a.extend(s(&["--key", &pki_file(key), "--cert", &pki_file(cert)]));
    a.extend(s(extra));
    ok(run("wif-sign", &a, b""), "wif-sign")
}

fn azure(doc: &[u8], extra: &[&str]) -> Output {
    run("wif-azure", &s(extra), doc)
}

fn sts(emu: &Emu, doc: &[u8], provider_name: &str) -> Output {
    let url = format!("{}/v1/token", emu.url);
    run("wif-sts", &s(&["--token-url", &url, "--audience", &provider(provider_name)]), doc)
}

fn impersonate(emu: &Emu, doc: &[u8], extra: &[&str]) -> Output {
    let mut a = s(&["--endpoint", &emu.url, "--service-account", SA]);
    a.extend(s(extra));
    run("wif-impersonate", &a, doc)
}

/// Fetches a URL from the emulator and decodes its JSON.
fn get_json(url: &str) -> Value {
    let mut resp = ureq::get(url).call().unwrap();
    serde_json::from_reader(resp.body_mut().as_reader()).unwrap()
}

/// Verifies an emulator-issued JWT against the JWKS it publishes.
fn verify_with_jwks(jwks_url: &str, token: &str, aud: &str) -> Value {
    let jwks = get_json(jwks_url);
    let header = jsonwebtoken::decode_header(token).unwrap();
    let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"].as_str() == header.kid.as_deref()).unwrap();
    let dk =
        jsonwebtoken::DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[aud]);
    jsonwebtoken::decode::<Value>(token, &dk, &v).expect("the token verifies with the published JWKS").claims
}

/// The full v2 pipeline; returns the final document and the token file's content.
pub(crate) fn full_pipeline(emu: &Emu, key: &str, cert: &str, sign_extra: &[&str]) -> (Value, String) {
    let dir = tempdir();
    let out = dir.path().join("wif_token.txt");
    let doc = pipeline_to(emu, key, cert, sign_extra, &out);
    (doc, std::fs::read_to_string(&out).unwrap())
}

/// The full v2 pipeline, the token written to `out` with its metadata (`--token-out`);
/// returns the final document.
pub(crate) fn pipeline_to(emu: &Emu, key: &str, cert: &str, sign_extra: &[&str], out: &Path) -> Value {
    let doc = sign(emu, key, cert, sign_extra);
    let doc = ok(azure(&doc, &["--scope", "api://wif-gcp/.default"]), "wif-azure");
    let doc = ok(sts(emu, &doc, "azure"), "wif-sts");
    let doc = ok(impersonate(emu, &doc, &["--token-out", out.to_str().unwrap()]), "wif-impersonate");
    serde_json::from_slice(&doc).unwrap()
}

#[test]
fn v2_pipeline_with_rsa_key_end_to_end() {
    let emu = Emu::example(&[]);
    let (doc, token) = full_pipeline(&emu, "app-rsa.key", "app-rsa.crt", &[]);
    assert!(token.starts_with("ya29."), "an opaque Google token");
    assert_eq!(doc["impersonated"]["token"], token.as_str());
    let exp = doc["impersonated"]["expires_at"].as_str().unwrap();
    let at = time::OffsetDateTime::parse(exp, &time::format_description::well_known::Rfc3339).unwrap();
    assert!((at.unix_timestamp() - now() - 3600).abs() < 30, "{exp}");
    // The Azure token is a real signed JWT with Azure v2 claims.
    let az = doc["azure"]["token"].as_str().unwrap();
    let claims = verify_with_jwks(&format!("{}/{TENANT}/discovery/v2.0/keys", emu.url), az, API_APP);
    assert_eq!(claims["iss"], format!("https://login.microsoftonline.com/{TENANT}/v2.0"));
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["sub"], APP_OBJECT);
    assert_eq!(claims["oid"], APP_OBJECT);
    assert_eq!(claims["tid"], TENANT);
    assert_eq!(claims["azp"], APP);
    assert_eq!(claims["azpacr"], "2");
    assert!(doc["sts"]["token"].as_str().unwrap().starts_with("ya29."));
    // One log line per request, with outcomes, and never a token or assertion.
    let reqs = emu.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths[..3],
        [
            format!("/{TENANT}/oauth2/v2.0/token"),
            "/v1/token".to_string(),
            format!("/v1/projects/-/serviceAccounts/{SA}:generateAccessToken")
        ]
    );
    assert!(reqs[..3].iter().all(|r| r["status"] == 200 && r["outcome"] == "ok" && r["method"] == "POST"));
    let raw = emu.raw_log();
    for secret in
        [token.as_str(), az, doc["sts"]["token"].as_str().unwrap(), doc["assertion"]["token"].as_str().unwrap()]
    {
        assert!(!raw.contains(secret), "a token leaked into the log");
    }
}

#[test]
fn v2_pipeline_with_ec_key_and_sha256_thumbprint() {
    let emu = Emu::example(&[]);
    let (doc, token) = full_pipeline(&emu, "app-ec.key", "app-ec.crt", &[]);
    assert!(token.starts_with("ya29."));
    assert_eq!(doc["assertion"]["header"]["alg"], "ES256");
    let (doc, _) = full_pipeline(&emu, "app-rsa.key", "app-rsa.crt", &["--thumbprint", "sha256"]);
    assert_eq!(doc["assertion"]["header"]["alg"], "PS256");
    assert!(doc["assertion"]["header"]["x5t#S256"].is_string());
    let (doc, _) = full_pipeline(&emu, "app-ec.key", "app-ec.crt", &["--thumbprint", "sha256", "--x5c"]);
    assert_eq!(doc["assertion"]["header"]["alg"], "ES256");
}

#[test]
fn v1_pipeline_with_resource() {
    let emu = Emu::example(&[]);
    let v1 = format!("{}/{TENANT}/oauth2/token", emu.url);
    let doc = sign(&emu, "app-rsa.key", "app-rsa.crt", &["--audience", &v1]);
    let doc = ok(azure(&doc, &["--resource", "api://wif-gcp-v1"]), "wif-azure v1");
    let d: Value = serde_json::from_slice(&doc).unwrap();
    let claims = verify_with_jwks(
        &format!("{}/{TENANT}/discovery/keys", emu.url),
        d["azure"]["token"].as_str().unwrap(),
        "api://wif-gcp-v1",
    );
    assert_eq!(claims["iss"], format!("https://sts.windows.net/{TENANT}/"));
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["appid"], APP);
    assert_eq!(claims["sub"], APP_OBJECT);
    // v1 answers expiry as strings; the client computed it anyway.
    assert!(d["azure"]["expires_at"].is_string());
    let doc = ok(sts(&emu, &doc, "azure-v1"), "wif-sts v1");
    let out = impersonate(&emu, &doc, &[]);
    let d: Value = serde_json::from_slice(&ok(out, "wif-impersonate")).unwrap();
    assert!(d["impersonated"]["token"].as_str().unwrap().starts_with("ya29."));
}

#[test]
fn generic_issuer_jwt_bearer_and_client_credentials() {
    let emu = Emu::example(&[]);
    let token_url = format!("{}/issuers/sac/v1/token", emu.url);
    let sac = provider("sac");
    let sign_sac = || {
        let a = s(&[
            "--client-id",
            "sac-client",
            "--audience",
            &token_url,
            "--key",
            &pki_file("app-ec.key"),
            "--cert",
            &pki_file("app-ec.crt"),
        ]);
        ok(run("wif-sign", &a, b""), "wif-sign sac")
    };
    for grant in ["jwt-bearer", "client-credentials"] {
        let doc = ok(azure(&sign_sac(), &["--grant", grant, "--token-url", &token_url, "--audience", &sac]), grant);
        let d: Value = serde_json::from_slice(&doc).unwrap();
        let claims =
            verify_with_jwks(&format!("{}/issuers/sac/jwks", emu.url), d["azure"]["token"].as_str().unwrap(), &sac);
        assert_eq!(claims["iss"], "https://issuer.example.com");
        assert_eq!(claims["sub"], "sac-client");
        let doc = ok(sts(&emu, &doc, "sac"), "wif-sts sac");
        // The SA is bound to principalSet://…/attribute.client/sac-client.
        ok(impersonate(&emu, &doc, &[]), "wif-impersonate sac");
    }
    let disc = get_json(&format!("{}/issuers/sac/.well-known/openid-configuration", emu.url));
    assert_eq!(disc["token_endpoint"], token_url);
    assert_eq!(disc["issuer"], "https://issuer.example.com");
    // An audience the client is not authorized for.
    let other = provider("azure");
    let out = azure(&sign_sac(), &["--grant", "jwt-bearer", "--token-url", &token_url, "--audience", &other]);
    refused(&out, "invalid_target");
    // A key the client did not register.
    let a = s(&[
        "--client-id",
        "sac-client",
        "--audience",
        &token_url,
        "--key",
        &pki_file("app-rsa.key"),
        "--cert",
        &pki_file("app-rsa.crt"),
    ]);
    let doc = ok(run("wif-sign", &a, b""), "wif-sign");
    refused(&azure(&doc, &["--grant", "jwt-bearer", "--token-url", &token_url, "--audience", &sac]), "invalid_grant");
}

#[test]
fn id_token_and_imds() {
    let emu = Emu::example(&[]);
    let doc = sign(&emu, "app-rsa.key", "app-rsa.crt", &[]);
    let doc = ok(azure(&doc, &["--scope", "api://wif-gcp/.default"]), "wif-azure");
    let doc = ok(sts(&emu, &doc, "azure"), "wif-sts");
    let out = impersonate(&emu, &doc, &["--id-token", "--audience", "https://svc.example.com", "--include-email"]);
    let d: Value = serde_json::from_slice(&ok(out, "id token")).unwrap();
    let (_, claims) = wif::core::jwt::decode_unverified(d["impersonated"]["token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["aud"], "https://svc.example.com");
    assert_eq!(claims["email"], SA);
    assert_eq!(claims["iss"], "https://accounts.google.com");

    let imds = format!("{}/metadata/identity/oauth2/token", emu.url);
    let out = run("wif-azure", &s(&["--imds", "--imds-endpoint", &imds, "--resource", "api://wif-gcp-v1"]), b"");
    let d: Value = serde_json::from_slice(&ok(out, "imds")).unwrap();
    assert_eq!(d["azure"]["claims"]["aud"], "api://wif-gcp-v1");
    assert_eq!(d["azure"]["claims"]["sub"], "f0e1d2c3-b4a5-4968-8776-655443322110");
    // IMDS insists on the Metadata header.
    let resp = ureq::get(&format!("{imds}?api-version=2018-02-01&resource=api://wif-gcp-v1"))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[test]
fn azure_refusals_have_the_real_codes() {
    let mut cfg = example();
    cfg["azure"]["apps"][0]["secrets"] = json!(["s3cret-value"]);
    let emu = Emu::start(&cfg, &[]);
    let scope = ["--scope", "api://wif-gcp/.default"];
    // A certificate that is not registered.
    refused(&azure(&sign(&emu, "other-app-rsa.key", "other-app-rsa.crt", &[]), &scope), "AADSTS700027");
    // An unknown client id.
    refused(&azure(&sign_as(&emu.url, TENANT, "11111111-2222-4333-8444-555555555555"), &scope), "AADSTS700016");
    // An unknown tenant.
    refused(&azure(&sign_as(&emu.url, "contoso.onmicrosoft.com", APP), &scope), "AADSTS90002");
    // The tenant's domain name works like its id.
    ok(azure(&sign_as(&emu.url, "wifdemo.onmicrosoft.com", APP), &scope), "tenant domain");
    // A scope without /.default, and a resource that does not exist.
    let doc = sign(&emu, "app-rsa.key", "app-rsa.crt", &[]);
    refused(&azure(&doc, &["--scope", "api://wif-gcp/read"]), "AADSTS70011");
    let doc = sign(&emu, "app-rsa.key", "app-rsa.crt", &[]);
    refused(&azure(&doc, &["--scope", "api://nope/.default"]), "AADSTS500011");
    // A replayed assertion: the same document twice.
    let doc = sign(&emu, "app-rsa.key", "app-rsa.crt", &[]);
    ok(azure(&doc, &scope), "first use");
    refused(&azure(&doc, &scope), "AADSTS50013");
    // An expired assertion.
    let doc = sign(&emu, "app-rsa.key", "app-rsa.crt", &["--lifetime", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    refused(&azure(&doc, &scope), "AADSTS700024");
    // An assertion whose aud is another endpoint (signed for v2, sent to v1).
    let mut d: Value = serde_json::from_slice(&sign(&emu, "app-rsa.key", "app-rsa.crt", &[])).unwrap();
    d["assertion"]["token_endpoint"] = json!(format!("{}/{TENANT}/oauth2/token", emu.url));
    refused(&azure(d.to_string().as_bytes(), &["--resource", "api://wif-gcp-v1"]), "AADSTS700023");
    // Client secrets: wrong and right.
    let tok = format!("{}/{TENANT}/oauth2/v2.0/token", emu.url);
    let with_secret = |secret: &str| {
        bin("wif-azure")
            .args([
                "--client-id",
                APP,
                "--client-secret-env",
                "EMU_SECRET",
                "--token-url",
                &tok,
                "--scope",
                "api://wif-gcp/.default",
            ])
            .env("EMU_SECRET", secret)
            .output()
            .unwrap()
    };
    refused(&with_secret("wrong"), "AADSTS7000215");
    let d: Value = serde_json::from_slice(&ok(with_secret("s3cret-value"), "secret")).unwrap();
    let (_, claims) = wif::core::jwt::decode_unverified(d["azure"]["token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["azpacr"], "1");
    // The client's hint fires on the emulator's answer.
    let out = azure(&sign(&emu, "other-app-rsa.key", "other-app-rsa.crt", &[]), &scope);
    assert!(stderr(&out).contains("hint:") && stderr(&out).contains("thumbprint"), "{}", stderr(&out));
    let outcomes: Vec<String> = emu.requests().iter().map(|r| r["outcome"].as_str().unwrap().to_string()).collect();
    assert!(outcomes.contains(&"AADSTS700027".to_string()), "{outcomes:?}");
}

/// A token signed like Azure's but by another key.
fn forged_azure_token() -> String {
    let pem = std::fs::read(pki_file("app-rsa.key")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let claims = json!({
        "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"), "aud": API_APP,
        "sub": APP_OBJECT, "tid": TENANT, "iat": now(), "exp": now() + 600,
    });
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).unwrap()
}

fn azure_doc(emu: &Emu) -> Vec<u8> {
    ok(azure(&sign(emu, "app-rsa.key", "app-rsa.crt", &[]), &["--scope", "api://wif-gcp/.default"]), "wif-azure")
}

#[test]
fn sts_and_iam_refusals() {
    let mut cfg = example();
    cfg["google"]["pools"][0]["providers"].as_array_mut().unwrap().extend([
        json!({"id": "wrong-aud", "issuer": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
               "allowed_audiences": ["api://something-else"], "attribute_mapping": {"google.subject": "assertion.sub"}}),
        json!({"id": "strict", "issuer": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
               "allowed_audiences": [API_APP], "attribute_mapping": {"google.subject": "assertion.sub"},
               "attribute_condition": "assertion.azp in ['someone-else'] && !(assertion.tid == '')"}),
        json!({"id": "open", "issuer": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
               "allowed_audiences": [API_APP], "attribute_mapping": {"google.subject": "'azure::' + assertion.sub"}}),
    ]);
    cfg["google"]["service_accounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"email": "unbound@wif-demo.iam.gserviceaccount.com"}));
    let emu = Emu::start(&cfg, &[]);
    let doc = azure_doc(&emu);
    let aud_out = sts(&emu, &doc, "wrong-aud");
    refused(&aud_out, "invalid_grant");
    assert!(stderr(&aud_out).contains("does not match the expected audience"));
    assert!(stderr(&aud_out).contains("hint: the subject token's `aud`"), "{}", stderr(&aud_out));
    let cond = sts(&emu, &doc, "strict");
    refused(&cond, "invalid_grant");
    assert!(stderr(&cond).contains("hint: the provider's attribute condition"), "{}", stderr(&cond));
    let iss = sts(&emu, &doc, "azure-v1");
    refused(&iss, "invalid_grant");
    assert!(stderr(&iss).contains("hint: the subject token's `iss`"), "{}", stderr(&iss));
    refused(&sts(&emu, &doc, "no-such-provider"), "invalid_target");
    let url = format!("{}/v1/token", emu.url);
    let scope_out =
        run("wif-sts", &s(&["--token-url", &url, "--audience", &provider("azure"), "--scope", "openid"]), &doc);
    refused(&scope_out, "invalid_scope");
    // A token with the right claims but another key's signature.
    let dir = tempdir();
    let forged = dir.path().join("forged.jwt");
    std::fs::write(&forged, forged_azure_token()).unwrap();
    let fdoc = ok(run("wif-azure", &s(&["--from-file", forged.to_str().unwrap()]), b""), "from-file");
    let sig = sts(&emu, &fdoc, "azure");
    refused(&sig, "invalid_grant");
    assert!(stderr(&sig).contains("hint: STS could not verify the token's signature"), "{}", stderr(&sig));

    // The subject is azure::SUB via the "open" provider, and nobody bound that principal.
    let open = ok(sts(&emu, &doc, "open"), "open provider");
    let out = impersonate(&emu, &open, &[]);
    refused(&out, "PERMISSION_DENIED");
    assert!(stderr(&out).contains("iam.serviceAccounts.getAccessToken"));
    // A service account without bindings, and lifetimes over an hour.
    let fed = ok(sts(&emu, &doc, "azure"), "wif-sts");
    let out = run(
        "wif-impersonate",
        &s(&["--endpoint", &emu.url, "--service-account", "unbound@wif-demo.iam.gserviceaccount.com"]),
        &fed,
    );
    refused(&out, "PERMISSION_DENIED");
    assert!(stderr(&out).contains("roles/iam.workloadIdentityUser"), "the client's hint: {}", stderr(&out));
    refused(&impersonate(&emu, &fed, &["--lifetime", "2h"]), "INVALID_ARGUMENT");
    // The same federated token still works for a proper request.
    ok(impersonate(&emu, &fed, &["--lifetime", "10m"]), "10m");
}

#[test]
fn expired_subject_token_and_federated_token() {
    // Long enough for sign | azure | sts on a busy machine, short enough to wait out.
    let emu = Emu::example(&["--token-lifetime", "5s"]);
    let dir = tempdir();
    let az_file = dir.path().join("azure.jwt");
    let doc = sign(&emu, "app-rsa.key", "app-rsa.crt", &[]);
    let doc =
        ok(azure(&doc, &["--scope", "api://wif-gcp/.default", "--token-out", az_file.to_str().unwrap()]), "azure");
    let fed = ok(sts(&emu, &doc, "azure"), "sts");
    std::thread::sleep(std::time::Duration::from_millis(6100));
    // STS refuses the expired Azure token (given through a credential configuration, so
    // wif-sts's own expiry check does not stop it first).
    let cc = dir.path().join("cred.json");
    let conf = json!({"type": "external_account", "audience": provider("azure"),
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/v1/token", emu.url), "credential_source": {"file": az_file}});
    std::fs::write(&cc, conf.to_string()).unwrap();
    let out = run("wif-sts", &s(&["--credential-config", cc.to_str().unwrap()]), b"");
    refused(&out, "invalid_grant");
    assert!(stderr(&out).contains("expired"));
    // IAM refuses the expired federated token (its expiry taken out of the document).
    let mut d: Value = serde_json::from_slice(&fed).unwrap();
    d["sts"]["expires_at"] = Value::Null;
    let out = impersonate(&emu, d.to_string().as_bytes(), &[]);
    refused(&out, "UNAUTHENTICATED");
}

#[test]
fn fault_injection_retries_and_permanent_failure() {
    let emu = Emu::example(&["--fail-first", "2"]);
    let (_, token) = full_pipeline(&emu, "app-rsa.key", "app-rsa.crt", &[]);
    assert!(token.starts_with("ya29."));
    let outcomes: Vec<String> = emu.requests().iter().map(|r| r["outcome"].as_str().unwrap().to_string()).collect();
    assert_eq!(&outcomes[..3], ["injected_503", "injected_503", "ok"]);

    let emu = Emu::example(&["--fail-first", "100"]);
    let doc = sign(&emu, "app-rsa.key", "app-rsa.crt", &[]);
    let out = azure(&doc, &["--scope", "api://wif-gcp/.default", "--retries", "1"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(out.stdout.is_empty());

    let emu = Emu::example(&["--delay", "3s"]);
    let doc = sign(&emu, "app-rsa.key", "app-rsa.crt", &[]);
    let out = azure(&doc, &["--scope", "api://wif-gcp/.default", "--retries", "0", "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
}

#[test]
fn tls_listener_discovery_and_sigterm() {
    let emu = tls_emu(&example());
    let tls = emu.tls_url.clone().expect("tls_url");
    let doc = sign_as(&tls, TENANT, APP);
    let out = azure(&doc, &["--scope", "api://wif-gcp/.default", "--ca-file", &pki_file("ca-chain.crt")]);
    let d: Value = serde_json::from_slice(&ok(out, "azure over TLS")).unwrap();
    assert_eq!(d["azure"]["claims"]["aud"], API_APP);
    assert!(emu.requests().iter().any(|r| r["scheme"] == "https" && r["status"] == 200));
    // Without the CA the handshake fails: refused (exit 4) at once, not retried as a network
    // error, with the hint for an untrusted certificate.
    let started = std::time::Instant::now();
    let out = azure(&doc, &["--scope", "api://wif-gcp/.default", "--retries", "3"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("--ca-file"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "retried: {:?}", started.elapsed());
    // Discovery names endpoints on the listener that was asked.
    let disc = get_json(&format!("{}/{TENANT}/v2.0/.well-known/openid-configuration", emu.url));
    assert_eq!(disc["token_endpoint"], format!("{}/{TENANT}/oauth2/v2.0/token", emu.url));
    assert_eq!(disc["issuer"], format!("https://login.microsoftonline.com/{TENANT}/v2.0"));
    assert_eq!(get_json(disc["jwks_uri"].as_str().unwrap())["keys"][0]["kty"], "RSA");

    let mut emu = emu;
    let pid = emu.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = emu.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(emu.raw_log().contains("\"stopped\""));
}

#[test]
fn example_config_and_usage() {
    let out = bin("wif-emulate").arg("--print-example-config").output().unwrap();
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, example());
    let out = bin("wif-emulate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let dir = tempdir();
    let cfg = dir.path().join("bad.json");
    std::fs::write(
        &cfg,
        r#"{"azure": {"tenant": "7a1c9e4b-0d2f-4c3a-9b8e-1f2a3b4c5d6e", "apps": [{"client_id": "x"}]}}"#,
    )
    .unwrap();
    let out = bin("wif-emulate").args(["--config", cfg.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = bin("wif-emulate").args(["--config", cfg.to_str().unwrap(), "--listen", "10.1.2.3:80"]).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
}

// ---- The official libraries (MSAL Python, google-auth Python) against the emulator. ----

fn interop_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop").join(name)
}

pub(crate) fn python(script: &str, args: &[String], env: &[(&str, String)]) -> (Option<i32>, Value, String) {
    let mut c = std::process::Command::new("python3");
    c.arg(interop_script(script)).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{script} printed no JSON ({e}): {} {}", String::from_utf8_lossy(&out.stdout), stderr(&out))
    });
    (out.status.code(), v, stderr(&out))
}

fn sha1_hex(cert: &str) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha1", "-in", cert])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().rsplit('=').next().unwrap().replace(':', "")
}

fn msal(emu: &Emu, key: &str, cert: &str, scope: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
    let authority = format!("{}/{TENANT}", emu.tls_url.as_ref().unwrap());
    let mut args = s(&[&authority, APP, &pki_file(key), &sha1_hex(&pki_file(cert)), scope]);
    args.extend(s(extra));
    python("msal_client.py", &args, &[("REQUESTS_CA_BUNDLE", pki_file("ca-chain.crt"))])
}

/// An emulator that also listens with TLS (the test PKI's server certificate).
pub(crate) fn tls_emu(config: &Value) -> Emu {
    let (cert, key) = (pki_file("server-chain.crt"), pki_file("server.key"));
    Emu::start(config, &["--tls-listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key])
}

#[test]
fn msal_python_gets_a_token_and_is_refused_with_an_unregistered_certificate() {
    if !python_has("msal") {
        return;
    }
    let emu = tls_emu(&example());
    let (code, v, err) = msal(&emu, "app-rsa.key", "app-rsa.crt", "api://wif-gcp/.default", &[]);
    assert_eq!(code, Some(0), "{v} {err}");
    assert_eq!(v["token_type"], "Bearer");
    let (_, claims) = wif::core::jwt::decode_unverified(v["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["aud"], API_APP);
    assert_eq!(claims["azp"], APP);
    let (code, v, _) = msal(&emu, "other-app-rsa.key", "other-app-rsa.crt", "api://wif-gcp/.default", &[]);
    assert_eq!(code, Some(1));
    assert_eq!(v["error"], "invalid_client");
    assert_eq!(v["error_codes"][0], 700027);
    let (code, v, _) = msal(&emu, "app-rsa.key", "app-rsa.crt", "api://wif-gcp/read", &[]);
    assert_eq!(code, Some(1));
    assert_eq!(v["error_codes"][0], 70011);
    // MSAL's instance discovery, pointed at the emulator.
    let instance = format!("{}/common/discovery/instance", emu.tls_url.as_ref().unwrap());
    let (code, v, err) = msal(&emu, "app-rsa.key", "app-rsa.crt", "api://wif-gcp/.default", &[&instance]);
    assert_eq!(code, Some(0), "{v} {err}");
    assert!(emu.requests().iter().any(|r| r["path"] == "/common/discovery/instance" && r["status"] == 200));
    // One MSAL application asking for two resources reuses its assertion: refused as a
    // replay by default, accepted (as by Azure) with reject_replayed_assertions false.
    let two = "api://wif-gcp/.default,api://wif-gcp-v1/.default";
    let (code, v, _) = msal(&emu, "app-rsa.key", "app-rsa.crt", two, &[]);
    assert_eq!((code, v["error_codes"][0].as_u64()), (Some(1), Some(50013)), "{v}");
    let mut cfg = example();
    cfg["reject_replayed_assertions"] = json!(false);
    let relaxed = tls_emu(&cfg);
    let (code, v, err) = msal(&relaxed, "app-rsa.key", "app-rsa.crt", two, &[]);
    assert_eq!(code, Some(0), "{v} {err}");
}

/// A TLS emulator, its https:// URL, and a fresh directory holding the Azure token that
/// wif-azure got from it (`azure.jwt`), for credential configurations to name.
pub(crate) fn tls_emu_with_azure_token() -> (Emu, String, tempfile::TempDir, PathBuf) {
    let emu = tls_emu(&example());
    let tls = emu.tls_url.clone().unwrap();
    let dir = tempdir();
    let az_file = dir.path().join("azure.jwt");
    let doc = sign(&emu, "app-rsa.key", "app-rsa.crt", &[]);
    ok(azure(&doc, &["--scope", "api://wif-gcp/.default", "--token-out", az_file.to_str().unwrap()]), "azure");
    (emu, tls, dir, az_file)
}

/// google-auth's credential configuration for the emulator at `tls`: provider `aud`, the
/// Azure token in `az_file`, impersonating [`SA`].
pub(crate) fn external_account(tls: &str, aud: &str, az_file: &Path) -> Value {
    json!({
        "type": "external_account",
        "audience": aud,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{tls}/v1/token"),
        "service_account_impersonation_url": format!("{tls}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"),
        "credential_source": {"file": az_file, "format": {"type": "text"}},
    })
}

#[test]
fn google_auth_python_exchanges_and_impersonates() {
    if !python_has("google.auth, requests") {
        return;
    }
    let (emu, tls, dir, az_file) = tls_emu_with_azure_token();
    let config = |aud: &str| external_account(&tls, aud, &az_file);
    let env = [("REQUESTS_CA_BUNDLE", pki_file("ca-chain.crt"))];
    let cfg = dir.path().join("cred.json");
    std::fs::write(&cfg, config(&provider("azure")).to_string()).unwrap();
    let (code, v, err) = python("google_auth_client.py", &s(&[cfg.to_str().unwrap()]), &env);
    assert_eq!(code, Some(0), "{v} {err}");
    assert!(v["token"].as_str().unwrap().starts_with("ya29."));
    assert!(v["expiry"].is_string());
    // Refused: a provider whose allowed audience does not match the token.
    std::fs::write(&cfg, config(&provider("azure-v1")).to_string()).unwrap();
    let (code, v, _) = python("google_auth_client.py", &s(&[cfg.to_str().unwrap()]), &env);
    assert_eq!(code, Some(1));
    assert!(v["error"].as_str().unwrap().contains("invalid_grant"), "{v}");
    let reqs = emu.requests();
    let sts_reqs: Vec<&Value> = reqs.iter().filter(|r| r["path"] == "/v1/token").collect();
    assert_eq!(sts_reqs.len(), 2);
    assert!(reqs.iter().any(|r| r["path"].as_str().unwrap().ends_with(":generateAccessToken") && r["status"] == 200));
}

/// Google's Go library (golang.org/x/oauth2/google 0.3.0, as Debian packages it) with the
/// credential configuration `wif-sts --print-credential-config` prints: the STS exchange and
/// the impersonation through `google.CredentialsFromJSON`. That version accepts only the real
/// `https://*.googleapis.com` URLs, so the configuration keeps them and the Go client routes
/// those hosts to the emulator's TLS listener, as a hosts-file entry would.
#[test]
fn go_oauth2_google_exchanges_and_impersonates_with_the_printed_config() {
    let Some(client) = interop::go_client() else { return };
    // A lifetime of the emulator's own, so the expiry the library reports can only be its.
    let lifetime = 1200;
    let (cert, key) = (pki_file("server-chain.crt"), pki_file("server.key"));
    let emu = Emu::start(
        &example(),
        &["--tls-listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key, "--token-lifetime", "20m"],
    );
    let tls = emu.tls_url.clone().unwrap();
    let dir = tempdir();
    let az_file = dir.path().join("azure.jwt");
    let doc = sign(&emu, "app-rsa.key", "app-rsa.crt", &[]);
    ok(azure(&doc, &["--scope", "api://wif-gcp/.default", "--token-out", az_file.to_str().unwrap()]), "azure");
    let go = |provider_name: &str, impersonate: bool| {
        let mut args = s(&["--print-credential-config", "--audience", &provider(provider_name), "--credential-file"]);
        args.push(az_file.to_str().unwrap().to_string());
        if impersonate {
            args.extend(s(&["--service-account", SA]));
        }
        let printed = ok(run("wif-sts", &args, b""), "wif-sts --print-credential-config");
        let config: Value = serde_json::from_slice(&printed).unwrap();
        assert_eq!(config["token_url"], "https://sts.googleapis.com/v1/token");
        let cfg = dir.path().join(format!("{provider_name}-{impersonate}.json"));
        std::fs::write(&cfg, &printed).unwrap();
        let out = std::process::Command::new(&client)
            .args(["external-account", "-config", cfg.to_str().unwrap(), "-emulator"])
            .arg(tls.trim_start_matches("https://"))
            .args(["-ca", &pki_file("ca-chain.crt"), "-server-name", "localhost"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("the Go client printed no JSON ({e}): {} {}", String::from_utf8_lossy(&out.stdout), stderr(&out))
        });
        (out.status.code(), v)
    };
    let started = wif::core::clock::now_unix();
    let (code, impersonated) = go("azure", true);
    assert_eq!(code, Some(0), "{impersonated}");
    let (code, federated) = go("azure", false);
    assert_eq!(code, Some(0), "{federated}");
    for v in [&impersonated, &federated] {
        assert_eq!((&v["token_type"], &v["valid"]), (&json!("Bearer"), &json!(true)), "{v}");
        assert_eq!(v["token_sha256"].as_str().map(str::len), Some(64), "{v}");
        let expiry = v["expiry"].as_i64().unwrap();
        assert!((started + lifetime - 5..=wif::core::clock::now_unix() + lifetime).contains(&expiry), "{v}");
    }
    assert_ne!(impersonated["token_sha256"], federated["token_sha256"]);
    // Refused: a provider whose allowed audience does not match the Azure token.
    let (code, v) = go("azure-v1", true);
    assert_eq!(code, Some(1), "{v}");
    assert!(v["error"].as_str().unwrap().contains("invalid_grant"), "{v}");
    // The Google hosts were the emulator, over TLS: three exchanges, one impersonation.
    let google: Vec<(String, u64)> = emu
        .requests()
        .iter()
        .filter(|r| r["scheme"] == "https")
        .map(|r| (r["path"].as_str().unwrap().to_string(), r["status"].as_u64().unwrap()))
        .collect();
    let impersonation = format!("/v1/projects/-/serviceAccounts/{SA}:generateAccessToken");
    let want = [("/v1/token", 200), (impersonation.as_str(), 200), ("/v1/token", 200), ("/v1/token", 400)];
    assert_eq!(google, want.map(|(p, s)| (p.to_string(), s)), "{:?}", emu.requests());
}

/// The document with its assertion re-signed: claims edited, header and key chosen.
fn resign(
    doc: &Value,
    header: &jsonwebtoken::Header,
    key: &jsonwebtoken::EncodingKey,
    edit: impl Fn(&mut Value),
) -> Vec<u8> {
    let mut claims = doc["assertion"]["claims"].clone();
    // A jti of its own (the original is fresh too, but keep the two apart).
    claims["jti"] = json!(format!("{}-resigned", claims["jti"].as_str().unwrap()));
    edit(&mut claims);
    let mut d = doc.clone();
    d["assertion"]["token"] = json!(jsonwebtoken::encode(header, &claims, key).unwrap());
    d.to_string().into_bytes()
}

fn rsa_key(file: &str) -> jsonwebtoken::EncodingKey {
    jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(pki_file(file)).unwrap()).unwrap()
}

#[test]
fn assertion_header_and_claims_are_checked() {
    let emu = Emu::example(&[]);
    let scope = ["--scope", "api://wif-gcp/.default"];
    let fresh = || -> Value { serde_json::from_slice(&sign(&emu, "app-rsa.key", "app-rsa.crt", &[])).unwrap() };
    let doc = fresh();
    let x5t = doc["assertion"]["header"]["x5t"].as_str().unwrap().to_string();
    let rs256 = |x5t: Option<String>| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.x5t = x5t;
        h
    };
    let key = rsa_key("app-rsa.key");
    // MSAL pads x5t with '=': accepted like the unpadded form.
    let padded = base64::engine::general_purpose::URL_SAFE.encode(URL_SAFE_NO_PAD.decode(&x5t).unwrap());
    assert!(padded.ends_with('='));
    ok(azure(&resign(&fresh(), &rs256(Some(padded)), &key, |_| {}), &scope), "padded x5t");
    let t = now();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // The registered thumbprint, another key's signature.
        ("AADSTS700027", resign(&fresh(), &rs256(Some(x5t.clone())), &rsa_key("other-app-rsa.key"), |_| {})),
        ("AADSTS700027", resign(&fresh(), &rs256(None), &key, |_| {})),
        (
            "AADSTS50027",
            resign(&fresh(), &rs256(Some(x5t.clone())), &key, |c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        ("AADSTS50027", {
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            h.x5t = Some(x5t.clone());
            resign(&fresh(), &h, &jsonwebtoken::EncodingKey::from_secret(b"shared"), |_| {})
        }),
        ("AADSTS700021", resign(&fresh(), &rs256(Some(x5t.clone())), &key, |c| c["iss"] = json!("someone-else"))),
        (
            "AADSTS700024",
            resign(&fresh(), &rs256(Some(x5t.clone())), &key, |c| {
                c["nbf"] = json!(t + 3600);
                c["iat"] = json!(t + 3600);
                c["exp"] = json!(t + 4000);
            }),
        ),
        ("AADSTS700024", resign(&fresh(), &rs256(Some(x5t.clone())), &key, |c| c["exp"] = json!(t + 86_400))),
    ];
    for (code, doc) in cases {
        refused(&azure(&doc, &scope), code);
    }
    // MSAL-style float times are fine.
    let floats = resign(&fresh(), &rs256(Some(x5t.clone())), &key, |c| {
        c["exp"] = json!(t as f64 + 600.25);
        c["iat"] = json!(t as f64 + 0.5);
        c.as_object_mut().unwrap().remove("nbf");
    });
    ok(azure(&floats, &scope), "float exp/iat");

    // Form-level checks, sent raw.
    let url = format!("{}/{TENANT}/oauth2/v2.0/token", emu.url);
    let assertion = fresh()["assertion"]["token"].as_str().unwrap().to_string();
    let form = |pairs: &[(&str, &str)]| {
        pairs.iter().map(|(k, v)| format!("{k}={}", wif::http::encode_component(v))).collect::<Vec<_>>().join("&")
    };
    let base = [("grant_type", "client_credentials"), ("client_id", APP), ("scope", "api://wif-gcp/.default")];
    let form_type = "application/x-www-form-urlencoded";
    let with = |extra: &[(&str, &str)]| form(&[&base[..], extra].concat());
    let cases = [
        (with(&[("client_assertion_type", "urn:x"), ("client_assertion", &assertion)]), 70002),
        (with(&[("client_assertion", &assertion)]), 900144),
        (with(&[]), 7000218),
        (with(&[("client_secret", "x"), ("client_assertion", &assertion)]), 90023),
        (
            with(&[
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", &assertion),
                ("resource", "api://wif-gcp"),
            ]),
            901002,
        ),
        (form(&[("grant_type", "password"), ("client_id", APP)]), 70003),
        (form(&[("client_id", APP)]), 900144),
    ];
    for (body, code) in cases {
        let (status, v) = post(&url, form_type, &body, None);
        assert_eq!(v["error_codes"][0], code, "{body}: {v}");
        assert!(status == 400 || status == 401);
        let desc = v["error_description"].as_str().unwrap();
        assert!(desc.starts_with(&format!("AADSTS{code}: ")) && desc.contains("\r\nTrace ID: "), "{desc}");
        assert!(v["trace_id"].is_string() && v["correlation_id"].is_string() && v["timestamp"].is_string());
    }
    let (_, v) = post(&url, "application/json", r#"{"grant_type":"client_credentials"}"#, None);
    assert_eq!(v["error_codes"][0], 900144);
}

/// POSTs to the emulator; returns the status and the decoded JSON body.
pub(crate) fn post(url: &str, content_type: &str, body: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut r = ureq::post(url).config().http_status_as_error(false).build().header("Content-Type", content_type);
    if let Some(b) = bearer {
        r = r.header("Authorization", &format!("Bearer {b}"));
    }
    let mut resp = r.send(body).unwrap();
    let status = resp.status().as_u16();
    (status, serde_json::from_reader(resp.body_mut().as_reader()).unwrap())
}

#[test]
fn sts_checks_every_field_and_accepts_json() {
    let emu = Emu::example(&[]);
    let d: Value = serde_json::from_slice(&azure_doc(&emu)).unwrap();
    let subject = d["azure"]["token"].as_str().unwrap();
    let good = json!({
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "subject_token": subject,
        "audience": provider("azure"),
        "scope": "https://www.googleapis.com/auth/iam",
    });
    let url = format!("{}/v1/token", emu.url);
    let (status, body) = post(&url, "application/json", &good.to_string(), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 3000);
    let fed = body["access_token"].as_str().unwrap().to_string();
    let cases = [
        ("grant_type", json!("client_credentials"), "unsupported_grant_type"),
        ("requested_token_type", json!("urn:ietf:params:oauth:token-type:id_token"), "invalid_request"),
        ("subject_token_type", json!("urn:ietf:params:oauth:token-type:saml2"), "invalid_request"),
        ("subject_token", json!("not-a-jwt"), "invalid_grant"),
        ("audience", json!("https://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/wif-pool/providers/azure"), "invalid_request"),
        ("audience", json!("//iam.googleapis.com/projects/999/locations/global/workloadIdentityPools/wif-pool/providers/azure"), "invalid_target"),
        ("scope", json!("email"), "invalid_scope"),
        ("scope", Value::Null, "invalid_scope"),
    ];
    for (field, value, error) in cases {
        let mut b = good.clone();
        if value.is_null() {
            b.as_object_mut().unwrap().remove(field);
        } else {
            b[field] = value;
        }
        let (status, body) = post(&url, "application/json", &b.to_string(), None);
        assert_eq!((status, body["error"].as_str().unwrap()), (400, error), "{field}: {body}");
    }
    // IAM: the body's fields are checked too (unknown names, a bad lifetime, no scope).
    let iam = format!("{}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken", emu.url);
    let (status, body) = post(
        &iam,
        "application/json",
        r#"{"scope":["https://www.googleapis.com/auth/cloud-platform"],"delegates":null}"#,
        Some(&fed),
    );
    assert_eq!(status, 200, "{body}");
    let expire = body["expireTime"].as_str().unwrap();
    assert_eq!(expire.len(), 20, "YYYY-MM-DDTHH:MM:SSZ without fractions: {expire}");
    assert!(expire.ends_with('Z') && !expire.contains('.'));
    for (b, status_name) in [
        (r#"{"scope":["x"],"lifetime":"3600"}"#, "INVALID_ARGUMENT"),
        (r#"{"scope":[],"lifetime":"60s"}"#, "INVALID_ARGUMENT"),
        (r#"{"scope":["x"],"bogus":1}"#, "INVALID_ARGUMENT"),
    ] {
        let (status, body) = post(&iam, "application/json", b, Some(&fed));
        assert_eq!((status, body["error"]["status"].as_str().unwrap()), (400, status_name), "{b}: {body}");
    }
    let (status, body) = post(&iam, "application/json", r#"{"scope":["x"]}"#, Some("ya29.unknown"));
    assert_eq!((status, body["error"]["status"].as_str().unwrap()), (401, "UNAUTHENTICATED"));
    let (status, body) = post(&iam, "application/json", r#"{"scope":["x"]}"#, None);
    assert_eq!(status, 401, "{body}");
}

#[test]
fn impersonation_through_delegates() {
    let mut cfg = example();
    let member = format!("principal:{POOL}/subject/{APP_OBJECT}");
    cfg["google"]["service_accounts"] = json!([
        {"email": "middle@wif-demo.iam.gserviceaccount.com",
         "bindings": [{"role": "roles/iam.workloadIdentityUser", "members": [member]}]},
        {"email": "final@wif-demo.iam.gserviceaccount.com",
         "bindings": [{"role": "roles/iam.serviceAccountTokenCreator", "members": ["serviceAccount:middle@wif-demo.iam.gserviceaccount.com"]}]},
        {"email": "closed@wif-demo.iam.gserviceaccount.com", "bindings": []},
    ]);
    let emu = Emu::start(&cfg, &[]);
    let fed = ok(sts(&emu, &azure_doc(&emu), "azure"), "sts");
    let imp = |sa: &str, delegate: Option<&str>| {
        let mut a = s(&["--endpoint", &emu.url, "--service-account", sa]);
        if let Some(d) = delegate {
            a.extend(s(&["--delegate", d]));
        }
        run("wif-impersonate", &a, &fed)
    };
    ok(imp("middle@wif-demo.iam.gserviceaccount.com", None), "direct");
    refused(&imp("final@wif-demo.iam.gserviceaccount.com", None), "PERMISSION_DENIED");
    ok(imp("final@wif-demo.iam.gserviceaccount.com", Some("middle@wif-demo.iam.gserviceaccount.com")), "via middle");
    refused(
        &imp("closed@wif-demo.iam.gserviceaccount.com", Some("middle@wif-demo.iam.gserviceaccount.com")),
        "PERMISSION_DENIED",
    );
}

#[test]
fn thumbprint_only_registration_needs_the_certificate_in_x5c() {
    let mut cfg = example();
    cfg["azure"]["apps"][0]["certificates"] = json!([]);
    cfg["azure"]["apps"][0]["thumbprints"] = json!([sha1_hex(&pki_file("app-ec.crt"))]);
    let emu = Emu::start(&cfg, &[]);
    let scope = ["--scope", "api://wif-gcp/.default"];
    ok(azure(&sign(&emu, "app-ec.key", "app-ec.crt", &["--x5c"]), &scope), "x5c with a registered thumbprint");
    refused(&azure(&sign(&emu, "app-ec.key", "app-ec.crt", &[]), &scope), "AADSTS700027");
    refused(&azure(&sign(&emu, "app-rsa.key", "app-rsa.crt", &["--x5c"]), &scope), "AADSTS700027");
    // The SHA-256 form matches too when registered that way.
    let mut cfg = example();
    cfg["azure"]["apps"][0]["certificates"] = json!([]);
    let der = std::process::Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in", &pki_file("app-rsa.crt")])
        .output()
        .unwrap()
        .stdout;
    let sha256 = wif::core::keys::thumbprint_sha256(&der);
    cfg["azure"]["apps"][0]["thumbprints"] = json!([sha256]);
    let emu = Emu::start(&cfg, &[]);
    let doc = sign(&emu, "app-rsa.key", "app-rsa.crt", &["--x5c", "--thumbprint", "sha256"]);
    ok(azure(&doc, &scope), "x5t#S256 + x5c");
}

#[test]
fn principal_sets_by_group_and_whole_pool() {
    let mut cfg = example();
    cfg["azure"]["apps"][0]["roles"] = json!(["wif-runners"]);
    let providers = cfg["google"]["pools"][0]["providers"].as_array_mut().unwrap();
    providers[0]["attribute_mapping"]["google.groups"] = json!("assertion.roles");
    cfg["google"]["service_accounts"] = json!([
        {"email": "group@wif-demo.iam.gserviceaccount.com",
         "bindings": [{"role": "roles/iam.workloadIdentityUser", "members": [format!("principalSet:{POOL}/group/wif-runners")]}]},
        {"email": "other-group@wif-demo.iam.gserviceaccount.com",
         "bindings": [{"role": "roles/iam.workloadIdentityUser", "members": [format!("principalSet:{POOL}/group/admins")]}]},
        {"email": "pool@wif-demo.iam.gserviceaccount.com",
         "bindings": [{"role": "roles/iam.workloadIdentityUser", "members": [format!("principalSet:{POOL}/*")]}]},
        {"email": "tenant@wif-demo.iam.gserviceaccount.com",
         "bindings": [{"role": "roles/iam.workloadIdentityUser", "members": [format!("principalSet:{POOL}/attribute.tid/{TENANT}")]}]},
        {"email": "wrong-role@wif-demo.iam.gserviceaccount.com",
         "bindings": [{"role": "roles/viewer", "members": [format!("principalSet:{POOL}/*")]}]},
    ]);
    let emu = Emu::start(&cfg, &[]);
    let fed = ok(sts(&emu, &azure_doc(&emu), "azure"), "sts");
    let imp = |sa: &str| run("wif-impersonate", &s(&["--endpoint", &emu.url, "--service-account", sa]), &fed);
    ok(imp("group@wif-demo.iam.gserviceaccount.com"), "group");
    ok(imp("pool@wif-demo.iam.gserviceaccount.com"), "whole pool");
    ok(imp("tenant@wif-demo.iam.gserviceaccount.com"), "attribute");
    refused(&imp("other-group@wif-demo.iam.gserviceaccount.com"), "PERMISSION_DENIED");
    refused(&imp("wrong-role@wif-demo.iam.gserviceaccount.com"), "PERMISSION_DENIED");
    refused(&imp("missing@wif-demo.iam.gserviceaccount.com"), "PERMISSION_DENIED");
}

/// `wif-sts --print-credential-config` with the pipeline's IAM endpoint (WIF_IAM_ENDPOINT)
/// and a 30-minute lifetime writes a file that works against wif-emulate: the Rust pipeline
/// consumes it (the token lives 1800 s, not 3600) and so does google-auth, when installed.
#[test]
fn a_printed_credential_configuration_works_against_the_emulator_with_its_lifetime() {
    let (emu, tls, dir, az_file) = tls_emu_with_azure_token();
    let out = bin("wif-sts")
        .args([
            "--print-credential-config",
            "--audience",
            &provider("azure"),
            "--token-url",
            &format!("{tls}/v1/token"),
        ])
        .args([
            "--service-account",
            SA,
            "--impersonation-lifetime",
            "30m",
            "--credential-file",
            az_file.to_str().unwrap(),
        ])
        .env("WIF_IAM_ENDPOINT", &tls)
        .output()
        .unwrap();
    let cfg_json: Value = serde_json::from_slice(&ok(out, "wif-sts --print-credential-config")).unwrap();
    assert_eq!(
        cfg_json["service_account_impersonation_url"],
        format!("{tls}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken")
    );
    assert_eq!(cfg_json["token_url"], format!("{tls}/v1/token"));
    assert_eq!(cfg_json["service_account_impersonation"]["token_lifetime_seconds"], 1800);
    let cfg = dir.path().join("cred.json");
    std::fs::write(&cfg, cfg_json.to_string()).unwrap();

    // The Rust pipeline: no flags but the file (and the CA the emulator's certificate is from).
    let ca = pki_file("ca-chain.crt");
    let before = wif::core::clock::now_unix();
    let sts = ok(run("wif-sts", &s(&["--credential-config", cfg.to_str().unwrap(), "--ca-file", &ca]), b""), "wif-sts");
    let out = ok(
        run("wif-impersonate", &s(&["--ca-file", &ca, "--token-out", dir.path().join("t").to_str().unwrap()]), &sts),
        "wif-impersonate",
    );
    let after = wif::core::clock::now_unix();
    let imp = serde_json::from_slice::<Value>(&out).unwrap()["impersonated"].clone();
    assert_eq!(imp["lifetime"], "1800s");
    assert!(imp["endpoint"].as_str().unwrap().starts_with(&tls), "{imp}");
    let expires = wif::core::clock::parse_rfc3339(imp["expires_at"].as_str().unwrap()).unwrap();
    assert!((before + 1800..=after + 1800).contains(&expires), "issued for 1800 s: {imp}");

    // google-auth with the same file.
    if !python_has("google.auth, requests") {
        return;
    }
    let before = wif::core::clock::now_unix();
    let env = [("REQUESTS_CA_BUNDLE", ca)];
    let (code, v, err) = python("google_auth_client.py", &s(&[cfg.to_str().unwrap()]), &env);
    let after = wif::core::clock::now_unix();
    assert_eq!(code, Some(0), "{v} {err}");
    let expiry = wif::core::clock::parse_rfc3339(&format!("{}Z", v["expiry"].as_str().unwrap())).unwrap();
    assert!((before + 1800..=after + 1800).contains(&expiry), "google-auth asked for 1800 s too: {v}");
    let reqs = emu.requests();
    let asked: Vec<&Value> =
        reqs.iter().filter(|r| r["path"].as_str().unwrap().ends_with(":generateAccessToken")).collect();
    assert_eq!(asked.len(), 2, "wif-impersonate and google-auth both impersonated at the emulator");
}
