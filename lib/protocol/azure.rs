//! Azure AD (and any OAuth 2.0 / OIDC issuer's) token endpoint: the client-credentials grant
//! authenticated by a JWT client assertion or a client secret (v2 scopes, v1 resources, or an
//! audience for other issuers), the jwt-bearer grant (RFC 7523), and Azure IMDS managed
//! identities. The answers are parsed and checked by [`TokenResponse::from_response`].

use crate::core::error::{Context, Error, Result};
use crate::core::secret::Secret;
use crate::http::{self, Body, Client, Request};
use crate::protocol::assertion::CLIENT_ASSERTION_TYPE;
use crate::protocol::oauth::{self, Service, TokenResponse};

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

impl TokenRequest<'_> {
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

/// Asks the token endpoint for a token; refusals carry Azure's AADSTS hints.
pub fn request_token(client: &Client, req: &TokenRequest<'_>) -> Result<Issued> {
    let service = match req.source() {
        Source::AzureV1 | Source::AzureV2 => Service::Azure,
        _ => Service::Oauth,
    };
    let fields = req.form();
    let doing = format!("requesting a token at {}", http::redact_query(req.url));
    let resp = client
        .send(&Request { method: "POST", url: req.url, headers: vec![], bearer: None, body: Body::Form(&fields) })
        .and_then(|r| oauth::check(r, service))
        .context(doing.clone())?;
    let (answer, token) = TokenResponse::from_response(&resp).context(doing)?;
    Ok(Issued { token, answer })
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
        assert_eq!(req.form()[1], ("grant_type", JWT_BEARER_GRANT));
    }
}
