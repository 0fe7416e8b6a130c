//! `wif-get --metadata-server`: keeps the token fresh from wif-serve and answers on loopback
//! like the Compute Engine metadata server, so unmodified Google client libraries (pointed at
//! it with `GCE_METADATA_HOST`) use it as they would on a VM.
//!
//! Only what client libraries read is served: the detection probe `/`, the service account's
//! token, email, scopes and aliases (by `default` and by email, with `?recursive=true`), the
//! project id and number, and the universe domain. The answers copy the real server's shape:
//! `Metadata-Flavor: Google` on every answer, `application/text` for values and listings,
//! `application/json` for the token and recursive listings, 403 without `Metadata-Flavor:
//! Google` or with `X-Forwarded-For` (a proxied request could come from anywhere). The token
//! route also takes POST (google-auth sends one, with a certificate chain to bind the token
//! to, when it finds an Agent Identity certificate); the body is read and ignored.
//!
//! Web pages are refused: a page can make the browser send `Metadata-Flavor` to 127.0.0.1
//! once it has rebound its own name to it (DNS rebinding), and then reads the answer as
//! same-origin. So the `Host` must name this server (see `is_own_host`; a page's request
//! carries the page's name), and a request with
//! `Origin` or with `Sec-Fetch-Site` other than `none` (headers every browser adds to what a
//! page sends, and no client library does) gets 403. These refusals, and proxied requests,
//! are logged on stderr, one line each, at most REFUSALS_LOGGED a minute.

use super::{self as get, Cli, Plan};
use crate::core::clock;
use crate::core::error::{Error, Kind, Result};
use crate::core::secret::Secret;
use crate::core::settings::{OneOrMany, Settings};
use crate::server::pool::{Pool, Slot};
use crate::server::{http, Deadlined};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

const TOOL: &str = "wif-get";
/// The scopes assumed when none are configured (wif-impersonate's default).
pub const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Refresh margin when --min-ttl is not given.
const DEFAULT_MIN_TTL: Duration = Duration::from_secs(300);
/// Connections served at once (loopback clients are few). At the cap the oldest connection
/// whose request has not fully arrived is closed to make room; when every one is being
/// answered, 503 at once.
const MAX_CONNECTIONS: usize = 128;
/// Time for reading a whole request (not each read: a client trickling a byte at a time
/// would hold its slot for ever), and for writing its answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes a POST body may take (a certificate chain is a few KiB).
const MAX_BODY: u64 = 64 * 1024;
/// The request headers a client sent, as (name, value).
type Headers = Vec<(String, String)>;
/// Longest pause between two refresh attempts after failures.
const MAX_RETRY_DELAY: u64 = 60;
/// Longest sleep of the refresher before it looks at the wall clock again: the monotonic
/// clock stops while the machine is suspended, the wall clock does not.
const SLEEP_SLICE: i64 = 15;
/// Least time between two refresh attempts when clients ask for a token there is none of.
const MIN_WANTED_GAP: i64 = 2;
/// Least time between two planned fetches of a token whose lifetime is assumed: its server
/// has no newer expiry to tell, so fetching sooner would learn nothing new.
const MIN_ASSUMED_REFRESH: i64 = 30;
/// Refused requests logged a minute at most; a page in a loop must not flood the log.
const REFUSALS_LOGGED: u32 = 10;

/// The identity the metadata server describes (from --service-account, --project-id, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The service account's email.
    pub email: String,
    /// The project id, if known.
    pub project_id: Option<String>,
    /// The project number, if known.
    pub project_number: Option<u64>,
    /// The token's scopes.
    pub scopes: Vec<String>,
}

impl Identity {
    /// Reads and checks the metadata settings.
    pub fn from_settings(cli: &Cli, s: &Settings) -> Result<Identity> {
        let email: String = s.require(cli.service_account.clone(), "get_service_account", "--service-account")?;
        let email = email.trim().to_string();
        let (local, domain) = email.split_once('@').unwrap_or(("", ""));
        if local.is_empty() || domain.is_empty() || !plain_value(&email) || email.contains('/') {
            return Err(Error::usage(format!("--service-account {email:?} is not an email address"))
                .hint("give the service account the token belongs to, e.g. app@my-project.iam.gserviceaccount.com"));
        }
        let project_id: Option<String> = s.pick(cli.project_id.clone(), "get_project_id")?;
        if let Some(p) = &project_id {
            if p.is_empty() || !plain_value(p) {
                return Err(Error::usage(format!("--project-id {p:?} is not a project id")));
            }
        }
        let project_number = match s.pick::<String>(cli.project_number.clone(), "get_project_number")? {
            Some(n) => Some(n.trim().parse::<u64>().map_err(|_| {
                Error::usage(format!("--project-number {n:?} is not a number"))
                    .hint("the project number is the numeric id, e.g. 123456789012 (gcloud projects describe ID)")
            })?),
            None => None,
        };
        // A flag or config string is comma-separated; a config list is taken as it is.
        let scopes = match s.pick::<OneOrMany>(cli.scopes.clone().map(OneOrMany::One), "get_scopes")? {
            Some(OneOrMany::One(t)) => t.split([',', ' ']).filter(|x| !x.is_empty()).map(String::from).collect(),
            Some(OneOrMany::Many(l)) => l,
            None => vec![DEFAULT_SCOPE.to_string()],
        };
        if scopes.is_empty() || !scopes.iter().all(|x| plain_value(x)) {
            return Err(Error::usage("--scopes must name at least one scope, comma-separated")
                .hint(format!("e.g. --scopes {DEFAULT_SCOPE}")));
        }
        Ok(Identity { email, project_id, project_number, scopes })
    }
}

/// Printable, no whitespace or control characters: safe in a text answer line.
fn plain_value(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// A client's text for an answer or a log line: control characters dropped, at most `max`
/// characters.
fn printable(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// The token being served and when it expires.
pub struct Current {
    /// The token.
    pub token: Secret,
    /// Its expiry, Unix seconds.
    pub expires_at: i64,
    /// The lifetime assumed, seconds, when the server gave no expiry (see [`refresh_delay`]).
    pub assumed_ttl: Option<i64>,
}

/// What the request handlers share with the refresher.
pub struct State {
    identity: Identity,
    /// The port the server listens on: a `Host` with another port is not for us.
    port: u16,
    /// The metadata tree served, built once from `identity`.
    tree: Node,
    current: RwLock<Option<Current>>,
    warned_scopes: Mutex<HashSet<String>>,
    refusals: Mutex<Refusals>,
    /// Set when a client found no valid token; wakes the refresher.
    wanted: Mutex<bool>,
    wake: Condvar,
}

/// Refused requests logged in the current minute, and those not logged since the last line.
#[derive(Default)]
struct Refusals {
    minute: i64,
    logged: u32,
    unlogged: u64,
}

impl State {
    /// A state with no token yet, for a server listening on `port`.
    pub fn new(identity: Identity, port: u16) -> State {
        State {
            tree: tree(&identity),
            identity,
            port,
            current: RwLock::new(None),
            warned_scopes: Mutex::new(HashSet::new()),
            refusals: Mutex::new(Refusals::default()),
            wanted: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    /// Logs a refused request (one line, REFUSALS_LOGGED a minute at most; the next line
    /// logged counts those that were not).
    fn log_refusal(&self, method: &str, path: &str, why: &str, now: i64) {
        let Ok(mut r) = self.refusals.lock() else { return };
        if r.minute != now.div_euclid(60) {
            r.minute = now.div_euclid(60);
            r.logged = 0;
        }
        if r.logged >= REFUSALS_LOGGED {
            r.unlogged += 1;
            return;
        }
        r.logged += 1;
        let unlogged = std::mem::take(&mut r.unlogged);
        drop(r);
        let more = match unlogged {
            0 => String::new(),
            n => format!(" ({n} more refused since the last line, not logged)"),
        };
        let (method, path) = (printable(method, 20), printable(path, 200));
        crate::core::diag::warn(format!("metadata server: refused {method} {path}: {why}{more}"));
    }

    /// Tells the refresher a client found no valid token.
    fn want(&self) {
        if let Ok(mut w) = self.wanted.lock() {
            *w = true;
            self.wake.notify_all();
        }
    }

    /// Whether a client has found no valid token since the last refresh attempt.
    fn is_wanted(&self) -> bool {
        self.wanted.lock().map(|w| *w).unwrap_or(false)
    }

    /// Forgets the clients' wish: a refresh has just been tried.
    fn clear_wanted(&self) {
        if let Ok(mut w) = self.wanted.lock() {
            *w = false;
        }
    }

    /// Sleeps up to `d`, or less if a client comes to want a token meanwhile.
    fn sleep_unless_wanted(&self, d: Duration) {
        match self.wanted.lock() {
            Ok(w) => drop(self.wake.wait_timeout_while(w, d, |w| !*w)),
            Err(_) => std::thread::sleep(d),
        }
    }

    /// Replaces the token served.
    pub fn set(&self, current: Current) {
        if let Ok(mut c) = self.current.write() {
            *c = Some(current);
        }
    }

    /// The expiry of the token served, if any.
    fn expires_at(&self) -> Option<i64> {
        self.current.read().ok().and_then(|c| c.as_ref().map(|c| c.expires_at))
    }
}

/// One answer: status, content type, body. The body may hold the token, so Debug shows only
/// its length.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Content-Type.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reply({}, {}, <{} bytes>)", self.status, self.content_type, self.body.len())
    }
}

const TEXT: &str = "application/text";
const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=UTF-8";

impl Reply {
    /// The whole HTTP/1.1 answer; the connection closes after it. Headers go through
    /// `http::push_header`, which never writes one whose value would split the head.
    fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, crate::http::reason_phrase(self.status));
        let length = self.body.len().to_string();
        for (name, value) in [
            ("Metadata-Flavor", "Google"),
            ("Content-Type", self.content_type),
            ("Content-Length", length.as_str()),
            ("Cache-Control", "no-store"),
            ("X-XSS-Protection", "0"),
            ("X-Frame-Options", "SAMEORIGIN"),
            ("Server", "wif-get metadata server"),
            ("Connection", "close"),
        ] {
            crate::http::push_header(&mut head, name, value);
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }

    fn text(body: String) -> Reply {
        Reply { status: 200, content_type: TEXT, body: body.into_bytes() }
    }
    fn json(v: &impl Serialize) -> Reply {
        match serde_json::to_vec(v) {
            Ok(body) => Reply { status: 200, content_type: JSON, body },
            Err(e) => Reply::error(500, &format!("encoding the answer failed: {e}")),
        }
    }
    fn error(status: u16, why: &str) -> Reply {
        Reply { status, content_type: HTML, body: format!("{why}\n").into_bytes() }
    }
}

/// The metadata server's token answer.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    expires_in: i64,
    token_type: &'static str,
}

/// A node of the metadata tree.
enum Node {
    Dir(Vec<Entry>),
    Text(String),
    Number(u64),
    List(Vec<String>),
    Token,
}

/// A named child: its path segment and its key in recursive JSON (the real server camelCases).
struct Entry {
    name: String,
    json: String,
    node: Node,
}

fn entry(name: &str, node: Node) -> Entry {
    let mut json = String::new();
    let mut upper = false;
    for c in name.chars() {
        match c {
            '-' => upper = true,
            c if upper => {
                json.extend(c.to_uppercase());
                upper = false;
            }
            c => json.push(c),
        }
    }
    Entry { name: name.to_string(), json, node }
}

/// The tree under `/computeMetadata/`.
fn tree(id: &Identity) -> Node {
    let account = |aliases: Vec<String>| {
        Node::Dir(vec![
            entry("aliases", Node::List(aliases)),
            entry("email", Node::Text(id.email.clone())),
            entry("scopes", Node::List(id.scopes.clone())),
            entry("token", Node::Token),
        ])
    };
    let mut project = Vec::new();
    if let Some(n) = id.project_number {
        project.push(entry("numeric-project-id", Node::Number(n)));
    }
    if let Some(p) = &id.project_id {
        project.push(entry("project-id", Node::Text(p.clone())));
    }
    let accounts = vec![
        entry("default", account(vec!["default".into()])),
        // The email is a path segment but stays as it is in recursive JSON.
        Entry { name: id.email.clone(), json: id.email.clone(), node: account(vec![id.email.clone()]) },
    ];
    Node::Dir(vec![entry(
        "v1",
        Node::Dir(vec![
            entry("instance", Node::Dir(vec![entry("service-accounts", Node::Dir(accounts))])),
            entry("project", Node::Dir(project)),
            entry("universe", Node::Dir(vec![entry("universe-domain", Node::Text("googleapis.com".into()))])),
        ]),
    )])
}

/// Recursive JSON of a node (the token is not part of listings, as on the real server).
fn to_json(node: &Node) -> Option<Value> {
    Some(match node {
        Node::Dir(children) => {
            let mut m = Map::new();
            for c in children {
                if let Some(v) = to_json(&c.node) {
                    m.insert(c.json.clone(), v);
                }
            }
            Value::Object(m)
        }
        Node::Text(t) => Value::String(t.clone()),
        Node::Number(n) => Value::from(*n),
        Node::List(l) => Value::from(l.clone()),
        Node::Token => return None,
    })
}

/// Answers one request. `headers` are (name, value) pairs; `now` is Unix seconds.
pub fn answer(state: &State, method: &str, path: &str, query: &str, headers: &[(String, String)], now: i64) -> Reply {
    let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim());
    if let Err((reply, why)) = screen(headers, state.port) {
        if reply.status == 403 {
            state.log_refusal(method, path, &why, now);
        }
        return reply;
    }
    if !matches!(method, "GET" | "HEAD" | "POST") {
        return Reply::error(405, "Method Not Allowed");
    }
    if path == "/" {
        return Reply::text("computeMetadata/\n".into());
    }
    if header("metadata-flavor") != Some("Google") {
        return Reply::error(403, "Missing required header \"Metadata-Flavor\": \"Google\"");
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
        return Reply::error(405, "Method Not Allowed");
    }
    let alt_json = param("alt") == Some("json");
    match node {
        Node::Token => token(state, param("scopes"), now),
        Node::Dir(_) if param("recursive").is_some_and(|r| r.eq_ignore_ascii_case("true")) || alt_json => {
            Reply::json(&to_json(node))
        }
        Node::Dir(children) => Reply::text(
            children
                .iter()
                .map(|c| format!("{}{}\n", c.name, if matches!(c.node, Node::Dir(_)) { "/" } else { "" }))
                .collect(),
        ),
        leaf if alt_json => Reply::json(&to_json(leaf)),
        Node::Text(t) => Reply::text(t.clone()),
        Node::Number(n) => Reply::text(n.to_string()),
        Node::List(l) => Reply::text(l.iter().map(|x| format!("{x}\n")).collect()),
    }
}

fn not_found(path: &str) -> Reply {
    Reply::error(404, &format!("Not Found: {} is not served by wif-get --metadata-server", printable(path, 200)))
}

/// Refuses, before routing, what may not come from a client library on this host: a proxied
/// request, a request for another host (a web page that rebound its name to loopback), and
/// a request a browser made for a page. The answer, and why (for the log) when it is 403.
fn screen(headers: &[(String, String)], port: u16) -> std::result::Result<(), (Reply, String)> {
    let all = |name: &'static str| {
        headers.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()).collect::<Vec<_>>()
    };
    let forbidden = |body: &str, why: String| Err((Reply::error(403, &format!("Forbidden: {body}")), why));
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
        [] => return Err((Reply::error(400, "Bad Request: no Host header"), String::new())),
        _ => return Err((Reply::error(400, "Bad Request: more than one Host header"), String::new())),
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
fn is_own_host(host: &str, port: u16) -> bool {
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
fn token(state: &State, scopes: Option<&str>, now: i64) -> Reply {
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
        return Reply::error(500, "Internal Server Error");
    };
    match current.as_ref() {
        Some(c) if c.expires_at > now => Reply::json(&TokenResponse {
            access_token: c.token.expose(),
            expires_in: c.expires_at - now,
            token_type: "Bearer",
        }),
        Some(_) => {
            state.want();
            Reply::error(503, "Service Unavailable: the token expired and wif-get could not refresh it yet")
        }
        None => {
            state.want();
            Reply::error(503, "Service Unavailable: wif-get has not fetched a token from wif-serve yet")
        }
    }
}

/// Seconds to wait before the next refresh of a token with `remaining` seconds left: until
/// `min_ttl` or a quarter of it is left, whichever is more; when that is (nearly) now, the
/// server has no newer token yet, so poll it every so often without hammering it.
///
/// A token whose lifetime was assumed (`assumed_ttl`: the server sent no expiry) always
/// comes with the same `remaining`, so a margin as large as its lifetime would poll for
/// ever: the margin is capped at half the lifetime, and fetches are MIN_ASSUMED_REFRESH
/// apart at least (but before the token runs out).
pub fn refresh_delay(remaining: i64, min_ttl: i64, assumed_ttl: Option<i64>) -> u64 {
    let margin = min_ttl.max(remaining / 4);
    if let Some(ttl) = assumed_ttl {
        let until = remaining - margin.min(ttl / 2);
        return until.max(MIN_ASSUMED_REFRESH).min(remaining - 1).max(1) as u64;
    }
    let until = remaining - margin;
    if until >= 5 {
        until as u64
    } else {
        (remaining / 2).clamp(1, 30) as u64
    }
}

/// Seconds to wait after `failures` failed refreshes in a row: 1, 2, 4, … up to a minute.
pub fn retry_delay(failures: u32) -> u64 {
    (1u64 << failures.saturating_sub(1).min(6)).min(MAX_RETRY_DELAY)
}

/// When the next refresh is due, Unix seconds: as `planned`, or, when a client has found no
/// valid token (`wanted`), as soon as MIN_WANTED_GAP has passed since the last attempt.
pub fn refresh_due(planned: i64, last_attempt: i64, wanted: bool) -> i64 {
    if wanted {
        planned.min(last_attempt + MIN_WANTED_GAP)
    } else {
        planned
    }
}

/// How long to sleep at `now` before looking again for a refresh `due` then: `None` when it
/// is due, else at most SLEEP_SLICE, so that a suspend (or a VM pause) that the monotonic
/// sleep did not see is noticed within that time of the wall clock's jump.
pub fn sleep_slice(now: i64, due: i64) -> Option<Duration> {
    (due > now).then(|| Duration::from_secs((due - now).min(SLEEP_SLICE) as u64))
}

/// Binds `addr`, refusing anything but loopback: the token goes to whoever connects.
pub fn bind_loopback(addr: &str) -> Result<TcpListener> {
    let bad = || {
        Error::usage(format!("--metadata-server {addr:?} is not a loopback ADDRESS:PORT"))
            .hint("the metadata server hands the token to anyone who connects, so it listens on loopback only: 127.0.0.1:PORT or [::1]:PORT")
    };
    let addrs: Vec<SocketAddr> = match addr.to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(_) => return Err(bad()),
    };
    if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(bad());
    }
    TcpListener::bind(addrs[0]).map_err(|e| {
        Error::new(Kind::Io, format!("cannot listen on {addr}: {e}")).context("starting the metadata server")
    })
}

/// The first stdout line: where the server listens.
#[derive(Serialize)]
struct Listening<'a> {
    event: &'static str,
    address: String,
    metadata_host: String,
    service_account: &'a str,
}

/// Runs the metadata server until SIGTERM/SIGINT (then `Ok`), or until the first fetch is
/// refused (then that error: a configuration that will not fix itself).
pub(crate) fn run(cli: &Cli, s: &Settings, plan: &Plan, addr: &str) -> Result<()> {
    let identity = Identity::from_settings(cli, s)?;
    if identity.project_number.is_none() {
        // gcloud's detection reads project/numeric-project-id and wants digits there.
        crate::core::diag::warn(
            "metadata server: gcloud and gsutil will not detect this metadata server without --project-number \
             (client libraries will)",
        );
    }
    let min_ttl = plan.min_ttl.unwrap_or(DEFAULT_MIN_TTL).as_secs() as i64;
    let listener = bind_loopback(addr)?;
    let local = listener.local_addr().map_err(|e| Error::new(Kind::Io, e.to_string()))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| Error::new(Kind::Internal, format!("installing the signal handler: {e}")))?;
    }
    let state = Arc::new(State::new(identity, local.port()));
    let pool = Arc::new(Pool::new("metadata-conn", MAX_CONNECTIONS));
    {
        let (state, stop, pool) = (state.clone(), stop.clone(), pool.clone());
        // Say so rather than vanish: clients retry a 503.
        let full = Reply::error(503, "Service Unavailable: too many connections to wif-get's metadata server");
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || {
                let stopped = || stop.load(Ordering::Relaxed);
                pool.serve(&listener, stopped, &full.to_bytes(false), |sock, slot| handle(sock, slot, &state))
            })
            .map_err(|e| Error::new(Kind::Internal, format!("starting the accept thread: {e}")))?;
    }
    let line = Listening {
        event: "listening",
        address: local.to_string(),
        metadata_host: local.to_string(),
        service_account: &state.identity.email,
    };
    let mut text = serde_json::to_string(&line).map_err(|e| Error::new(Kind::Internal, e.to_string()))?;
    text.push('\n');
    crate::cli::write_stdout(text.as_bytes())?;

    // The refresher runs on its own thread so a fetch in progress never delays shutdown.
    let (fatal_tx, fatal_rx) = std::sync::mpsc::channel::<Error>();
    {
        let (cli, s, plan, state) = (cli.clone(), s.clone(), plan.clone(), state.clone());
        std::thread::Builder::new()
            .name("refresh".into())
            .spawn(move || refresh_loop(&cli, &s, &plan, &state, min_ttl, fatal_tx))
            .map_err(|e| Error::new(Kind::Internal, format!("starting the refresh thread: {e}")))?;
    }
    let outcome = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        match fatal_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(e) => break Err(e),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    stop.store(true, Ordering::Relaxed);
    // Wake the blocking accept, then let requests in progress finish (briefly; the accept
    // thread waits for all of them, so it is not joined).
    let _ = TcpStream::connect_timeout(&local, Duration::from_secs(1));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while pool.open() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if outcome.is_ok() {
        eprintln!("{TOOL}: metadata server on {local} stopped");
    }
    outcome
}

/// Reads one request, answers it, and closes the connection.
fn handle(sock: &TcpStream, slot: &Slot, state: &State) {
    let _ = sock.set_nodelay(true);
    // One deadline for the whole exchange: a client trickling bytes cannot hold its slot.
    let mut sock = Deadlined { tcp: sock, deadline: Instant::now() + IO_TIMEOUT };
    let request = read_request(&mut sock);
    // Closed to make room meanwhile: nobody to answer. Until the request is whole the
    // connection may be; from here on it is left to finish.
    if !slot.answering() {
        return;
    }
    let (method, reply) = match request {
        Ok(Some((rq, headers))) => {
            let reply = answer(state, &rq.method, &rq.path, &rq.query, &headers, clock::now_unix());
            (rq.method, reply)
        }
        Ok(None) => return,
        Err(reply) => (String::new(), reply),
    };
    // The answer gets its own time, even to a client whose request ran out of it (408).
    sock.deadline = Instant::now() + IO_TIMEOUT;
    let _ = sock.write_all(&reply.to_bytes(method == "HEAD"));
}

/// Reads one request head (the shared, bounded HTTP/1.1 reader of wif-serve) and, for a
/// POST, its body, which is dropped: `None` if the client went away, the error answer if
/// the request is malformed, too large or too slow.
fn read_request(sock: &mut Deadlined) -> std::result::Result<Option<(http::Request, Headers)>, Reply> {
    let timeout = || Reply::error(408, "Request Timeout");
    let mut buf = Vec::with_capacity(1024);
    let mut headers = Headers::new();
    let mut keep = |name: &str, value: &[u8]| headers.push((name.to_string(), String::from_utf8_lossy(value).into()));
    let rq = match http::read_request_with(sock, &mut buf, &mut keep) {
        http::Incoming::Request(rq) => rq,
        http::Incoming::Invalid(r) => return Err(Reply::error(r.status, r.reason)),
        http::Incoming::TimedOut => return Err(timeout()),
        http::Incoming::Closed | http::Incoming::Broken(_) => return Ok(None),
    };
    if rq.method == "POST" && rq.has_body {
        // Read the body before answering: closing with unread bytes would reset the
        // connection and could lose the answer. Chunked bodies are not expected.
        if rq.content_length == 0 {
            return Err(Reply::error(400, "Bad Request: send the body with Content-Length"));
        }
        if rq.content_length > MAX_BODY {
            return Err(Reply::error(413, "Content Too Large"));
        }
        let mut rest = rq.content_length.saturating_sub(buf.len() as u64);
        let mut chunk = [0u8; 4096];
        while rest > 0 {
            match sock.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => rest = rest.saturating_sub(n as u64),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Err(timeout())
                }
                Err(_) => return Ok(None),
            }
        }
    }
    Ok(Some((rq, headers)))
}

/// Fetches the token now and whenever it runs low; logs one line per refresh or failure.
fn refresh_loop(
    cli: &Cli,
    s: &Settings,
    plan: &Plan,
    state: &State,
    min_ttl: i64,
    fatal: std::sync::mpsc::Sender<Error>,
) {
    let url = plan.url_for_messages().to_string();
    let mut failures = 0u32;
    let mut fetched_once = false;
    loop {
        let attempt = fetch(cli, s, plan);
        let last_attempt = clock::now_unix();
        let wait = match attempt {
            Ok(current) => {
                let now = clock::now_unix();
                let remaining = current.expires_at - now;
                let sha = crate::core::keys::sha256_hex(current.token.expose().as_bytes());
                let wait = refresh_delay(remaining, min_ttl, current.assumed_ttl);
                let expires_at = current.expires_at;
                let assumed = if current.assumed_ttl.is_some() { " assumed" } else { "" };
                // Served before it is announced: whoever reads the line can use it.
                state.set(current);
                eprintln!(
                    "{TOOL}: metadata server: fetched the token from {url} (sha256 {}, expires{assumed} {}, in {remaining} s); next refresh in {wait} s",
                    &sha[..12],
                    clock::rfc3339(expires_at),
                );
                failures = 0;
                fetched_once = true;
                wait
            }
            Err(e) => {
                if !fetched_once && e.kind() != Kind::Unavailable {
                    let _ = fatal.send(e.context("starting the metadata server"));
                    return;
                }
                failures += 1;
                let now = clock::now_unix();
                let serving = match state.expires_at() {
                    Some(exp) if exp > now => {
                        format!("serving the previous token until it expires at {}", clock::rfc3339(exp))
                    }
                    Some(_) => "the previous token has expired: answering 503".to_string(),
                    None => "no token to serve yet: answering 503".to_string(),
                };
                let wait = retry_delay(failures);
                let hint = e.hint_text().map(|h| format!(" (hint: {h})")).unwrap_or_default();
                let retry = crate::core::diag::Retry { attempt: failures, of: None, delay: Duration::from_secs(wait) };
                crate::core::diag::retrying(
                    TOOL,
                    "metadata server",
                    &format!("refreshing the token failed: {e}{hint}; {serving}"),
                    retry,
                );
                wait
            }
        };
        // Whoever found no token before now has been answered by this attempt's outcome.
        state.clear_wanted();
        // Planned by the wall clock, slept in slices: see sleep_slice.
        let planned = last_attempt + wait as i64;
        loop {
            let wanted = state.is_wanted();
            match sleep_slice(clock::now_unix(), refresh_due(planned, last_attempt, wanted)) {
                None => break,
                // Already wanted: waiting on the flag would return at once, so just sleep.
                Some(d) if wanted => std::thread::sleep(d),
                Some(d) => state.sleep_unless_wanted(d),
            }
        }
    }
}

/// One fetch through wif-get's client, which also tells when the token expires (or what
/// lifetime it assumed).
fn fetch(cli: &Cli, s: &Settings, plan: &Plan) -> Result<Current> {
    let (token, section) = get::fetch_and_store(cli, s, plan)?;
    let doing = || format!("fetching {}", plan.url_for_messages());
    let exp = section.expires_at.as_deref().unwrap_or_default();
    let expires_at = clock::parse_rfc3339(exp).map_err(|e| e.context(doing()))?;
    if expires_at <= clock::now_unix() {
        return Err(Error::new(Kind::Unavailable, format!("the server gave a token that expired at {exp}"))
            .context(doing())
            .hint("the server's refresh job is behind; check it (wif-serve answers 503 for expired tokens)"));
    }
    Ok(Current { token, expires_at, assumed_ttl: section.assumed_ttl_seconds.map(|t| t as i64) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let st = State::new(
            Identity {
                email: "app@p.iam.gserviceaccount.com".into(),
                project_id: Some("p".into()),
                project_number: Some(42),
                scopes: vec![DEFAULT_SCOPE.into()],
            },
            PORT,
        );
        st.set(Current { token: Secret::new("ya29.test-token-value"), expires_at: 1_000, assumed_ttl: None });
        st
    }

    fn get(st: &State, path: &str) -> Reply {
        get_at(st, path, 400)
    }

    /// A client library's GET at Unix time `now` (the token expires at 1000).
    fn get_at(st: &State, target: &str, now: i64) -> Reply {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        answer(st, "GET", path, query, &library(), now)
    }

    const PORT: u16 = 8989;

    /// The headers a client library sends with GCE_METADATA_HOST=127.0.0.1:8989.
    fn library() -> Headers {
        vec![("Host".into(), format!("127.0.0.1:{PORT}")), ("Metadata-Flavor".into(), "Google".into())]
    }

    const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

    #[test]
    fn token_and_listings() {
        let st = state();
        let r = get(&st, "/computeMetadata/v1/instance/service-accounts/default/token?scopes=x");
        assert_eq!((r.status, r.content_type), (200, JSON));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["expires_in"], 600);
        assert_eq!(v["token_type"], "Bearer");
        let r = get(&st, "/computeMetadata/v1/instance/service-accounts/app@p.iam.gserviceaccount.com/token");
        assert_eq!(r.status, 200);
        let r = get(&st, "/computeMetadata/v1/instance/service-accounts/default/?recursive=true");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"aliases":["default"],"email":"app@p.iam.gserviceaccount.com","scopes":[DEFAULT_SCOPE]})
        );
        let r = get(&st, "/computeMetadata/v1/project/?recursive=true");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v, serde_json::json!({"numericProjectId": 42, "projectId": "p"}));
        let r = get(&st, "/computeMetadata/v1/instance/service-accounts/");
        assert_eq!(String::from_utf8(r.body).unwrap(), "default/\napp@p.iam.gserviceaccount.com/\n");
        assert_eq!(get(&st, "/computeMetadata/v1/instance/zone").status, 404);
        assert!(format!("{:?}", get(&st, "/computeMetadata/v1/instance/service-accounts/default/token"))
            .starts_with("Reply(200"));
    }

    #[test]
    fn expired_tokens_are_not_served() {
        let st = state();
        assert_eq!(get_at(&st, TOKEN_PATH, 1_000).status, 503);
    }

    #[test]
    fn refresh_timing() {
        // A fresh hour-long token: refreshed when a quarter is left.
        assert_eq!(refresh_delay(3600, 300, None), 2700);
        // Below the margin already: poll, at most every 30 s, never past expiry.
        assert_eq!(refresh_delay(200, 300, None), 30);
        assert_eq!(refresh_delay(4, 300, None), 2);
        assert_eq!(refresh_delay(12, 6, None), 6);
    }

    #[test]
    fn a_token_with_an_assumed_lifetime_is_refetched_after_half_of_it() {
        // The seed's bare token, 5 min assumed: the default --min-ttl (5 min) would make
        // every fetch due at once (a 30 s poll for ever); half its lifetime instead.
        assert_eq!(refresh_delay(300, 300, Some(300)), 150);
        // A longer lifetime keeps the usual margin: a quarter, or --min-ttl if more.
        assert_eq!(refresh_delay(3300, 300, Some(3300)), 2475);
        assert_eq!(refresh_delay(1200, 900, Some(1200)), 600);
        // Never sooner than 30 s apart, and never after the token has run out.
        assert_eq!(refresh_delay(40, 300, Some(40)), 30);
        assert_eq!(refresh_delay(20, 300, Some(20)), 19);
        assert_eq!(refresh_delay(1, 300, Some(1)), 1);
        // A schedule, fetch after fetch: always 150 s apart, never a tight loop.
        let fetches: Vec<u64> = (0..5).map(|_| refresh_delay(300, 300, Some(300))).collect();
        assert!(fetches.iter().all(|&d| d == 150), "{fetches:?}");
        assert_eq!((retry_delay(1), retry_delay(2), retry_delay(3), retry_delay(30)), (1, 2, 4, 60));
    }

    #[test]
    fn refresh_is_due_by_the_wall_clock_in_slices() {
        // Planned 2700 s after the fetch at 1000: slept 15 s at a time, not 2700 in one go.
        let due = refresh_due(3700, 1000, false);
        assert_eq!(due, 3700);
        assert_eq!(sleep_slice(1000, due), Some(Duration::from_secs(15)));
        assert_eq!(sleep_slice(3690, due), Some(Duration::from_secs(10)));
        assert_eq!(sleep_slice(3700, due), None);
        // Resumed from a suspend long past the plan: due at the first look.
        assert_eq!(sleep_slice(9000, due), None);
        // A client found no valid token: due 2 s after the last attempt, never later than planned.
        assert_eq!(refresh_due(3700, 1000, true), 1002);
        assert_eq!(sleep_slice(1001, refresh_due(3700, 1000, true)), Some(Duration::from_secs(1)));
        assert_eq!(refresh_due(1001, 1000, true), 1001);
    }

    #[test]
    fn a_missing_or_expired_token_wakes_the_refresher() {
        let st = state();
        assert!(!st.is_wanted());
        assert_eq!(get(&st, TOKEN_PATH).status, 200);
        assert!(!st.is_wanted());
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| st.sleep_unless_wanted(Duration::from_secs(30)));
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(get_at(&st, TOKEN_PATH, 1_000).status, 503);
        });
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(st.is_wanted());
        st.clear_wanted();
        assert!(!st.is_wanted());
    }

    #[test]
    fn post_only_to_the_token() {
        let st = state();
        let flavor = library();
        let r = answer(&st, "POST", "/computeMetadata/v1/instance/service-accounts/default/token", "", &flavor, 400);
        assert_eq!(r.status, 200);
        assert_eq!(answer(&st, "POST", "/computeMetadata/v1/project/project-id", "", &flavor, 400).status, 405);
        assert_eq!(
            answer(&st, "PUT", "/computeMetadata/v1/instance/service-accounts/default/token", "", &flavor, 400).status,
            405
        );
        let host = [("Host".to_string(), format!("localhost:{PORT}"))];
        assert_eq!(
            answer(&st, "POST", "/computeMetadata/v1/instance/service-accounts/default/token", "", &host, 400).status,
            403
        );
    }

    #[test]
    fn only_this_servers_names_are_accepted_as_the_host() {
        for host in [
            "127.0.0.1:8989",
            "127.0.0.1",
            "127.42.0.7:8989",
            "[::1]:8989",
            "[::1]",
            "[::ffff:127.0.0.1]:8989",
            "localhost:8989",
            "LocalHost",
            "localhost.:8989",
            "metadata.google.internal",
            "metadata.google.internal.:8989",
            "Metadata.Google.Internal:8989",
        ] {
            assert!(is_own_host(host, PORT), "{host}");
        }
        for host in [
            "metadata",
            "metadata:8989",
            "169.254.169.254",
            "169.254.169.254:8989",
            "localhost:+8989",
            "attacker.example",
            "attacker.example:8989",
            "localhost.attacker.example:8989",
            "metadata.google.internal.attacker.example",
            "127.0.0.1.nip.io:8989",
            "127.0.0.1:8990",
            "127.0.0.1:",
            "127.0.0.1:08989x",
            "localhost:80",
            "[::1]:8990",
            "[::1]x",
            "[::1",
            "user@localhost:8989",
            "localhost:98989",
            "::1",
            "[127.0.0.1]:8989",
            "[localhost]:8989",
            "10.0.0.1:8989",
            "0.0.0.0:8989",
            "[::]:8989",
            "127.1:8989",
            "",
            "metadata.google.internal..",
        ] {
            assert!(!is_own_host(host, PORT), "{host}");
        }
    }

    #[test]
    fn web_pages_and_foreign_hosts_are_refused_before_routing() {
        let st = state();
        let with = |extra: &[(&str, &str)]| {
            let mut h = library();
            h.retain(|(k, _)| !extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(k) && e.eq_ignore_ascii_case("host")));
            h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            answer(&st, "GET", TOKEN_PATH, "", &h, 400)
        };
        assert_eq!(with(&[]).status, 200);
        assert_eq!(with(&[("Sec-Fetch-Site", "none")]).status, 200);
        for extra in [
            ("Host", "attacker.example:8989"),
            ("Origin", "http://evil.example"),
            ("Origin", "null"),
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Site", "same-site"),
            ("Sec-Fetch-Site", "same-origin"),
            ("X-Forwarded-For", "10.1.2.3"),
        ] {
            let r = with(&[extra]);
            assert_eq!(r.status, 403, "{extra:?}");
            assert!(!String::from_utf8_lossy(&r.body).contains("ya29"), "{extra:?}");
        }
        // The detection probe too: a page learns nothing, not even that we are here.
        let page = [("Host".to_string(), "attacker.example".to_string())];
        assert_eq!(answer(&st, "GET", "/", "", &page, 400).status, 403);
        // HTTP/1.1 requires exactly one Host.
        let flavor = [("Metadata-Flavor".to_string(), "Google".to_string())];
        assert_eq!(answer(&st, "GET", TOKEN_PATH, "", &flavor, 400).status, 400);
        let mut two = library();
        two.push(("host".into(), "attacker.example".into()));
        assert_eq!(answer(&st, "GET", TOKEN_PATH, "", &two, 400).status, 400);
    }

    #[test]
    fn refusals_are_logged_ten_a_minute_at_most() {
        let st = state();
        let counts = || st.refusals.lock().map(|r| (r.logged, r.unlogged)).unwrap();
        for _ in 0..25 {
            st.log_refusal("GET", "/", "test", 60);
        }
        assert_eq!(counts(), (10, 15));
        // The next minute starts over; its first line counts the 15 it did not log.
        st.log_refusal("GET", "/", "test", 120);
        assert_eq!(counts(), (1, 0));
    }
}
