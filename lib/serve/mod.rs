//! `wif-serve`: publishes the token file over mutual TLS at `GET /get_wif_token`.
//!
//! One thread accepts; each connection gets its own thread (bounded by
//! `--max-connections`), so handshakes run in parallel and a silent client only ever holds
//! its own thread until its time-out, or until a new client needs its slot at the limit. The TLS configuration and the token are shared and
//! re-read when their files change; SIGHUP forces that, SIGTERM/SIGINT stop gracefully.

pub mod allow;
pub mod http;
pub mod log;
pub mod metrics;
pub(crate) mod pool;
pub mod tls;
pub mod token;

use crate::cli::{self, DocArgs};
use crate::error::{Error, Kind, Result};
use crate::manual::Example;
use crate::settings::Settings;
use allow::{AllowList, Identity};
use clap::Parser;
use http::{Incoming, Response, Route};
use log::Event;
use metrics::{Metrics, Refusal};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use token::{State, TokenSource};

const TOOL: &str = "wif-serve";

/// Examples shown in --help and the manual page.
pub const EXAMPLES: &[Example] = &[
    Example {
        about: "Serve the token written by wif-impersonate --token-out to clients of the internal CA",
        cmd: "wif-serve --listen 0.0.0.0:8443 --cert server-chain.crt --key server.key --client-ca ca-chain.crt --token /var/lib/wif/wif_token.txt",
    },
    Example {
        about: "Only for two workloads (by SPIFFE ID and by common name), with a revocation list",
        cmd: "wif-serve --listen 127.0.0.1:8443 --cert server-chain.crt --key server.key --client-ca ca-chain.crt --token wif_token.txt --crl crl.pem --allow uri:spiffe://example.org/batch --allow cn:report-host",
    },
    Example {
        about: "Fetch the token as the seed's Python client does",
        cmd: "python3 -c 'import requests; print(requests.get(\"https://localhost:8443/get_wif_token\", cert=(\"client.crt\", \"client.key\"), verify=\"ca-chain.crt\").text)'",
    },
    Example {
        about: "With Prometheus metrics on loopback, for a local agent or node's scraper",
        cmd: "wif-serve --listen 0.0.0.0:8443 --cert server-chain.crt --key server.key --client-ca ca-chain.crt --token wif_token.txt --metrics-listen 127.0.0.1:9464",
    },
    Example {
        about: "Re-read certificates, CRLs and the token now (they are also picked up when they change)",
        cmd: "kill -HUP $(pidof wif-serve)",
    },
];

/// Command line of wif-serve.
#[derive(Parser, Debug)]
#[command(
    name = "wif-serve",
    version,
    about = "Serve the token file over mutual TLS at GET /get_wif_token",
    long_about = "Serve the token file over HTTPS to clients holding a certificate from the given CA (mutual TLS), \
at GET /get_wif_token: exactly the token's bytes, with Cache-Control: no-store, X-Token-Expires-At and X-Token-Type (from the metadata). \
GET /healthz tells whether a token can be served and until when, never the token.\n\n\
A client certificate is required and verified in the TLS handshake (TLS 1.3 or 1.2): it must chain to \
--client-ca, be within its validity, carry the clientAuth extended key usage and not be revoked by a --crl. \
Clients that fail are refused in the handshake and logged. With --allow, verified clients that match no listed \
identity get 403 on every path.\n\n\
The token is never served when its file or metadata (FILE.meta.json, written by --token-out) is missing, empty \
or expired: 503 with a JSON error instead. The token, certificates, key, client CA and CRLs are re-read when \
their files change (also when a new file is renamed over the old one) and on SIGHUP, without a restart and \
without dropping connections. SIGTERM or SIGINT stop accepting, let requests in progress finish, and exit 0.\n\n\
Stdout is a JSON-lines log: first {\"event\":\"listening\",\"address\":…,\"url\":…}, then one line per request \
(time, peer, client certificate subject and SHA-256 fingerprint, method, path, status, bytes, duration_ms), \
refused handshakes and connections, reloads and shutdown. The token is never logged.\n\n\
With --metrics-listen, Prometheus metrics (text format 0.0.4) are served at GET /metrics on a second, plain-HTTP \
listener, answered one connection at a time on its own thread with a 5 s deadline, so scrapers cannot hold up token \
clients; the first log line then also has metrics_address and metrics_url. The same listener answers GET /healthz \
(200 with the token's expiry when a token can be served, else 503 with why; never the token) and GET /livez (200 \
while the process answers), for kubelet probes and load-balancer health checks that cannot present a client \
certificate. Metrics: wif_serve_requests_total{route,status}, \
wif_serve_handshakes_refused_total{reason} (no_certificate, unknown_ca, expired, bad_eku, revoked, not_allowed, timeout, \
other), wif_serve_reloads_total{what} and wif_serve_reload_failures_total{what} (token, tls), wif_serve_open_connections, \
wif_serve_connections_total, wif_serve_connections_refused_total, wif_serve_connections_evicted_total, \
wif_serve_requests_timed_out_total, wif_serve_token_available, wif_serve_token_expiry_timestamp_seconds, \
wif_serve_token_expires_in_seconds, wif_serve_token_age_seconds, wif_serve_build_info{version}, \
wif_serve_start_time_seconds and wif_serve_scrapes_total. They hold no token and no client identity, but have no \
authentication either: a non-loopback address draws a warning.",
    after_help = crate::manual::after_help("wif-serve", EXAMPLES)
)]
pub struct Cli {
    /// Address and port to listen on, e.g. 0.0.0.0:8443 or 127.0.0.1:0 (any free port)
    #[arg(long, value_name = "ADDR:PORT", env = "WIF_LISTEN")]
    pub listen: Option<String>,
    /// Server certificate chain (PEM, leaf first)
    #[arg(long, value_name = "CHAIN.pem", env = "WIF_SERVE_CERT")]
    pub cert: Option<PathBuf>,
    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "KEY.pem", env = "WIF_SERVE_KEY")]
    pub key: Option<PathBuf>,
    /// CA certificates (root and intermediates, PEM) that client certificates must chain to
    #[arg(long, value_name = "CA_CHAIN.pem", env = "WIF_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// The token file to serve (written by --token-out, with FILE.meta.json beside it)
    #[arg(long, value_name = "FILE", env = "WIF_TOKEN_FILE")]
    pub token: Option<PathBuf>,
    /// Certificate revocation list (PEM or DER) of a client CA; repeatable. Certificates whose issuer has no CRL here are not checked
    #[arg(long, value_name = "FILE")]
    pub crl: Vec<PathBuf>,
    /// Only serve clients with this identity: cn:NAME, dns:NAME, uri:URI, spki-sha256:HEX or cert-sha256:HEX; repeatable
    #[arg(long, value_name = "IDENTITY")]
    pub allow: Vec<String>,
    /// Time a client has to complete the TLS handshake [default: 10s]
    #[arg(long, value_name = "DURATION", env = "WIF_HANDSHAKE_TIMEOUT")]
    pub handshake_timeout: Option<String>,
    /// Time a connection may stay silent before (or while) sending a request [default: 30s]
    #[arg(long, value_name = "DURATION", env = "WIF_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,
    /// Most connections open at once. At the limit a new client takes the slot of the oldest connection still in its handshake (or idle between requests); when all are busy with requests it is closed at once. Both are logged [default: 256]
    #[arg(long, value_name = "N", env = "WIF_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// On SIGTERM, how long requests in progress may take to finish [default: 10s]
    #[arg(long, value_name = "DURATION", env = "WIF_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<String>,
    /// Also serve Prometheus metrics (GET /metrics) and health checks (GET /healthz, /livez) on this address, over plain HTTP without authentication, e.g. 127.0.0.1:9464 [default: off]. Keep it on loopback or a management network: another address draws a warning on stderr
    #[arg(long, value_name = "ADDR:PORT", env = "WIF_SERVE_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    #[command(flatten)]
    pub doc: DocArgs,
}

/// Everything the server needs, resolved from flags, environment and config.
#[derive(Debug)]
pub struct Options {
    /// Where to listen.
    pub listen: String,
    /// TLS files.
    pub tls: tls::TlsFiles,
    /// The token file.
    pub token: PathBuf,
    /// Allowed client identities.
    pub allow: AllowList,
    /// Handshake time-out.
    pub handshake_timeout: Duration,
    /// Idle time-out.
    pub idle_timeout: Duration,
    /// Connection limit.
    pub max_connections: usize,
    /// Grace period on shutdown.
    pub shutdown_timeout: Duration,
    /// Where to serve metrics, if anywhere.
    pub metrics_listen: Option<String>,
}

fn duration(s: &Settings, flag: Option<String>, key: &str, name: &str, default: u64) -> Result<Duration> {
    let d = match s.pick::<String>(flag, key)? {
        Some(t) => crate::clock::parse_duration(&t).map_err(|e| e.context(name.to_string()))?,
        None => Duration::from_secs(default),
    };
    if d.is_zero() {
        return Err(Error::usage(format!("{name} must be more than 0 s")));
    }
    Ok(d)
}

impl Options {
    /// Resolves the options (flags > environment > document config > --config file).
    pub fn resolve(cli: &Cli, s: &Settings) -> Result<Options> {
        let allow = if cli.allow.is_empty() { s.list("allow")? } else { cli.allow.clone() };
        let crls =
            if cli.crl.is_empty() { s.list("crl")?.into_iter().map(PathBuf::from).collect() } else { cli.crl.clone() };
        let max_connections = s.pick_or(cli.max_connections, "max_connections", 256)?;
        if max_connections == 0 {
            return Err(Error::usage("--max-connections must be at least 1"));
        }
        Ok(Options {
            listen: s.require(cli.listen.clone(), "listen", "--listen")?,
            tls: tls::TlsFiles {
                cert: s.require(cli.cert.clone(), "serve_cert", "--cert")?,
                key: s.require(cli.key.clone(), "serve_key", "--key")?,
                client_ca: s.require(cli.client_ca.clone(), "client_ca", "--client-ca")?,
                crls,
            },
            token: s.require(cli.token.clone(), "token_file", "--token")?,
            allow: AllowList::parse(&allow)?,
            handshake_timeout: duration(
                s,
                cli.handshake_timeout.clone(),
                "handshake_timeout",
                "--handshake-timeout",
                10,
            )?,
            idle_timeout: duration(s, cli.idle_timeout.clone(), "idle_timeout", "--idle-timeout", 30)?,
            max_connections,
            shutdown_timeout: duration(s, cli.shutdown_timeout.clone(), "shutdown_timeout", "--shutdown-timeout", 10)?,
            metrics_listen: s.pick(cli.metrics_listen.clone(), "serve_metrics_listen")?,
        })
    }
}

/// Entry point of wif-serve.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::run(TOOL, || {
        let (_, settings) = cli.doc.load()?;
        let opts = Options::resolve(&cli, &settings)?;
        run(opts)
    })
}

/// Binds the address given to `flag`, with a clear message when it is taken.
fn bind(listen: &str, flag: &str) -> Result<TcpListener> {
    let addrs: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .map_err(|e| {
            Error::usage(format!("{flag} {listen:?} is not an address with a port: {e}"))
                .hint(format!("e.g. {flag} 127.0.0.1:8443, {flag} [::]:8443 or {flag} 127.0.0.1:0 for any free port"))
        })?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpListener::bind(addr) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some((addr, e)),
        }
    }
    let Some((addr, e)) = last else {
        return Err(Error::usage(format!("{flag} {listen:?} resolves to no address")));
    };
    let err = Error::io(std::path::Path::new(&addr.to_string()), &e).context(format!("listening ({flag})"));
    Err(match e.kind() {
        std::io::ErrorKind::AddrInUse => err.hint(format!(
            "another process listens on port {} (see: ss -ltnp 'sport = :{}'); stop it or choose another {flag} port",
            addr.port(),
            addr.port()
        )),
        std::io::ErrorKind::PermissionDenied => {
            err.hint("ports below 1024 need privileges (CAP_NET_BIND_SERVICE); use a port of 1024 or more")
        }
        std::io::ErrorKind::AddrNotAvailable => err.hint("this machine has no such address"),
        _ => err,
    })
}

/// The URL clients use for the bound address.
fn token_url(addr: &SocketAddr) -> String {
    format!("https://{}{}", host_port(addr), http::TOKEN_PATH)
}

/// The plain-HTTP URL of `path` on the bound address.
fn http_url(addr: &SocketAddr, path: &str) -> String {
    format!("http://{}{path}", host_port(addr))
}

fn host_port(addr: &SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "localhost".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("{host}:{}", addr.port())
}

// Connection states: in its handshake or between requests a connection may be closed by the
// shutdown or to make room for a new one; while busy it is left to finish its answer.
const IDLE: u8 = 0;
const BUSY: u8 = 1;
const CLOSED: u8 = 2;
const HANDSHAKE: u8 = 3;

struct Conn {
    stream: TcpStream,
    state: Arc<AtomicU8>,
    peer: String,
}

impl Conn {
    /// Closes the connection if it is in state `from`; false if it is not (any more).
    fn close_if(&self, from: u8) -> bool {
        let closed = self.state.compare_exchange(from, CLOSED, Ordering::SeqCst, Ordering::SeqCst).is_ok();
        if closed {
            let _ = self.stream.shutdown(Shutdown::Both);
        }
        closed
    }
}

/// What every connection thread shares.
struct Shared {
    tls: tls::TlsSource,
    token: TokenSource,
    allow: AllowList,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    shutting_down: AtomicBool,
    conns: Mutex<HashMap<u64, Conn>>,
    metrics: Metrics,
}

impl Shared {
    fn open_connections(&self) -> usize {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// At the connection limit: closes the oldest connection still in its handshake (else
    /// the oldest idle between requests), so that sockets that never finish a handshake
    /// hold a slot only until a new client needs it, not for the whole handshake time-out.
    /// False when every connection is busy with a request.
    fn make_room(&self, limit: usize) -> bool {
        let closed = {
            let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
            [(HANDSHAKE, "had not finished its TLS handshake"), (IDLE, "was idle between requests")]
                .into_iter()
                .find_map(|(from, why)| {
                    let mut candidates: Vec<(&u64, &Conn)> =
                        conns.iter().filter(|(_, c)| c.state.load(Ordering::SeqCst) == from).collect();
                    candidates.sort_unstable_by_key(|(id, _)| **id);
                    // The oldest first; one may have moved on meanwhile, then the next.
                    let (_, c) = candidates.into_iter().find(|(_, c)| c.close_if(from))?;
                    Some((c.peer.clone(), why, conns.len()))
                })
        };
        // Logged outside the lock: a slow stdout must not hold up the connections.
        let Some((peer, why, open)) = closed else { return false };
        self.metrics.connection_evicted();
        Event::new("connection_closed")
            .peer(&peer)
            .reason(format!(
                "the connection limit (--max-connections {limit}) was reached and this, the oldest connection, {why}"
            ))
            .code("evicted")
            .connections(open)
            .emit();
        true
    }
}

/// Removes a connection from the table when its thread ends, however it ends.
struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.conns.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

/// Runs the server until SIGTERM/SIGINT.
pub fn run(opts: Options) -> Result<()> {
    let tls = tls::TlsSource::load(opts.tls.clone())?;
    match std::fs::File::open(&opts.token) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => cli::warn(format!(
            "the token file {} does not exist yet; answering 503 until it does",
            opts.token.display()
        )),
        Err(e) => {
            let err = Error::io(&opts.token, &e).context("opening the token file (--token)");
            return Err(if e.kind() == std::io::ErrorKind::PermissionDenied {
                err.hint(
                    "token files are written with mode 0600: run wif-serve as the user that runs the refresh pipeline",
                )
            } else {
                err
            });
        }
    }
    let listener = bind(&opts.listen, "--listen")?;
    let local = listener.local_addr().map_err(|e| Error::new(Kind::Io, format!("listening socket: {e}")))?;
    let metrics_listener = match &opts.metrics_listen {
        Some(addr) => {
            let l = bind(addr, "--metrics-listen")?;
            let a = l.local_addr().map_err(|e| Error::new(Kind::Io, format!("metrics listening socket: {e}")))?;
            if metrics::is_exposed(&a) {
                cli::warn(format!(
                    "the metrics listener {a} is not on loopback: anyone who reaches it can read the metrics (no token, but the token's expiry and refused clients); bind it to 127.0.0.1 or a management network"
                ));
            }
            Some((l, a))
        }
        None => None,
    };
    let shared = Arc::new(Shared {
        tls,
        token: TokenSource::new(opts.token.clone()),
        allow: opts.allow.clone(),
        handshake_timeout: opts.handshake_timeout,
        idle_timeout: opts.idle_timeout,
        shutting_down: AtomicBool::new(false),
        conns: Mutex::new(HashMap::new()),
        metrics: Metrics::default(),
    });
    // Signals are set up before the first log line, so a SIGTERM right after it is graceful.
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| Error::new(Kind::Internal, format!("installing signal handlers: {e}")))?;
    {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || handle_signals(signals, shared, local))
            .map_err(|e| Error::new(Kind::Internal, format!("starting the signal thread: {e}")))?;
    }
    let metrics_address = match metrics_listener {
        Some((l, a)) => {
            let shared = shared.clone();
            let started = crate::clock::now_unix();
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || {
                    let render = || shared.metrics.render(shared.open_connections(), &shared.token, started);
                    metrics::serve(l, &shared.metrics, render, || health(&shared.token))
                })
                .map_err(|e| Error::new(Kind::Internal, format!("starting the metrics thread: {e}")))?;
            Some(a)
        }
        None => None,
    };
    let url = token_url(&local);
    log::emit(&log::Listening {
        event: "listening",
        address: local.to_string(),
        url: &url,
        metrics_address: metrics_address.map(|a| a.to_string()),
        metrics_url: metrics_address.map(|a| http_url(&a, metrics::METRICS_PATH)),
    });

    let next_id = AtomicU64::new(0);
    for incoming in listener.incoming() {
        if shared.shutting_down.load(Ordering::SeqCst) {
            break;
        }
        let stream = match incoming {
            Ok(s) => s,
            Err(e) => {
                Event::new("accept_failed").reason(e.to_string()).emit();
                // Out of file descriptors and the like: give the system a moment.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
        let open = shared.open_connections();
        shared.metrics.connection();
        if open >= opts.max_connections && !shared.make_room(opts.max_connections) {
            shared.metrics.connection_refused();
            let _ = stream.shutdown(Shutdown::Both);
            Event::new("connection_refused")
                .peer(&peer)
                .reason(format!("too many connections (--max-connections {})", opts.max_connections))
                .connections(open)
                .emit();
            continue;
        }
        if let Some(result) = shared.tls.refresh() {
            log_tls_reload(&shared.metrics, result, "a certificate, key, CA or CRL file changed");
        }
        let config = shared.tls.config();
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(AtomicU8::new(HANDSHAKE));
        let Ok(clone) = stream.try_clone() else {
            Event::new("connection_refused").peer(&peer).reason("cannot duplicate the socket").emit();
            continue;
        };
        shared
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Conn { stream: clone, state: state.clone(), peer: peer.clone() });
        let guard = ConnGuard { shared: shared.clone(), id };
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .stack_size(512 * 1024)
            .spawn(move || serve_connection(stream, peer, config, state, guard));
        if let Err(e) = spawned {
            Event::new("connection_refused").reason(format!("cannot start a thread: {e}")).emit();
        }
    }
    drop(listener);
    shutdown(&shared, opts.shutdown_timeout);
    Ok(())
}

fn log_tls_reload(metrics: &Metrics, result: Result<()>, why: &str) {
    metrics.tls_reload(result.is_ok());
    match result {
        Ok(()) => Event::new("reload").what("tls").reason(why).emit(),
        Err(e) => {
            Event::new("reload_failed").what("tls").reason(format!("{e}; the previous configuration stays")).emit()
        }
    }
}

fn handle_signals(mut signals: signal_hook::iterator::Signals, shared: Arc<Shared>, local: SocketAddr) {
    for sig in signals.forever() {
        if sig == signal_hook::consts::SIGHUP {
            shared.token.invalidate();
            log_tls_reload(&shared.metrics, shared.tls.reload(), "SIGHUP");
            continue;
        }
        if shared.shutting_down.swap(true, Ordering::SeqCst) {
            Event::new("stopped").reason("second signal: stopping at once").emit();
            std::process::exit(1);
        }
        let name = if sig == signal_hook::consts::SIGINT { "SIGINT" } else { "SIGTERM" };
        Event::new("shutdown").reason(name).connections(shared.open_connections()).emit();
        // Wake the accept loop so it sees the flag.
        let mut wake = local;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
    }
}

/// Closes idle connections, waits for busy ones (up to `grace`), and logs the end.
fn shutdown(shared: &Shared, grace: Duration) {
    let deadline = Instant::now() + grace;
    loop {
        {
            let conns = shared.conns.lock().unwrap_or_else(|p| p.into_inner());
            for c in conns.values() {
                let _ = c.close_if(IDLE) || c.close_if(HANDSHAKE);
            }
            if conns.is_empty() {
                break;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Event::new("stopped").connections(shared.open_connections()).emit();
}

/// A socket whose every read and write must finish before a deadline.
pub(crate) struct Deadlined<'a> {
    pub(crate) tcp: &'a TcpStream,
    pub(crate) deadline: Instant,
}

impl Deadlined<'_> {
    fn remaining(&self) -> std::io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(std::io::ErrorKind::TimedOut.into())
        } else {
            Ok(left)
        }
    }
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.tcp.set_read_timeout(Some(self.remaining()?))?;
        (&mut &*self.tcp).read(buf)
    }
}

impl Write for Deadlined<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tcp.set_write_timeout(Some(self.remaining()?))?;
        (&mut &*self.tcp).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Why a handshake failed: rustls's words (or the I/O condition), and a short code.
fn handshake_failure(e: &std::io::Error) -> (String, &'static str) {
    use rustls::{CertificateError as C, Error as E};
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        let code = match tls {
            E::NoCertificatesPresented => "no_certificate",
            E::InvalidCertificate(c) => match c {
                C::UnknownIssuer => "unknown_issuer",
                C::Expired | C::ExpiredContext { .. } => "expired",
                C::NotValidYet | C::NotValidYetContext { .. } => "not_yet_valid",
                C::Revoked => "revoked",
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => "wrong_key_usage",
                C::BadSignature => "bad_signature",
                _ => "invalid_certificate",
            },
            E::AlertReceived(_) => "alert_received",
            E::PeerIncompatible(_) => "incompatible",
            _ => "tls_error",
        };
        return (tls.to_string(), code);
    }
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ("handshake timed out".into(), "timeout"),
        std::io::ErrorKind::UnexpectedEof => ("the client closed the connection during the handshake".into(), "closed"),
        _ => (e.to_string(), "io_error"),
    }
}

/// One connection: the handshake, then requests until close, time-out or shutdown.
fn serve_connection(
    tcp: TcpStream,
    peer: String,
    config: Arc<rustls::ServerConfig>,
    state: Arc<AtomicU8>,
    guard: ConnGuard,
) {
    let shared = guard.shared.clone();
    let _ = tcp.set_nodelay(true);
    let mut conn = match rustls::ServerConnection::new(config) {
        Ok(c) => c,
        Err(e) => {
            shared.metrics.refused(Refusal::Other);
            Event::new("handshake_failed").peer(&peer).reason(e.to_string()).emit();
            return;
        }
    };
    let mut sock = Deadlined { tcp: &tcp, deadline: Instant::now() + shared.handshake_timeout };
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            if state.load(Ordering::SeqCst) != CLOSED {
                let (reason, code) = handshake_failure(&e);
                shared.metrics.refused(Refusal::from_code(code));
                Event::new("handshake_failed").peer(&peer).reason(reason).code(code).emit();
            }
            return;
        }
    }
    // Closed to make room (or by the shutdown) just as the handshake finished.
    if state.compare_exchange(HANDSHAKE, IDLE, Ordering::SeqCst, Ordering::SeqCst).is_err() {
        return;
    }
    // The verifier only lets a connection through with a verified certificate.
    let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) else {
        shared.metrics.refused(Refusal::Other);
        Event::new("handshake_failed").peer(&peer).reason("no client certificate").emit();
        return;
    };
    let id = Identity::from_der(leaf.as_ref());
    if !shared.allow.allows(&id) {
        // Counted once per connection; every request on it is answered 403.
        shared.metrics.refused(Refusal::NotAllowed);
    }
    let tls_version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    };
    let mut buf = Vec::new();
    loop {
        sock.deadline = Instant::now() + shared.idle_timeout;
        // Busy from the request's first byte: a shutdown lets it finish.
        let begin = || state.compare_exchange(IDLE, BUSY, Ordering::SeqCst, Ordering::SeqCst).is_ok();
        let incoming = http::read_request(&mut rustls::Stream::new(&mut conn, &mut sock), &mut buf, begin);
        let started = Instant::now();
        let (req, resp, keep_alive) = match incoming {
            Incoming::Request(req) => {
                let resp = respond(&shared, &req, &id);
                let keep_alive = req.keep_alive && !req.has_body && !shared.shutting_down.load(Ordering::SeqCst);
                (Some(req), resp, keep_alive)
            }
            Incoming::Invalid(r) => (None, Response::error(r.status, "bad_request", r.reason).because(r.reason), false),
            Incoming::TimedOut if state.load(Ordering::SeqCst) == BUSY => {
                // Slow-loris: a request begun and not finished within the idle time-out.
                shared.metrics.request_timed_out();
                Event::new("request_timed_out")
                    .peer(&peer)
                    .reason(format!(
                        "the request was not complete within --idle-timeout ({} s); closing",
                        shared.idle_timeout.as_secs_f64()
                    ))
                    .code("timeout")
                    .emit();
                break;
            }
            Incoming::Closed | Incoming::TimedOut | Incoming::Broken(_) => break,
        };
        let head_only = req.as_ref().is_some_and(|r| r.method == "HEAD");
        let bytes = resp.to_bytes(head_only, keep_alive);
        sock.deadline = Instant::now() + shared.idle_timeout;
        let mut stream = rustls::Stream::new(&mut conn, &mut sock);
        let sent = stream.write_all(&bytes).and_then(|()| stream.flush());
        let body_bytes = if head_only || sent.is_err() { 0 } else { resp.body.len() };
        shared.metrics.request(req.as_ref().map(|r| r.path.as_str()), resp.status);
        log::emit(&log::RequestLine {
            event: "request",
            time: log::now(),
            peer: peer.clone(),
            subject: &id.subject,
            fingerprint: &id.fingerprint,
            tls: tls_version,
            method: req.as_ref().map_or("-", |r| r.method.as_str()),
            path: req.as_ref().map_or("-", |r| r.path.as_str()),
            status: resp.status,
            bytes: body_bytes,
            duration_ms: (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            reason: resp.reason.as_deref(),
        });
        if sent.is_err() || !keep_alive {
            break;
        }
        state.store(IDLE, Ordering::SeqCst);
        if shared.shutting_down.load(Ordering::SeqCst) {
            break;
        }
    }
    conn.send_close_notify();
    while conn.wants_write() {
        if conn.write_tls(&mut sock).is_err() {
            break;
        }
    }
    drop(guard);
}

#[derive(serde::Serialize)]
struct Health<'a> {
    status: &'a str,
    token_file: String,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// The answer to one well-formed request from a verified client.
fn respond(shared: &Shared, req: &http::Request, id: &Identity) -> Response {
    if !shared.allow.allows(id) {
        return Response::error(403, "forbidden", "this client certificate is not on the server's allow-list")
            .because("client identity not in the allow-list");
    }
    let route = http::route(&req.method, &req.path);
    if req.has_body && matches!(route, Route::Token | Route::Health) {
        return Response::error(413, "body_not_accepted", "requests to this server carry no body")
            .because("request with a body");
    }
    match route {
        Route::NotFound => Response::error(404, "not_found", "the token is at /get_wif_token").because("unknown path"),
        Route::MethodNotAllowed => Response::error(405, "method_not_allowed", "use GET or HEAD")
            .header("Allow", "GET, HEAD")
            .because("method not allowed"),
        Route::Token => match shared.token.current() {
            State::Ready(t) => Response {
                status: 200,
                content_type: "text/plain",
                headers: vec![
                    ("X-Token-Expires-At", t.expires_at_text.clone()),
                    ("X-Token-Type", t.token_type.clone()),
                ],
                body: t.token.expose().as_bytes().to_vec(),
                reason: None,
            },
            State::Unavailable { reason, .. } => {
                Response::error(503, "token_unavailable", &reason).header("Retry-After", "30").because(reason)
            }
        },
        Route::Health => health(&shared.token),
    }
}

/// The health answer: 200 with the token's expiry when a token can be served, else 503 with
/// why. Served at /healthz over mutual TLS and on the metrics listener (plain HTTP, for
/// kubelet probes and load-balancer health checks). Never the token.
fn health(token: &TokenSource) -> Response {
    let now = crate::clock::now_unix();
    let token_file = token.path().display().to_string();
    match token.current() {
        State::Ready(t) => Response::json(
            200,
            &Health {
                status: "ok",
                token_file,
                expires_at: Some(t.expires_at_text.clone()),
                expires_in_secs: Some(t.expires_at - now),
                token_type: Some(&t.token_type),
                written_at: Some(&t.written_at),
                written_by: Some(&t.written_by),
                reason: None,
            },
        ),
        State::Unavailable { reason, expires_at, .. } => Response::json(
            503,
            &Health {
                status: "unavailable",
                token_file,
                expires_at,
                expires_in_secs: None,
                token_type: None,
                written_at: None,
                written_by: None,
                reason: Some(reason.clone()),
            },
        )
        .because(reason),
    }
}
