//! Prometheus metrics of wif-serve (text exposition format 0.0.4), served on a separate
//! plain-HTTP listener (`--metrics-listen`, off by default).
//!
//! The TLS side only bumps atomics; the text is built when a scraper asks. Label values
//! come from fixed sets, so the number of series is bounded whatever clients send. Nothing
//! secret is exposed: no token, no client identity, only counts and the token's timestamps.

mod text;

use super::bearer::{Code, IssuerStats};
use super::broker::downscope::Call;
use super::broker::{Broker, Samples};
use super::routes::{wire, HEALTH_PATH, TOKEN_PATH};
use super::token::{State, TokenSource};
use crate::core::clock;
use crate::server::http::{self, Incoming};
use crate::server::pool::{Pool, Slot};
use crate::server::Armed;
use crate::server::Response;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use text::Text;

/// The path scrapers fetch.
pub const METRICS_PATH: &str = "/metrics";
/// Liveness on the metrics listener: 200 whenever the process answers.
pub const LIVE_PATH: &str = "/livez";
/// `Content-Type` of the text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Connections answered at once. Probes and scrapers are a handful; at the cap the oldest
/// connection that has not sent its whole request head is closed to make room (see
/// `pool`), so idle or trickling sockets cannot lock out the kubelet's probes.
const MAX_CONNECTIONS: usize = 64;
/// Time from accept for the request head to arrive: probes and scrapers send it at once.
const HEAD_DEADLINE: Duration = Duration::from_secs(2);
/// Time from accept for the whole exchange, the answer sent included.
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(5);

/// The `route` label: the two served paths, and everything else.
const ROUTES: [&str; 3] = [TOKEN_PATH, HEALTH_PATH, "other"];
/// The statuses wif-serve answers with; anything else is counted under the last, `other`.
const STATUSES: [u16; 10] = [200, 400, 403, 404, 405, 408, 413, 431, 500, 503];

/// Why a client was refused, as the `reason` label of `wif_serve_handshakes_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The client sent no certificate.
    NoCertificate,
    /// The certificate does not chain to `--client-ca` (or its signature does not verify).
    UnknownCa,
    /// The certificate is outside its validity period (expired or not yet valid).
    Expired,
    /// The certificate lacks the clientAuth extended key usage.
    BadEku,
    /// The certificate is revoked by a `--crl`.
    Revoked,
    /// A verified certificate that matches no `--allow` identity (answered 403).
    NotAllowed,
    /// A verified, allowed certificate that no rule of the `--policy` matches (answered 403,
    /// counted per request).
    NoPolicyMatch,
    /// The handshake did not finish within `--handshake-timeout`.
    Timeout,
    /// Anything else: closed mid-handshake, incompatible client, a TLS protocol error.
    Other,
}

impl Refusal {
    /// Every reason, in the order of the counters.
    pub const ALL: [Refusal; 9] = [
        Refusal::NoCertificate,
        Refusal::UnknownCa,
        Refusal::Expired,
        Refusal::BadEku,
        Refusal::Revoked,
        Refusal::NotAllowed,
        Refusal::NoPolicyMatch,
        Refusal::Timeout,
        Refusal::Other,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NoCertificate => "no_certificate",
            Refusal::UnknownCa => "unknown_ca",
            Refusal::Expired => "expired",
            Refusal::BadEku => "bad_eku",
            Refusal::Revoked => "revoked",
            Refusal::NotAllowed => "not_allowed",
            Refusal::NoPolicyMatch => "no_policy_match",
            Refusal::Timeout => "timeout",
            Refusal::Other => "other",
        }
    }
}

/// The counters; every method is a relaxed atomic add.
#[derive(Default)]
pub struct Metrics {
    requests: [[AtomicU64; STATUSES.len() + 1]; ROUTES.len()],
    refused: [AtomicU64; Refusal::ALL.len()],
    tls_reloads: AtomicU64,
    tls_reload_failures: AtomicU64,
    connections: AtomicU64,
    connections_refused: AtomicU64,
    connections_evicted: AtomicU64,
    requests_timed_out: AtomicU64,
    scrapes: AtomicU64,
    connections_shed: AtomicU64,
    /// Handshakes waiting for CPU: accepted, not yet read; or client bytes not yet processed.
    handshakes_waiting: AtomicU64,
    bearer: Option<BearerCounters>,
}

/// The bearer clients' counters (with `--bearer-issuers`): verified requests by issuer,
/// refusals by code. Both label sets are fixed at start.
struct BearerCounters {
    accepted: Vec<(String, AtomicU64)>,
    refused: [AtomicU64; Code::ALL.len()],
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn read(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Metrics {
    /// Counters for a server whose bearer clients come from `issuers` (`None`: bearer off).
    pub fn new(issuers: Option<Vec<String>>) -> Metrics {
        let bearer = issuers.map(|names| BearerCounters {
            accepted: names.into_iter().map(|n| (n, AtomicU64::new(0))).collect(),
            refused: Default::default(),
        });
        Metrics { bearer, ..Metrics::default() }
    }

    /// Counts one bearer request whose token verified, by its issuer's name.
    pub fn bearer_accepted(&self, issuer: &str) {
        if let Some((_, c)) = self.bearer.as_ref().and_then(|b| b.accepted.iter().find(|(n, _)| n == issuer)) {
            bump(c);
        }
    }

    /// Counts one refused bearer request.
    pub fn bearer_refused(&self, code: Code) {
        if let (Some(b), Some(i)) = (&self.bearer, Code::ALL.iter().position(|c| *c == code)) {
            bump(&b.refused[i]);
        }
    }

    /// Counts one answered request.
    pub fn request(&self, path: Option<&str>, status: u16) {
        let route = path.and_then(|p| ROUTES[..2].iter().position(|r| *r == p)).unwrap_or(2);
        let status = STATUSES.iter().position(|s| *s == status).unwrap_or(STATUSES.len());
        bump(&self.requests[route][status]);
    }

    /// Counts one refused client.
    pub fn refused(&self, why: Refusal) {
        bump(&self.refused[why as usize]);
    }

    /// Counts one rebuild of the TLS configuration, or one that failed (not the token's).
    pub fn tls_reload(&self, ok: bool) {
        bump(if ok { &self.tls_reloads } else { &self.tls_reload_failures });
    }

    /// Counts one accepted connection.
    pub fn connection(&self) {
        bump(&self.connections);
    }

    /// Counts one connection refused at the limit with every slot busy.
    pub fn connection_refused(&self) {
        bump(&self.connections_refused);
    }

    /// Counts one connection closed to make room at the limit.
    pub fn connection_evicted(&self) {
        bump(&self.connections_evicted);
    }

    /// Counts one connection shed (`--max-handshake-queue`).
    pub fn connection_shed(&self) {
        bump(&self.connections_shed);
    }

    /// Counts a handshake as waiting for CPU (see `handshake::Owed`).
    pub fn handshake_waits(&self) {
        bump(&self.handshakes_waiting);
    }

    /// Takes off one count of [`Metrics::handshake_waits`].
    pub fn handshake_runs(&self) {
        self.handshakes_waiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// Handshakes waiting for CPU now.
    pub fn handshakes_waiting(&self) -> u64 {
        read(&self.handshakes_waiting)
    }

    /// Counts one request that was not complete within the idle time-out.
    pub fn request_timed_out(&self) {
        bump(&self.requests_timed_out);
    }

    /// The exposition text: the counters, `open` connections, the token's state now, and
    /// with bearer clients, the issuers' keys (`jwks`).
    pub fn render(&self, open: usize, broker: &Broker, started: i64, jwks: &[IssuerStats]) -> String {
        let mut t = Text::default();
        t.family("wif_serve_build_info", "gauge", "Always 1; the version of wif-serve in the label");
        t.sample("wif_serve_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
        t.family("wif_serve_start_time_seconds", "gauge", "When wif-serve started, Unix time");
        t.sample("wif_serve_start_time_seconds", &[], started);

        t.family("wif_serve_requests_total", "counter", "HTTP requests answered over mutual TLS, by route and status");
        for (r, route) in ROUTES.iter().enumerate() {
            for (s, counter) in self.requests[r].iter().enumerate() {
                let n = read(counter);
                let status = STATUSES.get(s).copied();
                // The token route's 200 and 503 are always there, so rate() has a series to
                // start from; other pairs appear once they happen.
                if n > 0 || (r == 0 && matches!(status, Some(200 | 503))) {
                    let label = status.map_or_else(|| "other".to_string(), |c| c.to_string());
                    t.sample("wif_serve_requests_total", &[("route", route), ("status", &label)], n);
                }
            }
        }
        t.family(
            "wif_serve_requests_timed_out_total",
            "counter",
            "Requests begun but not complete within --idle-timeout (closed unanswered)",
        );
        t.sample("wif_serve_requests_timed_out_total", &[], read(&self.requests_timed_out));
        t.family(
            "wif_serve_handshakes_refused_total",
            "counter",
            "Clients refused: in the TLS handshake, or verified but not on the --allow list (not_allowed) or matching no --policy rule (no_policy_match, per request)",
        );
        for why in Refusal::ALL {
            t.sample(
                "wif_serve_handshakes_refused_total",
                &[("reason", why.label())],
                read(&self.refused[why as usize]),
            );
        }

        t.family("wif_serve_connections_total", "counter", "TCP connections accepted");
        t.sample("wif_serve_connections_total", &[], read(&self.connections));
        t.family(
            "wif_serve_connections_refused_total",
            "counter",
            "Connections closed at once because every --max-connections slot was busy with a request",
        );
        t.sample("wif_serve_connections_refused_total", &[], read(&self.connections_refused));
        t.family(
            "wif_serve_connections_evicted_total",
            "counter",
            "Connections closed at --max-connections to make room (in their handshake or idle)",
        );
        t.sample("wif_serve_connections_evicted_total", &[], read(&self.connections_evicted));
        t.family("wif_serve_open_connections", "gauge", "TLS connections open now");
        t.sample("wif_serve_open_connections", &[], open);
        t.family("wif_serve_connections_shed_total", "counter", "Connections answered 503 at --max-handshake-queue");
        t.sample("wif_serve_connections_shed_total", &[], read(&self.connections_shed));
        t.family(
            "wif_serve_handshakes_waiting",
            "gauge",
            "Handshakes accepted and not yet read, or with client bytes in hand not yet processed",
        );
        t.sample("wif_serve_handshakes_waiting", &[], self.handshakes_waiting());

        let (token_reloads, token_failures) = broker.default.as_ref().map_or((0, 0), |t| t.reload_counts());
        t.family("wif_serve_reloads_total", "counter", "Successful re-reads of the token or the TLS files");
        t.sample("wif_serve_reloads_total", &[("what", "token")], token_reloads);
        t.sample("wif_serve_reloads_total", &[("what", "tls")], read(&self.tls_reloads));
        t.family(
            "wif_serve_reload_failures_total",
            "counter",
            "Failed re-reads; the previous TLS configuration stays, an unreadable token is not served",
        );
        t.sample("wif_serve_reload_failures_total", &[("what", "token")], token_failures);
        t.sample("wif_serve_reload_failures_total", &[("what", "tls")], read(&self.tls_reload_failures));

        if let Some(token) = &broker.default {
            self.render_token(&mut t, token);
        }
        render_broker(&mut t, broker);
        if let Some(b) = &self.bearer {
            render_bearer(&mut t, b, jwks);
        }
        t.family("wif_serve_scrapes_total", "counter", "Answers on the metrics listener, this one included");
        t.sample("wif_serve_scrapes_total", &[], read(&self.scrapes));
        t.out
    }

    fn render_token(&self, t: &mut Text, token: &TokenSource) {
        let now = clock::now_unix();
        let (available, expires_at, written_at) = match token.current() {
            State::Ready(l) => (1, Some(l.expires_at), l.written_unix),
            State::Unavailable { expired, .. } => {
                (0, expired.as_ref().map(|l| l.expires_at), expired.and_then(|l| l.written_unix))
            }
        };
        t.family("wif_serve_token_available", "gauge", "1 when a token can be served now, else 0 (503)");
        t.sample("wif_serve_token_available", &[], available);
        if let Some(exp) = expires_at {
            t.family("wif_serve_token_expiry_timestamp_seconds", "gauge", "The token's expiry, Unix time");
            t.sample("wif_serve_token_expiry_timestamp_seconds", &[], exp);
            t.family(
                "wif_serve_token_expires_in_seconds",
                "gauge",
                "Seconds until the token expires (negative once expired)",
            );
            t.sample("wif_serve_token_expires_in_seconds", &[], exp - now);
        }
        if let Some(written) = written_at {
            t.family(
                "wif_serve_token_age_seconds",
                "gauge",
                "Seconds since the token file was written (written_at in its metadata)",
            );
            t.sample("wif_serve_token_age_seconds", &[], now - written);
        }
    }
}

/// The broker's series: per-rule grants, downscoping calls and cache hits, the policy's
/// reloads and size, and each policy token source's availability.
fn render_broker(t: &mut Text, broker: &Broker) {
    let Samples { rules, reloads_ok, reloads_refused, policy_rules } = broker.samples();
    let Some(policy_rules) = policy_rules else { return };
    t.family("wif_serve_policy_rules", "gauge", "Rules of the --policy in force");
    t.sample("wif_serve_policy_rules", &[], policy_rules);
    t.family("wif_serve_policy_reloads_total", "counter", "Reads of the --policy file: taken (ok) or refused");
    t.sample("wif_serve_policy_reloads_total", &[("result", "ok")], reloads_ok);
    t.sample("wif_serve_policy_reloads_total", &[("result", "refused")], reloads_refused);
    t.family(
        "wif_serve_grants_total",
        "counter",
        "Credentials asked for by clients a --policy rule matched, by rule and outcome",
    );
    for (rule, c) in &rules {
        t.sample("wif_serve_grants_total", &[("rule", rule), ("outcome", "issued")], c.issued);
        t.sample("wif_serve_grants_total", &[("rule", rule), ("outcome", "unavailable")], c.unavailable);
    }
    t.family("wif_serve_downscope_calls_total", "counter", "Downscoping calls to STS, by rule and result");
    for (rule, c) in &rules {
        for call in Call::ALL.into_iter().filter(|call| c.calls[*call as usize] > 0) {
            t.sample(
                "wif_serve_downscope_calls_total",
                &[("rule", rule), ("result", call.label())],
                c.calls[call as usize],
            );
        }
    }
    t.family(
        "wif_serve_downscope_cache_hits_total",
        "counter",
        "Downscoped credentials handed out from the cache, by rule",
    );
    for (rule, c) in rules.iter().filter(|(_, c)| c.cache_hits > 0) {
        t.sample("wif_serve_downscope_cache_hits_total", &[("rule", rule)], c.cache_hits);
    }
    t.family("wif_serve_source_available", "gauge", "1 when the --policy token source can be served now, else 0");
    let now = clock::now_unix();
    let mut expiries = Vec::new();
    for (name, state) in broker.source_states() {
        let up = matches!(state, State::Ready(_));
        if let State::Ready(l) = &state {
            expiries.push((name.clone(), l.expires_at - now));
        }
        t.sample("wif_serve_source_available", &[("source", &name)], u8::from(up));
    }
    t.family("wif_serve_source_expires_in_seconds", "gauge", "Seconds until the --policy token source's token expires");
    for (name, secs) in expiries {
        t.sample("wif_serve_source_expires_in_seconds", &[("source", &name)], secs);
    }
}

/// The bearer series: verified and refused requests, and each issuer's keys.
fn render_bearer(t: &mut Text, b: &BearerCounters, jwks: &[IssuerStats]) {
    t.family(
        "wif_serve_bearer_accepted_total",
        "counter",
        "Requests of bearer clients whose token verified, by issuer",
    );
    for (issuer, c) in &b.accepted {
        t.sample("wif_serve_bearer_accepted_total", &[("issuer", issuer)], read(c));
    }
    t.family("wif_serve_bearer_refused_total", "counter", "Requests of bearer clients refused, by reason");
    for (code, c) in Code::ALL.iter().zip(&b.refused) {
        t.sample("wif_serve_bearer_refused_total", &[("reason", code.label())], read(c));
    }
    t.family(
        "wif_serve_jwks_fetches_total",
        "counter",
        "Loads of an issuer's JWKS (URL fetches and file reads), by result",
    );
    for s in jwks {
        t.sample("wif_serve_jwks_fetches_total", &[("issuer", &s.name), ("result", "ok")], s.fetches_ok);
        t.sample("wif_serve_jwks_fetches_total", &[("issuer", &s.name), ("result", "failed")], s.fetches_failed);
    }
    t.family("wif_serve_jwks_keys", "gauge", "Usable keys of the issuer held now");
    for s in jwks {
        t.sample("wif_serve_jwks_keys", &[("issuer", &s.name)], s.keys);
    }
    t.family("wif_serve_jwks_age_seconds", "gauge", "Seconds since the issuer's keys were last loaded (absent: never)");
    for s in jwks {
        if let Some(age) = s.age_secs {
            t.sample("wif_serve_jwks_age_seconds", &[("issuer", &s.name)], age);
        }
    }
}

/// Whether scrapers from other hosts can reach `addr` (it is not a loopback address).
pub fn is_exposed(addr: &SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

/// Answers scrapes and probes on `listener` until the process ends, each connection on a
/// thread of its own (up to MAX_CONNECTIONS) with its own deadlines, so however clients
/// behave they can delay neither each other's answers nor the TLS listener. `render` builds
/// the text.
pub fn serve(
    listener: TcpListener,
    metrics: &Metrics,
    render: impl Fn() -> String + Sync,
    health: impl Fn() -> Response + Sync,
) {
    let pool = Pool::new("metrics-conn", MAX_CONNECTIONS);
    let full = Response::error(503, "busy", "every connection to the metrics listener is being answered; retry");
    let full = wire(&full, false, false);
    pool.serve(&listener, || false, &full, |stream, slot| answer(stream, slot, metrics, &render, &health));
}

fn answer(
    stream: &TcpStream,
    slot: &Slot,
    metrics: &Metrics,
    render: &impl Fn() -> String,
    health: &impl Fn() -> Response,
) {
    let accepted = Instant::now();
    let mut sock = Armed::new(stream, accepted + HEAD_DEADLINE);
    let mut buf = Vec::new();
    let request = match http::read_request(&mut sock, &mut buf) {
        Incoming::Request(req) => Ok(req),
        Incoming::Invalid(r) => Err(r),
        // Gone, or silent past the head deadline (or closed to make room meanwhile).
        Incoming::Closed | Incoming::TimedOut | Incoming::Broken(_) => return,
    };
    if !slot.answering() {
        return;
    }
    let (resp, head_only) = match request {
        Ok(req) => {
            let resp = match (req.path.as_str(), req.method.as_str()) {
                (METRICS_PATH, "GET" | "HEAD") => {
                    bump(&metrics.scrapes);
                    Response::new(200, CONTENT_TYPE, render().into_bytes())
                }
                (HEALTH_PATH, "GET" | "HEAD") => health(),
                (LIVE_PATH, "GET" | "HEAD") => Response::json(200, &serde_json::json!({"status": "alive"})),
                (METRICS_PATH | HEALTH_PATH | LIVE_PATH, _) => {
                    Response::error(405, "method_not_allowed", "use GET").header("Allow", "GET, HEAD")
                }
                _ => Response::error(404, "not_found", "this listener serves /metrics, /healthz and /livez"),
            };
            (resp, req.method == "HEAD")
        }
        Err(r) => (Response::error(r.status, "bad_request", r.reason), false),
    };
    sock.deadline = accepted + EXCHANGE_DEADLINE;
    let _ = sock.write_all(&wire(&resp, head_only, false));
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(token: std::path::PathBuf) -> Broker {
        Broker::new(Some(token), None, None, Vec::new(), super::super::ledger::Ledger::Off).unwrap()
    }

    #[test]
    fn unknown_statuses_and_paths_fall_into_bounded_labels() {
        let m = Metrics::default();
        m.request(Some("/get_wif_token"), 200);
        m.request(Some("/anything/a/client/made/up"), 418);
        m.request(None, 400);
        m.refused(Refusal::NotAllowed);
        let src = std::env::temp_dir().join("wif-metrics-unit-no-such-token");
        let text = m.render(3, &broker(src), 1_700_000_000, &[]);
        assert!(!text.contains("bearer"), "bearer series only with --bearer-issuers: {text}");
        assert!(text.contains("wif_serve_requests_total{route=\"/get_wif_token\",status=\"200\"} 1\n"), "{text}");
        assert!(text.contains("wif_serve_requests_total{route=\"other\",status=\"other\"} 1\n"), "{text}");
        assert!(text.contains("wif_serve_requests_total{route=\"other\",status=\"400\"} 1\n"), "{text}");
        assert!(text.contains("wif_serve_handshakes_refused_total{reason=\"not_allowed\"} 1\n"), "{text}");
        assert!(text.contains("wif_serve_open_connections 3\n") && text.contains("wif_serve_token_available 0\n"));
        assert!(!text.contains("made/up") && !text.contains("418"), "{text}");
    }

    #[test]
    fn bearer_series_have_every_reason_from_start_and_count_by_issuer() {
        let m = Metrics::new(Some(vec!["k8s".into(), "github".into()]));
        m.bearer_accepted("github");
        m.bearer_accepted("not-configured");
        m.bearer_refused(Code::Expired);
        let stats = [IssuerStats { name: "k8s".into(), keys: 2, age_secs: Some(7), fetches_ok: 3, fetches_failed: 1 }];
        let src = std::env::temp_dir().join("wif-metrics-unit-no-such-token");
        let text = m.render(0, &broker(src), 1_700_000_000, &stats);
        for want in [
            "wif_serve_bearer_accepted_total{issuer=\"github\"} 1\n",
            "wif_serve_bearer_accepted_total{issuer=\"k8s\"} 0\n",
            "wif_serve_bearer_refused_total{reason=\"expired\"} 1\n",
            "wif_serve_bearer_refused_total{reason=\"identity_changed\"} 0\n",
            "wif_serve_jwks_fetches_total{issuer=\"k8s\",result=\"failed\"} 1\n",
            "wif_serve_jwks_keys{issuer=\"k8s\"} 2\n",
            "wif_serve_jwks_age_seconds{issuer=\"k8s\"} 7\n",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
        assert_eq!(text.matches("wif_serve_bearer_refused_total{").count(), Code::ALL.len());
        assert!(!text.contains("not-configured"));
    }

    #[test]
    fn an_expired_token_keeps_its_age_and_a_negative_time_to_expiry() {
        let d = std::env::temp_dir().join(format!("wif-metrics-expired-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("t.txt");
        let exp = clock::rfc3339(clock::now_unix() + 600);
        crate::core::files::write_token(&p, &crate::core::secret::Secret::new("x"), "access_token", Some(&exp), "test")
            .unwrap();
        // Make it look written two hours ago and expired an hour ago.
        let meta_path = crate::core::files::meta_path(&p);
        let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
        let now = clock::now_unix();
        meta["expires_at"] = clock::rfc3339(now - 3600).into();
        meta["written_at"] = clock::rfc3339(now - 7200).into();
        std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
        let text = Metrics::default().render(0, &broker(p), now, &[]);
        let value = |name: &str| {
            let line =
                text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {text}"));
            line.rsplit(' ').next().unwrap().parse::<i64>().unwrap()
        };
        assert_eq!(value("wif_serve_token_available"), 0);
        assert!((-3605..=-3600).contains(&value("wif_serve_token_expires_in_seconds")), "{text}");
        assert!((7200..=7205).contains(&value("wif_serve_token_age_seconds")), "{text}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
