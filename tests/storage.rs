//! wif-emulate's STS downscoping and its enforcing Cloud Storage subset, end to end: service
//! account tokens reached through the real pipeline (wif-sign | wif-azure | wif-sts |
//! wif-impersonate), downscoped over HTTP as google-auth does it, then used on the emulated
//! JSON API; and the official google-auth `downscoped.Credentials` and google-cloud-storage
//! Python libraries against it.

use crate::common::*;
use crate::emulator::{
    example, external_account, full_pipeline, post, provider, python, s, tls_emu_with_azure_token, Emu, SA,
};
use serde_json::{json, Value};
use wif::core::keys::sha256_hex;
use wif::http::encode_component as enc;

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const VIEWER: &str = "inRole:roles/storage.objectViewer";
/// The example's objects under team-a-data, in name order.
const TEAM_A: &[&str] = &["private/salaries.csv", "reports/2026/q2.csv", "reports/q1.csv"];
const Q1: &str = "quarter,revenue\nq1,100\n";
const REPORTS_ONLY: &str = "resource.name.startsWith('projects/_/buckets/team-a-data/objects/reports/') || api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('reports/')";

/// One boundary rule on a bucket.
fn rule(bucket: &str, permissions: &[&str], condition: Option<&str>) -> Value {
    let mut r = json!({
        "availableResource": format!("//storage.googleapis.com/projects/_/buckets/{bucket}"),
        "availablePermissions": permissions,
    });
    if let Some(c) = condition {
        r["availabilityCondition"] = json!({"expression": c, "title": "test"});
    }
    r
}

fn options(rules: Vec<Value>) -> Value {
    json!({"accessBoundary": {"accessBoundaryRules": rules}})
}

/// The downscoping form: `options` as given (already encoded as wanted) and form-encoded.
fn downscope_form(emu: &Emu, subject: &str, options: Option<&str>) -> (u16, Value) {
    let mut body = format!(
        "grant_type={}&subject_token_type={}&requested_token_type={}&subject_token={}",
        enc(EXCHANGE),
        enc(ACCESS_TOKEN),
        enc(ACCESS_TOKEN),
        enc(subject)
    );
    if let Some(o) = options {
        body.push_str(&format!("&options={}", enc(o)));
    }
    post(&format!("{}/v1/token", emu.url), "application/x-www-form-urlencoded", &body, None)
}

/// Downscopes as google-auth does: the JSON URL-quoted, then form-encoded again.
fn downscope(emu: &Emu, subject: &str, opts: &Value) -> (u16, Value) {
    downscope_form(emu, subject, Some(&enc(&opts.to_string())))
}

/// A downscoped token, or the test fails.
fn downscoped(emu: &Emu, subject: &str, opts: &Value) -> String {
    let (status, v) = downscope(emu, subject, opts);
    assert_eq!(status, 200, "{v}");
    v["access_token"].as_str().unwrap().to_string()
}

/// An answer of the emulated Cloud Storage.
struct Got {
    status: u16,
    content_type: String,
    hash: Option<String>,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn get(url: &str, token: Option<&str>) -> Got {
    let mut r = ureq::get(url).config().http_status_as_error(false).build();
    if let Some(t) = token {
        r = r.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = r.call().unwrap();
    let header = |n: &str| resp.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    let (content_type, hash) = (header("content-type").unwrap_or_default(), header("x-goog-hash"));
    let body = resp.body_mut().read_to_vec().unwrap();
    Got { status: resp.status().as_u16(), content_type, hash, body }
}

/// `GET /storage/v1/b/{bucket}/o{query}`.
fn list(emu: &Emu, bucket: &str, query: &str, token: Option<&str>) -> Got {
    get(&format!("{}/storage/v1/b/{bucket}/o{query}", emu.url), token)
}

/// `GET /storage/v1/b/{bucket}/o/{object}{query}`.
fn object(emu: &Emu, bucket: &str, name: &str, query: &str, token: Option<&str>) -> Got {
    get(&format!("{}/storage/v1/b/{bucket}/o/{}{query}", emu.url, enc(name)), token)
}

fn names(v: &Value) -> Vec<String> {
    v["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect()
}

/// Asserts Cloud Storage's 403 for `permission`.
fn forbidden(got: &Got, permission: &str) {
    assert_eq!(got.status, 403, "{:?}", String::from_utf8_lossy(&got.body));
    let e = &got.json()["error"];
    assert_eq!(e["code"], 403);
    let msg = e["message"].as_str().unwrap();
    assert!(msg.starts_with(&format!("{SA} does not have {permission} access")), "{msg}");
    assert!(msg.contains(&format!("Permission '{permission}' denied on resource (or it may not exist).")), "{msg}");
    assert_eq!(e["errors"][0]["reason"], "forbidden");
    assert_eq!(e["errors"][0]["domain"], "global");
}

/// The service account's token through the real pipeline.
fn sa_token(emu: &Emu) -> String {
    full_pipeline(emu, "app-rsa.key", "app-rsa.crt", &[]).1
}

fn md5_b64(data: &[u8]) -> String {
    let dir = tempdir();
    let f = dir.path().join("data");
    std::fs::write(&f, data).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("openssl dgst -md5 -binary {} | openssl base64 -A", f.display()))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn downscoping_issues_a_bounded_token_that_cannot_be_bounded_again() {
    let emu = Emu::start(&example(), &[]);
    let token = sa_token(&emu);
    let opts = options(vec![rule("team-a-data", &[VIEWER], Some(REPORTS_ONLY))]);
    let (status, v) = downscope(&emu, &token, &opts);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(v["token_type"], "Bearer");
    assert!(v.get("expires_in").is_none(), "a downscoped token expires with its source: {v}");
    let bounded = v["access_token"].as_str().unwrap();
    assert!(bounded.starts_with("ya29.") && bounded != token);
    // Also with options form-encoded once (plain JSON in the field), and as a JSON body.
    let (status, v) = downscope_form(&emu, &token, Some(&opts.to_string()));
    assert_eq!(status, 200, "{v}");
    let json_body = json!({"grant_type": EXCHANGE, "subject_token_type": ACCESS_TOKEN, "requested_token_type": ACCESS_TOKEN, "subject_token": token, "options": opts.to_string()});
    let (status, v) = post(&format!("{}/v1/token", emu.url), "application/json", &json_body.to_string(), None);
    assert_eq!(status, 200, "{v}");
    // A bounded token cannot be bounded again; an unknown one is no subject at all.
    let (status, v) = downscope(&emu, bounded, &opts);
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
    assert!(v["error_description"].as_str().unwrap().contains("already carries"), "{v}");
    let (status, v) = downscope(&emu, "ya29.c.not-issued-here", &opts);
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
    // The log names the outcomes, never a token.
    let log = emu.raw_log();
    assert!(!log.contains(&token) && !log.contains(bounded), "a token in the log");
    let outcomes: Vec<Value> =
        emu.requests().iter().filter(|r| r["path"] == "/v1/token").map(|r| r["outcome"].clone()).collect();
    assert!(outcomes.contains(&json!("invalid_grant")) && outcomes.contains(&json!("ok")), "{outcomes:?}");
}

#[test]
fn downscoping_refusals_follow_google() {
    let emu = Emu::start(&example(), &[]);
    let token = sa_token(&emu);
    let ok_rule = rule("team-a-data", &[VIEWER], None);
    let cases: Vec<(Value, &str)> = vec![
        (options(vec![ok_rule.clone(); 11]), "at most 10"),
        (options(vec![]), "At least one"),
        (json!({"accessBoundary": {}}), "accessBoundaryRules"),
        (
            options(vec![
                json!({"availableResource": "//storage.googleapis.com/projects/p/buckets/team-a-data", "availablePermissions": [VIEWER]}),
            ]),
            "availableResource",
        ),
        (
            options(vec![
                json!({"availableResource": "//bigquery.googleapis.com/projects/_/datasets/d", "availablePermissions": [VIEWER]}),
            ]),
            "availableResource",
        ),
        (options(vec![rule("Team_A", &[VIEWER], None)]), "availableResource"),
        (options(vec![rule("team-a-data", &["storage.objects.get"], None)]), "inRole:"),
        (options(vec![rule("team-a-data", &["inRole:roles/owner"], None)]), "not supported"),
        (options(vec![rule("team-a-data", &[], None)]), "at least one role"),
        (options(vec![rule("team-a-data", &[VIEWER], Some("resource.name.startsWith('a'"))]), "does not parse"),
        (options(vec![rule("team-a-data", &[VIEWER], Some("assertion.sub == 'x'"))]), "does not parse"),
    ];
    for (opts, needle) in cases {
        let (status, v) = downscope(&emu, &token, &opts);
        assert_eq!((status, v["error"].as_str()), (400, Some("invalid_request")), "{opts}: {v}");
        let why = v["error_description"].as_str().unwrap();
        assert!(why.contains(needle), "{opts}: {why} lacks {needle}");
    }
    let (status, v) = downscope_form(&emu, &token, None);
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
    let (status, v) = downscope_form(&emu, &token, Some("{not json"));
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
    // Ten rules are the most, and pass.
    downscoped(&emu, &token, &options(vec![ok_rule; 10]));
}

#[test]
fn an_expired_source_token_cannot_be_downscoped_and_its_downscoped_token_expires_with_it() {
    let emu = Emu::start(&example(), &["--token-lifetime", "3s"]);
    let token = sa_token(&emu);
    let bounded = downscoped(&emu, &token, &options(vec![rule("team-a-data", &[VIEWER], None)]));
    assert_eq!(object(&emu, "team-a-data", "reports/q1.csv", "", Some(&bounded)).status, 200);
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let (status, v) = downscope(&emu, &token, &options(vec![rule("team-a-data", &[VIEWER], None)]));
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
    assert_eq!(object(&emu, "team-a-data", "reports/q1.csv", "", Some(&bounded)).status, 401);
    assert_eq!(object(&emu, "team-a-data", "reports/q1.csv", "", Some(&token)).status, 401);
}

#[test]
fn storage_serves_what_the_buckets_iam_allows_in_cloud_storage_formats() {
    let emu = Emu::start(&example(), &[]);
    let token = sa_token(&emu);
    let t = Some(token.as_str());
    // Listing: all, by prefix, with a delimiter, page by page.
    let all = list(&emu, "team-a-data", "", t);
    assert_eq!(all.status, 200);
    let v = all.json();
    assert_eq!(v["kind"], "storage#objects");
    assert_eq!(names(&v), TEAM_A);
    assert!(v.get("nextPageToken").is_none());
    assert_eq!(
        names(&list(&emu, "team-a-data", "?prefix=reports%2F", t).json()),
        ["reports/2026/q2.csv", "reports/q1.csv"]
    );
    let folded = list(&emu, "team-a-data", "?delimiter=%2F&prefix=reports%2F", t).json();
    assert_eq!(names(&folded), ["reports/q1.csv"]);
    assert_eq!(folded["prefixes"], json!(["reports/2026/"]));
    let mut seen = Vec::new();
    let mut query = "?maxResults=1".to_string();
    loop {
        let page = list(&emu, "team-a-data", &query, t).json();
        seen.extend(names(&page));
        let Some(next) = page["nextPageToken"].as_str() else { break };
        query = format!("?maxResults=1&pageToken={}", enc(next));
        assert!(seen.len() <= TEAM_A.len(), "pages never end");
    }
    assert_eq!(seen, TEAM_A);
    assert_eq!(list(&emu, "team-a-data", "?maxResults=zero", t).status, 400);
    // Metadata, media by both routes, and checksums that match the bytes.
    let meta = object(&emu, "team-a-data", "reports/q1.csv", "", t);
    assert_eq!(meta.status, 200);
    let m = meta.json();
    assert_eq!(m["kind"], "storage#object");
    assert_eq!((m["name"].as_str(), m["bucket"].as_str()), (Some("reports/q1.csv"), Some("team-a-data")));
    assert_eq!(m["size"], Q1.len().to_string());
    assert_eq!(m["contentType"], "text/csv");
    assert_eq!(m["md5Hash"], md5_b64(Q1.as_bytes()));
    assert!(m["generation"].as_str().unwrap().parse::<i64>().unwrap() > 0);
    assert!(m["mediaLink"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/download/storage/v1/b/team-a-data/o/reports%2Fq1.csv?", emu.url)));
    for got in [
        object(&emu, "team-a-data", "reports/q1.csv", "?alt=media", t),
        get(m["mediaLink"].as_str().unwrap(), t),
        get(&format!("{}/download/storage/v1/b/team-a-data/o/reports%2Fq1.csv?alt=media", emu.url), t),
    ] {
        assert_eq!(got.status, 200);
        assert_eq!(got.body, Q1.as_bytes());
        assert!(got.content_type.starts_with("text/csv"), "{}", got.content_type);
        let want = format!("crc32c={},md5={}", m["crc32c"].as_str().unwrap(), m["md5Hash"].as_str().unwrap());
        assert_eq!(got.hash.as_deref(), Some(want.as_str()));
    }
    // Not found only after the permission check; a wrong generation is not found either.
    let missing = object(&emu, "team-a-data", "reports/none.csv", "", t);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["message"], "No such object: team-a-data/reports/none.csv");
    assert_eq!(object(&emu, "team-a-data", "reports/q1.csv", "?alt=media&generation=1", t).status, 404);
    // No binding on the bucket, or no such bucket: 403, the same answer.
    forbidden(&object(&emu, "locked-data", "reports/q1.csv", "?alt=media", t), "storage.objects.get");
    forbidden(&list(&emu, "locked-data", "", t), "storage.objects.list");
    forbidden(&list(&emu, "no-such-bucket", "", t), "storage.objects.list");
    // No token, or one the emulator never issued: 401.
    let anonymous = object(&emu, "team-a-data", "reports/q1.csv", "", None);
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.json()["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Anonymous caller does not have storage.objects.get"));
    let forged = list(&emu, "team-a-data", "", Some("ya29.c.forged"));
    assert_eq!(forged.status, 401);
    assert_eq!(forged.json()["error"]["message"], "Invalid Credentials");
    let (status, _) = post(&format!("{}/storage/v1/b/team-a-data/o", emu.url), "application/json", "{}", t);
    assert_eq!(status, 405);
    assert!(!emu.raw_log().contains(&token), "the token in the log");
}

#[test]
fn a_boundary_narrows_storage_to_a_prefix_and_never_widens_iam() {
    let emu = Emu::start(&example(), &[]);
    let token = sa_token(&emu);
    let opts = options(vec![
        rule("team-a-data", &[VIEWER], Some(REPORTS_ONLY)),
        // The boundary names locked-data, but the service account holds no role there.
        rule("locked-data", &[VIEWER], None),
    ]);
    let bounded = downscoped(&emu, &token, &opts);
    let b = Some(bounded.as_str());
    let read = object(&emu, "team-a-data", "reports/q1.csv", "?alt=media", b);
    assert_eq!((read.status, read.body.as_slice()), (200, Q1.as_bytes()));
    assert_eq!(object(&emu, "team-a-data", "reports/2026/q2.csv", "", b).status, 200);
    forbidden(&object(&emu, "team-a-data", "private/salaries.csv", "?alt=media", b), "storage.objects.get");
    forbidden(&object(&emu, "team-a-data", "private/salaries.csv", "", b), "storage.objects.get");
    assert_eq!(names(&list(&emu, "team-a-data", "?prefix=reports%2F", b).json()).len(), 2);
    forbidden(&list(&emu, "team-a-data", "", b), "storage.objects.list");
    forbidden(&list(&emu, "team-a-data", "?prefix=private%2F", b), "storage.objects.list");
    // A bucket the boundary does not name, though the account may read it.
    forbidden(&object(&emu, "team-b-data", "deploy/manifest.json", "?alt=media", b), "storage.objects.get");
    assert_eq!(object(&emu, "team-b-data", "deploy/manifest.json", "?alt=media", Some(&token)).status, 200);
    // A bucket the boundary allows, but the account holds no role on.
    forbidden(&object(&emu, "locked-data", "reports/q1.csv", "?alt=media", b), "storage.objects.get");
    // The source token is not narrowed by its downscoped child.
    assert_eq!(object(&emu, "team-a-data", "private/salaries.csv", "?alt=media", Some(&token)).status, 200);
    // A role in the boundary that does not grant the permission.
    let creator =
        downscoped(&emu, &token, &options(vec![rule("team-a-data", &["inRole:roles/storage.objectCreator"], None)]));
    forbidden(&object(&emu, "team-a-data", "reports/q1.csv", "", Some(&creator)), "storage.objects.get");
    let legacy = downscoped(
        &emu,
        &token,
        &options(vec![rule("team-a-data", &["inRole:roles/storage.legacyObjectReader"], None)]),
    );
    assert_eq!(object(&emu, "team-a-data", "reports/q1.csv", "", Some(&legacy)).status, 200);
    forbidden(&list(&emu, "team-a-data", "", Some(&legacy)), "storage.objects.list");
}

#[test]
fn storage_config_is_checked_at_load() {
    let dir = tempdir();
    let cfg = dir.path().join("emulator.json");
    let with_bucket = |bucket: Value| json!({"google": {"project_number": "1", "storage": {"buckets": [bucket]}}});
    let cases = [
        (
            with_bucket(json!({"name": "b1x", "iam": [{"role": "roles/storage.objectReader", "members": []}]})),
            "unknown role",
        ),
        (with_bucket(json!({"name": "Bad_Bucket"})), "is not a bucket name"),
        (with_bucket(json!({"name": "abc", "objects": [{"name": "a", "contents": "x"}]})), "unknown field"),
        (
            with_bucket(json!({"name": "abc", "iam": [{"role": "roles/storage.admin", "members": ["user:a@b.c"]}]})),
            "serviceAccount:",
        ),
    ];
    for (config, needle) in cases {
        std::fs::write(&cfg, config.to_string()).unwrap();
        let out = bin("wif-emulate").arg("--config").arg(&cfg).output().unwrap();
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains(needle), "{needle} not in {err}");
    }
}

// ---- The official libraries: google-auth's downscoping and google-cloud-storage. ----

#[test]
fn google_auth_downscopes_and_google_cloud_storage_is_held_to_the_boundary() {
    if !python_has("google.auth, google.cloud.storage, requests") {
        return;
    }
    let (emu, tls, dir, az_file) = tls_emu_with_azure_token();
    let env = [("REQUESTS_CA_BUNDLE", pki_file("ca-chain.crt"))];
    let cred = dir.path().join("cred.json");
    std::fs::write(&cred, external_account(&tls, &provider("azure"), &az_file).to_string()).unwrap();
    let boundary = dir.path().join("boundary.json");
    std::fs::write(&boundary, options(vec![rule("team-a-data", &[VIEWER], Some(REPORTS_ONLY))]).to_string()).unwrap();
    let token_file = dir.path().join("downscoped.txt");
    let args = [&cred, &boundary].map(|p| p.to_str().unwrap().to_string());
    let mut argv = args.to_vec();
    argv.extend(s(&[&format!("{tls}/v1/token"), token_file.to_str().unwrap()]));
    let (code, v, err) = python("google_auth_downscoped.py", &argv, &env);
    assert_eq!(code, Some(0), "{v} {err}");
    // The library took the source's expiry, as the answer had no expires_in.
    assert_eq!(v["expiry"], v["source_expiry"], "{v}");
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(v["sha256"].as_str().unwrap(), &sha256_hex(token.as_bytes())[..16]);
    assert_ne!(v["sha256"], v["source_sha256"]);
    assert!(!v.to_string().contains("ya29"), "the script printed a token: {v}");
    let requests = emu.requests();
    let sts: Vec<&Value> = requests.iter().filter(|r| r["path"] == "/v1/token").collect();
    assert_eq!(sts.len(), 2, "one federation exchange, one downscoping: {sts:?}");
    assert!(sts.iter().all(|r| r["status"] == 200));

    let gcs = |endpoint: &str, token_file: &std::path::Path, ops: &[&str]| {
        let mut a = s(&["--endpoint", endpoint, "--token-file", token_file.to_str().unwrap(), "--project", "wif-demo"]);
        a.extend(s(ops));
        let (code, v, err) = python("gcs_client.py", &a, &env);
        assert_eq!(code, Some(0), "{v} {err}");
        v["results"].as_array().unwrap().clone()
    };
    let r = gcs(
        &tls,
        &token_file,
        &[
            "--list",
            "team-a-data/reports/",
            "--read",
            "team-a-data/reports/q1.csv",
            "--read",
            "team-a-data/private/salaries.csv",
            "--list",
            "team-a-data",
            "--read",
            "team-b-data/deploy/manifest.json",
        ],
    );
    assert_eq!(r.len(), 5);
    assert_eq!(
        (r[0]["op"].as_str(), r[0]["ok"].as_bool(), r[0]["status"].as_u64()),
        (Some("list"), Some(true), Some(200)),
        "{r:?}"
    );
    assert_eq!(r[0]["items"], json!(["reports/2026/q2.csv", "reports/q1.csv"]));
    assert_eq!(
        (r[1]["ok"].as_bool(), r[1]["sha256"].as_str()),
        (Some(true), Some(sha256_hex(Q1.as_bytes()).as_str())),
        "{r:?}"
    );
    for refused in &r[2..] {
        assert_eq!((refused["ok"].as_bool(), refused["status"].as_u64()), (Some(false), Some(403)), "{refused}");
        assert!(refused["error"].as_str().unwrap().contains("does not have storage.objects"), "{refused}");
    }
    let downloads: Vec<(String, u64)> = emu
        .requests()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/download/storage/v1/b/"))
        .map(|r| (r["path"].as_str().unwrap().to_string(), r["status"].as_u64().unwrap()))
        .collect();
    assert!(
        downloads.contains(&("/download/storage/v1/b/team-a-data/o/reports%2Fq1.csv".into(), 200)),
        "{downloads:?}"
    );
    assert!(
        downloads.contains(&("/download/storage/v1/b/team-a-data/o/private%2Fsalaries.csv".into(), 403)),
        "{downloads:?}"
    );
    // The service account's own token, on the plain listener: all of team-a-data, never locked-data.
    let sa = sa_token(&emu);
    let sa_file = dir.path().join("sa.txt");
    std::fs::write(&sa_file, &sa).unwrap();
    let r = gcs(
        &emu.url,
        &sa_file,
        &[
            "--list",
            "team-a-data",
            "--read",
            "team-a-data/private/salaries.csv",
            "--read",
            "locked-data/reports/q1.csv",
        ],
    );
    assert_eq!(r[0]["items"], json!(TEAM_A), "{r:?}");
    assert_eq!(r[1]["ok"], true, "{r:?}");
    assert_eq!((r[2]["ok"].as_bool(), r[2]["status"].as_u64()), (Some(false), Some(403)), "{r:?}");
}
