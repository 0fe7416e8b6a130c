use super::super::bearer::{BearerIdentity, ClaimValue, KnownIssuer};
use super::*;
use serde_json::{json, Value};

fn id(cn: &str, uri: &str) -> Principal {
    Principal::Certificate(std::sync::Arc::new(super::super::allow::Identity {
        subject: format!("CN={cn}"),
        common_names: vec![cn.into()],
        dns: vec![format!("{cn}.example.org")],
        uris: vec![uri.into()],
        spki_sha256: "ab".repeat(32),
        fingerprint: "cd".repeat(32),
        not_after: 0,
    }))
}

/// The issuers and the claims each keeps (as --bearer-issuers would give them).
const ISSUERS: [(&str, &[&str]); 2] = [
    ("k8s-prod", &["/kubernetes.io/namespace", "/kubernetes.io/serviceaccount/name"]),
    ("github", &["repository", "ref", "roles"]),
];

fn issuers() -> Vec<KnownIssuer> {
    let known = |(name, claims): &(&str, &[&str])| KnownIssuer {
        name: name.to_string(),
        claims: claims.iter().map(|c| c.to_string()).collect(),
    };
    ISSUERS.iter().map(known).collect()
}

fn bearer(issuer: &str, sub: &str, claims: &[(&str, ClaimValue)]) -> Principal {
    Principal::Bearer(BearerIdentity {
        issuer: issuer.into(),
        iss: format!("https://{issuer}.example"),
        sub: sub.into(),
        claims: claims.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        jti: None,
        token_sha256: "0123456789abcdef".into(),
        expires_at: 0,
    })
}

fn parse(v: Value) -> Result<Policy> {
    Policy::parse(v.to_string().as_bytes(), Path::new("/etc/wif"), true, &issuers())
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
    let e = Policy::parse(v.to_string().as_bytes(), Path::new("."), false, &issuers()).unwrap_err().to_string();
    assert!(e.contains("rules[0].token") && e.contains("--token"), "{e}");
    let v = json!({"version": 1, "tokens": {"default": "t"}, "rules": [{"name": "a", "match": {"any": true}}]});
    assert!(Policy::parse(v.to_string().as_bytes(), Path::new("."), false, &issuers()).is_ok());
}

#[test]
fn bearer_rules_match_issuer_sub_and_claims_and_never_certificate_clients() {
    let one = |s: &str| ClaimValue::One(s.into());
    let p = parse(json!({
        "version": 1,
        "rules": [
            {"name": "report", "match": {"issuer": "k8s-prod", "sub": "system:serviceaccount:batch:report"}},
            {"name": "batch", "match": {"issuer": "k8s-prod", "claims": {"/kubernetes.io/namespace": "batch"}}},
            {"name": "deployers", "match": {"issuer": ["github"], "claims": {"repository": "octo/app", "roles": ["deploy", "admin"]}}},
            {"name": "certs", "match": {"cn": "alice"}},
        ]
    }))
    .unwrap();
    let name = |c: &Principal| p.select(c).map(|r| r.name.as_str());
    assert_eq!(name(&bearer("k8s-prod", "system:serviceaccount:batch:report", &[])), Some("report"));
    let ns = [("/kubernetes.io/namespace", one("batch"))];
    assert_eq!(name(&bearer("k8s-prod", "system:serviceaccount:batch:other", &ns)), Some("batch"));
    assert_eq!(
        name(&bearer("k8s-prod", "system:serviceaccount:web:x", &[("/kubernetes.io/namespace", one("web"))])),
        None
    );
    // An array claim matches when one of its elements is a value; every claim named must match.
    let roles = ClaimValue::Many(vec!["read".into(), "deploy".into()]);
    assert_eq!(
        name(&bearer("github", "repo:octo/app", &[("repository", one("octo/app")), ("roles", roles.clone())])),
        Some("deployers")
    );
    assert_eq!(name(&bearer("github", "repo:octo/app", &[("roles", roles)])), None);
    assert_eq!(
        name(&bearer(
            "github",
            "repo:octo/app",
            &[("repository", one("octo/app")), ("roles", ClaimValue::Many(vec!["read".into()]))]
        )),
        None
    );
    // The same sub from another issuer is another client; a certificate rule never matches a bearer client.
    assert_eq!(name(&bearer("github", "system:serviceaccount:batch:report", &[])), None);
    assert_eq!(name(&bearer("k8s-prod", "alice", &[])), None);
    assert_eq!(name(&id("alice", "spiffe://x/alice")), Some("certs"));
    let any = parse(json!({"version": 1, "rules": [{"name": "all", "match": {"any": true}}]})).unwrap();
    assert!(any.select(&bearer("github", "x", &[])).is_some() && any.select(&id("a", "b")).is_some());
}

#[test]
fn bearer_match_flaws_are_named() {
    let rule = |m: Value| json!({"version": 1, "rules": [{"name": "r", "match": m}]});
    let cases = [
        (json!({"cn": "alice", "issuer": "github"}), "rules[0].match: mixes certificate keys"),
        (json!({"sub": "x"}), "rules[0].match.sub: has no issuer beside it: name the issuer"),
        (json!({"claims": {"repository": "x"}}), "rules[0].match.claims: has no issuer"),
        (json!({"issuer": "gitlab"}), "rules[0].match.issuer[0]: \"gitlab\" is not an issuer name"),
        (json!({"issuer": "github", "claims": {}}), "rules[0].match.claims: is empty"),
        (json!({"issuer": "github", "claims": {"ref": []}}), "rules[0].match.claims.ref: is an empty list"),
        (json!({"issuer": "github", "sub": " x"}), "rules[0].match.sub[0]: \" x\" has white space"),
        (json!({"issuer": "github", "any": true}), "\"any\": true matches every client"),
    ];
    for (m, want) in cases {
        let got = flaw(rule(m.clone()));
        assert!(got.contains(want), "{m}: {got}");
    }
    // A claim must be one the rule's issuers keep: any other is never in an identity.
    let kept = [
        (json!({"issuer": "github", "claims": {"environment": "prod"}}), "github", "environment"),
        (
            json!({"issuer": "k8s-prod", "claims": {"/kubernetes.io/namespace/": "x"}}),
            "k8s-prod",
            "/kubernetes.io/namespace/",
        ),
        (json!({"issuer": ["github", "k8s-prod"], "claims": {"repository": "o/r"}}), "k8s-prod", "repository"),
    ];
    for (m, issuer, claim) in kept {
        let got = flaw(rule(m.clone()));
        let want = format!("rules[0].match.claims.{claim}: issuer {issuer} does not keep the claim {claim:?}");
        assert!(got.contains(&want), "{m}: {got}");
    }
    assert!(flaw(rule(json!({"issuer": "github", "claims": {"environment": "x"}}))).contains("\"repository\", \"ref\""));
    // Issuer names are checked also when bearer clients are off.
    let e = Policy::parse(rule(json!({"issuer": "github"})).to_string().as_bytes(), Path::new("."), true, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bearer clients are off"), "{e}");
}
