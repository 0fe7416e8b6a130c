//! Credential Access Boundaries: Google's JSON object that narrows an access token to some
//! Cloud Storage buckets and roles (`{"accessBoundaryRules":[…]}`), checked the way Google
//! checks it before it is sent, and the downscoping exchange at STS that applies it — the
//! same request google-auth's `downscoped.Credentials` makes.

use crate::core::clock::Timestamp;
use crate::core::error::{Context, Result};
use crate::core::secret::Secret;
use crate::http::{self, Body, Client, Request};
use crate::protocol::oauth::{self, Service, TokenResponse};
use crate::protocol::sts::{ACCESS_TOKEN_TYPE, GRANT};
use serde::{Deserialize, Serialize};

/// Most rules one boundary may hold (Google's limit).
pub const MAX_RULES: usize = 10;
/// What every `availableResource` starts with: boundaries only narrow Cloud Storage.
pub const BUCKET_PREFIX: &str = "//storage.googleapis.com/projects/_/buckets/";

/// A Credential Access Boundary, in Google's own JSON form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessBoundary {
    /// The rules: a permission on a resource is available when one rule grants it.
    pub access_boundary_rules: Vec<BoundaryRule>,
}

/// One rule of a boundary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BoundaryRule {
    /// `//storage.googleapis.com/projects/_/buckets/BUCKET`.
    pub available_resource: String,
    /// `inRole:roles/…` entries: the roles whose permissions stay available.
    pub available_permissions: Vec<String>,
    /// An optional CEL condition narrowing the rule further (e.g. to an object prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_condition: Option<Condition>,
}

/// A rule's condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The CEL expression.
    pub expression: String,
    /// A short title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What is wrong with a boundary: where (a JSON path below the boundary, e.g.
/// `accessBoundaryRules[0].availableResource`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flaw {
    /// The JSON path of the problem, relative to the boundary object.
    pub path: String,
    /// Why it is refused, and what is expected.
    pub why: String,
}

/// Whether `name` is a Cloud Storage bucket name: 3–63 characters (up to 222 with dots),
/// lower-case letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit.
pub fn is_bucket_name(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let max = if name.contains('.') { 222 } else { 63 };
    (3..=max).contains(&name.len())
        && name.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && name.starts_with(alnum)
        && name.ends_with(alnum)
}

impl AccessBoundary {
    /// Checks the boundary as Google does before it is sent: 1 to 10 rules, each on a Cloud
    /// Storage bucket, with `inRole:` permissions and a non-empty condition expression.
    pub fn check(&self) -> std::result::Result<(), Flaw> {
        let flaw = |path: String, why: String| Err(Flaw { path, why });
        let n = self.access_boundary_rules.len();
        if n == 0 || n > MAX_RULES {
            return flaw(
                "accessBoundaryRules".into(),
                format!("holds {n} rules; a boundary has 1 to {MAX_RULES} (split the grant over several rules of the policy, each with its own boundary)"),
            );
        }
        for (i, rule) in self.access_boundary_rules.iter().enumerate() {
            let at = |field: &str| format!("accessBoundaryRules[{i}].{field}");
            match rule.available_resource.strip_prefix(BUCKET_PREFIX) {
                Some(bucket) if is_bucket_name(bucket) => {}
                _ => {
                    return flaw(
                        at("availableResource"),
                        format!(
                            "{:?} is not a Cloud Storage bucket: write {BUCKET_PREFIX}BUCKET (boundaries narrow Cloud Storage only)",
                            rule.available_resource
                        ),
                    )
                }
            }
            if rule.available_permissions.is_empty() {
                return flaw(at("availablePermissions"), "is empty: name at least one inRole:roles/… role".into());
            }
            for (j, p) in rule.available_permissions.iter().enumerate() {
                let role = p.strip_prefix("inRole:").unwrap_or("");
                if !role.contains("roles/") || role.ends_with('/') || role.chars().any(char::is_whitespace) {
                    return flaw(
                        format!("{}[{j}]", at("availablePermissions")),
                        format!("{p:?} is not a role: write inRole:roles/ROLE, e.g. inRole:roles/storage.objectViewer"),
                    );
                }
            }
            if let Some(c) = &rule.availability_condition {
                if c.expression.trim().is_empty() {
                    return flaw(
                        at("availabilityCondition.expression"),
                        "is empty: give a CEL expression, or leave the condition out".into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// The boundary as compact JSON, as it is sent and digested.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// STS `options`: `{"accessBoundary":{…}}`, compact.
    pub fn options(&self) -> String {
        serde_json::json!({ "accessBoundary": self }).to_string()
    }

    /// The first 16 hex digits of the SHA-256 of [`AccessBoundary::to_json`]: names the
    /// boundary in headers, logs and the ledger.
    pub fn digest(&self) -> String {
        crate::core::keys::sha256_hex(self.to_json().as_bytes())[..16].to_string()
    }
}

/// A downscoped token from STS.
pub struct Downscoped {
    /// The narrowed access token.
    pub token: Secret,
    /// Its expiry when STS said (`expires_in`); when it does not, the source token's applies.
    pub expires_at: Option<Timestamp>,
}

/// Exchanges `source` (a service account's access token) for one narrowed by `boundary` at
/// the STS token endpoint `url`: the form google-auth's `downscoped.Credentials` posts
/// (token-exchange grant, access-token subject and requested types, `options`), no audience
/// and no scope.
pub fn downscope(client: &Client, url: &str, source: &Secret, boundary: &AccessBoundary) -> Result<Downscoped> {
    let options = boundary.options();
    let fields: [(&str, &str); 5] = [
        ("grant_type", GRANT),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("subject_token", source.expose()),
        ("options", &options),
    ];
    let doing = format!("downscoping a token at {}", http::redact_query(url));
    let resp = client
        .send(&Request { method: "POST", url, headers: vec![], bearer: None, body: Body::Form(&fields) })
        .and_then(|r| oauth::check(r, Service::Sts))
        .context(doing.clone())?;
    let (answer, token) = TokenResponse::from_response(&resp).context(doing)?;
    let expires_at =
        answer.expires_in.filter(|s| *s > 0).map(|s| Timestamp::from_unix(crate::core::clock::now_unix() + s));
    Ok(Downscoped { token, expires_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boundary(v: serde_json::Value) -> AccessBoundary {
        serde_json::from_value(v).unwrap()
    }

    fn rule(resource: &str, perms: &[&str]) -> serde_json::Value {
        serde_json::json!({"availableResource": resource, "availablePermissions": perms})
    }

    #[test]
    fn a_good_boundary_passes_and_serializes_as_google_writes_it() {
        let b = boundary(serde_json::json!({"accessBoundaryRules": [{
            "availableResource": "//storage.googleapis.com/projects/_/buckets/team-a",
            "availablePermissions": ["inRole:roles/storage.objectViewer"],
            "availabilityCondition": {"expression": "resource.name.startsWith('projects/_/buckets/team-a/objects/r/')", "title": "r"}
        }]}));
        assert_eq!(b.check(), Ok(()));
        let options: serde_json::Value = serde_json::from_str(&b.options()).unwrap();
        let rule = &options["accessBoundary"]["accessBoundaryRules"][0];
        assert_eq!(rule["availablePermissions"][0], "inRole:roles/storage.objectViewer");
        assert_eq!(rule["availabilityCondition"]["title"], "r");
        assert!(rule["availabilityCondition"].get("description").is_none());
        assert_eq!(b.digest().len(), 16);
    }

    #[test]
    fn flaws_name_their_place() {
        let bucket = "//storage.googleapis.com/projects/_/buckets/b-1";
        let viewer = "inRole:roles/storage.objectViewer";
        let eleven: Vec<_> = (0..11).map(|_| rule(bucket, &[viewer])).collect();
        let cases = [
            (serde_json::json!({"accessBoundaryRules": []}), "accessBoundaryRules"),
            (serde_json::json!({"accessBoundaryRules": eleven}), "accessBoundaryRules"),
            (
                serde_json::json!({"accessBoundaryRules": [rule("//bigquery.googleapis.com/projects/p", &[viewer])]}),
                "accessBoundaryRules[0].availableResource",
            ),
            (
                serde_json::json!({"accessBoundaryRules": [rule("//storage.googleapis.com/projects/_/buckets/UPPER", &[viewer])]}),
                "accessBoundaryRules[0].availableResource",
            ),
            (
                serde_json::json!({"accessBoundaryRules": [rule(bucket, &[])]}),
                "accessBoundaryRules[0].availablePermissions",
            ),
            (
                serde_json::json!({"accessBoundaryRules": [rule(bucket, &[viewer, "storage.objects.get"])]}),
                "accessBoundaryRules[0].availablePermissions[1]",
            ),
        ];
        for (v, path) in cases {
            assert_eq!(boundary(v.clone()).check().unwrap_err().path, path, "{v}");
        }
        let mut empty = boundary(serde_json::json!({"accessBoundaryRules": [rule(bucket, &[viewer])]}));
        empty.access_boundary_rules[0].availability_condition =
            Some(Condition { expression: " ".into(), title: None, description: None });
        assert_eq!(empty.check().unwrap_err().path, "accessBoundaryRules[0].availabilityCondition.expression");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let v = serde_json::json!({"accessBoundaryRules": [], "extra": 1});
        assert!(serde_json::from_value::<AccessBoundary>(v).is_err());
        let v = serde_json::json!({"accessBoundaryRules": [{"availableResource": "x", "availablePermissions": [], "availablePermission": []}]});
        assert!(serde_json::from_value::<AccessBoundary>(v).is_err());
    }

    #[test]
    fn bucket_names() {
        for good in ["abc", "team-a_data.v2", "a1b"] {
            assert!(is_bucket_name(good), "{good}");
        }
        for bad in ["ab", "-abc", "abc-", "ABC", "a b c", &"a".repeat(64)] {
            assert!(!is_bucket_name(bad), "{bad}");
        }
    }
}
