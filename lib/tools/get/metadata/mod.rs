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

mod answer;
mod identity;
pub mod refresh;
mod state;
#[cfg(test)]
mod tests;
mod tree;

use crate::core::clock;
use crate::core::error::{Error, Kind, Result};
use crate::core::settings::Settings;
use crate::server::http::{self, BodyEnd, Incoming};
use crate::server::pool::{Pool, Slot};
use crate::server::{Armed, Response};
use crate::tools::get::args::Cli;
use crate::tools::get::plan::Plan;
use answer::{answer, error, wire, Headers};
use identity::Identity;
use refresh::{refresh_loop, TOOL};
use serde::Serialize;
use state::State;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    crate::server::bind(&addrs[..1], "--metadata-server", |_, e| {
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
        let full = error(503, "Service Unavailable: too many connections to wif-get's metadata server");
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || {
                let stopped = || stop.load(Ordering::Relaxed);
                pool.serve(&listener, stopped, &wire(&full, false), |sock, slot| handle(sock, slot, &state))
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
        crate::core::diag::info(TOOL, format_args!("metadata server on {local} stopped"));
    }
    outcome
}

/// Reads one request, answers it, and closes the connection.
fn handle(sock: &TcpStream, slot: &Slot, state: &State) {
    let _ = sock.set_nodelay(true);
    // One deadline for the whole exchange: a client trickling bytes cannot hold its slot.
    let mut sock = Armed::new(sock, Instant::now() + IO_TIMEOUT);
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
    let _ = sock.write_all(&wire(&reply, method == "HEAD"));
}

/// Reads one request head (the shared, bounded HTTP/1.1 reader of wif-serve) and, for a
/// POST, its body, which is dropped: `None` if the client went away, the error answer if
/// the request is malformed, too large or too slow.
fn read_request(sock: &mut Armed) -> std::result::Result<Option<(http::Request, Headers)>, Response> {
    let timeout = || error(408, "Request Timeout");
    let mut buf = Vec::with_capacity(1024);
    let mut headers = Headers::new();
    let mut keep = |name: &str, value: &[u8]| headers.push((name.to_string(), String::from_utf8_lossy(value).into()));
    let rq = match http::read_request_with(sock, &mut buf, &mut keep) {
        Incoming::Request(rq) => rq,
        Incoming::Invalid(r) => return Err(error(r.status, r.reason)),
        Incoming::TimedOut => return Err(timeout()),
        Incoming::Closed | Incoming::Broken(_) => return Ok(None),
    };
    if rq.method == "POST" && rq.has_body {
        // Read the body before answering: closing with unread bytes would reset the
        // connection and could lose the answer. Chunked bodies are not expected.
        if rq.content_length == 0 {
            return Err(error(400, "Bad Request: send the body with Content-Length"));
        }
        if rq.content_length > MAX_BODY {
            return Err(error(413, "Content Too Large"));
        }
        match http::read_body(sock, &mut buf, rq.content_length as usize) {
            Ok(_) => {}
            Err(BodyEnd::TimedOut) => return Err(timeout()),
            Err(BodyEnd::Closed) => return Ok(None),
        }
    }
    Ok(Some((rq, headers)))
}
