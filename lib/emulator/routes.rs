//! The emulator's routes: which handler answers a method and path, after the injected
//! faults; and the request log line: the emulator's [`server::Handler`].

use super::errors;
use super::server::{self, Req};
use super::state::State;
use super::{azure, iam, issuer, sts};
use crate::server::Response;
use std::time::Duration;

impl State {
    /// Answers one request (after any injected delay or failure).
    pub fn handle(&self, req: &Req) -> Response {
        if self.delay_or_fail() {
            return errors::unavailable();
        }
        self.route(req)
    }

    fn route(&self, req: &Req) -> Response {
        let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        let post =
            |f: &dyn Fn() -> Response| if req.method == "POST" { f() } else { errors::method_not_allowed("POST") };
        let get = |f: &dyn Fn() -> Response| if req.method == "GET" { f() } else { errors::method_not_allowed("GET") };
        match segs.as_slice() {
            ["v1", "token"] => post(&|| sts::token(self, req)),
            ["v1", "projects", _, "serviceAccounts", rest] => post(&|| iam::handle(self, req, rest)),
            ["metadata", "identity", "oauth2", "token"] => get(&|| azure::imds(self, req)),
            ["issuers", name, "v1", "token"] => post(&|| issuer::token(self, req, name)),
            ["issuers", name, ".well-known", "openid-configuration"] => get(&|| issuer::discovery(self, req, name)),
            ["issuers", name, "jwks"] => get(&|| issuer::jwks(self, name)),
            ["common", "discovery", "instance"] => get(&|| azure::instance_discovery(self, req)),
            [tenant, "oauth2", "v2.0", "token"] => post(&|| azure::token(self, req, tenant, true)),
            [tenant, "oauth2", "token"] => post(&|| azure::token(self, req, tenant, false)),
            [tenant, "v2.0", ".well-known", "openid-configuration"] => {
                get(&|| azure::discovery(self, req, tenant, true))
            }
            [tenant, ".well-known", "openid-configuration"] => get(&|| azure::discovery(self, req, tenant, false)),
            [tenant, "discovery", "v2.0", "keys"] | [tenant, "discovery", "keys"] => get(&|| azure::jwks(self, tenant)),
            _ => errors::not_found(&req.path),
        }
    }

    /// Prints the request's log line.
    pub fn log_request(&self, req: &Req, resp: &Response, took: Duration) {
        server::emit(&server::log_line(req, resp, took));
    }
}

/// The listeners hand their requests to the state.
impl server::Handler for State {
    fn handle(&self, req: &Req) -> Response {
        State::handle(self, req)
    }
    fn log_request(&self, req: &Req, resp: &Response, took: Duration) {
        State::log_request(self, req, resp, took)
    }
}
