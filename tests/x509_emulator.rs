//! wif-emulate's X.509 path over real mutual TLS on loopback: STS's mtls exchange for an
//! X.509 provider (success, then IAM over mTLS with the federated token; every refusal with
//! Google's error shape), trust stores refused at load with their JSON path, per-service
//! fault injection, and the clock offset in every answer's `Date`.

use crate::common::broker::pki_client;
use crate::common::server::{client_config, connect, read_response, Resp};
use crate::common::*;
use crate::emulator::{example, provider, tls_emu, Emu, SA};
use base64::Engine;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

const MTLS: &str = "urn:ietf:params:oauth:token-type:mtls";

/// The example configuration plus providers for the tests: `x509-file` (the trust store
/// from gen-test-pki.sh's trust-store.json) and `x509-strict` (a condition no certificate
/// of the test PKI meets).
fn config() -> Value {
    let mut cfg = example();
    let providers = cfg["google"]["pools"][0]["providers"].as_array_mut().unwrap();
    providers.push(json!({"id": "x509-file", "x509": {"trust_store_config": "pki/trust-store.json"}}));
    providers.push(json!({
        "id": "x509-strict",
        "x509": {"trust_store": {"trustAnchors": [{"pemCertificateFile": "pki/root-ca.crt"}]}},
        "attribute_condition": "assertion.subject.dn.cn == 'someone-else'",
    }));
    cfg
}

/// A client that presents no certificate, trusting the test PKI's CA.
fn anonymous() -> Arc<rustls::ClientConfig> {
    client_config(None, "ca-chain.crt", None)
}

fn port(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// The `subject_token` google-auth sends: the DER certificates of `files`, in order,
/// standard base64 in a JSON array.
fn subject_token(files: &[&str]) -> String {
    let certs: Vec<String> = files
        .iter()
        .flat_map(|f| wif::core::keys::load_certs(Path::new(&pki_file(f))).unwrap())
        .map(|c| base64::engine::general_purpose::STANDARD.encode(c.as_ref()))
        .collect();
    serde_json::to_string(&certs).unwrap()
}

/// The STS form of an mtls exchange for `provider_id` with `token`.
fn form(provider_id: &str, token: &str, token_type: &str) -> String {
    let fields = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("audience", &provider(provider_id)),
        ("scope", "https://www.googleapis.com/auth/cloud-platform"),
        ("requested_token_type", "urn:ietf:params:oauth:token-type:access_token"),
        ("subject_token", token),
        ("subject_token_type", token_type),
    ];
    let enc = |v: &str| percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string();
    fields.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect::<Vec<_>>().join("&")
}

/// One request over a new TLS connection as `client`; `Err` when the connection closes
/// without an answer.
fn call(
    emu: &Emu,
    client: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    extra: &str,
    body: &str,
) -> std::io::Result<Resp> {
    let mut s = connect(port(emu.tls_url.as_deref().unwrap()), client);
    let head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    s.flush()?;
    read_response(&mut s, false)
}

/// An mtls exchange as `client`: the answer.
fn exchange(emu: &Emu, client: Arc<rustls::ClientConfig>, provider_id: &str, token: &str) -> Resp {
    let ct = "Content-Type: application/x-www-form-urlencoded\r\n";
    call(emu, client, "POST", "/v1/token", ct, &form(provider_id, token, MTLS)).expect("an answer")
}

/// generateAccessToken for the example's service account with `token`, as `client`.
fn impersonate(emu: &Emu, client: Arc<rustls::ClientConfig>, token: &str) -> std::io::Result<Resp> {
    let headers = format!("Authorization: Bearer {token}\r\nContent-Type: application/json\r\n");
    let body = json!({"scope": ["https://www.googleapis.com/auth/cloud-platform"]}).to_string();
    call(emu, client, "POST", &format!("/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"), &headers, &body)
}

/// Asserts an OAuth error answer: status, `error`, and a piece of `error_description`.
fn refused(r: &Resp, status: u16, error: &str, says: &str) {
    let body = r.json();
    assert_eq!((r.status, body["error"].as_str()), (status, Some(error)), "{body}");
    let text = body["error_description"].as_str().unwrap();
    assert!(text.contains(says), "{says:?} not in {text:?}");
}

#[test]
fn a_certificate_gets_a_federated_token_and_impersonates_over_mtls() {
    let emu = tls_emu(&config());
    let token = subject_token(&["client.crt", "intermediate-ca.crt"]);
    for provider_id in ["x509", "x509-file"] {
        let r = exchange(&emu, pki_client("client"), provider_id, &token);
        assert_eq!(r.status, 200, "{provider_id}: {:?}", String::from_utf8_lossy(&r.body));
        let body = r.json();
        assert_eq!(body["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token");
        assert_eq!(body["expires_in"], 3600);
        // principal://…/subject/wif-client is bound on the service account.
        let federated = body["access_token"].as_str().unwrap();
        let iam = impersonate(&emu, pki_client("client"), federated).unwrap();
        assert_eq!(iam.status, 200, "{:?}", String::from_utf8_lossy(&iam.body));
        assert!(iam.json()["accessToken"].as_str().is_some_and(|t| !t.is_empty()));
    }
    // The leaf alone builds through the store's intermediate; a P-384 workload is another
    // subject, which the service account's policy does not name.
    let r = exchange(&emu, pki_client("client"), "x509", &subject_token(&["client.crt"]));
    assert_eq!(r.status, 200);
    let r = exchange(&emu, pki_client("client-p384"), "x509", &subject_token(&["client-p384.crt"]));
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let iam = impersonate(&emu, pki_client("client-p384"), r.json()["access_token"].as_str().unwrap()).unwrap();
    assert_eq!((iam.status, iam.json()["error"]["status"].as_str()), (403, Some("PERMISSION_DENIED")));
}

#[test]
fn every_refusal_of_an_mtls_exchange_has_googles_shape() {
    let emu = tls_emu(&config());
    let good = subject_token(&["client.crt", "intermediate-ca.crt"]);
    let r = exchange(&emu, anonymous(), "x509", &good);
    refused(&r, 400, "invalid_request", "no client certificate");
    let r = exchange(&emu, pki_client("client2"), "x509", &good);
    refused(&r, 401, "unauthorized_client", "does not match the client certificate");
    let other = subject_token(&["other-client.crt", "other-intermediate-ca.crt"]);
    let r = exchange(&emu, pki_client("other-client"), "x509", &other);
    refused(&r, 400, "invalid_grant", "does not build to one of its trust anchors");
    let r = exchange(&emu, pki_client("client-expired"), "x509", &subject_token(&["client-expired.crt"]));
    refused(&r, 400, "invalid_grant", "has expired");
    // rustls will not sign with an RSA-1024 key, so the weak key rides in the chain.
    let weak = subject_token(&["client.crt", "client-rsa1024.crt"]);
    let r = exchange(&emu, pki_client("client"), "x509", &weak);
    refused(&r, 400, "invalid_grant", "(subject_token[1]) has an RSA 1024-bit key");
    let r = exchange(&emu, pki_client("client"), "x509", "MIIB-not-json");
    refused(&r, 400, "invalid_request", "JSON array");
    let r = exchange(&emu, pki_client("client"), "x509-strict", &good);
    refused(&r, 400, "invalid_grant", "attribute condition");
    // The wrong kind of token for the provider, both ways.
    let r = exchange(&emu, pki_client("client"), "azure", &good);
    refused(&r, 400, "invalid_request", "only supported for X.509 providers");
    let ct = "Content-Type: application/x-www-form-urlencoded\r\n";
    let jwt = form("x509", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "urn:ietf:params:oauth:token-type:jwt");
    let r = call(&emu, pki_client("client"), "POST", "/v1/token", ct, &jwt).unwrap();
    refused(&r, 400, "invalid_request", "not supported for X.509 providers");
    // The plain listener has no handshake at all.
    let mut tcp = std::net::TcpStream::connect(emu.url.trim_start_matches("http://")).unwrap();
    let body = form("x509", &good, MTLS);
    let head = format!("POST /v1/token HTTP/1.1\r\nHost: localhost\r\n{ct}Content-Length: {}\r\n\r\n", body.len());
    tcp.write_all(format!("{head}{body}").as_bytes()).unwrap();
    refused(&read_response(&mut tcp, false).unwrap(), 400, "invalid_request", "no client certificate");
}

#[test]
fn trust_stores_outside_googles_limits_are_refused_at_load_with_their_json_path() {
    let anchor = json!({"pemCertificateFile": "pki/root-ca.crt"});
    let cases = [
        (json!({"trust_store": {"trustAnchors": []}}), "x509.trust_store.trustAnchors: a trust store holds 1 to 3"),
        (json!({"trust_store": {"trustAnchors": [anchor, anchor, anchor, anchor]}}), "1 to 3 trust anchors"),
        (
            json!({"trust_store": {"trustAnchors": [anchor], "intermediateCas": vec![json!({"pemCertificateFile": "pki/intermediate-ca.crt"}); 11]}}),
            "x509.trust_store.intermediateCas: a trust store holds at most 10",
        ),
        (
            json!({"trust_store": {"trustAnchors": [{"pemCertificateFile": "pki/intermediate-ca.crt"}]}}),
            "x509.trust_store.trustAnchors[0]: a trust anchor must be a self-signed CA certificate",
        ),
        (
            json!({"trust_store": {"trustAnchors": [anchor, {"pemCertificateFile": "pki/client.crt"}]}}),
            "trustAnchors[1]: a trust anchor must be a self-signed CA",
        ),
        (
            json!({"trust_store": {"trustAnchors": [anchor], "intermediateCas": [{"pemCertificateFile": "pki/client-rsa1024.crt"}]}}),
            "intermediateCas[0].pemCertificateFile",
        ),
        (
            json!({"trust_store": {"trustAnchors": [anchor]}, "trust_store_config": "pki/trust-store.json"}),
            "exactly one of",
        ),
    ];
    for (x509, says) in cases {
        let mut cfg = example();
        cfg["google"]["pools"][0]["providers"][3]["x509"] = x509;
        let dir = tempdir();
        std::os::unix::fs::symlink(pki(), dir.path().join("pki")).unwrap();
        std::fs::write(dir.path().join("emulator.json"), cfg.to_string()).unwrap();
        let out = bin("wif-emulate").arg("--config").arg(dir.path().join("emulator.json")).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{says}: {err}");
        assert!(err.contains("google.pools[0].providers[3].x509"), "{err}");
        assert!(err.contains(says), "{says:?} not in {err}");
    }
}

#[test]
fn faults_are_injected_per_service_and_counted() {
    let (cert, key) = (pki_file("server-chain.crt"), pki_file("server.key"));
    let faults = [
        "--fault",
        "sts-x509=unavailable:1",
        "--fault",
        "sts=refused",
        "--fault",
        "iam=reset:1",
        "--fault",
        "azure=unavailable",
        "--fault",
        "storage=refused",
    ];
    let mut args = vec!["--tls-listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key];
    args.extend(faults);
    let emu = Emu::start(&config(), &args);
    let token = subject_token(&["client.crt"]);
    // sts-x509: the first exchange is unavailable, the next one works.
    let r = exchange(&emu, pki_client("client"), "x509", &token);
    assert_eq!((r.status, r.header("Retry-After")), (503, Some("1")));
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    let r = exchange(&emu, pki_client("client"), "x509", &token);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let federated = r.json()["access_token"].as_str().unwrap().to_string();
    // sts (subject-token exchanges) is refused as STS refuses a credential.
    let ct = "Content-Type: application/x-www-form-urlencoded\r\n";
    let jwt = form("azure", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "urn:ietf:params:oauth:token-type:jwt");
    refused(&call(&emu, anonymous(), "POST", "/v1/token", ct, &jwt).unwrap(), 400, "invalid_grant", "");
    // iam: the first call's connection closes unanswered, the next is answered.
    assert!(impersonate(&emu, pki_client("client"), &federated).is_err(), "the connection was reset");
    assert_eq!(impersonate(&emu, pki_client("client"), &federated).unwrap().status, 200);
    // azure: every request, in Azure AD's shape.
    let path = "/7a1c9e4b-0d2f-4c3a-9b8e-1f2a3b4c5d6e/v2.0/.well-known/openid-configuration";
    for _ in 0..2 {
        let r = call(&emu, anonymous(), "GET", path, "", "").unwrap();
        assert_eq!((r.status, r.header("Retry-After")), (503, Some("1")));
        assert_eq!(r.json()["error_codes"][0], 90033);
    }
    let r = call(&emu, anonymous(), "GET", "/storage/v1/b/wif-demo/o", "", "").unwrap();
    assert_eq!((r.status, r.json()["error"]["code"].as_u64()), (403, Some(403)));
    let outcomes: Vec<String> =
        emu.requests().iter().map(|r| r["outcome"].as_str().unwrap_or_default().to_string()).collect();
    assert!(outcomes.contains(&"injected_reset".to_string()), "{outcomes:?}");
    assert!(outcomes.contains(&"injected_sts-x509_503".to_string()), "{outcomes:?}");
}

/// The `Date` of an answer, Unix seconds.
fn date(r: &Resp) -> i64 {
    let text = r.header("Date").expect("a Date header");
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text, format)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .assume_utc()
        .unix_timestamp()
}

#[test]
fn the_clock_offset_shows_in_every_date_and_in_time_checks() {
    let now = || wif::core::clock::now_unix();
    for (offset, secs) in [("10m", 600), ("-1d", -86_400)] {
        let (cert, key) = (pki_file("server-chain.crt"), pki_file("server.key"));
        let args = ["--tls-listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key, "--clock-offset", offset];
        let emu = Emu::start(&config(), &args);
        let r = call(&emu, anonymous(), "GET", "/nowhere", "", "").unwrap();
        assert_eq!(r.status, 404);
        assert!((date(&r) - now() - secs).abs() <= 5, "{offset}: {:?}", r.header("Date"));
        // The time checks follow it: a day behind, a certificate issued during this run
        // is not valid yet; 10 minutes ahead, it still is.
        let r = exchange(&emu, pki_client("client"), "x509", &subject_token(&["client.crt"]));
        if secs < 0 {
            refused(&r, 400, "invalid_grant", "not yet valid");
        } else {
            assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
        }
        assert!((date(&r) - now() - secs).abs() <= 5);
    }
}

/// `wif-sts --x509` against the emulator's TLS listener as `name` of the test PKI.
fn wif_sts_x509(emu: &Emu, name: &str, chain: &str) -> std::process::Output {
    let tls = emu.tls_url.as_deref().unwrap();
    bin("wif-sts")
        .args(["--x509", "--audience", &provider("x509"), "--token-url", &format!("{tls}/v1/token")])
        .args(["--cert", &pki_file(&format!("{name}.crt")), "--key", &pki_file(&format!("{name}.key"))])
        .args(["--trust-chain", &pki_file(chain), "--ca-file", &pki_file("ca-chain.crt")])
        .output()
        .unwrap()
}

#[test]
fn the_x509_pipeline_gets_a_token_from_the_emulator() {
    let emu = tls_emu(&config());
    let sts = wif_sts_x509(&emu, "client", "intermediate-ca.crt");
    assert!(sts.status.success(), "wif-sts: {}", String::from_utf8_lossy(&sts.stderr));
    let doc: Value = serde_json::from_slice(&sts.stdout).unwrap();
    assert_eq!(doc["sts"]["path"], "x509");
    let dir = tempdir();
    let token_file = dir.path().join("wif_token.txt");
    let tls = emu.tls_url.as_deref().unwrap();
    let out = bin("wif-impersonate")
        .args(["--endpoint", tls, "--ca-file", &pki_file("ca-chain.crt"), "--service-account", SA])
        .arg("--token-out")
        .arg(&token_file)
        .write_stdin(sts.stdout)
        .output()
        .unwrap();
    assert!(out.status.success(), "wif-impersonate: {}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(&token_file).unwrap().starts_with("ya29."));
    // IAM was called over mTLS with the same certificate: its request is in the log.
    let iam = emu.requests().into_iter().filter(|r| r["path"].as_str().unwrap_or("").contains(":generateAccessToken"));
    assert!(iam.into_iter().any(|r| r["scheme"] == "https" && r["status"] == 200));
    // A certificate of the other hierarchy is refused by STS: exit 4.
    let other = wif_sts_x509(&emu, "other-client", "other-intermediate-ca.crt");
    assert_eq!(other.status.code(), Some(4), "{}", String::from_utf8_lossy(&other.stderr));
    assert!(String::from_utf8_lossy(&other.stderr).contains("invalid_grant"));
    // The hint says what to do about an untrusted chain.
    assert!(String::from_utf8_lossy(&other.stderr)
        .contains("hint: the chain does not lead to an anchor of the provider's trust store"));
}

/// A subject_token of `n` copies of `file`'s first certificate after `leaf`'s.
fn padded_token(leaf: &str, file: &str, n: usize) -> String {
    let der = |f: &str| wif::core::keys::load_certs(Path::new(&pki_file(f))).unwrap().remove(0);
    let b64 = |c: &[u8]| base64::engine::general_purpose::STANDARD.encode(c);
    let mut list = vec![b64(der(leaf).as_ref())];
    list.extend(std::iter::repeat(b64(der(file).as_ref())).take(n));
    serde_json::to_string(&list).unwrap()
}

#[test]
fn no_federated_token_for_a_certificate_the_trust_store_does_not_anchor() {
    let emu = tls_emu(&config());
    // (client presented in the handshake, subject_token) pairs that must all be refused, each
    // with Google's invalid_grant: CA certificates used as the workload's (the anchor itself,
    // self-signed; the intermediate), a certificate without clientAuth, another hierarchy's
    // leaf whatever anchor its chain lists.
    let cases: [(&str, &[&str]); 7] = [
        ("root-ca", &["root-ca.crt"]),
        ("root-ca", &["root-ca.crt", "root-ca.crt"]),
        ("intermediate-ca", &["intermediate-ca.crt"]),
        ("intermediate-ca", &["intermediate-ca.crt", "root-ca.crt"]),
        ("client-serveronly", &["client-serveronly.crt", "intermediate-ca.crt"]),
        ("server", &["server.crt", "intermediate-ca.crt", "root-ca.crt"]),
        ("other-client", &["other-client.crt", "intermediate-ca.crt", "root-ca.crt"]),
    ];
    for (who, chain) in cases {
        let r = exchange(&emu, pki_client(who), "x509", &subject_token(chain));
        let body = r.json();
        assert_eq!((r.status, body["error"].as_str()), (400, Some("invalid_grant")), "{who} {chain:?}: {body}");
        assert!(body.get("access_token").is_none(), "{who} {chain:?}");
    }
    // The right leaf with the anchor listed, or with another hierarchy's certificates beside
    // its own, still builds only through the provider's anchor: accepted, as the same subject.
    for chain in [
        &["client.crt", "intermediate-ca.crt", "root-ca.crt"][..],
        &["client.crt", "other-intermediate-ca.crt", "other-root-ca.crt", "intermediate-ca.crt"],
    ] {
        let r = exchange(&emu, pki_client("client"), "x509", &subject_token(chain));
        assert_eq!(r.status, 200, "{chain:?}: {:?}", String::from_utf8_lossy(&r.body));
    }
}

#[test]
fn malformed_and_oversized_subject_tokens_are_refused_quickly() {
    let emu = tls_emu(&config());
    let client = || pki_client("client");
    for bad in [r#"["!!!not base64"]"#, "[1]", r#"[["MIIB"]]"#, "[]", r#"{"0": "MIIB"}"#, r#"["aGVsbG8="]"#, "null"] {
        let r = exchange(&emu, client(), "x509", bad);
        refused(&r, 400, "invalid_request", "subject_token");
    }
    // The leaf followed by many copies of an intermediate, or of the leaf itself: an answer,
    // never a token from the padding, and in good time.
    for (file, n) in [("intermediate-ca.crt", 400), ("client.crt", 400), ("other-intermediate-ca.crt", 400)] {
        let started = std::time::Instant::now();
        let r = exchange(&emu, client(), "x509", &padded_token("client.crt", file, n));
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{file} x{n}: {:?}", started.elapsed());
        assert_eq!(r.status, 400, "{file} x{n}: {:?}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["error"], "invalid_request", "{file} x{n}");
    }
}
