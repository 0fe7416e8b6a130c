//! The metadata server's answers: the screen that refuses proxies, foreign hosts and web
//! pages, the tree's values and listings, and the token.

use super::identity::printable;
use super::state::State;
use super::tree::{to_json, Node};
use crate::server::{Framing, Response};
use serde::Serialize;
use std::net::IpAddr;

/// The request headers a client sent, as (name, value).
pub type Headers = Vec<(String, String)>;

/// `Content-Type` of values and listings.
pub const TEXT: &str = "application/text";
/// `Content-Type` of the token and recursive listings.
pub const JSON: &str = "application/json";
/// `Content-Type` of errors.
pub const HTML: &str = "text/html; charset=UTF-8";

/// The headers of every answer, as the real metadata server sends them; the connection
/// closes after each answer.
const FRAMING: Framing<'static> = Framing {
    first: &[("Metadata-Flavor", "Google")],
    standard: &[
        ("Cache-Control", "no-store"),
        ("X-XSS-Protection", "0"),
        ("X-Frame-Options", "SAMEORIGIN"),
        ("Server", "wif-get metadata server"),
        ("Connection", "close"),
    ],
    last: &[],
};

/// The whole HTTP/1.1 answer; `head_only` for HEAD. Headers go through
/// `core::wire::push_header`, which never writes one whose value would split the head.
pub fn wire(resp: &Response, head_only: bool) -> Vec<u8> {
    resp.encode(&FRAMING, head_only).bytes
}

fn text(body: String) -> Response {
    Response::new(200, TEXT, body.into_bytes())
}

fn json(v: &impl Serialize) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => Response::new(200, JSON, body),
        Err(e) => error(500, &format!("encoding the answer failed: {e}")),
    }
}

/// An error answer: `why` as the page.
pub fn error(status: u16, why: &str) -> Response {
    Response::new(status, HTML, format!("{why}\n").into_bytes())
}

/// The metadata server's token answer.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    expires_in: i64,
    token_type: &'static str,
}

/// Answers one request. `headers` are (name, value) pairs; `now` is Unix seconds.
pub fn answer(
    state: &State,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    now: i64,
) -> Response {
    let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim());
    if let Err((reply, why)) = screen(headers, state.port) {
        if reply.status == 403 {
            state.log_refusal(method, path, &why, now);
        }
        return reply;
    }
    if !matches!(method, "GET" | "HEAD" | "POST") {
        return error(405, "Method Not Allowed");
    }
    if path == "/" {
        return text("computeMetadata/\n".into());
    }
    if header("metadata-flavor") != Some("Google") {
        return error(403, "Missing required header \"Metadata-Flavor\": \"Google\"");
    }
    let query = crate::http::parse_form(query.as_bytes());
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let Some(rest) = path.strip_prefix("/computeMetadata/").or_else(|| (path == "/computeMetadata").then_some(""))
    else {
        return not_found(path);
    };
    let mut node = &state.tree;
    for seg in rest.split('/').filter(|s| !s.is_empty()) {
        let seg = crate::http::percent_decode(seg, false);
        let Node::Dir(children) = node else { return not_found(path) };
        match children.iter().find(|c| c.name == seg) {
            Some(c) => node = &c.node,
            None => return not_found(path),
        }
    }
    if method == "POST" && !matches!(node, Node::Token) {
        return error(405, "Method Not Allowed");
    }
    let alt_json = param("alt") == Some("json");
    match node {
        Node::Token => token(state, param("scopes"), now),
        Node::Dir(_) if param("recursive").is_some_and(|r| r.eq_ignore_ascii_case("true")) || alt_json => {
            json(&to_json(node))
        }
        Node::Dir(children) => text(
            children
                .iter()
                .map(|c| format!("{}{}\n", c.name, if matches!(c.node, Node::Dir(_)) { "/" } else { "" }))
                .collect(),
        ),
        leaf if alt_json => json(&to_json(leaf)),
        Node::Text(t) => text(t.clone()),
        Node::Number(n) => text(n.to_string()),
        Node::List(l) => text(l.iter().map(|x| format!("{x}\n")).collect()),
    }
}

fn not_found(path: &str) -> Response {
    error(404, &format!("Not Found: {} is not served by wif-get --metadata-server", printable(path, 200)))
}

/// Refuses, before routing, what may not come from a client library on this host: a proxied
/// request, a request for another host (a web page that rebound its name to loopback), and
/// a request a browser made for a page. The answer, and why (for the log) when it is 403.
fn screen(headers: &[(String, String)], port: u16) -> std::result::Result<(), (Response, String)> {
    let all = |name: &'static str| {
        headers.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()).collect::<Vec<_>>()
    };
    let forbidden = |body: &str, why: String| Err((error(403, &format!("Forbidden: {body}")), why));
    for proxied in ["X-Forwarded-For", "Forwarded"] {
        if let Some(via) = all(proxied).first() {
            return forbidden(
                &format!("requests through a proxy ({proxied}) are refused"),
                format!(
                    "it came through a proxy ({proxied}: {:?}); set NO_PROXY=127.0.0.1,localhost",
                    printable(via, 100)
                ),
            );
        }
    }
    match all("host")[..] {
        [host] if is_own_host(host, port) => {}
        [host] => {
            return forbidden(
                &format!("Host {:?} is not this metadata server", printable(host, 100)),
                format!(
                    "Host {:?} is not a name of this server (a web page's name rebound to loopback?); clients use 127.0.0.1:{port}",
                    printable(host, 100)
                ),
            )
        }
        [] => return Err((error(400, "Bad Request: no Host header"), String::new())),
        _ => return Err((error(400, "Bad Request: more than one Host header"), String::new())),
    }
    if let Some(origin) = all("origin").first() {
        return forbidden(
            "requests from web pages (Origin) are refused",
            format!("a web page sent it (Origin: {:?})", printable(origin, 100)),
        );
    }
    if let Some(site) = all("sec-fetch-site").into_iter().find(|v| !v.eq_ignore_ascii_case("none")) {
        return forbidden(
            "requests from web pages (Sec-Fetch-Site) are refused",
            format!("a web page sent it (Sec-Fetch-Site: {:?})", printable(site, 100)),
        );
    }
    Ok(())
}

/// Whether `host`, a `Host` header, names this server: a loopback address (127.0.0.0/8,
/// `[::1]`), `localhost`, or `metadata.google.internal` (the Compute Engine metadata
/// server's name, for a hosts-file entry and a port-forward from 80), with the port we listen
/// on or none. Client libraries send the `GCE_METADATA_HOST` they were given,
/// `127.0.0.1:PORT`. DNS rebinding needs a name whose DNS the attacker controls, which is
/// what a page's requests carry as their Host; short names such as `metadata`, which a
/// search domain, LLMNR or a DHCP-registered name can make resolve to a host of the
/// attacker's, and addresses outside loopback are not accepted. Split by hand, not by
/// `http::uri::Authority`: that parser takes userinfo (`a@localhost`), a `+8989` port, bytes
/// after `]` and a port past 65535 (as no port), none of which a Host header may carry.
pub(super) fn is_own_host(host: &str, port: u16) -> bool {
    let (name, given) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, "")) => (ip, None),
            Some((ip, after)) => match after.strip_prefix(':') {
                Some(p) => (ip, Some(p)),
                None => return false,
            },
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, p)) => (name, Some(p)),
            None => (host, None),
        },
    };
    if given.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>() != Ok(port)) {
        return false;
    }
    let bracketed = host.starts_with('[');
    match name.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) if bracketed => ip.to_canonical().is_loopback(),
        Ok(IpAddr::V4(ip)) if !bracketed => ip.is_loopback(),
        Ok(_) => false,
        Err(_) if bracketed => false,
        Err(_) => {
            let name = name.to_ascii_lowercase();
            let name = name.strip_suffix('.').unwrap_or(&name);
            matches!(name, "localhost" | "metadata.google.internal")
        }
    }
}

/// The token answer; requested scopes are noted, never minted.
fn token(state: &State, scopes: Option<&str>, now: i64) -> Response {
    if let Some(asked) = scopes {
        let outside: Vec<&str> = asked
            .split([',', ' '])
            .filter(|x| !x.is_empty() && !state.identity.scopes.iter().any(|s| s == x))
            .collect();
        if !outside.is_empty() {
            let key = outside.join(",");
            let first_time =
                state.warned_scopes.lock().map(|mut w| w.len() < 64 && w.insert(key.clone())).unwrap_or(false);
            if first_time {
                crate::core::diag::warn(format!(
                    "metadata server: a client asked for scopes {key}; it gets the token as issued, with {}",
                    state.identity.scopes.join(",")
                ));
            }
        }
    }
    let Ok(current) = state.current.read() else {
        return error(500, "Internal Server Error");
    };
    match current.as_ref() {
        Some(c) if c.expires_at > now => json(&TokenResponse {
            access_token: c.token.expose(),
            expires_in: c.expires_at - now,
            token_type: "Bearer",
        }),
        Some(_) => {
            state.want();
            error(503, "Service Unavailable: the token expired and wif-get could not refresh it yet")
        }
        None => {
            state.want();
            error(503, "Service Unavailable: wif-get has not fetched a token from wif-serve yet")
        }
    }
}
