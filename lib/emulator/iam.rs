//! IAM Credentials: `generateAccessToken` and `generateIdToken` for a service account,
//! authorized by a federated token from the emulated STS and the service account's
//! `roles/iam.workloadIdentityUser` (or `serviceAccountTokenCreator`) bindings. The access
//! tokens it issues are remembered for Cloud Storage and STS downscoping.

use super::config::ServiceAccountConfig;
use super::errors::{self, google, iam_denied};
use super::keys;
use super::server::Req;
use super::state::{AccessToken, FederatedToken, State};
use crate::core::clock;
use crate::http::percent_decode;
use crate::server::Response;
use serde::Deserialize;
use serde_json::{json, Value};

const ROLES: &[&str] = &["roles/iam.workloadIdentityUser", "roles/iam.serviceAccountTokenCreator"];
/// Scopes a federated token needs to call IAM Credentials.
const CALLER_SCOPES: &[&str] =
    &["https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/iam"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessTokenRequest {
    #[serde(default)]
    delegates: Option<Vec<String>>,
    #[serde(default)]
    scope: Option<Vec<String>>,
    #[serde(default)]
    lifetime: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IdTokenRequest {
    #[serde(default)]
    delegates: Option<Vec<String>>,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    include_email: Option<bool>,
    /// Accepted as IAM does; it changes nothing here.
    #[serde(default)]
    #[allow(dead_code)]
    organization_number_included: Option<bool>,
}

fn invalid(msg: &str) -> Response {
    google(400, "INVALID_ARGUMENT", msg, None)
}

fn unauthenticated() -> Response {
    google(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.", None)
}

/// `POST /v1/projects/-/serviceAccounts/{email}:{method}`.
pub fn handle(st: &State, req: &Req, last_segment: &str) -> Response {
    let decoded = percent_decode(last_segment, false);
    let Some((email, method)) = decoded.rsplit_once(':') else { return errors::not_found(&req.path) };
    let permission = match method {
        "generateAccessToken" => "iam.serviceAccounts.getAccessToken",
        "generateIdToken" => "iam.serviceAccounts.getOpenIdToken",
        _ => return errors::not_found(&req.path),
    };
    let now = st.now();
    let caller = req.bearer().and_then(|t| st.federated.lock().ok()?.get(t).cloned()).filter(|f| f.exp > now);
    let Some(caller) = caller else { return unauthenticated() };
    if !caller.scopes.iter().any(|s| CALLER_SCOPES.contains(&s.as_str())) {
        return google(
            403,
            "PERMISSION_DENIED",
            "Request had insufficient authentication scopes.",
            Some(("ACCESS_TOKEN_SCOPE_INSUFFICIENT", permission)),
        );
    }
    if !req.is_json() {
        return invalid("Invalid JSON payload received. The request must be application/json.");
    }
    let sa = st.config.google.as_ref().and_then(|g| g.service_accounts.iter().find(|s| s.email == email));
    if method == "generateAccessToken" {
        let body: AccessTokenRequest = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => return invalid(&format!("Invalid JSON payload received. {}", errors::serde_message(&e))),
        };
        if let Err(r) = authorize(st, &caller, sa, body.delegates.as_deref(), permission) {
            return r;
        }
        let scopes = body.scope.unwrap_or_default();
        if scopes.is_empty() || scopes.iter().any(|s| s.trim().is_empty()) {
            return invalid("Scope required.");
        }
        let lifetime = match body.lifetime.as_deref() {
            None => 3600,
            Some(l) => match parse_lifetime(l) {
                Some(s) if (1..=3600).contains(&s) => s,
                Some(_) => return invalid(&format!("The lifetime {l} is out of range: the maximum allowed lifetime is 3600s unless the service account is in constraints/iam.allowServiceAccountCredentialLifetimeExtension.")),
                None => return invalid(&format!("Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration), Field 'lifetime', Illegal duration format; duration must end with 's': {l}")),
            },
        };
        let lifetime = lifetime.min(st.token_lifetime);
        let token = format!("ya29.c.{}", keys::random_b64(120));
        let exp = now + lifetime;
        st.record_access_token(token.clone(), AccessToken { email: email.to_string(), scopes, exp, boundary: None });
        errors::json(200, &json!({"accessToken": token, "expireTime": clock::rfc3339(exp)}), "ok")
    } else {
        let body: IdTokenRequest = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => return invalid(&format!("Invalid JSON payload received. {}", errors::serde_message(&e))),
        };
        if let Err(r) = authorize(st, &caller, sa, body.delegates.as_deref(), permission) {
            return r;
        }
        let Some(audience) = body.audience.filter(|a| !a.is_empty()) else {
            return invalid("Audience required.");
        };
        let Some(sa) = sa else { return iam_denied(permission) };
        let uid = unique_id(sa);
        let mut claims = json!({
            "aud": audience, "azp": uid, "exp": now + st.token_lifetime.min(3600), "iat": now,
            "iss": "https://accounts.google.com", "sub": uid,
        });
        if body.include_email == Some(true) {
            claims["email"] = json!(sa.email);
            claims["email_verified"] = json!(true);
        }
        errors::json(200, &json!({"token": st.signer.sign(&claims)}), "ok")
    }
}

/// `"3600s"`, `"3600.5s"` → whole seconds.
fn parse_lifetime(l: &str) -> Option<i64> {
    let n = l.strip_suffix('s')?;
    let (whole, frac) = n.split_once('.').unwrap_or((n, "0"));
    if whole.is_empty() || !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    whole.parse().ok()
}

/// A numeric id for a service account: configured, or derived from its email.
fn unique_id(sa: &ServiceAccountConfig) -> String {
    sa.unique_id.clone().unwrap_or_else(|| {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, sa.email.as_bytes());
        let n = d.as_ref()[..8].iter().fold(0u64, |a, b| (a << 8) | *b as u64);
        format!("1{n:020}")
    })
}

/// Whether a member string names the federated caller.
fn member_matches(member: &str, caller: &FederatedToken) -> bool {
    let base = format!("//iam.googleapis.com/{}/", caller.pool);
    if let Some(rest) = member.strip_prefix("principal:").and_then(|m| m.strip_prefix(&base)) {
        return rest.strip_prefix("subject/") == Some(caller.subject.as_str());
    }
    let Some(rest) = member.strip_prefix("principalSet:").and_then(|m| m.strip_prefix(&base)) else {
        return false;
    };
    if rest == "*" {
        return true;
    }
    if let Some(g) = rest.strip_prefix("group/") {
        return caller.groups.iter().any(|x| x == g);
    }
    if let Some((name, value)) = rest.strip_prefix("attribute.").and_then(|r| r.split_once('/')) {
        return match caller.attributes.get(name) {
            Some(Value::String(s)) => s == value,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(value)),
            _ => false,
        };
    }
    false
}

fn bound(sa: &ServiceAccountConfig, matches: impl Fn(&str) -> bool) -> bool {
    !sa.disabled && sa.bindings.iter().any(|b| ROLES.contains(&b.role.as_str()) && b.members.iter().any(|m| matches(m)))
}

/// The caller may act as `email`, directly or through the delegation chain.
fn authorize(
    st: &State,
    caller: &FederatedToken,
    sa: Option<&ServiceAccountConfig>,
    delegates: Option<&[String]>,
    permission: &str,
) -> Result<(), Response> {
    let Some(sa) = sa else { return Err(iam_denied(permission)) };
    let find = |e: &str| st.config.google.as_ref().and_then(|g| g.service_accounts.iter().find(|s| s.email == e));
    let mut chain: Vec<&ServiceAccountConfig> = Vec::new();
    for d in delegates.unwrap_or(&[]) {
        let de = d.strip_prefix("projects/-/serviceAccounts/").unwrap_or(d);
        match find(de) {
            Some(x) => chain.push(x),
            None => return Err(iam_denied(permission)),
        }
    }
    chain.push(sa);
    if !bound(chain[0], |m| member_matches(m, caller)) {
        return Err(iam_denied(permission));
    }
    for pair in chain.windows(2) {
        let member = format!("serviceAccount:{}", pair[0].email);
        if !bound(pair[1], |m| m == member) {
            return Err(iam_denied(permission));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn caller() -> FederatedToken {
        let mut attributes = Map::new();
        attributes.insert("team".into(), json!("ops"));
        FederatedToken {
            pool: "projects/1/locations/global/workloadIdentityPools/p".into(),
            subject: "sub-1".into(),
            groups: vec!["admins".into()],
            attributes,
            scopes: vec![],
            exp: 0,
        }
    }

    #[test]
    fn members() {
        let p = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p";
        let c = caller();
        assert!(member_matches(&format!("principal:{p}/subject/sub-1"), &c));
        assert!(!member_matches(&format!("principal:{p}/subject/sub-2"), &c));
        assert!(member_matches(&format!("principalSet:{p}/group/admins"), &c));
        assert!(!member_matches(&format!("principalSet:{p}/group/users"), &c));
        assert!(member_matches(&format!("principalSet:{p}/attribute.team/ops"), &c));
        assert!(!member_matches(&format!("principalSet:{p}/attribute.team/dev"), &c));
        assert!(member_matches(&format!("principalSet:{p}/*"), &c));
        let other = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/q";
        assert!(!member_matches(&format!("principalSet:{other}/*"), &c));
    }

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("3600s"), Some(3600));
        assert_eq!(parse_lifetime("1.5s"), Some(1));
        assert_eq!(parse_lifetime("3600"), None);
        assert_eq!(parse_lifetime("1h"), None);
        assert_eq!(parse_lifetime("-1s"), None);
    }
}
