//! wif-serve's routes over mutual TLS: the token, `/healthz`, and how answers are framed.

use super::allow::Principal;
use super::broker::{Broker, Grant, Issued, MINT_RETRY_AFTER, SOURCE_RETRY_AFTER};
use super::log::Event;
use super::token::{self, State, TokenSource};
use crate::server::http::Request;
use crate::server::{Framing, Response};

/// The path that serves the token.
pub const TOKEN_PATH: &str = "/get_wif_token";
/// The health route.
pub const HEALTH_PATH: &str = "/healthz";

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET`/`HEAD /get_wif_token`.
    Token,
    /// `GET`/`HEAD /healthz`.
    Health,
    /// A known path with another method: 405.
    MethodNotAllowed,
    /// Anything else: 404.
    NotFound,
}

/// Routes a request.
pub fn route(method: &str, path: &str) -> Route {
    let known = match path {
        TOKEN_PATH => Route::Token,
        HEALTH_PATH => Route::Health,
        _ => return Route::NotFound,
    };
    match method {
        "GET" | "HEAD" => known,
        _ => Route::MethodNotAllowed,
    }
}

/// wif-serve's answer on the wire (both listeners): no-store, nosniff, and whether the
/// connection stays open; `head_only` for HEAD. A header left out because its value would
/// split the head is logged.
pub fn wire(resp: &Response, head_only: bool, keep_alive: bool) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let standard = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"), ("Connection", connection)];
    let encoded = resp.encode(&Framing { standard: &standard, ..Framing::default() }, head_only);
    for name in &encoded.left_out {
        Event::new("header_refused")
            .what(name)
            .reason("its value holds a line break or a control character; the answer went without it")
            .emit();
    }
    encoded.bytes
}

#[derive(serde::Serialize)]
struct Health<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    written_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    written_by: Option<&'a str>,
    /// `metadata`, or `assumed` for a token file without metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_from: Option<&'static str>,
    /// The lifetime assumed (--assume-ttl) when `expires_from` is `assumed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    assumed_ttl_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// The answer to one request, with the credential it hands out (for the ledger) and whether
/// the client was refused for matching no rule of the policy.
pub struct Answer {
    /// What is sent.
    pub resp: Response,
    /// The credential in it, for a token answered 200.
    pub issued: Option<Issued>,
    /// No rule of the policy matched the client.
    pub unmatched: bool,
}

impl From<Response> for Answer {
    fn from(resp: Response) -> Answer {
        Answer { resp, issued: None, unmatched: false }
    }
}

/// The answer to one well-formed request from a verified, allowed client.
pub fn respond(broker: &Broker, client: &Principal, req: &Request) -> Answer {
    let route = route(&req.method, &req.path);
    if req.has_body && matches!(route, Route::Token | Route::Health) {
        return Response::error(413, "body_not_accepted", "requests to this server carry no body")
            .because("request with a body")
            .into();
    }
    match route {
        Route::NotFound => {
            Response::error(404, "not_found", "the token is at /get_wif_token").because("unknown path").into()
        }
        Route::MethodNotAllowed => Response::error(405, "method_not_allowed", "use GET or HEAD")
            .header("Allow", "GET, HEAD")
            .because("method not allowed")
            .into(),
        Route::Token => token_answer(broker.grant(client, req.method == "GET")),
        Route::Health => health(broker).into(),
    }
}

/// The token route's answer to a grant.
fn token_answer(grant: Grant) -> Answer {
    match grant {
        Grant::Issued(issued) => {
            let c = &issued.credential;
            // Room for all four at once: no regrowth.
            let mut headers = Vec::with_capacity(4);
            headers.push(("X-Token-Expires-At", c.expires_at_text().to_string()));
            headers.push(("X-Token-Type", c.token_type().to_string()));
            headers.extend(issued.rule.clone().map(|r| ("X-Wif-Rule", r)));
            headers.extend(issued.boundary.clone().map(|b| ("X-Wif-Access-Boundary", b)));
            let resp = Response {
                status: 200,
                content_type: "text/plain",
                headers,
                body: c.token().as_bytes().to_vec(),
                reason: None,
            };
            Answer { resp, issued: Some(issued), unmatched: false }
        }
        Grant::Unmatched => Answer {
            resp: Response::error(403, "forbidden", "no rule of the server's policy matches this client")
                .because("no rule of the policy matches the client"),
            issued: None,
            unmatched: true,
        },
        // The client is told why without the server's paths; the log has them.
        Grant::SourceUnavailable { reason, detail } => Response::error(503, "token_unavailable", &reason)
            .header("Retry-After", SOURCE_RETRY_AFTER)
            .because(detail)
            .into(),
        Grant::MintFailed { detail, .. } => Response::error(
            503,
            "credential_unavailable",
            "the credential for this client cannot be issued right now; retry later",
        )
        .header("Retry-After", MINT_RETRY_AFTER)
        .because(detail)
        .into(),
    }
}

/// The health answer: 200 with the token's expiry when a token can be served, else 503 with
/// why. Served at /healthz over mutual TLS and on the metrics listener (plain HTTP, for
/// kubelet probes and load-balancer health checks). Never the token.
pub fn health(broker: &Broker) -> Response {
    match (&broker.default, broker.has_policy()) {
        (Some(token), false) => token_health(token),
        _ => policy_health(broker),
    }
}

/// One token source in the health answer of a server with a policy.
#[derive(serde::Serialize)]
struct SourceHealth {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// With a policy: 200 when every token source it uses can be served, else 503; each source
/// by name (never its path, never a token).
fn policy_health(broker: &Broker) -> Response {
    let now = crate::core::clock::now_unix();
    let mut tokens = std::collections::BTreeMap::new();
    let mut down = Vec::new();
    for (name, state) in broker.source_states() {
        let h = match state {
            State::Ready(t) => SourceHealth {
                status: "ok",
                expires_at: Some(t.expires_at_text.clone()),
                expires_in_secs: Some(t.expires_at - now),
                reason: None,
            },
            State::Unavailable { reason, detail, expired } => {
                down.push(format!("{name}: {detail}"));
                SourceHealth {
                    status: "unavailable",
                    expires_at: expired.map(|l| l.expires_at_text.clone()),
                    expires_in_secs: None,
                    reason: Some(reason),
                }
            }
        };
        tokens.insert(name, h);
    }
    let status = if down.is_empty() { "ok" } else { "unavailable" };
    let resp = Response::json(
        if down.is_empty() { 200 } else { 503 },
        &serde_json::json!({"status": status, "tokens": tokens}),
    );
    if down.is_empty() {
        resp
    } else {
        resp.because(down.join("; "))
    }
}

/// Without a policy: the token file's state.
fn token_health(token: &TokenSource) -> Response {
    let now = crate::core::clock::now_unix();
    match token.current() {
        State::Ready(t) => Response::json(
            200,
            &Health {
                status: "ok",
                expires_at: Some(t.expires_at_text.clone()),
                expires_in_secs: Some(t.expires_at - now),
                token_type: Some(&t.token_type),
                written_at: Some(&t.written_at),
                written_by: t.written_by.as_deref(),
                expires_from: Some(t.expiry.label()),
                assumed_ttl_secs: match t.expiry {
                    token::Expiry::Assumed(ttl) => Some(ttl.as_secs()),
                    token::Expiry::Metadata => None,
                },
                reason: None,
            },
        ),
        State::Unavailable { reason, detail, expired, .. } => Response::json(
            503,
            &Health {
                status: "unavailable",
                expires_at: expired.map(|l| l.expires_at_text.clone()),
                expires_in_secs: None,
                token_type: None,
                written_at: None,
                written_by: None,
                expires_from: None,
                assumed_ttl_secs: None,
                reason: Some(reason),
            },
        )
        .because(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("GET", TOKEN_PATH), Route::Token);
        assert_eq!(route("HEAD", TOKEN_PATH), Route::Token);
        assert_eq!(route("GET", HEALTH_PATH), Route::Health);
        assert_eq!(route("POST", TOKEN_PATH), Route::MethodNotAllowed);
        assert_eq!(route("GET", "/get_wif_token/"), Route::NotFound);
        assert_eq!(route("GET", "/"), Route::NotFound);
    }

    #[test]
    fn head_answers_keep_the_length_and_drop_the_body() {
        let r = Response::error(404, "not_found", "no");
        let full = String::from_utf8(wire(&r, false, true)).unwrap();
        let head = String::from_utf8(wire(&r, true, false)).unwrap();
        assert!(full.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(full.contains(&format!("Content-Length: {}\r\n", r.body.len())));
        assert!(head.contains(&format!("Content-Length: {}\r\n", r.body.len())));
        assert!(head.ends_with("Connection: close\r\n\r\n"));
        assert!(full.contains("Cache-Control: no-store\r\n"));
    }
}
