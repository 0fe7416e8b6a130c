//! Secrets never leak: every tool's failure paths run with recognisable secret values
//! (canaries), including remote services that echo what they were sent back in their error
//! messages, and neither stdout nor stderr may contain them.

use crate::common::{bin, pki_file, stderr, tempdir, Canned, TestServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

const CANARY_SECRET: &str = "canary-client-secret-7Q2mZ";
const CANARY_PASSWORD: &str = "canary-password-Xk81";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A JWT-shaped subject token whose signature part is a canary.
fn canary_jwt() -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let c =
        URL_SAFE_NO_PAD.encode(json!({"sub": "s", "aud": "a", "iss": "https://i", "exp": now() + 3600}).to_string());
    format!("{h}.{c}.Y2FuYXJ5LXNpZ25hdHVyZS1jYW5hcnk")
}

/// Asserts a failed run printed nothing on stdout and no canary anywhere.
fn assert_leak_free(out: &std::process::Output, canaries: &[&str], code: i32) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout is empty on failure");
    for c in canaries {
        assert!(!err.contains(c), "stderr leaks {c:?}: {err}");
        // Also the distinctive tail, in case something prints a slice of it.
        let tail = &c[c.len().saturating_sub(12)..];
        assert!(!err.contains(tail), "stderr leaks the end of a secret: {err}");
    }
    assert!(err.lines().count() >= 1 && err.lines().all(|l| l.starts_with("wif-")), "one-line errors: {err}");
}

#[test]
fn a_wrong_pkcs12_password_and_a_broken_key_do_not_echo_secrets() {
    let dir = tempdir();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, CANARY_PASSWORD).unwrap();
    let out = bin("wif-sign")
        .args(["--client-id", "app", "--tenant-id", "t", "--key", &pki_file("app.p12"), "--key-password-file"])
        .arg(&pass)
        .output()
        .unwrap();
    assert_leak_free(&out, &[CANARY_PASSWORD], 3);

    // A damaged PEM key whose body is a canary: the error names the file, not its content.
    let key = dir.path().join("broken.key");
    let body = "Y2FuYXJ5LWtleS1tYXRlcmlhbC1kby1ub3QtcHJpbnQ";
    std::fs::write(&key, format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")).unwrap();
    let out = bin("wif-sign")
        .args(["--client-id", "app", "--tenant-id", "t", "--cert", &pki_file("app-rsa.crt"), "--key"])
        .arg(&key)
        .output()
        .unwrap();
    assert_leak_free(&out, &[body], 3);
}

#[test]
fn remote_errors_that_echo_our_secrets_are_scrubbed() {
    let dir = tempdir();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, CANARY_SECRET).unwrap();
    let subject = canary_jwt();

    // Azure: a client secret, and an error description that quotes it back.
    let srv = TestServer::start(vec![Canned::json(
        401,
        json!({"error": "invalid_client", "error_description": format!("AADSTS7000215: Invalid client secret provided: {CANARY_SECRET}"), "error_codes": [7000215]}),
    )]);
    let out = bin("wif-azure")
        .args(["--token-url", &format!("{}/t/oauth2/v2.0/token", srv.url), "--client-id", "app"])
        .args(["--scope", "api://x/.default", "--client-secret-file"])
        .arg(&secret_file)
        .output()
        .unwrap();
    assert_leak_free(&out, &[CANARY_SECRET], 4);
    assert!(stderr(&out).contains("AADSTS7000215"), "the error itself is still shown");

    // STS: the subject token quoted in the error, and in a 503 body that is retried.
    let doc = json!({"version": 1, "azure": {"token": subject, "token_type": "Bearer",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "source": "file", "endpoint": "file"}})
    .to_string();
    let audience = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/r";
    let srv = TestServer::start(vec![
        Canned::raw(503, "text/plain", &format!("overloaded while handling {subject}")),
        Canned::json(
            400,
            json!({"error": "invalid_grant", "error_description": format!("The token {subject} is invalid")}),
        ),
    ]);
    let out = bin("wif-sts")
        .args(["--token-url", &format!("{}/v1/token", srv.url), "--audience", audience, "--retries", "2"])
        .write_stdin(doc)
        .output()
        .unwrap();
    assert_leak_free(&out, &[&subject, "Y2FuYXJ5LXNpZ25hdHVyZS1jYW5hcnk"], 4);
    assert!(stderr(&out).contains("retry 1/2"), "the retry is visible: {}", stderr(&out));

    // IAM: the federated token quoted back.
    let federated = "ya29.canary-federated-token-Zp4";
    let doc = json!({"version": 1, "sts": {"token": federated, "token_type": "Bearer", "expires_at": "2099-01-01T00:00:00Z",
        "endpoint": "x", "audience": audience, "scope": "s", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}})
    .to_string();
    let srv = TestServer::start(vec![Canned::json(
        403,
        json!({"error": {"code": 403, "message": format!("Permission denied for Bearer {federated}"), "status": "PERMISSION_DENIED"}}),
    )]);
    let out = bin("wif-impersonate")
        .args(["--service-account", "sa@p.iam.gserviceaccount.com", "--endpoint", &srv.url])
        .write_stdin(doc)
        .output()
        .unwrap();
    assert_leak_free(&out, &[federated], 4);
}

#[test]
fn group_readable_key_files_draw_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let key = dir.path().join("app.key");
    std::fs::copy(pki_file("app-rsa.key"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = bin("wif-sign")
        .args(["--client-id", "app", "--tenant-id", "t", "--cert", &pki_file("app-rsa.crt"), "--key"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("warning") && err.contains("chmod 600"), "like ssh, a loose key is called out: {err}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["assertion"]["token"].is_string());
}

#[test]
fn debug_output_of_the_library_types_never_shows_a_secret() {
    let canary = "ya29.canary-in-debug-output-Qw9";
    let doc =
        json!({"version": 1, "sts": {"token": canary, "token_type": "Bearer", "expires_at": "2099-01-01T00:00:00Z",
        "endpoint": "x", "audience": "a", "scope": "s", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"},
        "other": {"anything": canary}})
        .to_string();
    let parsed = wif::core::document::Document::parse(doc.as_bytes()).unwrap();
    let section: wif::core::document::StsSection = parsed.require().unwrap();
    let key = wif::core::keys::load_key(std::path::Path::new(&pki_file("app-rsa.key")), None).unwrap();
    let dir = tempdir();
    let file = dir.path().join("t");
    let secret = wif::core::secret::Secret::new(canary);
    wif::core::files::write_token(&file, &secret, "access_token", Some("2099-01-01T00:00:00Z"), "test").unwrap();
    let stored = wif::core::files::read_token(&file);
    assert!(matches!(stored, wif::core::files::Stored::Found(_)), "{}", stored.detail());
    for shown in [
        format!("{parsed:?}"),
        format!("{section:?}"),
        format!("{secret:?} {secret}"),
        format!("{stored:?}"),
        format!("{:?}", wif::core::secret::Secret::new(CANARY_PASSWORD)),
    ] {
        assert!(!shown.contains(canary) && !shown.contains(CANARY_PASSWORD), "Debug shows a secret: {shown}");
    }
    let key_debug = format!("{key:?}");
    assert!(!key_debug.contains("BEGIN") && key_debug.len() < 200, "a key's Debug is a summary: {key_debug}");
}

#[test]
fn wif_get_keeps_its_pkcs12_password_and_the_token_off_stderr() {
    let dir = tempdir();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, CANARY_PASSWORD).unwrap();
    let out = bin("wif-get")
        .args(["--url", "https://127.0.0.1:9/get_wif_token", "--cert", &pki_file("client.p12")])
        .args(["--ca", &pki_file("ca-chain.crt"), "--key-password-file"])
        .arg(&pass)
        .output()
        .unwrap();
    assert_leak_free(&out, &[CANARY_PASSWORD], 3);
}

/// A token endpoint that answers every request with what `answer` makes of the body it
/// received: a server that echoes what it was sent. Stops when dropped.
struct Echo {
    url: String,
    server: std::sync::Arc<tiny_http::Server>,
}

impl Echo {
    fn start(answer: fn(&str) -> (u16, String)) -> Echo {
        let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let srv = server.clone();
        std::thread::spawn(move || {
            for mut rq in srv.incoming_requests() {
                let mut body = String::new();
                let _ = rq.as_reader().read_to_string(&mut body);
                let (status, text) = answer(&body);
                let json = tiny_http::Header::from_bytes("Content-Type", "application/json").expect("header");
                let _ = rq.respond(tiny_http::Response::from_string(text).with_status_code(status).with_header(json));
            }
        });
        Echo { url: format!("http://127.0.0.1:{port}/t/oauth2/v2.0/token"), server }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// Runs wif-azure with `secret` as its client secret against `srv`.
fn azure_with_secret(srv: &Echo, secret: &str) -> std::process::Output {
    let dir = tempdir();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, secret).unwrap();
    bin("wif-azure")
        .args(["--token-url", &srv.url, "--client-id", "app", "--scope", "api://x/.default", "--client-secret-file"])
        .arg(&secret_file)
        .output()
        .unwrap()
}

#[test]
fn remote_errors_that_echo_a_form_encoded_secret_are_scrubbed_in_every_encoding() {
    use base64::engine::general_purpose::STANDARD;
    const SECRET: &str = "s3cr+t/va=lue&x%y";
    // What wif sends (application/x-www-form-urlencoded), and how servers re-encode it.
    let sent = "s3cr%2Bt%2Fva%3Dlue%26x%25y";
    let lower = sent.to_ascii_lowercase();
    let twice = sent.replace('%', "%25");
    let basic = STANDARD.encode(format!("app:{SECRET}"));
    let json_escaped = r#"s3cr+t\/va=lue&x%y"#;

    // Azure AD quoting the whole request body back, and re-encodings of the secret in it.
    let srv = Echo::start(|body| {
        let field = body.split('&').find_map(|p| p.strip_prefix("client_secret=")).unwrap_or("");
        let decoded = wif::http::percent_decode(field, true);
        let basic = STANDARD.encode(format!("app:{decoded}"));
        let description = format!(
            "AADSTS7000215: Invalid client secret provided. Request body: {body}; lower-case: {}; re-encoded: {}; basic: {basic}",
            field.to_ascii_lowercase(),
            field.replace('%', "%25"),
        );
        (
            401,
            json!({"error": "invalid_client", "error_description": description, "error_codes": [7000215]}).to_string(),
        )
    });
    let out = azure_with_secret(&srv, SECRET);
    assert_leak_free(&out, &[SECRET, sent, &lower, &twice, &basic], 4);
    let err = stderr(&out);
    assert!(err.contains("AADSTS7000215") && err.contains("client_id=app"), "the rest of the echo is shown: {err}");
    assert!(err.contains("client_secret=<redacted>&scope="), "exactly the secret is cut out: {err}");

    // A JSON answer in no format wif knows, printed as an excerpt, escaping '/' like PHP.
    let srv = Echo::start(|body| {
        let field = body.split('&').find_map(|p| p.strip_prefix("client_secret=")).unwrap_or("");
        let decoded = wif::http::percent_decode(field, true);
        let quoted = serde_json::to_string(&decoded).unwrap().replace('/', "\\/");
        (400, format!(r#"{{"detail":"client_secret {quoted} is wrong"}}"#))
    });
    let out = azure_with_secret(&srv, SECRET);
    assert_leak_free(&out, &[SECRET, json_escaped], 4);
    assert!(stderr(&out).contains("HTTP 400"), "{}", stderr(&out));
}

#[test]
fn a_secret_cut_in_half_by_an_excerpt_does_not_leak_its_first_half() {
    const SECRET: &str = "Xq8~vT2.kLmN9pQrStUvWxYz0123456789AbCdEf";
    // A proxy's error page quoting the request body, padded so that the 160 characters of
    // the excerpt end in the middle of the secret.
    let srv = Echo::start(|body| {
        let at = body.find(SECRET).unwrap_or(0);
        // "<html><body><p>" (15) + pad + " Rejected. Request body: " (25) + the body up to the
        // secret: the secret starts at character 145, 15 characters before the cut.
        let pad = "x".repeat(105usize.saturating_sub(at));
        (400, format!("<html><body><p>{pad} Rejected. Request body: {body}</p></body></html>"))
    });
    let out = azure_with_secret(&srv, SECRET);
    let err = stderr(&out);
    assert!(err.contains("HTTP 400"), "{err}");
    assert!(!err.contains(&SECRET[..8]), "stderr leaks the start of the secret: {err}");
}
