//! Azure AD (and any OAuth 2.0 / OIDC issuer's) token endpoint: the client-credentials grant
//! authenticated by a JWT client assertion or a client secret (v2 scopes, v1 resources, or an
//! audience for other issuers), the jwt-bearer grant (RFC 7523), and Azure IMDS managed
//! identities. The answers are parsed and checked by [`TokenResponse::from_response`]; a
//! refusal of the assertion for its time comes back with the clock skew the answer's `Date`
//! shows, so that the caller can sign again at the server's time.

use crate::core::clock::Skew;
use crate::core::error::{Context, Error, Result};
use crate::core::secret::Secret;
use crate::http::{self, Body, Client, Request};
use crate::protocol::assertion::CLIENT_ASSERTION_TYPE;
use crate::protocol::hints;
use crate::protocol::oauth::{self, Refusal, Said, Service, TokenResponse};

/// The default Azure AD authority.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The jwt-bearer grant type (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Azure's instance metadata service token URL (managed identities).
pub const IMDS_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// The IMDS API version wif asks for.
const IMDS_API_VERSION: &str = "2018-02-01";

/// `{authority}/{tenant}/oauth2/v2.0/token`, refusing tenants that would change the path.
pub fn token_endpoint(authority: &str, tenant: &str) -> Result<String> {
    if tenant.is_empty() || !tenant.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
        return Err(Error::usage(format!("{tenant:?} is not a tenant id"))
            .hint("a tenant is a GUID or a domain like contoso.onmicrosoft.com"));
    }
    Ok(format!("{}/{tenant}/oauth2/v2.0/token", authority.trim_end_matches('/')))
}

/// Whether a token endpoint is Azure AD's v2 endpoint (scopes, not resources).
pub fn is_v2_endpoint(url: &str) -> bool {
    url.contains("/oauth2/v2.0/")
}

/// The v2 scope asked for when none is given: the application's own `.default`.
pub fn default_scope(client_id: &str) -> String {
    format!("api://{client_id}/.default")
}

/// Where a subject token came from, as the document's `azure.source` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Azure AD v2 client credentials with a scope.
    AzureV2,
    /// Azure AD v1 client credentials with a resource.
    AzureV1,
    /// The jwt-bearer grant at another issuer.
    JwtBearer,
    /// Client credentials at another issuer.
    ClientCredentials,
    /// A file another system keeps fresh.
    File,
    /// A URL serving the token.
    Url,
    /// Azure IMDS (managed identity).
    Imds,
    /// GitHub Actions' OIDC token service.
    GithubActions,
}

impl Source {
    /// The name recorded in the document.
    pub fn name(self) -> &'static str {
        match self {
            Source::AzureV2 => "azure-v2",
            Source::AzureV1 => "azure-v1",
            Source::JwtBearer => "jwt-bearer",
            Source::ClientCredentials => "client-credentials",
            Source::File => "file",
            Source::Url => "url",
            Source::Imds => "imds",
            Source::GithubActions => "github-actions",
        }
    }
}

/// How the client proves who it is in the client-credentials grant.
#[derive(Clone, Copy)]
pub enum ClientAuth<'a> {
    /// A signed JWT client assertion (RFC 7523 §2.2) whose `aud` is the token endpoint.
    Assertion(&'a Secret),
    /// A client secret.
    Secret(&'a Secret),
}

/// What the client-credentials grant asks for.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// An audience (issuers other than Azure AD), with an optional scope.
    Audience {
        /// The audience the issuer should put in the token.
        audience: &'a str,
        /// The scope, if any.
        scope: Option<&'a str>,
    },
    /// An Azure AD v1 resource.
    Resource(&'a str),
    /// A scope (Azure AD v2: `RESOURCE/.default`).
    Scope(&'a str),
}

/// The grant to use at the token endpoint.
#[derive(Clone, Copy)]
pub enum Grant<'a> {
    /// `client_credentials`, authenticated by `auth`.
    ClientCredentials {
        /// The client's credential.
        auth: ClientAuth<'a>,
        /// What is asked for.
        target: Target<'a>,
    },
    /// The jwt-bearer grant with the assertion as the grant (RFC 7523 §2.1).
    JwtBearer {
        /// The signed assertion.
        assertion: &'a Secret,
        /// The audience the issuer should put in the token.
        audience: &'a str,
        /// The scope, if any.
        scope: Option<&'a str>,
    },
}

/// A token request at an OAuth 2.0 token endpoint.
#[derive(Clone, Copy)]
pub struct TokenRequest<'a> {
    /// The token endpoint.
    pub url: &'a str,
    /// The client id.
    pub client_id: &'a str,
    /// The grant and its parameters.
    pub grant: Grant<'a>,
}

/// A token a service issued, with the answer it came in.
pub struct Issued {
    /// The token.
    pub token: Secret,
    /// The whole (checked) answer: type and expiry.
    pub answer: TokenResponse,
}

impl<'a> TokenRequest<'a> {
    /// Where the token comes from, by grant, target and endpoint.
    pub fn source(&self) -> Source {
        match self.grant {
            Grant::JwtBearer { .. } => Source::JwtBearer,
            Grant::ClientCredentials { target: Target::Audience { .. }, .. } => Source::ClientCredentials,
            Grant::ClientCredentials { target: Target::Resource(_), .. } => Source::AzureV1,
            Grant::ClientCredentials { target: Target::Scope(_), .. } if is_v2_endpoint(self.url) => Source::AzureV2,
            Grant::ClientCredentials { target: Target::Scope(_), .. } => Source::ClientCredentials,
        }
    }

    /// The same request with another client assertion (one signed again).
    pub fn with_assertion<'b>(&self, assertion: &'b Secret) -> TokenRequest<'b>
    where
        'a: 'b,
    {
        let grant = match self.grant {
            Grant::JwtBearer { audience, scope, .. } => Grant::JwtBearer { assertion, audience, scope },
            Grant::ClientCredentials { auth: ClientAuth::Assertion(_), target } => {
                Grant::ClientCredentials { auth: ClientAuth::Assertion(assertion), target }
            }
            other => other,
        };
        TokenRequest { url: self.url, client_id: self.client_id, grant }
    }

    /// Whether the client assertion goes with the request (as client authentication or as the
    /// grant), so that a time refusal is about it.
    pub fn signs_with_assertion(&self) -> bool {
        matches!(self.grant, Grant::JwtBearer { .. } | Grant::ClientCredentials { auth: ClientAuth::Assertion(_), .. })
    }

    /// The form fields, in the order MSAL sends them.
    fn form(&self) -> Vec<(&'static str, &str)> {
        let mut fields = vec![("client_id", self.client_id)];
        match self.grant {
            Grant::JwtBearer { assertion, audience, scope } => {
                fields.extend([
                    ("grant_type", JWT_BEARER_GRANT),
                    ("assertion", assertion.expose()),
                    ("audience", audience),
                ]);
                fields.extend(scope.map(|s| ("scope", s)));
            }
            Grant::ClientCredentials { auth, target } => {
                fields.push(("grant_type", "client_credentials"));
                match auth {
                    ClientAuth::Assertion(a) => fields
                        .extend([("client_assertion_type", CLIENT_ASSERTION_TYPE), ("client_assertion", a.expose())]),
                    ClientAuth::Secret(s) => fields.push(("client_secret", s.expose())),
                }
                match target {
                    Target::Audience { audience, scope } => {
                        fields.push(("audience", audience));
                        fields.extend(scope.map(|s| ("scope", s)));
                    }
                    Target::Resource(r) => fields.push(("resource", r)),
                    Target::Scope(s) => fields.push(("scope", s)),
                }
            }
        }
        fields
    }
}

/// How a token request ended, when it got an answer that means something.
pub enum Outcome {
    /// The token.
    Issued(Issued),
    /// The client assertion was refused for its time (see [`TimeRefused`]).
    AssertionTimeRefused(TimeRefused),
}

/// The endpoint refused the client assertion as not yet valid or expired (Azure AD's
/// AADSTS700024): the error, and how far this machine's clock is from the endpoint's.
pub struct TimeRefused {
    /// The refusal, AADSTS hint and all.
    pub error: Error,
    /// The skew the answer's `Date` shows, if it had one.
    pub skew: Option<Skew>,
    /// The endpoint's host, for messages.
    pub server: String,
}

/// Asks the token endpoint for a token; refusals carry Azure's AADSTS hints, and a refusal
/// of the assertion's time is told apart from other failures.
pub fn request_token(client: &Client, req: &TokenRequest<'_>) -> Result<Outcome> {
    let service = match req.source() {
        Source::AzureV1 | Source::AzureV2 => Service::Azure,
        _ => Service::Oauth,
    };
    let fields = req.form();
    let doing = format!("requesting a token at {}", http::redact_query(req.url));
    let resp = client
        .send(&Request { method: "POST", url: req.url, headers: vec![], bearer: None, body: Body::Form(&fields) })
        .context(doing.clone())?;
    // The skew the answer shows, when it refused the assertion for its time.
    let mut time_refused = None;
    let checked = oauth::check_with(resp, service, |refusal, resp| {
        if req.signs_with_assertion() && refuses_assertion_time(refusal) {
            time_refused = Some(hints::answer_skew(resp));
        }
        None
    });
    let resp = match (checked.context(doing.clone()), time_refused) {
        (Err(error), Some(skew)) => {
            return Ok(Outcome::AssertionTimeRefused(TimeRefused { error, skew, server: http::host_of(req.url) }))
        }
        (checked, _) => checked?,
    };
    let (answer, token) = TokenResponse::from_response(&resp).context(doing)?;
    Ok(Outcome::Issued(Issued { token, answer }))
}

/// Azure AD's code for an assertion outside its valid time range.
const AADSTS_ASSERTION_TIME: u64 = 700024;

/// Whether a refusal says the assertion is not within its valid time range: Azure AD's
/// AADSTS700024, or (from an issuer that names no AADSTS code) an `invalid_client` /
/// `invalid_grant` whose description says the assertion is expired or not yet valid.
fn refuses_assertion_time(refusal: &Refusal) -> bool {
    let Said::Oauth { error, description, codes } = &refusal.said else {
        return false;
    };
    let code = codes.as_ref().and_then(|c| c.first().copied());
    let d = description.to_ascii_lowercase();
    match code {
        Some(c) => c == AADSTS_ASSERTION_TIME,
        None if d.contains("aadsts") => d.contains("aadsts700024"),
        // An AADSTS code names its cause (700027 says "expired" of a certificate); other
        // issuers only describe it.
        None => {
            matches!(error.as_str(), "invalid_client" | "invalid_grant")
                && (d.contains("valid time range") || d.contains("not yet valid") || d.contains("expired"))
        }
    }
}

/// A managed-identity token request at Azure IMDS.
pub struct ImdsRequest<'a> {
    /// The IMDS token URL ([`IMDS_URL`] on Azure).
    pub endpoint: &'a str,
    /// The v1 resource the token is for.
    pub resource: &'a str,
    /// A user-assigned identity's client id.
    pub client_id: Option<&'a str>,
}

/// Asks Azure IMDS for a managed-identity token.
pub fn imds_token(client: &Client, req: &ImdsRequest<'_>) -> Result<Issued> {
    let mut q = vec![("api-version", IMDS_API_VERSION), ("resource", req.resource)];
    q.extend(req.client_id.map(|id| ("client_id", id)));
    let url = http::with_query(req.endpoint, &q);
    let doing = format!("asking Azure IMDS at {} for a managed-identity token", http::redact_query(req.endpoint));
    let resp = client
        .send(&Request {
            method: "GET",
            url: &url,
            headers: vec![("Metadata", "true".into())],
            bearer: None,
            body: Body::Empty,
        })
        .and_then(|r| oauth::check(r, Service::Azure))
        .context(doing.clone())?;
    let (answer, token) = TokenResponse::from_response(&resp).context(doing)?;
    Ok(Issued { token, answer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_endpoint_shape() {
        assert_eq!(
            token_endpoint("https://login.microsoftonline.com/", "contoso.onmicrosoft.com").unwrap(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert!(token_endpoint("https://x", "a/../b").is_err());
        assert!(token_endpoint("https://x", "").is_err());
    }

    fn refusal(body: serde_json::Value) -> Refusal {
        Refusal::of(&crate::http::Response { status: 400, body: body.to_string().into_bytes(), ..Default::default() })
    }

    #[test]
    fn assertion_time_refusals_told_apart() {
        let time = "AADSTS700024: Client assertion is not within its valid time range. Current time: …";
        assert!(refuses_assertion_time(&refusal(
            serde_json::json!({"error": "invalid_client", "error_description": time, "error_codes": [700024]})
        )));
        assert!(refuses_assertion_time(&refusal(
            serde_json::json!({"error": "invalid_client", "error_description": time})
        )));
        let cert = "AADSTS700027: The certificate with identifier used to sign the client assertion is expired on application.";
        assert!(!refuses_assertion_time(&refusal(
            serde_json::json!({"error": "invalid_client", "error_description": cert, "error_codes": [700027]})
        )));
        assert!(!refuses_assertion_time(&refusal(
            serde_json::json!({"error": "invalid_client", "error_description": cert})
        )));
        let other = "The assertion has expired.";
        assert!(refuses_assertion_time(&refusal(
            serde_json::json!({"error": "invalid_grant", "error_description": other})
        )));
        assert!(!refuses_assertion_time(&refusal(
            serde_json::json!({"error": "invalid_scope", "error_description": other})
        )));
        assert!(!refuses_assertion_time(&refusal(serde_json::json!({"error": {"status": "PERMISSION_DENIED"}}))));
    }

    #[test]
    fn form_fields_and_source() {
        let secret = Secret::new("s3cret");
        let req = TokenRequest {
            url: "https://login.example/t/oauth2/v2.0/token",
            client_id: "app",
            grant: Grant::ClientCredentials {
                auth: ClientAuth::Secret(&secret),
                target: Target::Scope("api://app/.default"),
            },
        };
        assert_eq!(req.source(), Source::AzureV2);
        assert!(!req.signs_with_assertion());
        assert_eq!(
            req.form(),
            [
                ("client_id", "app"),
                ("grant_type", "client_credentials"),
                ("client_secret", "s3cret"),
                ("scope", "api://app/.default")
            ]
        );
        let req = TokenRequest {
            url: "https://issuer.example/token",
            client_id: "app",
            grant: Grant::JwtBearer { assertion: &secret, audience: "aud", scope: None },
        };
        assert_eq!(req.source(), Source::JwtBearer);
        assert!(req.signs_with_assertion());
        assert_eq!(req.form()[1], ("grant_type", JWT_BEARER_GRANT));
    }
}
