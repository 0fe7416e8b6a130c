//! The Cloud Storage JSON API subset the emulator serves, enforcing as Google does: list
//! objects (`GET /storage/v1/b/{bucket}/o`), an object's metadata and media
//! (`GET /storage/v1/b/{bucket}/o/{object}[?alt=media]`,
//! `GET /download/storage/v1/b/{bucket}/o/{object}?alt=media`). A request passes only when
//! its bearer token is a live access token the emulator issued, with a storage scope, whose
//! service account holds a role granting the permission on the bucket, and whose Credential
//! Access Boundary (if any) makes the permission available on the resource.
//!
//! The answers' errors come from `errors::storage`, in Cloud Storage's shape.

pub mod checksum;
pub mod config;
mod objects;

use super::boundary::Target;
use super::errors;
use super::server::Req;
use super::state::{AccessToken, State};
use crate::http::{parse_form, percent_decode};
use crate::server::Response;
use config::{BucketConfig, Permission};

/// Scopes that reach Cloud Storage.
const STORAGE_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/cloud-platform.read-only",
    "https://www.googleapis.com/auth/devstorage.full_control",
    "https://www.googleapis.com/auth/devstorage.read_write",
    "https://www.googleapis.com/auth/devstorage.read_only",
];

/// What the request asks for.
enum Call<'a> {
    /// List the objects of a bucket.
    List,
    /// An object's metadata.
    Metadata(&'a str),
    /// An object's bytes.
    Media(&'a str),
}

/// `GET /storage/v1/b/{bucket}/o[/{object}]`.
pub fn json_api(st: &State, req: &Req, bucket: &str, object: Option<&str>) -> Response {
    let query = parse_form(req.query.as_bytes());
    let media = query.iter().any(|(k, v)| k == "alt" && v == "media");
    let object = object.map(|o| percent_decode(o, false));
    let call = match (&object, media) {
        (None, _) => Call::List,
        (Some(o), false) => Call::Metadata(o),
        (Some(o), true) => Call::Media(o),
    };
    serve(st, req, &percent_decode(bucket, false), call, &query)
}

/// `GET /download/storage/v1/b/{bucket}/o/{object}?alt=media`: the bytes.
pub fn download(st: &State, req: &Req, bucket: &str, object: &str) -> Response {
    let query = parse_form(req.query.as_bytes());
    serve(st, req, &percent_decode(bucket, false), Call::Media(&percent_decode(object, false)), &query)
}

fn serve(st: &State, req: &Req, bucket: &str, call: Call, query: &[(String, String)]) -> Response {
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (permission, object, list_prefix) = match &call {
        Call::List => (Permission::ObjectsList, None, Some(param("prefix").unwrap_or(""))),
        Call::Metadata(o) | Call::Media(o) => (Permission::ObjectsGet, Some(*o), None),
    };
    let caller = match authenticate(st, req, permission, object.is_some()) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let storage = st.config.google.as_ref().map(|g| &g.storage);
    let found = storage.and_then(|s| s.bucket(bucket));
    let target = Target { bucket, object, list_prefix };
    // The same refusal whether the bucket is missing or the caller may not use it.
    let Some(b) = found.filter(|b| authorized(&caller, b, permission, &target)) else {
        return denied(&caller.email, permission, object.is_some());
    };
    let generation = storage.map_or(1, |s| s.generation);
    let base = req.base_url();
    match call {
        Call::List => objects::list(b, generation, &base, &param),
        Call::Metadata(o) | Call::Media(o) => {
            let wanted = param("generation");
            let Some(obj) =
                b.objects.iter().find(|x| x.name == o).filter(|_| wanted.map_or(true, |g| g == generation.to_string()))
            else {
                return errors::storage(404, &format!("No such object: {bucket}/{o}"), "notFound", "no_such_object");
            };
            if matches!(call, Call::Media(_)) {
                objects::media(obj, generation)
            } else {
                errors::json(200, &objects::resource(b, obj, generation, &base), "ok")
            }
        }
    }
}

/// The caller's live access token, or the 401/403 Cloud Storage answers without one.
fn authenticate(st: &State, req: &Req, p: Permission, object: bool) -> Result<AccessToken, Response> {
    let Some(bearer) = req.bearer() else {
        let msg = format!("Anonymous caller {}", lacks(p, object));
        return Err(unauthorized(&msg, "required"));
    };
    let Some(caller) = st.access_token(bearer) else {
        return Err(unauthorized("Invalid Credentials", "authError"));
    };
    if !caller.scopes.iter().any(|s| STORAGE_SCOPES.contains(&s.as_str())) {
        return Err(errors::storage(403, "Provided scope(s) are not authorized", "insufficientPermissions", "scope"));
    }
    Ok(caller)
}

/// The enforcement rule: a role on the bucket granting `p` to the token's service account,
/// and, for a downscoped token, a boundary rule making `p` available on the target.
fn authorized(caller: &AccessToken, bucket: &BucketConfig, p: Permission, target: &Target) -> bool {
    bucket.allows(&caller.email, p) && caller.boundary.as_ref().map_or(true, |b| b.allows(p, target))
}

/// "does not have storage.objects.get access to the Google Cloud Storage object. …"
fn lacks(p: Permission, object: bool) -> String {
    let what = if object { "object" } else { "bucket" };
    let name = p.name();
    format!("does not have {name} access to the Google Cloud Storage {what}. Permission '{name}' denied on resource (or it may not exist).")
}

/// Cloud Storage's 403 for a caller without the permission (same whether the bucket exists).
fn denied(email: &str, p: Permission, object: bool) -> Response {
    errors::storage(403, &format!("{email} {}", lacks(p, object)), "forbidden", "forbidden")
}

fn unauthorized(message: &str, reason: &str) -> Response {
    let mut r = errors::storage(401, message, reason, "unauthenticated");
    r.headers.push(("WWW-Authenticate", "Bearer realm=\"https://accounts.google.com/\"".into()));
    r
}
