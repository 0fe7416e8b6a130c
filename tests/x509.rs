//! wif-sts's X.509 path as users run it: the workload certificate to wif-emulate's STS over
//! real mutual TLS, wif-impersonate presenting it again, Google's certificate_config.json
//! and credential configurations both ways, and every refusal that needs no server.

use crate::common::*;
use crate::emulator::{example, provider, Emu, SA};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

/// The X.509 provider of examples/emulator.json.
fn x509_audience() -> String {
    provider("x509")
}

/// The emulator with its TLS listener (the server certificate is for `localhost`).
struct TlsEmu {
    emu: Emu,
    /// `https://localhost:PORT`.
    base: String,
}

fn tls_emu(extra: &[&str]) -> TlsEmu {
    let (chain, key) = (pki_file("server-chain.crt"), pki_file("server.key"));
    let mut args = vec!["--tls-listen", "127.0.0.1:0", "--tls-cert", &chain, "--tls-key", &key];
    args.extend_from_slice(extra);
    let emu = Emu::start(&example(), &args);
    let base = emu.tls_url.clone().expect("a TLS listener").replace("127.0.0.1", "localhost");
    TlsEmu { emu, base }
}

/// `wif-sts --x509` with the test PKI's workload certificate (`client.crt`, CA 13) against `base`.
fn sts_x509(base: &str, extra: &[&str]) -> Output {
    bin("wif-sts")
        .args(["--x509", "--audience", &x509_audience()])
        .args(["--token-url", &format!("{base}/v1/token"), "--ca-file", &pki_file("ca-chain.crt"), "--retries", "0"])
        .args(extra)
        .write_stdin("")
        .output()
        .unwrap()
}

fn cert_and_key(name: &str) -> [String; 4] {
    ["--cert".into(), pki_file(&format!("{name}.crt")), "--key".into(), pki_file(&format!("{name}.key"))]
}

/// SHA-256 (hex) of the DER of the first certificate in a PEM file.
fn leaf_sha256(pem: &str) -> String {
    let out =
        std::process::Command::new("openssl").args(["x509", "-in", pem, "-outform", "DER"]).output().expect("openssl");
    assert!(out.status.success());
    wif::core::keys::sha256_hex(&out.stdout)
}

fn impersonate(doc: &[u8], base: &str, token_out: &Path) -> Output {
    bin("wif-impersonate")
        .args(["--service-account", SA, "--endpoint", base, "--ca-file", &pki_file("ca-chain.crt"), "--retries", "0"])
        .arg("--token-out")
        .arg(token_out)
        .write_stdin(doc.to_vec())
        .output()
        .unwrap()
}

#[test]
fn the_x509_pipeline_ends_in_the_token_file() {
    let e = tls_emu(&[]);
    let chain = pki_file("intermediate-ca.crt");
    let ck = cert_and_key("client");
    let mut args: Vec<&str> = ck.iter().map(String::as_str).collect();
    args.extend(["--trust-chain", &chain]);
    let sts = sts_x509(&e.base, &args);
    assert!(sts.status.success(), "{}", stderr(&sts));
    let doc = json_out(&sts);
    let s = &doc["sts"];
    assert_eq!(s["path"], "x509");
    assert_eq!(s["subject_token_type"], "urn:ietf:params:oauth:token-type:mtls");
    assert_eq!(s["certificate"]["sha256"], leaf_sha256(&pki_file("client.crt")));
    assert!(s["certificate"]["subject"].as_str().unwrap().contains("CN=wif-client"), "{s}");
    assert!(s["certificate"]["not_after"].as_str().unwrap().ends_with('Z'));
    assert_eq!(s["certificate"]["trust_chain_file"], chain);
    assert!(s["certificate"].get("key_password_file").is_none());
    assert!(!s["token"].as_str().unwrap().is_empty());

    let dir = tempdir();
    let token = dir.path().join("wif_token.txt");
    let imp = impersonate(&sts.stdout, &e.base, &token);
    assert!(imp.status.success(), "{}", stderr(&imp));
    let doc = json_out(&imp);
    let written = std::fs::read_to_string(&token).unwrap();
    assert_eq!(written, doc["impersonated"]["token"].as_str().unwrap());
    assert!(written.starts_with("ya29."), "an access token");
    let mode = std::fs::metadata(&token).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions())).unwrap();
    assert_eq!(mode & 0o777, 0o600);
    let calls: Vec<Value> = e.emu.requests();
    let iam =
        calls.iter().find(|r| r["path"].as_str().unwrap_or("").contains(":generateAccessToken")).expect("an IAM call");
    assert_eq!(iam["scheme"], "https");
    assert_eq!(iam["status"], 200);
}

#[test]
fn a_pkcs12_workload_certificate_works_and_is_presented_to_iam_too() {
    let e = tls_emu(&[]);
    let sts = sts_x509(&e.base, &["--cert", &pki_file("client.p12"), "--key-password-file", &pki_file("app.p12.pass")]);
    assert!(sts.status.success(), "{}", stderr(&sts));
    let doc = json_out(&sts);
    assert_eq!(doc["sts"]["certificate"]["key_file"], pki_file("client.p12"));
    assert_eq!(doc["sts"]["certificate"]["key_password_file"], pki_file("app.p12.pass"));
    let dir = tempdir();
    let imp = impersonate(&sts.stdout, &e.base, &dir.path().join("t"));
    assert!(imp.status.success(), "{}", stderr(&imp));

    // A certificate renewed between the two steps: wif-impersonate says so instead of
    // presenting a certificate STS never saw.
    let mut changed = doc.clone();
    changed["sts"]["certificate"]["sha256"] = json!("00".repeat(32));
    let imp = impersonate(changed.to_string().as_bytes(), &e.base, &dir.path().join("t2"));
    assert_eq!(imp.status.code(), Some(3), "{}", stderr(&imp));
    assert!(stderr(&imp).contains("no longer the certificate wif-sts presented"), "{}", stderr(&imp));
    assert!(!dir.path().join("t2").exists());
}

#[test]
fn googles_files_both_ways_printed_then_read() {
    let e = tls_emu(&[]);
    let dir = tempdir();
    let cert_config = dir.path().join("certificate_config.json");
    let cred = dir.path().join("clientLibraryConfig.json");
    let chain = pki_file("intermediate-ca.crt");
    let printed = bin("wif-sts")
        .args(["--print-credential-config", "--x509", "--audience", &x509_audience()])
        .args(cert_and_key("client"))
        .args(["--trust-chain", &chain, "--service-account", SA])
        .args(["--token-url", &format!("{}/v1/token", e.base), "--iam-endpoint", &e.base])
        .arg("--certificate-config-out")
        .arg(&cert_config)
        .output()
        .unwrap();
    assert!(printed.status.success(), "{}", stderr(&printed));
    let config = json_out(&printed);
    assert_eq!(config["type"], "external_account");
    assert_eq!(config["subject_token_type"], "urn:ietf:params:oauth:token-type:mtls");
    assert_eq!(config["credential_source"]["certificate"]["certificate_config_location"], json!(cert_config));
    assert_eq!(config["credential_source"]["certificate"]["trust_chain_path"], chain);
    assert!(config["credential_source"]["certificate"].get("use_default_certificate_config").is_none());
    assert_eq!(
        config["service_account_impersonation_url"],
        format!("{}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken", e.base)
    );
    let written: Value = serde_json::from_slice(&std::fs::read(&cert_config).unwrap()).unwrap();
    assert_eq!(written["version"], 1);
    assert_eq!(written["cert_configs"]["workload"]["cert_path"], pki_file("client.crt"));
    assert_eq!(written["cert_configs"]["workload"]["key_path"], pki_file("client.key"));
    std::fs::write(&cred, &printed.stdout).unwrap();

    // Read back: the credential configuration alone drives both steps.
    let sts = bin("wif-sts")
        .arg("--credential-config")
        .arg(&cred)
        .args(["--ca-file", &pki_file("ca-chain.crt")])
        .write_stdin("")
        .output()
        .unwrap();
    assert!(sts.status.success(), "{}", stderr(&sts));
    let doc = json_out(&sts);
    assert_eq!(doc["sts"]["path"], "x509");
    assert_eq!(doc["sts"]["certificate"]["trust_chain_file"], chain);
    let imp = bin("wif-impersonate")
        .args(["--ca-file", &pki_file("ca-chain.crt")])
        .write_stdin(sts.stdout.clone())
        .output()
        .unwrap();
    assert!(imp.status.success(), "{}", stderr(&imp));
    assert_eq!(json_out(&imp)["impersonated"]["service_account"], SA);

    // The default location: GOOGLE_API_CERTIFICATE_CONFIG, then gcloud's directory.
    for (var, value) in
        [("GOOGLE_API_CERTIFICATE_CONFIG", cert_config.clone()), ("CLOUDSDK_CONFIG", dir.path().to_path_buf())]
    {
        let sts = bin("wif-sts")
            .args(["--x509", "--audience", &x509_audience(), "--trust-chain", &chain])
            .args(["--token-url", &format!("{}/v1/token", e.base), "--ca-file", &pki_file("ca-chain.crt")])
            .env_remove("GOOGLE_API_CERTIFICATE_CONFIG")
            .env(var, &value)
            .write_stdin("")
            .output()
            .unwrap();
        assert!(sts.status.success(), "{var}: {}", stderr(&sts));
        assert_eq!(json_out(&sts)["sts"]["certificate"]["cert_file"], pki_file("client.crt"));
    }
}

#[test]
fn the_printed_configuration_says_use_default_without_an_output_file() {
    let out = bin("wif-sts")
        .args(["--print-credential-config", "--x509", "--audience", &x509_audience()])
        .args(cert_and_key("client"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let config = json_out(&out);
    assert_eq!(config["token_url"], "https://sts.mtls.googleapis.com/v1/token");
    assert_eq!(config["credential_source"]["certificate"]["use_default_certificate_config"], true);
    assert!(stderr(&out).contains("use_default_certificate_config"), "{}", stderr(&out));
    // With a service account the impersonation URL is IAM Credentials' mTLS host.
    let out = bin("wif-sts")
        .args(["--print-credential-config", "--x509", "--audience", &x509_audience(), "--service-account", SA])
        .args(cert_and_key("client"))
        .output()
        .unwrap();
    let url = json_out(&out)["service_account_impersonation_url"].as_str().unwrap().to_string();
    assert!(url.starts_with("https://iamcredentials.mtls.googleapis.com/v1/projects/-/serviceAccounts/"), "{url}");
    // google-auth reads PEM files only: a PKCS#12 file cannot go into certificate_config.json.
    let dir = tempdir();
    let out = bin("wif-sts")
        .args(["--print-credential-config", "--x509", "--audience", &x509_audience()])
        .args(["--cert", &pki_file("client.p12"), "--key-password-file", &pki_file("app.p12.pass")])
        .arg("--certificate-config-out")
        .arg(dir.path().join("cc.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("PKCS#12"), "{}", stderr(&out));
}

#[test]
fn refusals_before_any_request() {
    // Nothing listens here: every case must fail before it would connect.
    let nowhere = "https://localhost:1";
    let dir = tempdir();
    let leaf_last = dir.path().join("leaf-last.pem");
    let pem = |name: &str| std::fs::read_to_string(pki_file(name)).unwrap();
    std::fs::write(&leaf_last, pem("intermediate-ca.crt") + &pem("client.crt")).unwrap();
    let leaf_last = leaf_last.to_string_lossy().into_owned();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (cert_and_key("client-expired").to_vec(), 3, "expired at"),
        (
            vec!["--cert".into(), pki_file("client.crt"), "--key".into(), pki_file("client2.key")],
            3,
            "does not belong to the certificate",
        ),
        (
            [&cert_and_key("client")[..], &["--trust-chain".into(), leaf_last.clone()]].concat(),
            3,
            "holds the leaf certificate",
        ),
        (
            [&cert_and_key("client")[..], &["--subject-token-type".into(), "jwt".into()]].concat(),
            2,
            "does not go with the X.509 path",
        ),
        (vec![], 2, "the X.509 path needs the workload certificate"),
    ];
    for (args, code, why) in cases {
        let out = bin("wif-sts")
            .args(["--x509", "--audience", &x509_audience(), "--token-url", &format!("{nowhere}/v1/token")])
            .args(&args)
            .env("HOME", dir.path())
            .env_remove("GOOGLE_API_CERTIFICATE_CONFIG")
            .env_remove("CLOUDSDK_CONFIG")
            .write_stdin("")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{why}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{why}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    // A credential configuration that names both ways to find the certificate.
    let cred = dir.path().join("cred.json");
    std::fs::write(
        &cred,
        json!({"type": "external_account", "audience": x509_audience(),
               "subject_token_type": "urn:ietf:params:oauth:token-type:mtls",
               "credential_source": {"certificate": {"use_default_certificate_config": true,
                                                      "certificate_config_location": "/x"}}})
        .to_string(),
    )
    .unwrap();
    let out = bin("wif-sts").arg("--credential-config").arg(&cred).write_stdin("").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("both certificate_config_location and use_default_certificate_config"));
}
