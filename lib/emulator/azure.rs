//! Azure AD: the v2 and v1 token endpoints (client credentials with a certificate assertion
//! or a secret), OIDC discovery, the JWKS, MSAL's instance discovery and the IMDS endpoint.

use super::config::{AppConfig, AzureConfig, ResourceConfig};
use super::errors;
use super::keys::{self, AssertionError};
use super::server::Req;
use super::state::State;
use crate::http::parse_form;
use crate::server::Response;
use serde_json::json;

/// The client assertion type Azure accepts.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An Azure AD error answer dated by the emulator's clock.
fn aad(st: &State, status: u16, error: &str, code: u64, message: &str) -> Response {
    errors::azure(st.now(), status, error, code, message)
}

/// The v2 issuer of a tenant.
pub fn issuer_v2(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/v2.0")
}

/// The v1 issuer of a tenant.
pub fn issuer_v1(tenant: &str) -> String {
    format!("https://sts.windows.net/{tenant}/")
}

/// The tenant config if `name` is its id or one of its domains.
fn tenant<'a>(st: &'a State, name: &str) -> Option<&'a AzureConfig> {
    st.config.azure.as_ref().filter(|az| {
        az.tenant.eq_ignore_ascii_case(name) || az.tenant_domains.iter().any(|d| d.eq_ignore_ascii_case(name))
    })
}

fn tenant_not_found(st: &State, name: &str) -> Response {
    aad(st, 400, "invalid_request", 90002, &format!("Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."))
}

fn missing(st: &State, param: &str) -> Response {
    aad(
        st,
        400,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{param}'."),
    )
}

fn resource_not_found(st: &State, name: &str, tenant: &str) -> Response {
    aad(st, 400, "invalid_resource", 500011, &format!("The resource principal named {name} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."))
}

/// A resource by application id URI or app id (optionally with a trailing slash).
fn find_resource<'a>(az: &'a AzureConfig, name: &str) -> Option<&'a ResourceConfig> {
    let n = name.trim_end_matches('/');
    az.resources
        .iter()
        .find(|r| r.app_id.eq_ignore_ascii_case(n) || r.identifier_uris.iter().any(|u| u.trim_end_matches('/') == n))
}

/// `POST /{tenant}/oauth2/v2.0/token` and `POST /{tenant}/oauth2/token`.
pub fn token(st: &State, req: &Req, tenant_name: &str, v2: bool) -> Response {
    let Some(az) = tenant(st, tenant_name) else { return tenant_not_found(st, tenant_name) };
    let form = if req.is_form() { parse_form(&req.body) } else { Vec::new() };
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let Some(grant) = field("grant_type") else { return missing(st, "grant_type") };
    if grant != "client_credentials" {
        return aad(
            st,
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    let Some(client_id) = field("client_id") else { return missing(st, "client_id") };
    let Some(app) = az.apps.iter().find(|a| a.client_id.eq_ignore_ascii_case(client_id)) else {
        return aad(st, 400, "unauthorized_client", 700016, &format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", az.tenant));
    };
    let endpoint = format!("{}{}", req.base_url(), req.path);
    let acr = match (field("client_assertion"), field("client_secret")) {
        (Some(_), Some(_)) => {
            return aad(
                st,
                400,
                "invalid_request",
                90023,
                "Only one client credential may be sent: client_assertion or client_secret.",
            )
        }
        (Some(assertion), None) => {
            match field("client_assertion_type") {
                None => return missing(st, "client_assertion_type"),
                Some(CLIENT_ASSERTION_TYPE) => {}
                Some(other) => {
                    return aad(st, 400, "invalid_request", 70002, &format!("Error validating credentials. The client_assertion_type '{other}' is not supported; use '{CLIENT_ASSERTION_TYPE}'."))
                }
            }
            if let Err(r) = check_assertion(st, app, assertion, &endpoint) {
                return r;
            }
            "2"
        }
        (None, Some(secret)) => {
            if !app.secrets.iter().any(|s| constant_time_eq(s.as_bytes(), secret.as_bytes())) {
                return aad(st, 401, "invalid_client", 7000215, &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", app.client_id));
            }
            "1"
        }
        (None, None) => {
            return aad(
                st,
                400,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        }
    };
    let (resource, requested) = if v2 {
        if field("resource").is_some() {
            return aad(st, 400, "invalid_request", 901002, "The 'resource' request parameter is not supported.");
        }
        let Some(scope) = field("scope") else { return missing(st, "scope") };
        let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        let base = match scopes.as_slice() {
            [one] => one.strip_suffix("/.default"),
            _ => None,
        };
        let Some(base) = base.filter(|b| !b.is_empty()) else {
            return aad(st, 400, "invalid_scope", 70011, &format!("The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."));
        };
        match find_resource(az, base) {
            Some(r) => (r, base.to_string()),
            None => return resource_not_found(st, base, &az.tenant),
        }
    } else {
        let Some(res) = field("resource") else { return missing(st, "resource") };
        match find_resource(az, res) {
            Some(r) => (r, res.to_string()),
            None => return resource_not_found(st, res, &az.tenant),
        }
    };
    let (token, iat, exp) = issue(st, az, resource, &requested, &app.client_id, &app.object_id, acr, &app.roles);
    let life = exp - st.now();
    let body = if v2 {
        json!({"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": token})
    } else {
        json!({
            "token_type": "Bearer",
            "expires_in": life.to_string(),
            "ext_expires_in": life.to_string(),
            "expires_on": exp.to_string(),
            "not_before": iat.to_string(),
            "resource": requested,
            "access_token": token,
        })
    };
    errors::json(200, &body, "ok")
}

/// Issues an access token for `resource` in the resource's token version. Returns the
/// token, its `iat` and `exp`.
#[allow(clippy::too_many_arguments)]
fn issue(
    st: &State,
    az: &AzureConfig,
    resource: &ResourceConfig,
    requested: &str,
    client_id: &str,
    object_id: &str,
    acr: &str,
    roles: &[String],
) -> (String, i64, i64) {
    let now = st.now();
    // Azure back-dates iat/nbf by five minutes against clock skew.
    let iat = now - 300;
    let exp = now + st.token_lifetime;
    let mut c = json!({
        "iat": iat, "nbf": iat, "exp": exp,
        "aio": keys::random_b64(48),
        "idtyp": "app",
        "oid": object_id,
        "rh": format!("0.{}.", keys::random_b64(24)),
        "sub": object_id,
        "tid": az.tenant,
        "uti": keys::random_b64(16),
    });
    if resource.token_version == 2 {
        c["aud"] = json!(resource.app_id);
        c["iss"] = json!(issuer_v2(&az.tenant));
        c["azp"] = json!(client_id);
        c["azpacr"] = json!(acr);
        c["ver"] = json!("2.0");
    } else {
        // v1 tokens carry the resource as it was asked for.
        let aud = if requested.eq_ignore_ascii_case(&resource.app_id) {
            resource.app_id.clone()
        } else {
            requested.to_string()
        };
        c["aud"] = json!(aud);
        c["iss"] = json!(issuer_v1(&az.tenant));
        c["idp"] = json!(issuer_v1(&az.tenant));
        c["appid"] = json!(client_id);
        c["appidacr"] = json!(acr);
        c["ver"] = json!("1.0");
    }
    if !roles.is_empty() {
        c["roles"] = json!(roles);
    }
    (st.signer.sign(&c), iat, exp)
}

fn check_assertion(st: &State, app: &AppConfig, assertion: &str, endpoint: &str) -> Result<(), Response> {
    let key_help = format!("Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.", app.client_id);
    st.client_assertion(assertion, &app.certs, &app.thumbprint_bytes, true, &app.client_id, endpoint).map_err(|e| match e {
        AssertionError::Malformed(m) => aad(st, 400, "invalid_request", 50027, &format!("JWT token is invalid or malformed: {m}")),
        AssertionError::NoThumbprint => aad(st, 401, "invalid_client", 700027, &format!("Client assertion failed signature validation. [Reason - The client assertion has no x5t or x5t#S256 header, so no registered key can be found. {key_help}]")),
        AssertionError::UnknownKey(t) => aad(st, 401, "invalid_client", 700027, &format!("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{t}', {key_help}]")),
        AssertionError::KeyExpired(t) => aad(st, 401, "invalid_client", 700027, &format!("Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '{t}', {key_help}]")),
        AssertionError::BadSignature(t) => aad(st, 401, "invalid_client", 700027, &format!("Client assertion failed signature validation. [Reason - The key was found but use of the key to verify the signature failed., Thumbprint of key used by client: '{t}', {key_help}]")),
        AssertionError::WrongClient(m) => aad(st, 401, "invalid_client", 700021, &format!("Client assertion application identifier doesn't match 'client_id' parameter: {m}.")),
        AssertionError::WrongAudience(got) => aad(st, 401, "invalid_client", 700023, &format!("Client assertion audience claim does not match Realm issuer. The audience {got} must be the token endpoint {endpoint}.")),
        AssertionError::Time(m) => aad(st, 400, "invalid_client", 700024, &m),
        AssertionError::Replayed(j) => aad(st, 401, "invalid_client", 50013, &format!("Assertion is invalid: its jti {j} was already used (replayed client assertion).")),
    })
}

/// Whether two secrets are equal, without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration` (and v1 without `v2.0`).
pub fn discovery(st: &State, req: &Req, tenant_name: &str, v2: bool) -> Response {
    let Some(az) = tenant(st, tenant_name) else { return tenant_not_found(st, tenant_name) };
    let base = format!("{}/{}", req.base_url(), az.tenant);
    let body = if v2 {
        json!({
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer_v2(&az.tenant),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver", "oid"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        })
    } else {
        json!({
            "token_endpoint": format!("{base}/oauth2/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/discovery/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
            "scopes_supported": ["openid"],
            "issuer": issuer_v1(&az.tenant),
            "authorization_endpoint": format!("{base}/oauth2/authorize"),
            "end_session_endpoint": format!("{base}/oauth2/logout"),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "ver", "oid", "appid"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        })
    };
    errors::json(200, &body, "ok")
}

/// `GET /{tenant}/discovery/v2.0/keys`.
pub fn jwks(st: &State, tenant_name: &str) -> Response {
    if tenant_name != "common" && tenant(st, tenant_name).is_none() {
        return tenant_not_found(st, tenant_name);
    }
    errors::json(200, &st.jwks(), "ok")
}

/// `GET /common/discovery/instance`: MSAL's instance discovery (when MSAL is given this URL
/// as `instance_discovery`), pointing at this host's discovery document for the tenant in
/// the `authorization_endpoint` parameter.
pub fn instance_discovery(st: &State, req: &Req) -> Response {
    let q = parse_form(req.query.as_bytes());
    let authz = q.iter().find(|(k, _)| k == "authorization_endpoint").map(|(_, v)| v.clone()).unwrap_or_default();
    // https://HOST/TENANT/oauth2/v2.0/authorize
    let uri = authz.parse::<http::Uri>().ok();
    let tenant_name = uri.as_ref().and_then(|u| u.path().split('/').nth(1)).unwrap_or("");
    if tenant(st, tenant_name).is_none() {
        return aad(st, 400, "invalid_instance", 50049, "Unknown or invalid instance.");
    }
    let host = req.host.clone();
    let body = json!({
        "tenant_discovery_endpoint": format!("{}/{tenant_name}/v2.0/.well-known/openid-configuration", req.base_url()),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    });
    errors::json(200, &body, "ok")
}

/// `GET /metadata/identity/oauth2/token`: Azure IMDS managed-identity tokens (v1 form).
pub fn imds(st: &State, req: &Req) -> Response {
    let bad = |msg: &str| errors::oauth(400, "invalid_request", msg);
    if req.header("metadata").map(str::to_ascii_lowercase).as_deref() != Some("true") {
        return bad("Required metadata header not specified");
    }
    let q = parse_form(req.query.as_bytes());
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    if get("api-version").is_none() {
        return bad("Required query variable 'api-version' is missing");
    }
    let Some(res) = get("resource") else { return bad("Required query variable 'resource' is missing") };
    let Some(az) = st.config.azure.as_ref() else { return errors::oauth(400, "invalid_request", "Identity not found") };
    let mi = match get("client_id") {
        Some(id) => az.managed_identities.iter().find(|m| m.client_id.eq_ignore_ascii_case(id)),
        None if az.managed_identities.len() == 1 => az.managed_identities.first(),
        None if az.managed_identities.len() > 1 => {
            return bad("Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request")
        }
        None => None,
    };
    let Some(mi) = mi else { return errors::oauth(400, "invalid_request", "Identity not found") };
    let Some(resource) = find_resource(az, res) else { return resource_not_found(st, res, &az.tenant) };
    let (token, iat, exp) = issue(st, az, resource, res, &mi.client_id, &mi.object_id, "2", &[]);
    let life = (exp - st.now()).to_string();
    let body = json!({
        "access_token": token,
        "client_id": mi.client_id,
        "expires_in": life,
        "expires_on": exp.to_string(),
        "ext_expires_in": life,
        "not_before": iat.to_string(),
        "resource": res,
        "token_type": "Bearer",
    });
    errors::json(200, &body, "ok")
}
