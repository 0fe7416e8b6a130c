//! Clock skew: wif-emulate's clock set off by `--clock-offset` (the signer's clock is then that
//! far behind or ahead of the service's). wif-azure signs the assertion again at the server's
//! time, once, with one warning; without the signer recipe it fails with the skew in its hint;
//! wif-sts's hint names the skew when STS refuses the subject token for its time.

use crate::common::*;
use crate::emulator::{example, ok, provider, run, s, Emu, APP, SA, TENANT};
use serde_json::{json, Value};
use std::process::Output;

/// wif-sign for the emulator's tenant and app with the registered RSA key.
fn sign(emu: &Emu) -> Value {
    let mut a = s(&["--authority", &emu.url, "--tenant-id", TENANT, "--client-id", APP]);
    a.extend(s(&["--key", &pki_file("app-rsa.key"), "--cert", &pki_file("app-rsa.crt")]));
    serde_json::from_slice(&ok(run("wif-sign", &a, b""), "wif-sign")).unwrap()
}

fn azure(doc: &Value) -> Output {
    run("wif-azure", &s(&["--scope", "api://wif-gcp/.default"]), doc.to_string().as_bytes())
}

/// The stderr lines that are warnings.
fn warnings(out: &Output) -> Vec<String> {
    stderr(out).lines().filter(|l| l.starts_with("wif-azure: warning:")).map(str::to_string).collect()
}

/// The requests the emulator logged at the Azure v2 token endpoint, as (status, outcome).
fn token_requests(emu: &Emu) -> Vec<(u64, String)> {
    let path = format!("/{TENANT}/oauth2/v2.0/token");
    emu.requests()
        .iter()
        .filter(|r| r["path"] == path.as_str())
        .map(|r| (r["status"].as_u64().unwrap(), r["outcome"].as_str().unwrap_or_default().to_string()))
        .collect()
}

/// The number of seconds in "… clock is N s behind …" / "… N s ahead of …", and which way.
fn skew_in(line: &str) -> (i64, &'static str) {
    let after = line.split("this machine's clock is ").nth(1).unwrap_or_else(|| panic!("no skew in: {line}"));
    let (n, rest) = after.split_once(" s ").unwrap();
    let way = if rest.starts_with("behind") {
        "behind"
    } else if rest.starts_with("ahead of") {
        "ahead"
    } else {
        panic!("no direction in: {line}")
    };
    (n.parse().unwrap(), way)
}

#[test]
fn the_signer_records_how_to_sign_again_without_a_secret() {
    let emu = Emu::start(&example(), &[]);
    let doc = sign(&emu);
    let signer = &doc["assertion"]["signer"];
    assert_eq!(
        *signer,
        json!({"key_file": pki_file("app-rsa.key"), "cert_file": pki_file("app-rsa.crt"), "alg": "RS256",
               "thumbprint": "sha1", "x5c": false, "lifetime_secs": 600})
    );
    assert!(std::path::Path::new(signer["key_file"].as_str().unwrap()).is_absolute());
}

#[test]
fn a_signer_clock_ten_minutes_off_still_gets_a_token_with_one_warning() {
    // Two hours ahead: the Azure token's `exp` (the service's clock) has passed by this
    // machine's, and wif-sts must not refuse it for that (wif-impersonate does refuse IAM's
    // expireTime, an absolute time already past by the clock that judges the token file).
    for (offset, way, skew) in [("10m", "behind", 600), ("-10m", "ahead", 600), ("-2h", "ahead", 7200)] {
        let emu = Emu::start(&example(), &["--clock-offset", offset]);
        let dir = tempdir();
        let token_file = dir.path().join("wif_token.txt");
        let out = azure(&sign(&emu));
        let warned = warnings(&out);
        assert_eq!(warned.len(), 1, "one warning with offset {offset}: {}", stderr(&out));
        let (secs, said) = skew_in(&warned[0]);
        assert!((secs - skew).abs() <= 1 && said == way, "{offset}: {}", warned[0]);
        assert!(warned[0].contains("signed the assertion again with the server's time"), "{}", warned[0]);
        assert!(warned[0].contains("fix the clock"), "{}", warned[0]);
        let doc = ok(out, "wif-azure");
        let sts_url = format!("{}/v1/token", emu.url);
        let doc = ok(run("wif-sts", &s(&["--token-url", &sts_url, "--audience", &provider("azure")]), &doc), "wif-sts");
        let reqs = token_requests(&emu);
        assert_eq!(reqs.iter().map(|r| r.0).collect::<Vec<_>>(), [400, 200], "{offset}: signed again once: {reqs:?}");
        if skew > 3600 {
            let d: Value = serde_json::from_slice(&doc).unwrap();
            assert!(d["sts"]["token"].as_str().unwrap().starts_with("ya29."), "{offset}");
            continue;
        }
        let imp = s(&["--endpoint", &emu.url, "--service-account", SA, "--token-out", token_file.to_str().unwrap()]);
        let doc: Value = serde_json::from_slice(&ok(run("wif-impersonate", &imp, &doc), "wif-impersonate")).unwrap();
        let token = std::fs::read_to_string(&token_file).unwrap();
        assert!(token.starts_with("ya29."), "{offset}: a Google token in wif_token.txt");
        assert_eq!(doc["impersonated"]["token"], token.as_str());
    }
}

#[test]
fn a_skew_within_the_back_dating_needs_no_second_signature() {
    let emu = Emu::start(&example(), &["--clock-offset", "20s"]);
    let out = azure(&sign(&emu));
    assert!(warnings(&out).is_empty(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&ok(out, "wif-azure")).unwrap();
    assert!(doc["azure"]["token"].is_string());
    assert_eq!(token_requests(&emu).len(), 1);
}

#[test]
fn an_assertion_without_a_signer_recipe_fails_naming_the_skew() {
    let emu = Emu::start(&example(), &["--clock-offset", "10m"]);
    let mut doc = sign(&emu);
    assert!(doc["assertion"].as_object_mut().unwrap().remove("signer").is_some());
    let out = azure(&doc);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("AADSTS700024"), "{err}");
    let hint = err.lines().find(|l| l.starts_with("wif-azure: hint:")).unwrap_or_else(|| panic!("a hint: {err}"));
    let (secs, way) = skew_in(hint);
    assert!((599..=601).contains(&secs) && way == "behind", "{hint}");
    assert!(hint.contains("signer"), "{hint}");
    assert!(warnings(&out).is_empty(), "nothing was signed again: {err}");
    assert_eq!(token_requests(&emu).len(), 1, "no retry without a recipe");
}

#[test]
fn a_second_refusal_is_reported_and_not_retried() {
    let emu = Emu::start(&example(), &["--clock-offset", "-10m"]);
    let mut doc = sign(&emu);
    // Signed again by this recipe the assertion lives longer than the emulator allows (an
    // hour), so the endpoint refuses it again, for its time range.
    doc["assertion"]["signer"]["lifetime_secs"] = json!(7200);
    let out = azure(&doc);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("retrying once with the assertion signed again"), "{err}");
    let hint = err.lines().find(|l| l.starts_with("wif-azure: hint:")).unwrap();
    assert!(hint.contains("refused too"), "{hint}");
    assert_eq!(skew_in(hint).1, "ahead");
    assert_eq!(warnings(&out).len(), 1, "{err}");
    let reqs = token_requests(&emu);
    assert_eq!(reqs.iter().map(|r| r.0).collect::<Vec<_>>(), [400, 400], "exactly one retry: {reqs:?}");
}

/// An HTTP date `secs` from now, as a server whose clock is that far ahead sends it.
fn http_date_in(secs: i64) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(secs)).format(format).unwrap()
}

#[test]
fn wif_sts_names_the_skew_when_sts_refuses_the_token_for_its_time() {
    let expired = json!({"error": "invalid_grant", "error_description": "The ID Token has expired: exp 2026-01-01T00:00:00Z is in the past."});
    let doc = json!({"azure": {"token": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "token_type": "urn:ietf:params:oauth:token-type:jwt",
                               "subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "source": "file", "endpoint": "/t"}});
    let hint_of = |server: &TestServer| {
        let args = s(&["--token-url", &format!("{}/v1/token", server.url), "--audience", &provider("azure")]);
        let out = run("wif-sts", &args, doc.to_string().as_bytes());
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
        let err = stderr(&out);
        err.lines().find(|l| l.starts_with("wif-sts: hint:")).map(str::to_string).unwrap_or_default()
    };
    let skewed = TestServer::start(vec![Canned::json(400, expired.clone()).header("Date", &http_date_in(-3600))]);
    let hint = hint_of(&skewed);
    let (secs, way) = skew_in(&hint);
    assert!((3599..=3601).contains(&secs) && way == "ahead", "{hint}");
    assert!(hint.contains("127.0.0.1's"), "{hint}");
    // Clocks that agree: the usual hint.
    let agreed = TestServer::start(vec![Canned::json(400, expired).header("Date", &http_date_in(0))]);
    let hint = hint_of(&agreed);
    assert!(!hint.contains("this machine's clock is"), "{hint}");
    assert!(hint.contains("expired"), "{hint}");
}

/// Azure AD's refusal of an assertion for its time, dated `date` (or undated).
fn time_refusal(date: Option<&str>) -> Canned {
    let body = json!({"error": "invalid_client", "error_codes": [700024],
                      "error_description": "AADSTS700024: Client assertion is not within its valid time range. Current time: 2026-12-06T08:00:00Z"});
    let canned = Canned::json(400, body);
    match date {
        Some(d) => canned.header("Date", d),
        None => canned,
    }
}

#[test]
fn an_absurd_or_unreadable_date_is_not_signed_for() {
    // A token endpoint whose Date is a day and more off, in the year 9999 or 0001, repeated,
    // or not a date: wif-azure does not sign an assertion at that time, asks once, and says so.
    let cases: [(&str, Vec<String>, Option<&str>); 5] = [
        ("two days ahead", vec![http_date_in(2 * 86400)], Some("more than a day")),
        ("two days behind", vec![http_date_in(-2 * 86400)], Some("more than a day")),
        ("year 9999", vec!["Fri, 31 Dec 9999 23:59:59 GMT".into()], Some("more than a day")),
        ("year 1", vec!["Mon, 01 Jan 0001 00:00:00 GMT".into()], Some("more than a day")),
        ("not a date", vec!["tomorrow, probably".into()], None),
    ];
    for (what, dates, said) in cases {
        let answers = dates.iter().map(|d| time_refusal(Some(d))).collect::<Vec<_>>();
        let server = TestServer::start(answers);
        let mut a = s(&["--authority", &server.url, "--tenant-id", TENANT, "--client-id", APP]);
        a.extend(s(&["--key", &pki_file("app-rsa.key"), "--cert", &pki_file("app-rsa.crt")]));
        let doc: Value = serde_json::from_slice(&ok(run("wif-sign", &a, b""), "wif-sign")).unwrap();
        let out = azure(&doc);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{what}: {err}");
        assert!(err.contains("AADSTS700024"), "{what}: {err}");
        assert!(warnings(&out).is_empty(), "{what}: nothing signed again: {err}");
        assert_eq!(server.requests().len(), 1, "{what}: no retry");
        if let Some(said) = said {
            let hint =
                err.lines().find(|l| l.starts_with("wif-azure: hint:")).unwrap_or_else(|| panic!("{what}: {err}"));
            assert!(hint.contains(said) && hint.contains("not signed again"), "{what}: {hint}");
        }
    }
}

#[test]
fn a_document_cannot_have_wif_azure_sign_with_a_key_it_names() {
    // A document from elsewhere names a key this user can read, and a token endpoint answers
    // "not within its valid time range" with a plausible Date: wif-azure signs again only an
    // assertion that key signed, for the same client and endpoint — never claims it is handed.
    let other = ("other-app-rsa.key", "other-app-rsa.crt");
    for what in ["another key", "a made-up assertion"] {
        let server = TestServer::start(vec![time_refusal(Some(&http_date_in(600))), time_refusal(None)]);
        let mut a = s(&["--authority", &server.url, "--tenant-id", TENANT, "--client-id", APP]);
        a.extend(s(&["--key", &pki_file("app-rsa.key"), "--cert", &pki_file("app-rsa.crt")]));
        let mut doc: Value = serde_json::from_slice(&ok(run("wif-sign", &a, b""), "wif-sign")).unwrap();
        if what == "another key" {
            doc["assertion"]["signer"]["key_file"] = json!(pki_file(other.0));
            doc["assertion"]["signer"]["cert_file"] = json!(pki_file(other.1));
        } else {
            let aud = doc["assertion"]["token_endpoint"].clone();
            doc["assertion"]["token"] = json!(fake_jwt(json!({"iss": APP, "sub": APP, "aud": aud})));
        }
        let out = azure(&doc);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{what}: {err}");
        assert!(err.contains("the document's assertion was not signed with"), "{what}: {err}");
        assert!(warnings(&out).is_empty(), "{what}: nothing signed again: {err}");
        assert_eq!(server.requests().len(), 1, "{what}: no second request");
    }
}
