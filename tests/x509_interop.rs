//! Conformance of the X.509 path with the official google-auth (`identity_pool.Credentials`
//! with `credential_source.certificate`): google-auth obtains federated and impersonated
//! tokens from wif-emulate's mTLS listener with a gcloud-shaped configuration and with the
//! one `wif-sts --print-credential-config --x509` writes; and wif-sts --x509 sends STS the
//! same request google-auth sends, compared field by field at a recording mTLS server; and
//! gcloud, where installed, takes the printed configuration too. A missing python3, module or
//! gcloud is recorded as not run (tests/common `python_has`, `not_run`).

use crate::common::*;
use crate::emulator::{example, provider, python, s, tls_emu, Emu, SA};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

const SCRIPT: &str = "google_auth_x509.py";
const MTLS: &str = "urn:ietf:params:oauth:token-type:mtls";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";

/// Whether python3 has google-auth and what its X.509 supplier needs.
fn google_auth_available() -> bool {
    python_has("google.auth, google.auth.transport.requests, requests, cryptography")
}

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// `certificate_config.json` naming a certificate and key of the test PKI.
fn write_certificate_config(dir: &Path, cert: &str, key: &str) -> String {
    let file = dir.join(format!("certificate_config-{cert}.json"));
    let config = json!({"version": 1, "cert_configs": {"workload": {
        "cert_path": pki_file(&format!("{cert}.crt")), "key_path": pki_file(&format!("{key}.key"))}}});
    std::fs::write(&file, config.to_string()).unwrap();
    path_str(&file)
}

/// The credential configuration gcloud's `create-cred-config --credential-cert-path …`
/// writes, its URLs on `base` (the emulator's or the recorder's https listener).
/// `cert_config`: Some(file) → `certificate_config_location`; None → the default lookup.
fn gcloud_config(base: &str, cert_config: Option<&str>, impersonate: bool) -> Value {
    let mut certificate = json!({"trust_chain_path": pki_file("client-chain.crt")});
    match cert_config {
        Some(f) => certificate["certificate_config_location"] = json!(f),
        None => certificate["use_default_certificate_config"] = json!(true),
    }
    let mut config = json!({
        "universe_domain": "googleapis.com",
        "type": "external_account",
        "audience": provider("x509"),
        "subject_token_type": MTLS,
        "token_url": format!("{base}/v1/token"),
        "credential_source": {"certificate": certificate},
    });
    if impersonate {
        config["service_account_impersonation_url"] =
            json!(format!("{base}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"));
    }
    config
}

/// Runs google_auth_x509.py on `config` (written to `dir/name`), trusting the test CA.
fn google_auth(dir: &Path, name: &str, config: &Value, env: &[(&str, String)]) -> (Option<i32>, Value, String) {
    let file = dir.join(name);
    std::fs::write(&file, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    let mut env: Vec<(&str, String)> = env.to_vec();
    env.push(("REQUESTS_CA_BUNDLE", pki_file("ca-chain.crt")));
    // No gcloud directory of this machine's user: the default lookup must find the test's.
    if !env.iter().any(|(k, _)| *k == "CLOUDSDK_CONFIG") {
        env.push(("CLOUDSDK_CONFIG", path_str(dir)));
    }
    python(SCRIPT, &s(&[&path_str(&file)]), &env)
}

/// google-auth's answer for a token it obtained from the emulator.
fn assert_token(v: &Value, impersonated: bool) {
    assert_eq!(v["token_prefix"], "ya29.", "{v}");
    assert_eq!(v["token_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(v["impersonated"], impersonated, "{v}");
    assert_eq!(v["subject_token_certs"], 2, "the leaf and the intermediate of client-chain.crt: {v}");
    let expiry = wif::core::clock::parse_rfc3339(&format!("{}Z", v["expiry"].as_str().unwrap())).unwrap();
    assert!(expiry > wif::core::clock::now_unix() + 600, "{v}");
}

/// The emulator's answered requests to `path_end`, with their status.
fn statuses(emu: &Emu, path_end: &str) -> Vec<u64> {
    emu.requests()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with(path_end))
        .map(|r| r["status"].as_u64().unwrap())
        .collect()
}

#[test]
fn google_auth_x509_gets_federated_and_impersonated_tokens_from_the_emulator() {
    if !google_auth_available() {
        return;
    }
    let emu = tls_emu(&example());
    let tls = emu.tls_url.clone().unwrap();
    let dir = tempdir();
    let cert_config = write_certificate_config(dir.path(), "client", "client");
    // The federated token (no impersonation), the certificate named by the configuration.
    let (code, v, err) = google_auth(dir.path(), "fed.json", &gcloud_config(&tls, Some(&cert_config), false), &[]);
    assert_eq!(code, Some(0), "{v} {err}");
    assert_token(&v, false);
    // Impersonated, certificate_config.json found through GOOGLE_API_CERTIFICATE_CONFIG.
    let env = [("GOOGLE_API_CERTIFICATE_CONFIG", cert_config.clone())];
    let (code, v, err) = google_auth(dir.path(), "imp.json", &gcloud_config(&tls, None, true), &env);
    assert_eq!(code, Some(0), "{v} {err}");
    assert_token(&v, true);
    // And found in gcloud's directory (CLOUDSDK_CONFIG), as gcloud writes it by default.
    let gcloud_dir = tempdir();
    std::fs::copy(&cert_config, gcloud_dir.path().join("certificate_config.json")).unwrap();
    let env = [("CLOUDSDK_CONFIG", path_str(gcloud_dir.path()))];
    let (code, v, err) = google_auth(dir.path(), "imp-default.json", &gcloud_config(&tls, None, true), &env);
    assert_eq!(code, Some(0), "{v} {err}");
    assert_token(&v, true);
    assert_eq!(statuses(&emu, "/v1/token"), vec![200, 200, 200]);
    assert_eq!(statuses(&emu, ":generateAccessToken"), vec![200, 200]);
    assert!(emu.requests().iter().all(|r| r["scheme"] == "https"));
    // A certificate from another CA (same CN) is refused by the emulator's STS, not by
    // google-auth: the tokens above were the emulator's judgement of the chain.
    let other = write_certificate_config(dir.path(), "other-client", "other-client");
    let mut config = gcloud_config(&tls, Some(&other), false);
    config["credential_source"]["certificate"]["trust_chain_path"] = json!(pki_file("other-client-chain.crt"));
    let (code, v, _) = google_auth(dir.path(), "other.json", &config, &[]);
    assert_eq!((code, v["type"].as_str()), (Some(1), Some("OAuthError")), "{v}");
    assert!(v["error"].as_str().unwrap().contains("invalid_grant"), "{v}");
    assert_eq!(statuses(&emu, "/v1/token").last(), Some(&400));
}

/// `wif-sts --print-credential-config --x509 …` with `extra`; the printed configuration.
fn printed_config(extra: &[&str]) -> Value {
    let mut args = s(&["--print-credential-config", "--x509", "--audience", &provider("x509")]);
    args.extend(s(&["--cert", &pki_file("client.crt"), "--key", &pki_file("client.key")]));
    args.extend(s(&["--trust-chain", &pki_file("client-chain.crt")]));
    args.extend(s(extra));
    let out = bin("wif-sts").args(&args).env_remove("GOOGLE_API_CERTIFICATE_CONFIG").output().unwrap();
    assert!(out.status.success(), "wif-sts --print-credential-config --x509: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn google_auth_accepts_the_configuration_wif_sts_prints() {
    // The shape, for Google's real endpoints (no google-auth needed for this part).
    let real = printed_config(&["--service-account", SA]);
    assert_eq!(real["type"], "external_account");
    assert_eq!(real["subject_token_type"], MTLS);
    assert_eq!(real["token_url"], "https://sts.mtls.googleapis.com/v1/token");
    assert_eq!(
        real["service_account_impersonation_url"],
        format!("https://iamcredentials.mtls.googleapis.com/v1/projects/-/serviceAccounts/{SA}:generateAccessToken")
    );
    let certificate = &real["credential_source"]["certificate"];
    assert_eq!(certificate["use_default_certificate_config"], true, "{real}");
    assert!(certificate.get("certificate_config_location").is_none(), "{real}");
    assert_eq!(certificate["trust_chain_path"], pki_file("client-chain.crt"));
    if !google_auth_available() {
        return;
    }
    let emu = tls_emu(&example());
    let tls = emu.tls_url.clone().unwrap();
    let dir = tempdir();
    for impersonate in [false, true] {
        let cert_config = dir.path().join(format!("certificate_config-{impersonate}.json"));
        let mut extra = vec!["--token-url".to_string(), format!("{tls}/v1/token")];
        extra.extend(s(&["--certificate-config-out", &path_str(&cert_config)]));
        if impersonate {
            extra.extend(s(&["--service-account", SA, "--iam-endpoint", &tls]));
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let config = printed_config(&extra);
        assert_eq!(config["credential_source"]["certificate"]["certificate_config_location"], path_str(&cert_config));
        let written: Value = serde_json::from_slice(&std::fs::read(&cert_config).unwrap()).unwrap();
        assert_eq!(written["version"], 1);
        assert_eq!(written["cert_configs"]["workload"]["cert_path"], pki_file("client.crt"));
        assert_eq!(written["cert_configs"]["workload"]["key_path"], pki_file("client.key"));
        let (code, v, err) = google_auth(dir.path(), &format!("printed-{impersonate}.json"), &config, &[]);
        assert_eq!(code, Some(0), "{config} {v} {err}");
        assert_token(&v, impersonate);
    }
    assert_eq!(statuses(&emu, "/v1/token"), vec![200, 200]);
    assert_eq!(statuses(&emu, ":generateAccessToken"), vec![200]);
}

/// gcloud, where it is installed, takes the configuration wif-sts prints: `gcloud auth login
/// --cred-file` stores it and `gcloud auth print-access-token` does the exchange and the
/// impersonation itself (its bundled google-auth), over mTLS at the emulator. CI machines
/// have no gcloud (it is not in Debian's archive), so there the test says it did not run.
#[test]
fn gcloud_accepts_the_configuration_wif_sts_prints() {
    if !runs("gcloud", "version") {
        not_run("gcloud", "install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install)");
        return;
    }
    let emu = tls_emu(&example());
    let tls = emu.tls_url.clone().unwrap();
    let dir = tempdir();
    let cert_config = path_str(&dir.path().join("certificate_config.json"));
    let config = printed_config(&[
        "--token-url",
        &format!("{tls}/v1/token"),
        "--service-account",
        SA,
        "--iam-endpoint",
        &tls,
        "--certificate-config-out",
        &cert_config,
    ]);
    let cred = dir.path().join("cred.json");
    std::fs::write(&cred, config.to_string()).unwrap();
    let gcloud = |args: &[&str]| {
        std::process::Command::new("gcloud")
            .args(args)
            .env("CLOUDSDK_CONFIG", dir.path().join("gcloud"))
            .env("REQUESTS_CA_BUNDLE", pki_file("ca-chain.crt"))
            .env_remove("GOOGLE_API_CERTIFICATE_CONFIG")
            .output()
            .unwrap()
    };
    let login = gcloud(&["auth", "login", "--quiet", &format!("--cred-file={}", path_str(&cred))]);
    assert!(login.status.success(), "{}", stderr(&login));
    assert!(stderr(&login).contains(SA), "{}", stderr(&login));
    let token = gcloud(&["auth", "print-access-token", "--quiet"]);
    assert!(token.status.success(), "{}", stderr(&token));
    assert!(String::from_utf8_lossy(&token.stdout).starts_with("ya29."), "an access token from the emulator");
    assert_eq!(statuses(&emu, "/v1/token"), vec![200]);
    assert_eq!(statuses(&emu, ":generateAccessToken"), vec![200]);
}

/// One request the recorder received.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    content_type: String,
    body: Vec<u8>,
    /// The certificates presented in the TLS handshake (DER, leaf first).
    peer_certs: Vec<Vec<u8>>,
}

/// A recording https server: the emulator's own listener (rustls, the test PKI's server
/// certificate) with a handler that keeps every request and answers as STS and IAM
/// Credentials would, so both clients finish their refresh.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
}

impl wif::emulator::server::Handler for Recorder {
    fn handle(&self, req: &wif::emulator::server::Req) -> wif::server::Response {
        self.seen.lock().unwrap().push(Seen {
            path: req.path.clone(),
            content_type: req.header("content-type").unwrap_or_default().to_string(),
            body: req.body.clone(),
            peer_certs: req.peer_certs.to_vec(),
        });
        let expire = wif::core::clock::rfc3339(wif::core::clock::now_unix() + 3600);
        let body = if req.path.ends_with(":generateAccessToken") {
            json!({"accessToken": "ya29.recorded-impersonated", "expireTime": expire})
        } else {
            json!({"access_token": "ya29.recorded-federated", "token_type": "Bearer", "expires_in": 3600,
                   "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})
        };
        wif::server::Response::json(200, &body)
    }

    fn log_request(&self, _: &wif::emulator::server::Req, _: &wif::server::Response, _: std::time::Duration) {}

    fn now(&self) -> i64 {
        wif::core::clock::now_unix()
    }
}

struct Recording {
    url: String,
    recorder: Arc<Recorder>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Recording {
    fn start() -> Recording {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let tls = wif::emulator::server::tls_config(
            Path::new(&pki_file("server-chain.crt")),
            Path::new(&pki_file("server.key")),
        )
        .unwrap();
        let recorder = Arc::new(Recorder::default());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r, st) = (recorder.clone(), stop.clone());
        std::thread::spawn(move || wif::emulator::server::accept_loop(listener, Some(tls), r, st));
        Recording { url, recorder, stop }
    }

    /// The requests recorded since the last call (and forgets them).
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.recorder.seen.lock().unwrap())
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A form body as field → value, every field once.
fn form(seen: &Seen) -> BTreeMap<String, String> {
    assert_eq!(seen.content_type, "application/x-www-form-urlencoded", "{seen:?}");
    let mut fields = BTreeMap::new();
    for (k, v) in wif::http::parse_form(&seen.body) {
        assert!(fields.insert(k.clone(), v).is_none(), "{k} sent twice: {}", String::from_utf8_lossy(&seen.body));
    }
    fields
}

/// google-auth's STS form against wif-sts's, every field, `subject_token` element by
/// element (as JSON) and then as text.
fn assert_same_form(google: &Seen, wif: &Seen) {
    let (g, w) = (form(google), form(wif));
    assert_eq!(g.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>(), "the fields differ");
    for (field, gv) in &g {
        if field == "subject_token" {
            let chain = |v: &str| serde_json::from_str::<Vec<String>>(v).unwrap();
            let (gc, wc) = (chain(gv), chain(&w[field]));
            assert_eq!(gc.len(), wc.len(), "subject_token lengths");
            for (i, (a, b)) in gc.iter().zip(&wc).enumerate() {
                assert_eq!(a, b, "subject_token[{i}]");
            }
        }
        assert_eq!(gv, &w[field], "field {field}");
    }
}

/// wif-sts --x509 against the recorder with `extra`; its output document.
fn wif_sts_x509(rec: &Recording, extra: &[&str]) -> Value {
    let mut args = s(&["--x509", "--audience", &provider("x509"), "--token-url", &format!("{}/v1/token", rec.url)]);
    args.extend(s(&["--cert", &pki_file("client.crt"), "--key", &pki_file("client.key")]));
    args.extend(s(&["--trust-chain", &pki_file("client-chain.crt"), "--ca-file", &pki_file("ca-chain.crt")]));
    args.extend(s(extra));
    let out = bin("wif-sts").args(&args).write_stdin(Vec::new()).output().unwrap();
    assert!(out.status.success(), "wif-sts --x509: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn wif_sts_x509_sends_sts_what_google_auth_sends_field_by_field() {
    if !google_auth_available() {
        return;
    }
    let rec = Recording::start();
    let dir = tempdir();
    let cert_config = write_certificate_config(dir.path(), "client", "client");
    // Without impersonation google-auth asks for cloud-platform, wif-sts's default.
    let (code, v, err) = google_auth(dir.path(), "fed.json", &gcloud_config(&rec.url, Some(&cert_config), false), &[]);
    assert_eq!(code, Some(0), "{v} {err}");
    let google = rec.take();
    let doc = wif_sts_x509(&rec, &[]);
    let wif = rec.take();
    assert_eq!((google.len(), wif.len()), (1, 1), "one STS request each, nothing else");
    assert_eq!((google[0].path.as_str(), wif[0].path.as_str()), ("/v1/token", "/v1/token"));
    assert_same_form(&google[0], &wif[0]);
    let fields = form(&wif[0]);
    assert_eq!(fields["subject_token_type"], MTLS);
    assert_eq!(fields["scope"], CLOUD_PLATFORM);
    assert_eq!(fields["audience"], provider("x509"));
    assert!(!fields.contains_key("options"), "{fields:?}");
    // The array holds the leaf, then the chain file's intermediate (its first entry, the
    // leaf again, is not sent twice), as standard base64 DER.
    let chain: Vec<String> = serde_json::from_str(&fields["subject_token"]).unwrap();
    let der = |name: &str| wif::core::keys::load_certs(Path::new(&pki_file(name))).unwrap()[0].to_vec();
    let b64 = |d: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, d);
    assert_eq!(chain, vec![b64(&der("client.crt")), b64(&der("intermediate-ca.crt"))]);
    assert_eq!(doc["sts"]["path"], "x509", "{doc}");
    // Impersonating, google-auth asks STS for the iam scope: the same scope given to wif-sts
    // makes the two requests equal again.
    let (code, v, err) = google_auth(dir.path(), "imp.json", &gcloud_config(&rec.url, Some(&cert_config), true), &[]);
    assert_eq!(code, Some(0), "{v} {err}");
    assert_eq!(v["impersonated"], true);
    let google = rec.take();
    let federated = wif_sts_x509(&rec, &["--scope", IAM_SCOPE]);
    wif_impersonate(&rec, &federated);
    let wif = rec.take();
    let paths = |seen: &[Seen]| seen.iter().map(|r| r.path.clone()).collect::<Vec<_>>();
    let iam = format!("/v1/projects/-/serviceAccounts/{SA}:generateAccessToken");
    assert_eq!(paths(&google), ["/v1/token", iam.as_str()]);
    assert_eq!(paths(&wif), paths(&google));
    assert_same_form(&google[0], &wif[0]);
    assert_eq!(form(&google[0])["scope"], IAM_SCOPE);
    // Both presented the workload certificate in every handshake, STS's and IAM's.
    for r in google.iter().chain(&wif) {
        assert_eq!(r.peer_certs.first(), Some(&der("client.crt")), "no client certificate at {}", r.path);
    }
    let scope = |r: &Seen| serde_json::from_slice::<Value>(&r.body).unwrap()["scope"].clone();
    assert_eq!(scope(&google[1]), scope(&wif[1]), "the impersonated token's scope");
}

/// wif-impersonate on wif-sts's `document`, against the recorder.
fn wif_impersonate(rec: &Recording, document: &Value) {
    let args = s(&["--service-account", SA, "--endpoint", &rec.url, "--ca-file", &pki_file("ca-chain.crt")]);
    let out = bin("wif-impersonate").args(&args).write_stdin(document.to_string()).output().unwrap();
    assert!(out.status.success(), "wif-impersonate: {}", stderr(&out));
}
