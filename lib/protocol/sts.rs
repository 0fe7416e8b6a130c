//! Google STS: the RFC 8693 token exchange as google-auth sends it (a subject token for a
//! federated access token), the workload identity provider audience, and the token type URNs.

use crate::core::clock::{self, Timestamp};
use crate::core::error::{Context, Error, Result};
use crate::core::secret::Secret;
use crate::http::{self, Body, Client, Request};
use crate::protocol::oauth::{self, Service, TokenResponse};

/// Google's STS token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://sts.googleapis.com/v1/token";
/// The scope asked for by default (also IAM's default scope).
pub const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The token-exchange grant type (RFC 8693 §2.1).
pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The subject token type of a JWT (what Azure AD and OIDC issuers give).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The subject token type of an OIDC ID token.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// The subject token type of a SAML 2.0 assertion.
pub const SAML2_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:saml2";
/// The token type of an OAuth access token: what wif asks STS for.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Lifetime assumed for a federated token whose answer names none.
const ASSUMED_LIFETIME_SECS: i64 = 3600;

/// Expands short subject token type names to their URNs.
pub fn expand_token_type(t: &str) -> Result<String> {
    Ok(match t {
        "jwt" => JWT_TOKEN_TYPE.into(),
        "id_token" => ID_TOKEN_TYPE.into(),
        "saml2" => SAML2_TOKEN_TYPE.into(),
        "access_token" => ACCESS_TOKEN_TYPE.into(),
        t if t.starts_with("urn:ietf:params:oauth:token-type:") || t.starts_with("urn:ietf:params:aws:token-type:") => {
            t.into()
        }
        _ => {
            return Err(Error::usage(format!("{t:?} is not a subject token type"))
                .hint("use jwt, id_token, saml2 or a urn:ietf:params:oauth:token-type:… URN"))
        }
    })
}

/// `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/R`.
pub fn build_audience(project_number: &str, pool: &str, provider: &str) -> String {
    format!("//iam.googleapis.com/projects/{project_number}/locations/global/workloadIdentityPools/{pool}/providers/{provider}")
}

/// Checks the shape of a workload (or workforce) identity provider audience.
pub fn validate_audience(aud: &str) -> Result<()> {
    let bad = |why: &str| {
        Error::usage(format!("the audience {aud:?} {why}")).hint(
            "it must look like //iam.googleapis.com/projects/PROJECT_NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER",
        )
    };
    let id_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if let Some(rest) = aud.strip_prefix("//iam.googleapis.com/locations/global/workforcePools/") {
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.as_slice() {
            [pool, "providers", prov] if id_ok(pool) && id_ok(prov) => Ok(()),
            _ => Err(bad("is not a workforce pool provider name")),
        };
    }
    let Some(rest) = aud.strip_prefix("//iam.googleapis.com/projects/") else {
        return Err(if aud.starts_with("https://iam.googleapis.com/") {
            bad("starts with https:// — STS wants the resource name starting with //iam.googleapis.com/")
        } else {
            bad("does not start with //iam.googleapis.com/projects/")
        });
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [num, "locations", "global", "workloadIdentityPools", pool, "providers", prov] => {
            if !num.chars().all(|c| c.is_ascii_digit()) || num.is_empty() {
                return Err(bad("names the project by id; STS needs the project NUMBER (gcloud projects describe PROJECT_ID --format='value(projectNumber)')"));
            }
            if !id_ok(pool) || !id_ok(prov) {
                return Err(bad("has a pool or provider id with characters other than a-z, 0-9 and -"));
            }
            Ok(())
        }
        _ => Err(bad("is not a workload identity pool provider name")),
    }
}

/// An RFC 8693 token exchange request.
pub struct ExchangeRequest<'a> {
    /// The STS token endpoint.
    pub url: &'a str,
    /// The workload identity provider (see [`validate_audience`]).
    pub audience: &'a str,
    /// The scope of the federated token.
    pub scope: &'a str,
    /// The subject token.
    pub subject_token: &'a Secret,
    /// Its type URN (see [`expand_token_type`]).
    pub subject_token_type: &'a str,
    /// STS `options`, a JSON object as text.
    pub options: Option<&'a str>,
}

/// A federated token from STS.
pub struct Exchanged {
    /// The federated access token.
    pub token: Secret,
    /// `token_type` (default `Bearer`).
    pub token_type: String,
    /// `issued_token_type`, if STS named it.
    pub issued_token_type: Option<String>,
    /// Expiry (an hour from now when the answer does not say).
    pub expires_at: Timestamp,
}

/// Exchanges the subject token at STS; refusals carry STS's hints.
pub fn exchange(client: &Client, req: &ExchangeRequest<'_>) -> Result<Exchanged> {
    let mut fields: Vec<(&str, &str)> = vec![
        ("grant_type", GRANT),
        ("audience", req.audience),
        ("scope", req.scope),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("subject_token", req.subject_token.expose()),
        ("subject_token_type", req.subject_token_type),
    ];
    fields.extend(req.options.map(|o| ("options", o)));
    let doing = format!("exchanging the subject token at {}", http::redact_query(req.url));
    let resp = client
        .send(&Request { method: "POST", url: req.url, headers: vec![], bearer: None, body: Body::Form(&fields) })
        .and_then(|r| check_naming_skew(r, req.url))
        .context(doing.clone())?;
    let (answer, token) = TokenResponse::from_response(&resp).context(doing)?;
    let expires_at =
        answer.expires_at(&token).unwrap_or_else(|| Timestamp::from_unix(clock::now_unix() + ASSUMED_LIFETIME_SECS));
    Ok(Exchanged {
        token,
        token_type: answer.token_type.unwrap_or_else(|| "Bearer".into()),
        issued_token_type: answer.issued_token_type,
        expires_at,
    })
}

/// [`oauth::check`] for STS at `url`, whose hint names this machine's clock skew when STS
/// refused the subject token as expired or not yet valid and the answer's `Date` shows the
/// clock off.
fn check_naming_skew(resp: http::Response, url: &str) -> Result<http::Response> {
    use crate::protocol::hints;
    oauth::check_with(resp, Service::Sts, |refusal, resp| match &refusal.said {
        oauth::Said::Oauth { error, description, .. } => {
            hints::sts_time_skew(error, description, hints::answer_skew(resp), &http::host_of(url))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_validation() {
        let good = build_audience("123456789", "my-pool", "azure");
        assert!(validate_audience(&good).is_ok());
        assert!(validate_audience("//iam.googleapis.com/locations/global/workforcePools/wf/providers/p").is_ok());
        let e = validate_audience(&build_audience("my-project", "p", "r")).unwrap_err();
        assert!(e.to_string().contains("NUMBER"));
        assert!(validate_audience(
            "https://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/r"
        )
        .is_err());
        assert!(validate_audience("//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p").is_err());
        assert!(validate_audience(
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/P_x/providers/r"
        )
        .is_err());
    }

    #[test]
    fn token_types() {
        assert_eq!(expand_token_type("jwt").unwrap(), "urn:ietf:params:oauth:token-type:jwt");
        assert!(expand_token_type("bogus").is_err());
    }
}
