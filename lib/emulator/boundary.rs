//! Credential Access Boundaries: the `options` of an STS downscoping request, checked as
//! Google checks them (1–10 rules, Cloud Storage bucket resources, `inRole:` permissions,
//! conditions in the CEL subset), compiled once, and asked whether a request may pass.

use super::cel::{self, Env, Expr};
use super::errors::serde_message;
use super::storage::config::{Permission, Role};
use crate::http::percent_decode;
use crate::protocol::boundary::{is_bucket_name, BUCKET_PREFIX};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Most rules one boundary may hold.
pub const MAX_RULES: usize = 10;

/// The `options` field: `{"accessBoundary": {...}}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Options {
    access_boundary: Option<AccessBoundaryWire>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AccessBoundaryWire {
    access_boundary_rules: Option<Vec<RuleWire>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleWire {
    available_resource: Option<String>,
    available_permissions: Option<Vec<String>>,
    availability_condition: Option<ConditionWire>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionWire {
    expression: Option<String>,
    #[allow(dead_code)]
    title: Option<String>,
    #[allow(dead_code)]
    description: Option<String>,
}

/// A checked boundary.
#[derive(Debug)]
pub struct Boundary {
    rules: Vec<Rule>,
}

/// One rule: a bucket, the roles whose permissions are available on it, and a condition.
#[derive(Debug)]
struct Rule {
    bucket: String,
    roles: Vec<Role>,
    condition: Option<Expr>,
}

/// What a Cloud Storage request touches, as boundary conditions see it.
pub struct Target<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// The object (`None` for a listing, whose resource is the bucket).
    pub object: Option<&'a str>,
    /// A listing's `prefix` (`api.getAttribute('storage.googleapis.com/objectListPrefix', '')`).
    pub list_prefix: Option<&'a str>,
}

impl Target<'_> {
    /// The variables a condition sees for this target.
    fn env(&self) -> Env {
        let (name, kind) = match self.object {
            Some(o) => (format!("projects/_/buckets/{}/objects/{o}", self.bucket), "storage.googleapis.com/Object"),
            None => (format!("projects/_/buckets/{}", self.bucket), "storage.googleapis.com/Bucket"),
        };
        let mut resource = Map::new();
        resource.insert("name".into(), json!(name));
        resource.insert("type".into(), json!(kind));
        resource.insert("service".into(), json!("storage.googleapis.com"));
        let mut api = Map::new();
        if let Some(p) = self.list_prefix {
            api.insert("storage.googleapis.com/objectListPrefix".into(), json!(p));
        }
        Env { resource, api, ..Env::default() }
    }
}

/// Decodes `options`: JSON, or JSON percent-encoded once more (google-auth quotes it before
/// the form encodes it again).
fn decode_options(text: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text).ok().or_else(|| serde_json::from_str(&percent_decode(text, false)).ok())
}

impl Boundary {
    /// The boundary in an STS `options` field; `Err` is the `error_description` of the refusal.
    pub fn from_options(text: &str) -> Result<Boundary, String> {
        let value = decode_options(text)
            .filter(Value::is_object)
            .ok_or("Invalid value for \"options\": it must be a JSON object (URL-encoded JSON is accepted).")?;
        let options: Options = serde_json::from_value(value)
            .map_err(|e| format!("Invalid value for \"options\": {}", serde_message(&e)))?;
        let rules = options
            .access_boundary
            .and_then(|b| b.access_boundary_rules)
            .ok_or("The access boundary is required: options must hold accessBoundary.accessBoundaryRules.")?;
        if rules.is_empty() {
            return Err("At least one access boundary rule must be provided.".into());
        }
        if rules.len() > MAX_RULES {
            return Err(format!("The access boundary has {} rules; at most {MAX_RULES} are allowed.", rules.len()));
        }
        let rules = rules.into_iter().enumerate().map(|(i, r)| Rule::check(i, r)).collect::<Result<_, _>>()?;
        Ok(Boundary { rules })
    }

    /// Whether some rule makes `permission` available on `target`.
    pub fn allows(&self, permission: Permission, target: &Target) -> bool {
        let env = target.env();
        self.rules.iter().any(|r| {
            r.bucket == target.bucket
                && r.roles.iter().any(|role| role.grants(permission))
                && r.condition.as_ref().map_or(true, |c| cel::eval(c, &env) == Ok(Value::Bool(true)))
        })
    }
}

impl Rule {
    /// Checks rule `i` of a boundary and compiles its condition.
    fn check(i: usize, r: RuleWire) -> Result<Rule, String> {
        let at = format!("accessBoundaryRules[{i}]");
        let resource = r.available_resource.unwrap_or_default();
        let bucket = resource
            .strip_prefix(BUCKET_PREFIX)
            .filter(|b| is_bucket_name(b))
            .ok_or_else(|| format!("{at}: invalid availableResource {resource:?}: only Cloud Storage buckets are supported, as //storage.googleapis.com/projects/_/buckets/BUCKET."))?;
        let permissions = r.available_permissions.unwrap_or_default();
        if permissions.is_empty() {
            return Err(format!("{at}: availablePermissions must name at least one role, as inRole:roles/..."));
        }
        let roles = permissions
            .iter()
            .map(|p| {
                let role = p.strip_prefix("inRole:").ok_or_else(|| {
                    format!("{at}: invalid permission {p:?}: permissions must be roles, as inRole:roles/storage.objectViewer.")
                })?;
                Role::from_name(role).ok_or_else(|| {
                    format!("{at}: the role {role:?} is not supported in access boundaries; use one of {}.", Role::known())
                })
            })
            .collect::<Result<Vec<Role>, String>>()?;
        let condition = match r.availability_condition {
            None => None,
            Some(c) => {
                let expr = c
                    .expression
                    .filter(|e| !e.trim().is_empty())
                    .ok_or_else(|| format!("{at}: availabilityCondition needs a non-empty expression."))?;
                let parsed = cel::parse_condition(&expr)
                    .map_err(|e| format!("{at}: the availability condition does not parse: {}", e.cause()))?;
                Some(parsed)
            }
        };
        Ok(Rule { bucket: bucket.to_string(), roles, condition })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(resource: &str, perms: Value, cond: Option<&str>) -> Value {
        let mut r = json!({"availableResource": resource, "availablePermissions": perms});
        if let Some(c) = cond {
            r["availabilityCondition"] = json!({"expression": c, "title": "t"});
        }
        r
    }

    fn options(rules: Vec<Value>) -> String {
        json!({"accessBoundary": {"accessBoundaryRules": rules}}).to_string()
    }

    const B: &str = "//storage.googleapis.com/projects/_/buckets/team-a";

    #[test]
    fn prefix_conditions_decide() {
        let cond = "resource.name.startsWith('projects/_/buckets/team-a/objects/reports/') || api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('reports/')";
        let b =
            Boundary::from_options(&options(vec![rule(B, json!(["inRole:roles/storage.objectViewer"]), Some(cond))]))
                .unwrap();
        let obj = |o| Target { bucket: "team-a", object: Some(o), list_prefix: None };
        assert!(b.allows(Permission::ObjectsGet, &obj("reports/q1.csv")));
        assert!(!b.allows(Permission::ObjectsGet, &obj("secrets/x")));
        assert!(!b.allows(Permission::ObjectsCreate, &obj("reports/q1.csv")));
        let list = |p| Target { bucket: "team-a", object: None, list_prefix: p };
        assert!(b.allows(Permission::ObjectsList, &list(Some("reports/"))));
        assert!(!b.allows(Permission::ObjectsList, &list(Some(""))));
        assert!(!b.allows(
            Permission::ObjectsGet,
            &Target { bucket: "team-b", object: Some("reports/q1.csv"), list_prefix: None }
        ));
    }

    #[test]
    fn double_encoded_options_are_read() {
        let text = options(vec![rule(B, json!(["inRole:roles/storage.objectViewer"]), None)]);
        let quoted = crate::http::encode_component(&text);
        let b = Boundary::from_options(&quoted).unwrap();
        assert!(b.allows(Permission::ObjectsList, &Target { bucket: "team-a", object: None, list_prefix: None }));
    }

    #[test]
    fn refusals() {
        let viewer = json!(["inRole:roles/storage.objectViewer"]);
        let bad = |o: String, want: &str| {
            let e = Boundary::from_options(&o).unwrap_err();
            assert!(e.contains(want), "{e} lacks {want}");
        };
        bad("nope".into(), "JSON object");
        bad(json!({}).to_string(), "required");
        bad(options(vec![]), "At least one");
        bad(options(vec![rule(B, viewer.clone(), None); 11]), "at most 10");
        bad(
            options(vec![rule("//storage.googleapis.com/projects/p/buckets/x", viewer.clone(), None)]),
            "availableResource",
        );
        bad(
            options(vec![rule("//bigquery.googleapis.com/projects/_/datasets/d", viewer.clone(), None)]),
            "availableResource",
        );
        bad(options(vec![rule(B, json!([]), None)]), "at least one role");
        bad(options(vec![rule(B, json!(["storage.objects.get"]), None)]), "inRole:");
        bad(options(vec![rule(B, json!(["inRole:roles/owner"]), None)]), "not supported");
        bad(options(vec![rule(B, viewer.clone(), Some("resource.name.startsWith("))]), "does not parse");
        bad(options(vec![rule(B, viewer.clone(), Some("  "))]), "non-empty expression");
        bad(json!({"accessBoundary": {"accessBoundaryRules": [{"availableResource": B, "availablePermissions": viewer, "extra": 1}]}}).to_string(), "unknown field");
        assert!(Boundary::from_options(&options(vec![rule(B, viewer, None); 10])).is_ok());
    }
}
