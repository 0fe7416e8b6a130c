use super::*;
use serde_json::{json, Value};

fn id(cn: &str, uri: &str) -> Identity {
    Identity {
        subject: format!("CN={cn}"),
        common_names: vec![cn.into()],
        dns: vec![format!("{cn}.example.org")],
        uris: vec![uri.into()],
        spki_sha256: "ab".repeat(32),
        fingerprint: "cd".repeat(32),
        not_after: 0,
    }
}

fn parse(v: Value) -> Result<Policy> {
    Policy::parse(v.to_string().as_bytes(), Path::new("/etc/wif"), true)
}

fn flaw(v: Value) -> String {
    parse(v).unwrap_err().to_string()
}

fn boundary(bucket: &str) -> Value {
    json!({"accessBoundaryRules": [{
        "availableResource": format!("//storage.googleapis.com/projects/_/buckets/{bucket}"),
        "availablePermissions": ["inRole:roles/storage.objectViewer"]
    }]})
}

#[test]
fn first_match_wins_and_every_key_must_match() {
    let p = parse(json!({
        "version": 1,
        "tokens": {"a": "a/token.txt", "b": "/var/lib/b/token.txt"},
        "rules": [
            {"name": "both", "match": {"cn": "alice", "uri": "spiffe://x/alice"}, "token": "a", "access_boundary": boundary("bucket-a")},
            {"name": "by-cn", "match": {"cn": ["alice", "bob"]}, "token": "b"},
            {"name": "pinned", "match": {"spki_sha256": "AB".repeat(32)}},
            {"name": "rest", "match": {"any": true}, "access_boundary": boundary("public-bucket")}
        ]
    }))
    .unwrap();
    let name = |cn: &str, uri: &str| p.select(&id(cn, uri)).map(|r| r.name.as_str());
    assert_eq!(name("alice", "spiffe://x/alice"), Some("both"));
    assert_eq!(name("alice", "spiffe://x/other"), Some("by-cn"));
    assert_eq!(name("bob", "spiffe://x/bob"), Some("by-cn"));
    assert_eq!(name("carol", "spiffe://x/carol"), Some("pinned"));
    assert_eq!(p.source_path("a", None), Some(Path::new("/etc/wif/a/token.txt")));
    assert_eq!(p.source_path("b", None), Some(Path::new("/var/lib/b/token.txt")));
    assert_eq!(p.source_path(DEFAULT_SOURCE, Some(Path::new("/t"))), Some(Path::new("/t")));
    assert_eq!(p.used_sources(), vec!["a", "b", "default"]);
    let rule = &p.rules[0];
    assert_eq!(rule.boundary.as_ref().unwrap().digest, rule.boundary.as_ref().unwrap().boundary.digest());
}

#[test]
fn no_rule_matching_means_none() {
    let p = parse(json!({"version": 1, "rules": [{"name": "x", "match": {"dns": "X.example.org"}}]})).unwrap();
    assert!(p.select(&id("x", "u")).is_some(), "DNS names match without regard to case");
    assert!(p.select(&id("y", "u")).is_none());
}

#[test]
fn flaws_are_named_by_their_json_path() {
    let cases = [
        (json!({"version": 2, "rules": []}), "version: 2 is not a version"),
        (json!({"version": 1, "rules": []}), "rules: is empty"),
        (json!({"version": 1, "rules": [{"name": "a b", "match": {"any": true}}]}), "rules[0].name"),
        (json!({"version": 1, "rules": [{"name": "a", "match": {}}]}), "rules[0].match: is empty"),
        (json!({"version": 1, "rules": [{"name": "a", "match": {"any": true, "cn": "x"}}]}), "rules[0].match: \"any\""),
        (json!({"version": 1, "rules": [{"name": "a", "match": {"cn": []}}]}), "rules[0].match.cn: is an empty list"),
        (
            json!({"version": 1, "rules": [{"name": "a", "match": {"spki_sha256": "zz"}}]}),
            "rules[0].match.spki_sha256[0]",
        ),
        (json!({"version": 1, "rules": [{"name": "a", "match": {"any": true}, "token": "nope"}]}), "rules[0].token"),
        (
            json!({"version": 1, "rules": [{"name": "a", "match": {"any": true}}, {"name": "a", "match": {"cn": "x"}}]}),
            "rules[1].name",
        ),
        (
            json!({"version": 1, "rules": [{"name": "a", "match": {"any": true}, "access_boundary": {"accessBoundaryRules": [{"availableResource": "//storage.googleapis.com/projects/_/buckets/b-1", "availablePermissions": ["roles/storage.objectViewer"]}]}}]}),
            "rules[0].access_boundary.accessBoundaryRules[0].availablePermissions[0]",
        ),
        (json!({"version": 1, "rules": [{"name": "a", "match": {"cn": "x"}, "extra": 1}]}), "unknown field"),
        (json!({"version": 1, "tokens": {"": "x"}, "rules": [{"name": "a", "match": {"cn": "x"}}]}), "tokens."),
    ];
    for (policy, want) in cases {
        let got = flaw(policy.clone());
        assert!(got.contains(want), "{policy}: {got}");
    }
}

#[test]
fn the_default_source_needs_token() {
    let v = json!({"version": 1, "rules": [{"name": "a", "match": {"any": true}}]});
    let e = Policy::parse(v.to_string().as_bytes(), Path::new("."), false).unwrap_err().to_string();
    assert!(e.contains("rules[0].token") && e.contains("--token"), "{e}");
    let v = json!({"version": 1, "tokens": {"default": "t"}, "rules": [{"name": "a", "match": {"any": true}}]});
    assert!(Policy::parse(v.to_string().as_bytes(), Path::new("."), false).is_ok());
}
