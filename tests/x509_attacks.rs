//! An attacker's look at issue 17's new paths: files a document names (the `sts.certificate`
//! and `assertion.signer` recipes come from stdin, so a document from elsewhere can name any
//! file) never have their content echoed in an error, and wif-emulate's STS, Google's stand-in,
//! gives no federated token for a certificate its provider's trust store does not anchor.

use crate::common::*;
use crate::emulator::s;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

/// A secret that must never show in an error, and the forms it could show in (itself, and
/// the byte list a `Debug` of its bytes prints).
const SECRET: &str = "S3CR3T-shadow-hash";

fn leaked(text: &str) -> bool {
    let bytes = format!("{:?}", SECRET.as_bytes());
    text.contains(SECRET) || text.contains(&bytes[1..bytes.len() - 1])
}

/// Files shaped to make a PEM parser quote them: a BEGIN line that is not well formed, a
/// section with the secret as its label and no END, bad base64, and a plain text file.
fn hostile_files(dir: &Path) -> Vec<PathBuf> {
    let contents = [
        format!("-----BEGIN {SECRET} root:$6$xyz:19000:0:99999:7:::\n"),
        format!("-----BEGIN {SECRET}-----\nMIIB\n"),
        format!("-----BEGIN CERTIFICATE-----\n{SECRET}!!\n-----END CERTIFICATE-----\n"),
        format!("-----BEGIN PRIVATE KEY-----\n{SECRET}!!\n-----END PRIVATE KEY-----\n"),
        format!("root:{SECRET}:19000:0:99999:7:::\n"),
    ];
    contents
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let path = dir.join(format!("hostile-{i}"));
            std::fs::write(&path, c).unwrap();
            path
        })
        .collect()
}

fn assert_nothing_echoed(out: &Output, what: &str) {
    let (err, doc) = (stderr(out), String::from_utf8_lossy(&out.stdout).into_owned());
    assert!(!out.status.success(), "{what}: must fail: {err}");
    assert!(!leaked(&err) && !leaked(&doc), "{what}: the file's content was echoed:\n{err}{doc}");
}

#[test]
fn wif_sts_x509_does_not_echo_the_files_it_is_given() {
    let dir = tempdir();
    for file in hostile_files(dir.path()) {
        let f = file.to_str().unwrap();
        for (flag, other, other_file) in
            [("--cert", "--key", pki_file("client.key")), ("--key", "--cert", pki_file("client.crt"))]
        {
            let out = bin("wif-sts")
                .args([
                    "--x509",
                    "--audience",
                    "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x",
                ])
                .args([flag, f, other, &other_file, "--token-url", "http://127.0.0.1:9/v1/token"])
                .write_stdin("")
                .output()
                .unwrap();
            assert_nothing_echoed(&out, &format!("{flag} {f}"));
        }
        let out = bin("wif-sts")
            .args([
                "--x509",
                "--audience",
                "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x",
            ])
            .args(["--cert", &pki_file("client.crt"), "--key", &pki_file("client.key"), "--trust-chain", f])
            .args(["--token-url", "http://127.0.0.1:9/v1/token"])
            .write_stdin("")
            .output()
            .unwrap();
        assert_nothing_echoed(&out, &format!("--trust-chain {f}"));
    }
}

/// An `sts` section of the X.509 path whose certificate files are `cert`, `key`, `chain`.
fn x509_doc(cert: &str, key: &str, chain: Option<&str>) -> Value {
    let mut certificate = json!({"sha256": "00".repeat(32), "subject": "CN=wif-client", "not_after": "2099-01-01T00:00:00Z",
                                 "cert_file": cert, "key_file": key});
    if let Some(chain) = chain {
        certificate["trust_chain_file"] = json!(chain);
    }
    json!({"sts": {"token": "ya29.federated", "token_type": "Bearer", "expires_at": "2099-01-01T00:00:00Z",
                   "endpoint": "https://sts.mtls.googleapis.com/v1/token",
                   "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x",
                   "scope": "https://www.googleapis.com/auth/cloud-platform",
                   "subject_token_type": "urn:ietf:params:oauth:token-type:mtls", "path": "x509",
                   "certificate": certificate}})
}

#[test]
fn wif_impersonate_does_not_echo_the_files_the_document_names() {
    let dir = tempdir();
    let server = TestServer::start(vec![Canned::json(500, json!({}))]);
    let (cert, key) = (pki_file("client.crt"), pki_file("client.key"));
    for file in hostile_files(dir.path()) {
        let f = file.to_str().unwrap();
        for doc in [x509_doc(f, &key, None), x509_doc(&cert, f, None), x509_doc(&cert, &key, Some(f))] {
            let out = bin("wif-impersonate")
                .args([
                    "--service-account",
                    "sa@p.iam.gserviceaccount.com",
                    "--endpoint",
                    &server.url,
                    "--retries",
                    "0",
                ])
                .write_stdin(doc.to_string())
                .output()
                .unwrap();
            assert_nothing_echoed(&out, &format!("sts.certificate naming {f}: {doc}"));
        }
    }
}

#[test]
fn wif_azure_does_not_echo_the_files_the_signer_recipe_names() {
    let dir = tempdir();
    let refusal = json!({"error": "invalid_client", "error_codes": [700024],
                         "error_description": "AADSTS700024: Client assertion is not within its valid time range."});
    let date = {
        let format = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        (time::OffsetDateTime::now_utc() + time::Duration::minutes(10)).format(format).unwrap()
    };
    let server = TestServer::start(vec![Canned::json(400, refusal).header("Date", &date)]);
    let mut a = s(&["--authority", &server.url, "--tenant-id", "t", "--client-id", "c"]);
    a.extend(s(&["--key", &pki_file("app-rsa.key"), "--cert", &pki_file("app-rsa.crt")]));
    let signed = bin("wif-sign").args(&a).write_stdin("").output().unwrap();
    assert!(signed.status.success(), "{}", stderr(&signed));
    let doc: Value = serde_json::from_slice(&signed.stdout).unwrap();
    for file in hostile_files(dir.path()) {
        for field in ["key_file", "cert_file", "key_password_file"] {
            let mut doc = doc.clone();
            doc["assertion"]["signer"][field] = json!(file);
            let out =
                bin("wif-azure").args(["--scope", "api://x/.default"]).write_stdin(doc.to_string()).output().unwrap();
            assert_nothing_echoed(&out, &format!("assertion.signer.{field} naming {}", file.display()));
        }
    }
}

/// A client resolver that presents `client.crt` but signs the handshake with `client2.key`:
/// a certificate copied from somewhere, without its key.
#[derive(Debug)]
struct Stolen(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Stolen {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

fn stolen_certificate_client() -> Arc<rustls::ClientConfig> {
    wif::core::tls::install_crypto_provider();
    let roots = crate::common::server::pki_roots("ca-chain.crt");
    let certs = wif::core::keys::load_certs(Path::new(&pki_file("client.crt"))).unwrap();
    let other_key = wif::core::keys::load_key(Path::new(&pki_file("client2.key")), None).unwrap().key;
    let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&other_key).unwrap();
    let resolver = Stolen(Arc::new(rustls::sign::CertifiedKey::new(certs, signer)));
    Arc::new(
        rustls::ClientConfig::builder().with_root_certificates(roots).with_client_cert_resolver(Arc::new(resolver)),
    )
}

#[test]
fn a_certificate_presented_without_its_key_gets_no_answer() {
    use std::io::{Read, Write};
    let emu = crate::emulator::tls_emu(&crate::emulator::example());
    let port: u16 = emu.tls_url.as_deref().unwrap().rsplit(':').next().unwrap().parse().unwrap();
    let token = {
        use base64::Engine;
        let der = wif::core::keys::load_certs(Path::new(&pki_file("client.crt"))).unwrap().remove(0);
        json!([base64::engine::general_purpose::STANDARD.encode(der.as_ref())]).to_string()
    };
    let body = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&audience={}&scope=x&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Amtls&subject_token={}",
        percent_encoding::utf8_percent_encode(&crate::emulator::provider("x509"), percent_encoding::NON_ALPHANUMERIC),
        percent_encoding::utf8_percent_encode(&token, percent_encoding::NON_ALPHANUMERIC),
    );
    let mut tls = crate::common::server::connect(port, stolen_certificate_client());
    let request = format!(
        "POST /v1/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let wrote = tls.write_all(request.as_bytes()).and_then(|_| tls.flush());
    let mut answer = Vec::new();
    let read = wrote.and_then(|_| tls.read_to_end(&mut answer));
    assert!(read.is_err() || answer.is_empty(), "the handshake must fail: {:?}", String::from_utf8_lossy(&answer));
    assert!(!String::from_utf8_lossy(&answer).contains("access_token"));
    let logged = emu.requests();
    assert!(logged.iter().all(|r| r["path"] != "/v1/token"), "no request got through: {logged:?}");
}
