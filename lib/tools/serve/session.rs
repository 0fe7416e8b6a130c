//! One wif-serve connection: the TLS handshake, then requests until close, time-out or
//! shutdown. A client with a certificate is verified in the handshake; one without (only
//! with `--bearer-issuers`) has each request's bearer token verified (`bearer_session`).

use super::allow::{Identity, Principal};
use super::bearer_session::{self, BearerClient, Denied};
use super::broker::Issued;
use super::conns::{Conn, Phase};
use super::handshake::{self, HandshakeFailure, Owed, Verified};
use super::ledger;
use super::log::{self, Event};
use super::metrics::Refusal;
use super::routes::{respond, wire};
use super::shared::{ConnGuard, Shared};
use super::shed;
use super::tls;
use crate::server::http::{self, Incoming};
use crate::server::{Armed, Response};
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a client refused after its handshake (not allowed, over its limit) has to send
/// its first request, which is answered with the refusal before the connection is closed.
const REFUSED_GRACE: Duration = Duration::from_secs(1);

/// The largest last answer queued whole with the close_notify behind it, well within what
/// rustls buffers before it is written.
const ONE_WRITE: usize = 16 * 1024;

/// One connection: the handshake, then requests until close, time-out or shutdown.
pub(super) fn serve_connection(tcp: TcpStream, built: Arc<tls::Built>, cx: Arc<Conn>, guard: ConnGuard, arrival: Owed) {
    let shared = guard.shared.clone();
    let _ = tcp.set_nodelay(true);
    if let Some(waiting) = shed::overloaded(&shared) {
        drop(arrival);
        return shed::shed(&tcp, &built, &cx, &shared, waiting);
    }
    let Some((conn, sock)) = handshake::run(built.config.clone(), &tcp, &cx, &shared, Some(arrival)) else {
        return;
    };
    // Closed to make room (or by the shutdown) just as the handshake finished.
    if !cx.enter(Phase::Handshake, Phase::Fresh) {
        return;
    }
    // The verifier lets a connection through without a certificate only for bearer clients.
    let auth = match Verified::new(&conn, built.generation) {
        Some(verified) => Auth::Certificate(verified),
        None if shared.bearer.is_some() => Auth::Bearer(BearerClient::default()),
        None => return HandshakeFailure::NoCertificate.record(&shared.metrics, &cx.peer),
    };
    drop(built);
    let tls_version = handshake::tls_version(&conn);
    let mut session = Session { conn, sock, auth, tls_version, cx };
    session.serve(&shared, guard.id);
    // The close_notify can wait on a client that reads nothing (until the deadline, up to
    // --idle-timeout): only once it is written is there nothing left to wait for, and the
    // next connection may be handed to this thread.
    session.close();
    crate::server::workers::finishing();
    drop(guard);
}

/// How a connection's client is known.
enum Auth {
    /// By the certificate verified in the handshake.
    Certificate(Verified),
    /// By the bearer token of each request.
    Bearer(BearerClient),
}

impl Auth {
    /// A certificate client's identity, known from the handshake on (a reference count:
    /// each request's client shares it, never copies it).
    fn certificate(&self) -> Option<Arc<Identity>> {
        match self {
            Auth::Certificate(verified) => Some(verified.id.clone()),
            Auth::Bearer(_) => None,
        }
    }
}

/// A connection after its handshake.
struct Session<'t> {
    conn: rustls::ServerConnection,
    sock: Armed<'t>,
    auth: Auth,
    tls_version: &'static str,
    cx: Arc<Conn>,
}

/// Whom a request line is about: the client (once known), whether it is a bearer client,
/// and the code of a bearer client's refusal.
#[derive(Clone, Copy)]
struct Who<'a> {
    client: Option<&'a Principal>,
    bearer: bool,
    code: Option<&'static str>,
}

impl<'t> Session<'t> {
    /// Refuses a certificate client that is not allowed or over its limit, else answers
    /// the client's requests until it closes, times out, is refused or the server stops.
    fn serve(&mut self, shared: &Shared, id: u64) {
        let limits = shared.limits;
        if let Some(cert) = self.auth.certificate() {
            if !shared.allow.allows(&Principal::Certificate(cert.clone())) {
                // Counted once per connection, and never kept open: the slot goes back at once.
                let refusal = shared.not_allowed("client certificate");
                return self.refuse(shared, refusal, Refusal::NotAllowed.label());
            }
            let refused =
                || Event::new("connection_refused").peer(&self.cx.peer).client(&cert.subject, &cert.fingerprint);
            if let Err(refusal) = shared.join_client(id, &cert.fingerprint, "client certificate", refused) {
                return self.refuse(shared, refusal, "too_many_connections");
            }
        }

        let age_limit = self.cx.born + limits.max_connection_age;
        let bearer = matches!(self.auth, Auth::Bearer(_));
        let mut buf = Vec::new();
        // The phase this thread last put the connection in (it may since have been closed).
        let mut phase = Phase::Fresh;
        loop {
            self.sock.deadline = (Instant::now() + limits.idle_timeout).min(age_limit);
            if buf.is_empty() {
                // Between requests: wait for the first bytes of the next one.
                if phase == Phase::Busy {
                    if !self.cx.enter(Phase::Busy, Phase::Idle) {
                        return;
                    }
                    phase = Phase::Idle;
                }
                if http::await_request(&mut self.stream(), &mut buf).is_some() {
                    return;
                }
            }
            // From its first byte, a request head has --header-timeout to arrive whole. A
            // request pipelined behind an answer belongs to the same busy span: a client that
            // sends many at once and reads the answers slowly gives way after the grace.
            if phase == Phase::Busy {
                if self.cx.phase() != Phase::Busy {
                    return;
                }
            } else {
                if !self.cx.enter(phase, Phase::Reading) {
                    return;
                }
                phase = Phase::Reading;
            }
            let started = Instant::now();
            self.sock.deadline = self.sock.deadline.min(started + limits.header_timeout);
            let (req, answer, keep_alive) = match http::read_request(&mut self.stream(), &mut buf) {
                Incoming::Request(req) => {
                    if phase == Phase::Reading {
                        if !self.cx.enter(Phase::Reading, Phase::Busy) {
                            return;
                        }
                        phase = Phase::Busy;
                    }
                    // Before anything is answered: is this client still one to serve?
                    let client = match self.admit(shared, id, &req) {
                        Ok(client) => client,
                        Err(None) => return,
                        Err(Some(denied)) => {
                            let who = Who { client: denied.client.as_ref(), bearer: true, code: Some(denied.code) };
                            self.answer(shared, Some(&req), &denied.resp, false, started, who);
                            let _ = self.cx.enter(Phase::Busy, Phase::Closing);
                            return;
                        }
                    };
                    let answer = respond(&shared.broker, &client, &req);
                    if answer.unmatched {
                        shared.metrics.refused(Refusal::NoPolicyMatch);
                    }
                    // A bearer client refused (no rule matches it) is not kept.
                    let refused_bearer = bearer && answer.unmatched;
                    let keep_alive = !refused_bearer
                        && req.keep_alive
                        && !req.has_body
                        && !shared.shutting_down.load(Ordering::SeqCst)
                        && Instant::now() < age_limit;
                    (Some((req, Some(client))), answer, keep_alive)
                }
                Incoming::Invalid(r) => {
                    (None, Response::error(r.status, "bad_request", r.reason).because(r.reason).into(), false)
                }
                Incoming::TimedOut => {
                    // Slow-loris: a request begun and not finished in time.
                    shared.metrics.request_timed_out();
                    Event::new("request_timed_out")
                        .peer(&self.cx.peer)
                        .reason(format!(
                            "the request was not complete within --header-timeout ({} s) of its first byte, or --idle-timeout ({} s); closing",
                            limits.header_timeout.as_secs_f64(),
                            limits.idle_timeout.as_secs_f64()
                        ))
                        .code("timeout")
                        .emit();
                    return;
                }
                Incoming::Closed | Incoming::Broken(_) => return,
            };
            let (req, client) = req.map_or((None, None), |(r, c)| (Some(r), c));
            // A certificate client is known even when its request is not.
            let client = client.or_else(|| self.auth.certificate().map(Principal::Certificate));
            let code = (bearer && answer.unmatched).then_some(Refusal::NoPolicyMatch.label());
            let who = Who { client: client.as_ref(), bearer, code };
            let sent = self.answer(shared, req.as_ref(), &answer.resp, keep_alive, started, who);
            if let (true, Some(issued), Some("GET"), Some(client)) =
                (sent, &answer.issued, req.as_ref().map(|r| r.method.as_str()), &client)
            {
                self.record(shared, issued, client);
            }
            self.cx.mark_served();
            if !sent || !keep_alive || shared.shutting_down.load(Ordering::SeqCst) {
                // Its last answer is written (or cannot be): from here on the connection is
                // only being torn down, and no longer holds one of its client's slots.
                let _ = self.cx.enter(Phase::Busy, Phase::Closing);
                return;
            }
        }
    }

    /// Whether the request may be routed, and as whom: a certificate client's certificate
    /// checked again (`Err(None)`: cut off without an answer), a bearer client's token
    /// verified (`Err(Some)`: the refusal to answer before closing).
    fn admit(&mut self, shared: &Shared, id: u64, req: &http::Request) -> Result<Principal, Option<Box<Denied>>> {
        match &mut self.auth {
            Auth::Certificate(verified) => match verified.recheck(&shared.tls, &self.conn) {
                Ok(()) => Ok(Principal::Certificate(verified.id.clone())),
                Err((reason, refusal)) => {
                    shared.metrics.refused(refusal);
                    Event::new("connection_closed")
                        .peer(&self.cx.peer)
                        .client(&verified.id.subject, &verified.id.fingerprint)
                        .reason(reason)
                        .code(refusal.label())
                        .emit();
                    Err(None)
                }
            },
            Auth::Bearer(client) => bearer_session::admit(shared, client, id, &self.cx.peer, req).map_err(Some),
        }
    }

    fn stream(&mut self) -> rustls::Stream<'_, rustls::ServerConnection, Armed<'t>> {
        rustls::Stream::new(&mut self.conn, &mut self.sock)
    }

    /// Writes `resp` and logs the request line (about `who`); false if it could not be sent.
    fn answer(
        &mut self,
        shared: &Shared,
        req: Option<&http::Request>,
        resp: &Response,
        keep_alive: bool,
        started: Instant,
        who: Who<'_>,
    ) -> bool {
        let head_only = req.is_some_and(|r| r.method == "HEAD");
        let bytes = wire(resp, head_only, keep_alive);
        self.sock.deadline = Instant::now() + shared.limits.idle_timeout;
        let sent = if keep_alive {
            self.send(&bytes)
        } else {
            let last = self.send_last(&bytes);
            // Only the log line is left: a client connecting again at once gets this thread.
            crate::server::workers::finishing();
            last
        }
        .is_ok();
        let body_bytes = if head_only || !sent { 0 } else { resp.body.len() };
        shared.metrics.request(req.map(|r| r.path.as_str()), resp.status);
        let certificate = match who.client {
            Some(Principal::Certificate(id)) => Some(id),
            _ => None,
        };
        let bearer = match who.client {
            Some(Principal::Bearer(b)) => Some(bearer_session::log_fields(b)),
            _ => None,
        };
        log::emit(&log::RequestLine {
            event: "request",
            time: log::now(),
            peer: &self.cx.peer,
            subject: certificate.map(|id| id.subject.as_str()),
            fingerprint: certificate.map(|id| id.fingerprint.as_str()),
            auth: who.bearer.then_some("bearer"),
            bearer,
            tls: self.tls_version,
            method: req.map_or("-", |r| r.method.as_str()),
            path: req.map_or("-", |r| r.path.as_str()),
            status: resp.status,
            bytes: body_bytes,
            duration_ms: (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            reason: resp.reason.as_deref(),
            code: who.code,
        });
        sent
    }

    /// One line in the issuance ledger for a credential handed out to `client`.
    fn record(&self, shared: &Shared, issued: &Issued, client: &Principal) {
        shared.broker.ledger.record(&ledger::Line {
            time: log::now(),
            event: "credential_issued",
            peer: &self.cx.peer,
            client: ledger::Client::of(client),
            rule: issued.rule.as_deref(),
            token_source: &issued.source,
            source_sha256: &issued.source_sha256,
            issued_sha256: issued.credential.sha256(),
            boundary_sha256: issued.boundary.as_deref(),
            expires_at: issued.credential.expires_at_text(),
            via: issued.via.label(),
        });
    }

    /// Refuses a certificate client right after its handshake: its first request, if it
    /// comes within [`REFUSED_GRACE`], is answered with `refusal`; then the connection is
    /// closed. Until then it is the first to give way when a slot is needed.
    fn refuse(&mut self, shared: &Shared, refusal: Response, code: &'static str) {
        let Some(id) = self.auth.certificate() else { return };
        if !self.cx.enter(Phase::Fresh, Phase::Closing) {
            return;
        }
        self.sock.deadline = Instant::now() + REFUSED_GRACE;
        let started = Instant::now();
        let mut buf = Vec::new();
        match http::read_request(&mut self.stream(), &mut buf) {
            Incoming::Request(req) => {
                let principal = Principal::Certificate(id.clone());
                let who = Who { client: Some(&principal), bearer: false, code: None };
                self.answer(shared, Some(&req), &refusal, false, started, who);
            }
            _ => Event::new("connection_closed")
                .peer(&self.cx.peer)
                .client(&id.subject, &id.fingerprint)
                .reason(format!("{}; closed after the handshake", refusal.reason.as_deref().unwrap_or("refused")))
                .code(code)
                .emit(),
        }
    }

    /// Writes `bytes` to the client.
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut stream = self.stream();
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// Writes `bytes`, the connection's last answer, and the close_notify after it in one
    /// system call (a large answer goes out first, on its own).
    fn send_last(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.len() > ONE_WRITE {
            self.send(bytes)?;
        } else {
            self.conn.writer().write_all(bytes)?;
        }
        handshake::close_notify(&mut self.conn, &mut self.sock)
    }

    /// Says goodbye properly (best effort).
    fn close(&mut self) {
        let _ = handshake::close_notify(&mut self.conn, &mut self.sock);
    }
}
