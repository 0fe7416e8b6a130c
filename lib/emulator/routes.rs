//! The emulator's routes: which handler answers a method and path, after the injected
//! faults; and the request log line: the emulator's [`server::Handler`].

use super::errors;
use super::faults::{self, Service};
use super::server::{self, Req};
use super::state::State;
use super::{azure, github, iam, issuer, kubernetes, storage, sts};
use crate::server::Response;
use serde_json::json;
use std::time::Duration;

/// The listeners hand their requests to the state.
impl server::Handler for State {
    /// Answers one request (after any injected delay or failure).
    fn handle(&self, req: &Req) -> Response {
        if self.delay_or_fail() {
            return errors::unavailable();
        }
        route(self, req)
    }

    /// Prints the request's log line.
    fn log_request(&self, req: &Req, resp: &Response, took: Duration) {
        server::emit(&server::log_line(req, resp, took));
    }

    /// The emulator's clock (`--clock-offset`).
    fn now(&self) -> i64 {
        State::now(self)
    }
}

/// The handler of a method and path.
fn route(st: &State, req: &Req) -> Response {
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let post = |f: &dyn Fn() -> Response| if req.method == "POST" { f() } else { errors::method_not_allowed("POST") };
    let get = |f: &dyn Fn() -> Response| if req.method == "GET" { f() } else { errors::method_not_allowed("GET") };
    // The service's injected fault (`--fault`), if any, else its answer.
    let at = |service: Service, f: &dyn Fn() -> Response| match st.faults.take(service) {
        Some(kind) => faults::answer(service, kind, st.now()),
        None => f(),
    };
    use Service::{Azure, Github, Iam, Issuer, Kubernetes, Storage};
    match segs.as_slice() {
        ["v1", "token"] => at(sts::service(req), &|| post(&|| sts::token(st, req))),
        ["v1", "projects", _, "serviceAccounts", rest] => at(Iam, &|| post(&|| iam::handle(st, req, rest))),
        ["metadata", "identity", "oauth2", "token"] => at(Azure, &|| get(&|| azure::imds(st, req))),
        ["issuers", name, "v1", "token"] => at(Issuer, &|| post(&|| issuer::token(st, req, name))),
        ["issuers", name, ".well-known", "openid-configuration"] => {
            at(Issuer, &|| get(&|| issuer::discovery(st, req, name)))
        }
        ["issuers", name, "jwks"] => at(Issuer, &|| get(&|| issuer::jwks(st, name))),
        ["k8s", name, "api", "v1", "namespaces", ns, "serviceaccounts", sa, "token"] => {
            at(Kubernetes, &|| post(&|| kubernetes::token(st, req, name, ns, sa)))
        }
        ["k8s", name, ".well-known", "openid-configuration"] => {
            at(Kubernetes, &|| get(&|| kubernetes::discovery(st, req, name)))
        }
        ["k8s", name, "openid", "v1", "jwks"] => at(Kubernetes, &|| get(&|| kubernetes::jwks(st, name))),
        ["github", name, "idtoken"] => at(Github, &|| get(&|| github::idtoken(st, req, name))),
        ["github", name, ".well-known", "openid-configuration"] => {
            at(Github, &|| get(&|| github::discovery(st, req, name)))
        }
        ["github", name, ".well-known", "jwks"] => at(Github, &|| get(&|| github::jwks(st, req, name))),
        // The emulator's own control, never faulted.
        ["_emulator", "rotate", kind, name] => post(&|| rotate_keys(st, req, kind, name)),
        ["storage", "v1", "b", bucket, "o"] => at(Storage, &|| get(&|| storage::json_api(st, req, bucket, None))),
        ["storage", "v1", "b", bucket, "o", object] => {
            at(Storage, &|| get(&|| storage::json_api(st, req, bucket, Some(object))))
        }
        ["download", "storage", "v1", "b", bucket, "o", object] => {
            at(Storage, &|| get(&|| storage::download(st, req, bucket, object)))
        }
        ["common", "discovery", "instance"] => at(Azure, &|| get(&|| azure::instance_discovery(st, req))),
        [tenant, "oauth2", "v2.0", "token"] => at(Azure, &|| post(&|| azure::token(st, req, tenant, true))),
        [tenant, "oauth2", "token"] => at(Azure, &|| post(&|| azure::token(st, req, tenant, false))),
        [tenant, "v2.0", ".well-known", "openid-configuration"] => {
            at(Azure, &|| get(&|| azure::discovery(st, req, tenant, true)))
        }
        [tenant, ".well-known", "openid-configuration"] => {
            at(Azure, &|| get(&|| azure::discovery(st, req, tenant, false)))
        }
        [tenant, "discovery", "v2.0", "keys"] | [tenant, "discovery", "keys"] => {
            at(Azure, &|| get(&|| azure::jwks(st, tenant)))
        }
        _ => errors::not_found(&req.path),
    }
}

/// `POST /_emulator/rotate/{kubernetes|github}/{name}[?retire=true]` → `{"kid", "kids"}`.
fn rotate_keys(st: &State, req: &Req, kind: &str, name: &str) -> Response {
    let Some(keys) = super::bearer_config::BearerKind::parse(kind).and_then(|k| st.issuer_keys.get(k, name)) else {
        return errors::not_found(&req.path);
    };
    let retire = crate::http::parse_form(req.query.as_bytes()).iter().any(|(k, v)| k == "retire" && v == "true");
    match keys.rotate(retire) {
        Ok(kid) => errors::json(200, &json!({"kid": kid, "kids": keys.kids()}), "rotated"),
        Err(_) => errors::google(500, "INTERNAL", "Generating the new key failed.", None),
    }
}
