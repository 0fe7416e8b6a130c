//! GitHub Actions' OIDC token issuer, under `/github/{name}/`: the id-token endpoint a job
//! calls (`ACTIONS_ID_TOKEN_REQUEST_URL` with `Authorization: Bearer
//! $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answering `{"count", "value"}`), the discovery document
//! and the JWKS (`/.well-known/jwks`). Tokens carry the claims GitHub writes, all strings.

use super::azure::constant_time_eq;
use super::bearer_config::{BearerKind, GithubConfig, GithubRun};
use super::errors;
use super::server::Req;
use super::state::State;
use crate::http::parse_form;
use crate::server::Response;
use serde_json::{json, Map, Value};

/// GitHub's OIDC tokens live five minutes.
const LIFETIME: i64 = 300;

fn find<'a>(st: &'a State, name: &str) -> Option<&'a GithubConfig> {
    st.config.github.iter().find(|g| g.name == name)
}

fn no_such_path(req: &Req) -> Response {
    errors::not_found(&req.path)
}

/// The run whose request token the request carries as `Authorization: Bearer …`.
fn run_of<'a>(issuer: &'a GithubConfig, req: &Req) -> Option<&'a GithubRun> {
    let token = req.bearer()?;
    issuer.runs.iter().find(|r| constant_time_eq(r.request_token.as_bytes(), token.as_bytes()))
}

/// `GET /github/{name}/idtoken?api-version=2.0[&audience=AUD]`.
pub fn idtoken(st: &State, req: &Req, name: &str) -> Response {
    let (Some(issuer), Some(keys)) = (find(st, name), st.issuer_keys.get(BearerKind::Github, name)) else {
        return no_such_path(req);
    };
    if req.header("authorization").is_none() {
        return errors::github(
            401,
            "The request has no Authorization header with the job's request token.",
            "no_token",
        );
    }
    let Some(run) = run_of(issuer, req) else {
        return errors::github(401, "The request token is not valid for any running job.", "bad_token");
    };
    let query = parse_form(req.query.as_bytes());
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if !param("api-version").is_some_and(|v| !v.is_empty()) {
        return errors::github(400, "The api-version query parameter is required.", "no_api_version");
    }
    let owner = run.repository.split('/').next().unwrap_or_default();
    let audience = match param("audience").filter(|a| !a.is_empty()) {
        Some(a) => a.to_string(),
        None => format!("https://github.com/{owner}"),
    };
    let now = st.now();
    let claims = claims(&issuer.issuer, run, &audience, now);
    let mut header = Map::new();
    header.insert("typ".into(), json!("JWT"));
    let token = keys.sign(header, &claims);
    // The service wraps its answer like a collection: `count` is the value's length.
    errors::json(200, &json!({"count": token.len(), "value": token}), "issued")
}

/// A decimal id derived from `seed` (stable across runs) where the config gives none.
fn derived_id(seed: &str, digits: usize) -> String {
    let h = crate::core::keys::sha256_hex(seed.as_bytes());
    let n = u64::from_str_radix(&h[..15], 16).unwrap_or(1);
    let id = n.to_string();
    id[..digits.min(id.len())].to_string()
}

/// The claims GitHub writes into a job's OIDC token.
fn claims(iss: &str, run: &GithubRun, audience: &str, now: i64) -> Value {
    let repo = &run.repository;
    let owner = repo.split('/').next().unwrap_or_default();
    let sub = match &run.environment {
        Some(env) => format!("repo:{repo}:environment:{env}"),
        None => format!("repo:{repo}:ref:{}", run.git_ref),
    };
    let ref_type = if run.git_ref.starts_with("refs/heads/") {
        "branch"
    } else if run.git_ref.starts_with("refs/tags/") {
        "tag"
    } else {
        ""
    };
    let sha = run.sha.clone().unwrap_or_else(|| {
        crate::core::keys::sha256_hex(format!("{repo}@{}", run.git_ref).as_bytes())[..40].to_string()
    });
    let workflow_ref = format!("{repo}/.github/workflows/{}.yml@{}", run.workflow, run.git_ref);
    let mut c = json!({
        "jti": crate::core::jwt::random_uuid(),
        "sub": sub,
        "aud": audience,
        "ref": run.git_ref,
        "sha": sha,
        "repository": repo,
        "repository_owner": owner,
        "repository_owner_id": derived_id(owner, 8),
        "run_id": run.run_id.clone().unwrap_or_else(|| derived_id(&run.request_token, 10)),
        "run_number": "1",
        "run_attempt": "1",
        "repository_visibility": "private",
        "repository_id": run.repository_id.clone().unwrap_or_else(|| derived_id(repo, 9)),
        "actor_id": derived_id(&run.actor, 8),
        "actor": run.actor,
        "workflow": run.workflow,
        "head_ref": "",
        "base_ref": "",
        "event_name": run.event_name,
        "ref_protected": "false",
        "ref_type": ref_type,
        "workflow_ref": workflow_ref,
        "workflow_sha": sha,
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": sha,
        "runner_environment": "github-hosted",
        "iss": iss,
        "nbf": now,
        "exp": now.saturating_add(LIFETIME),
        "iat": now,
    });
    if let Some(env) = &run.environment {
        c["environment"] = json!(env);
    }
    c
}

/// `GET /github/{name}/.well-known/openid-configuration`, its `jwks_uri` on this emulator.
pub fn discovery(st: &State, req: &Req, name: &str) -> Response {
    let (Some(issuer), Some(keys)) = (find(st, name), st.issuer_keys.get(BearerKind::Github, name)) else {
        return no_such_path(req);
    };
    let body = json!({
        "issuer": issuer.issuer,
        "jwks_uri": format!("{}/github/{name}/.well-known/jwks", req.base_url()),
        "subject_types_supported": ["public", "pairwise"],
        "response_types_supported": ["id_token"],
        "claims_supported": [
            "sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "sha", "repository", "repository_id",
            "repository_owner", "repository_owner_id", "run_id", "run_number", "run_attempt", "actor",
            "actor_id", "workflow", "workflow_ref", "workflow_sha", "head_ref", "base_ref", "event_name",
            "ref_type", "ref_protected", "environment", "job_workflow_ref", "job_workflow_sha",
            "repository_visibility", "runner_environment",
        ],
        "id_token_signing_alg_values_supported": keys.algs(),
        "scopes_supported": ["openid"],
    });
    errors::json(200, &body, "ok")
}

/// `GET /github/{name}/.well-known/jwks`.
pub fn jwks(st: &State, req: &Req, name: &str) -> Response {
    match st.issuer_keys.get(BearerKind::Github, name) {
        Some(keys) => errors::json(200, &keys.jwks(), "ok"),
        None => no_such_path(req),
    }
}
