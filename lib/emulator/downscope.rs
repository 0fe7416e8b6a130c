//! Google STS downscoping: `POST /v1/token` with an access token as the subject and a
//! Credential Access Boundary in `options`, as google-auth's `downscoped.Credentials`
//! sends it. The new token acts as the same service account, expires with its source,
//! and carries the boundary, which Cloud Storage then enforces.

use super::boundary::Boundary;
use super::errors::{self, oauth};
use super::keys;
use super::state::{AccessToken, State};
use crate::server::Response;
use serde_json::json;
use std::sync::Arc;

/// The token type of the subject, the requested and the issued token.
pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Answers a downscoping exchange; `field` reads the request's form (or JSON) fields.
/// `grant_type` and `requested_token_type` have been checked by the caller.
pub fn token<'a>(st: &State, field: impl Fn(&str) -> Option<&'a str>) -> Response {
    let Some(subject) = field("subject_token") else {
        return oauth(400, "invalid_request", "Invalid value for \"subject_token\": it is required.");
    };
    let Some(options) = field("options") else {
        return oauth(
            400,
            "invalid_request",
            "A Credential Access Boundary is required to exchange an access token: options must hold accessBoundary.accessBoundaryRules.",
        );
    };
    let boundary = match Boundary::from_options(options) {
        Ok(b) => b,
        Err(why) => return oauth(400, "invalid_request", &why),
    };
    let Some(source) = st.access_token(subject) else {
        return oauth(
            400,
            "invalid_grant",
            "The subject_token is not a valid access token: it is unknown or has expired.",
        );
    };
    if source.boundary.is_some() {
        return oauth(
            400,
            "invalid_grant",
            "The subject_token already carries a Credential Access Boundary; a downscoped token cannot be downscoped again.",
        );
    }
    let token = format!("ya29.dr.{}", keys::random_b64(120));
    let downscoped = AccessToken { boundary: Some(Arc::new(boundary)), ..source };
    st.record_access_token(token.clone(), downscoped);
    // No expires_in: the token expires with its source, as Google answers.
    let body = json!({"access_token": token, "issued_token_type": ACCESS_TOKEN, "token_type": "Bearer"});
    errors::json(200, &body, "ok")
}
