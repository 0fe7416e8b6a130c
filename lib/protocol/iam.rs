//! Google IAM Credentials: a service account's access token (`generateAccessToken`) or ID
//! token (`generateIdToken`) for a caller allowed to impersonate it, with the federated token
//! as bearer. Refusals are hinted by IAM's status code ([`hints::IamRefusal`]).

use crate::core::clock::{self, Timestamp};
use crate::core::error::{Context, Error, Kind, Result};
use crate::core::secret::Secret;
use crate::http::{Body, Client, Request};
use crate::protocol::hints::{self, IamRefusal};
use crate::protocol::oauth::{self, Refusal, Said, Service};
use serde::Deserialize;
use serde_json::json;

/// IAM Credentials API base URL.
pub const DEFAULT_ENDPOINT: &str = "https://iamcredentials.googleapis.com";
/// Lifetime asked for by default.
pub const DEFAULT_LIFETIME: &str = "3600s";
/// Longest lifetime IAM grants without the org-policy exception.
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 3600;
/// Longest lifetime IAM grants (with the org-policy exception).
pub const MAX_LIFETIME_SECS: u64 = 43_200;
/// The path of a service account's methods under the endpoint.
const SERVICE_ACCOUNTS_PATH: &str = "/v1/projects/-/serviceAccounts/";

/// `secs` if IAM grants it as a token lifetime (1 s to 12 h); else why, naming `what` (the
/// setting that asked for it), for the caller to make a usage or input error of.
pub fn lifetime_in_range(secs: u64, what: &str) -> std::result::Result<u64, String> {
    if (1..=MAX_LIFETIME_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(format!(
            "{what} is out of range: IAM grants 1 to {MAX_LIFETIME_SECS} seconds (at most {MAX_LIFETIME_SECS}s, 12h)"
        ))
    }
}

/// The IAM Credentials methods wif calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `generateAccessToken`.
    GenerateAccessToken,
    /// `generateIdToken`.
    GenerateIdToken,
}

impl Method {
    /// The method's name in the URL.
    pub fn name(self) -> &'static str {
        match self {
            Method::GenerateAccessToken => "generateAccessToken",
            Method::GenerateIdToken => "generateIdToken",
        }
    }
}

/// `{base}/v1/projects/-/serviceAccounts/{email}:{method}`.
pub fn method_url(base: &str, service_account: &str, method: Method) -> String {
    format!("{}{SERVICE_ACCOUNTS_PATH}{service_account}:{}", base.trim_end_matches('/'), method.name())
}

/// Splits `https://HOST/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken` into the
/// email and the base URL.
pub fn split_impersonation_url(url: &str) -> Option<(String, String)> {
    let i = url.find(SERVICE_ACCOUNTS_PATH)?;
    let rest = &url[i + SERVICE_ACCOUNTS_PATH.len()..];
    let email = rest.split(':').next()?;
    (!email.is_empty()).then(|| (email.to_string(), url[..i].to_string()))
}

/// Refuses what is not a service account email (it goes into the URL path).
pub fn validate_email(sa: &str) -> Result<()> {
    let ok = sa.split_once('@').is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
        && !sa.contains(['/', ':', '?', '#', ' ']);
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!("{sa:?} is not a service account email"))
            .hint("like name@project-id.iam.gserviceaccount.com"))
    }
}

/// Who impersonates whom, and where.
pub struct Impersonation<'a> {
    /// The IAM Credentials base URL.
    pub endpoint: &'a str,
    /// The service account's email (see [`validate_email`]).
    pub service_account: &'a str,
    /// Delegate service accounts' emails, in order.
    pub delegates: &'a [String],
    /// The caller's (federated) token.
    pub bearer: &'a Secret,
    /// The principal IAM sees for the caller, when known (for the hint on refusal).
    pub principal: Option<&'a str>,
}

/// What to ask for.
pub enum Ask<'a> {
    /// An access token.
    AccessToken {
        /// Its OAuth scopes.
        scopes: &'a [String],
        /// Its lifetime in seconds (see [`lifetime_in_range`]).
        lifetime_secs: u64,
    },
    /// An OpenID Connect ID token.
    IdToken {
        /// Its `aud`.
        audience: &'a str,
        /// Whether it carries the service account's email.
        include_email: bool,
    },
}

impl Ask<'_> {
    fn method(&self) -> Method {
        match self {
            Ask::AccessToken { .. } => Method::GenerateAccessToken,
            Ask::IdToken { .. } => Method::GenerateIdToken,
        }
    }
}

/// A token IAM issued.
pub struct Generated {
    /// The method's URL that issued it.
    pub url: String,
    /// The token.
    pub token: Secret,
    /// Its expiry: IAM's `expireTime` for access tokens, `exp` for ID tokens.
    pub expires_at: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessTokenResponse {
    access_token: Option<Secret>,
    expire_time: Option<String>,
}

#[derive(Deserialize)]
struct IdTokenResponse {
    token: Option<Secret>,
}

/// Calls `generateAccessToken` or `generateIdToken` for the service account.
pub fn generate(client: &Client, who: &Impersonation<'_>, ask: &Ask<'_>) -> Result<Generated> {
    let url = method_url(who.endpoint, who.service_account, ask.method());
    let doing = format!("impersonating {} at {url}", who.service_account);
    let mut body = match ask {
        Ask::AccessToken { scopes, lifetime_secs } => {
            json!({ "scope": scopes, "lifetime": format!("{lifetime_secs}s") })
        }
        Ask::IdToken { audience, include_email } => json!({ "audience": audience, "includeEmail": include_email }),
    };
    if !who.delegates.is_empty() {
        let names: Vec<String> = who.delegates.iter().map(|d| format!("projects/-/serviceAccounts/{d}")).collect();
        body["delegates"] = json!(names);
    }
    let resp = client
        .send(&Request {
            method: "POST",
            url: &url,
            headers: vec![],
            bearer: Some(who.bearer),
            body: Body::Json(&body),
        })
        .and_then(|r| oauth::check_with(r, Service::Iam, |refusal, _| hint(refusal, who)))
        .context(doing.clone())?;
    match ask {
        Ask::AccessToken { .. } => {
            let r: AccessTokenResponse = resp.json().context(doing.clone())?;
            let token = present(r.access_token, "accessToken").context(doing.clone())?;
            let expires_at = match r.expire_time.as_deref() {
                Some(t) => Some(expire_time(t).context(doing)?),
                None => None,
            };
            Ok(Generated { url, token, expires_at })
        }
        Ask::IdToken { .. } => {
            let r: IdTokenResponse = resp.json().context(doing.clone())?;
            let token = present(r.token, "token").context(doing)?;
            let expires_at = crate::core::jwt::unverified_exp(token.expose()).map(Timestamp::from_unix);
            Ok(Generated { url, token, expires_at })
        }
    }
}

/// The token of an answer: present, not empty and fit for a header.
fn present(token: Option<Secret>, field: &str) -> Result<Secret> {
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::new(Kind::Unavailable, format!("the response has no {field}")))?;
    oauth::check_token(&token, field)?;
    Ok(token)
}

/// The hint for an IAM refusal in Google's error format, by its status code.
fn hint(refusal: &Refusal, who: &Impersonation<'_>) -> Option<String> {
    let (status, message) = match &refusal.said {
        Said::Google { status, message } => (status.as_deref(), message.as_str()),
        // An OAuth error is no IAM answer; an unknown body already has the HTTP status's hint.
        Said::Oauth { .. } | Said::Unknown => return None,
    };
    let refusal = IamRefusal::of(status, message, refusal.status)?;
    hints::iam(refusal, who.service_account, who.principal)
}

/// IAM's `expireTime` (RFC 3339) in Unix seconds, refused when it is not one or lies in the
/// past or absurdly far ahead (see [`oauth::check_expiry`]).
fn expire_time(text: &str) -> Result<Timestamp> {
    let at = Timestamp::parse(text).map_err(|_| {
        Error::new(Kind::Unavailable, format!("the expireTime in the answer, {text:?}, is not an RFC 3339 time"))
            .hint("IAM Credentials answers like 2026-01-31T12:00:00Z; is --endpoint an IAM Credentials API?")
    })?;
    oauth::check_expiry(at.unix(), clock::now_unix(), "expireTime")?;
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impersonation_url() {
        let url = method_url(
            "https://iamcredentials.googleapis.com/",
            "sa@p.iam.gserviceaccount.com",
            Method::GenerateAccessToken,
        );
        assert_eq!(url, "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken");
        let (sa, base) = split_impersonation_url(&url).unwrap();
        assert_eq!(sa, "sa@p.iam.gserviceaccount.com");
        assert_eq!(base, "https://iamcredentials.googleapis.com");
        assert!(split_impersonation_url("https://x/other").is_none());
    }

    #[test]
    fn emails() {
        assert!(validate_email("sa@p.iam.gserviceaccount.com").is_ok());
        for bad in ["sa", "@p.com", "sa@p", "a/b@p.com", "sa@p.com:x"] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lifetimes_in_range() {
        assert_eq!(lifetime_in_range(3600, "x"), Ok(3600));
        assert!(lifetime_in_range(0, "x").unwrap_err().contains("1 to 43200"));
        assert!(lifetime_in_range(MAX_LIFETIME_SECS + 1, "x").is_err());
    }
}
