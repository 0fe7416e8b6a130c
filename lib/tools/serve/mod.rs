//! `wif-serve`: publishes the token file over mutual TLS at `GET /get_wif_token`.
//!
//! One thread accepts; each connection gets its own thread (bounded by
//! `--max-connections`), so handshakes run in parallel and a silent client only ever holds
//! its own thread until its time-out, or until a new client needs its slot at the limit. The TLS configuration and the token are shared and
//! re-read when their files change; SIGHUP forces that, SIGTERM/SIGINT stop gracefully.

pub mod allow;
pub mod conns;
pub mod log;
pub mod metrics;
pub mod tls;
pub mod token;

use crate::cli::{self, DocArgs};
use crate::core::error::{Error, Kind, Result};
use crate::core::help::Example;
use crate::core::settings::Settings;
use crate::server::http::{self, Incoming, Response, Route};
use crate::server::Deadlined;
use allow::{AllowList, Identity};
use clap::Parser;
use conns::{Conn, Phase, Scope, Table};
use log::Event;
use metrics::{Metrics, Refusal};
use std::io::Write;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use token::{State, TokenSource};

const TOOL: &str = "wif-serve";

/// What the manual page says beyond the flags.
pub const PAGE: crate::core::help::Page = crate::core::help::Page { examples: EXAMPLES, files: FILES };

/// The files of the manual page.
const FILES: &[(&str, &str)] = &[
    ("wif_token.txt", "the token file given with --token; served byte for byte, re-read when it changes"),
    (
        "wif_token.txt.meta.json",
        "beside it: the token's expiry (sent as X-Token-Expires-At); past it, or when it describes another token, the answer is 503; without it the expiry is the token file's modification time + --assume-ttl",
    ),
    ("/etc/wif/wif.json", "conventional place for the config file given with --config"),
];

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
Clients that fail are refused in the handshake and logged. With --allow, a verified client that matches no listed \
identity is answered 403 to its first request and the connection is closed at once (logged with its identity).\n\n\
A client stays verified only as long as its certificate: when the CA bundle or a CRL changes (the files are looked at \
every second, and on SIGHUP) every open connection's client is verified again before its next request, and a client \
whose certificate has expired, or that is now revoked or no longer trusted, is cut off without an answer. No connection \
lives longer than --max-connection-age.\n\n\
Connection slots are guarded: a request head must arrive whole within --header-timeout of its first byte; at \
--max-connections a new client takes the slot of a refused connection, a handshake in progress, an idle connection, or \
one whose request or answer has taken over a second (oldest first), never a client in its first second or one taking \
its answer; one client certificate holds at most --max-connections-per-client connections (its newest over the limit \
gets 503 with Retry-After), and --max-connections-per-address limits one address likewise.\n\n\
The token's expiry comes from its metadata (FILE.meta.json, written by --token-out). A token file without \
metadata, as the seed's Java generator writes it, is served until its modification time plus --assume-ttl \
(default 55m: the seed rewrites the file every 55 minutes and Google's access tokens live 60, so the token is \
then at least 5 minutes from expiry; a JWT's own exp, if sooner), one trailing line end not being part of the \
token; a warning on stderr says so at start and whenever the file changes, and X-Token-Expires-At and /healthz \
(expires_from: assumed) give the assumed expiry. Metadata that appears or disappears is noticed like any other \
change: the pair is read again. The token is never served when its file is missing, empty or expired, when its \
metadata exists but does not match it (edited in place), or when either file is not trusted (not a regular file, \
owned by another user than wif-serve's or root, or writable by others): 503 with a JSON error whose message says why \
(without the server's paths, which are in the log) instead. The token, certificates, key, client CA and CRLs are re-read when \
their files change (also when a new file is renamed over the old one) and on SIGHUP, without a restart and \
without dropping connections. SIGTERM or SIGINT stop accepting, let requests in progress finish, and exit 0.\n\n\
Stdout is a JSON-lines log: first {\"event\":\"listening\",\"address\":…,\"url\":…}, then one line per request \
(time, peer, client certificate subject and SHA-256 fingerprint, method, path, status, bytes, duration_ms), \
refused handshakes and connections, reloads and shutdown. The token is never logged.\n\n\
With --metrics-listen, Prometheus metrics (text format 0.0.4) are served at GET /metrics on a second, plain-HTTP \
listener, each connection on a thread of its own (up to 64; the request head within 2 s; at the cap the oldest \
connection that has not sent its request is closed), so neither scrapers nor idle sockets hold up probes or token \
clients; the first log line then also has metrics_address and metrics_url. The same listener answers GET /healthz \
(200 with the token's expiry when a token can be served, else 503 with why; never the token) and GET /livez (200 \
while the process answers), for kubelet probes and load-balancer health checks that cannot present a client \
certificate. Metrics: wif_serve_requests_total{route,status}, \
wif_serve_handshakes_refused_total{reason} (no_certificate, unknown_ca, expired, bad_eku, revoked, not_allowed, timeout, \
other: the same words as the code of the log's handshake_failed lines), wif_serve_reloads_total{what} and wif_serve_reload_failures_total{what} (token, tls), wif_serve_open_connections, \
wif_serve_connections_total, wif_serve_connections_refused_total, wif_serve_connections_evicted_total, \
wif_serve_requests_timed_out_total, wif_serve_token_available, wif_serve_token_expiry_timestamp_seconds, \
wif_serve_token_expires_in_seconds, wif_serve_token_age_seconds, wif_serve_build_info{version}, \
wif_serve_start_time_seconds and wif_serve_scrapes_total. They hold no token and no client identity, but have no \
authentication either: a non-loopback address draws a warning.",
    after_help = crate::core::help::after_help("wif-serve", EXAMPLES)
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
    /// Lifetime assumed for a token file without FILE.meta.json (as the seed's generator writes it), counted from its modification time; 0: never serve such a file [default: 55m, the seed's refresh period]
    #[arg(long, value_name = "DURATION", env = "WIF_SERVE_ASSUME_TTL")]
    pub assume_ttl: Option<String>,
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
    /// Time a client has, from the first byte of a request, to send its request line and headers (the request must also be complete within --idle-timeout) [default: 5s]
    #[arg(long, value_name = "DURATION", env = "WIF_HEADER_TIMEOUT")]
    pub header_timeout: Option<String>,
    /// Longest a connection stays open, however active: after it the connection is closed after its current answer, and the client reconnects and is verified afresh [default: 10m]
    #[arg(long, value_name = "DURATION", env = "WIF_MAX_CONNECTION_AGE")]
    pub max_connection_age: Option<String>,
    /// Most connections open at once. At the limit a new client takes the slot of a connection refused after its handshake, else one still in its handshake, else one idle between requests, else one whose request or answer has taken over a second (oldest first); a client's first second after its handshake, and answers it takes at once, are never cut. When no connection can give way the new one is closed at once. Both are logged [default: 256]
    #[arg(long, value_name = "N", env = "WIF_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most connections one verified client (one certificate) may hold at once. Beyond it one of the client's own connections gives way by the rules of --max-connections, else the new connection is answered 503 with Retry-After: 1 and closed. A fleet of hosts sharing one certificate that fetch at the same moment needs room for its burst [default: a quarter of --max-connections]
    #[arg(long, value_name = "N", env = "WIF_MAX_CONNECTIONS_PER_CLIENT")]
    pub max_connections_per_client: Option<usize>,
    /// Most connections from one IP address at once, counted from accept. Beyond it that address's own oldest waiting connection gives way, else the new one is closed. Off by default: clients behind NAT or a load balancer share an address [default: no limit]
    #[arg(long, value_name = "N", env = "WIF_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,
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
    /// Lifetime assumed for a token file without metadata; `None`: such a file is not served.
    pub assume_ttl: Option<Duration>,
    /// Allowed client identities.
    pub allow: AllowList,
    /// Time-outs and connection limits.
    pub limits: Limits,
    /// Grace period on shutdown.
    pub shutdown_timeout: Duration,
    /// Where to serve metrics, if anywhere.
    pub metrics_listen: Option<String>,
}

fn duration(s: &Settings, flag: Option<String>, key: &str, name: &str, default: u64) -> Result<Duration> {
    s.duration_over_zero(flag, key, name, Some(name), Duration::from_secs(default))
}

impl Options {
    /// Resolves the options (flags > environment > document config > --config file).
    pub fn resolve(cli: &Cli, s: &Settings) -> Result<Options> {
        let allow = if cli.allow.is_empty() { s.list("allow")? } else { cli.allow.clone() };
        let crls =
            if cli.crl.is_empty() { s.list("crl")?.into_iter().map(PathBuf::from).collect() } else { cli.crl.clone() };
        let max_connections = s.pick_or(cli.max_connections, "max_connections", 256)?;
        let max_per_client =
            s.pick_or(cli.max_connections_per_client, "max_connections_per_client", (max_connections / 4).max(1))?;
        let max_per_address = s.pick(cli.max_connections_per_address, "max_connections_per_address")?;
        for (n, flag) in [
            (Some(max_connections), "--max-connections"),
            (Some(max_per_client), "--max-connections-per-client"),
            (max_per_address, "--max-connections-per-address"),
        ] {
            if n == Some(0) {
                return Err(Error::usage(format!("{flag} must be at least 1")));
            }
        }
        let limits = Limits {
            handshake_timeout: duration(
                s,
                cli.handshake_timeout.clone(),
                "handshake_timeout",
                "--handshake-timeout",
                10,
            )?,
            idle_timeout: duration(s, cli.idle_timeout.clone(), "idle_timeout", "--idle-timeout", 30)?,
            header_timeout: duration(s, cli.header_timeout.clone(), "header_timeout", "--header-timeout", 5)?,
            max_connection_age: duration(
                s,
                cli.max_connection_age.clone(),
                "max_connection_age",
                "--max-connection-age",
                600,
            )?,
            max_connections,
            max_per_client,
            max_per_address,
        };
        Ok(Options {
            listen: s.require(cli.listen.clone(), "listen", "--listen")?,
            tls: tls::TlsFiles {
                cert: s.require(cli.cert.clone(), "serve_cert", "--cert")?,
                key: s.require(cli.key.clone(), "serve_key", "--key")?,
                client_ca: s.require(cli.client_ca.clone(), "client_ca", "--client-ca")?,
                crls,
            },
            token: s.require(cli.token.clone(), "token_file", "--token")?,
            assume_ttl: match s.pick::<String>(cli.assume_ttl.clone(), "serve_assume_ttl")? {
                Some(t) => Some(crate::core::clock::parse_duration(&t).map_err(|e| e.context("--assume-ttl"))?)
                    .filter(|d| !d.is_zero()),
                None => Some(token::DEFAULT_ASSUME_TTL),
            },
            allow: AllowList::parse(&allow)?,
            limits,
            shutdown_timeout: duration(s, cli.shutdown_timeout.clone(), "shutdown_timeout", "--shutdown-timeout", 10)?,
            metrics_listen: s.pick(cli.metrics_listen.clone(), "serve_metrics_listen")?,
        })
    }
}

/// Entry point of wif-serve.
pub fn main() -> ExitCode {
    let cli = cli::parse::<Cli>();
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

/// How often the TLS files are looked at for changes, so that a new CRL or CA bundle reaches
/// open keep-alive connections even when no new connection arrives.
const TLS_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How long a client refused after its handshake (not allowed, over its limit) has to send
/// its first request, which is answered with the refusal before the connection is closed.
const REFUSED_GRACE: Duration = Duration::from_secs(1);

/// The connection limits, resolved.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Time to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time a connection may wait for its next request (and to finish sending it).
    pub idle_timeout: Duration,
    /// Time from a request's first byte to its last header.
    pub header_timeout: Duration,
    /// Longest a connection stays open.
    pub max_connection_age: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections one verified client may hold.
    pub max_per_client: usize,
    /// Most connections from one address, if limited.
    pub max_per_address: Option<usize>,
}

/// What every connection thread shares.
struct Shared {
    tls: tls::TlsSource,
    token: TokenSource,
    allow: AllowList,
    limits: Limits,
    shutting_down: AtomicBool,
    conns: Table,
    metrics: Metrics,
}

impl Shared {
    fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Makes room for a new connection from `ip`: `Err` with why it must be refused when
    /// every connection it could replace is busy with a request.
    fn admit(&self, ip: Option<IpAddr>) -> std::result::Result<(), String> {
        let max = self.limits.max_connections;
        if self.conns.len() >= max
            && !self.evict(
                Scope::All,
                None,
                format!("the connection limit (--max-connections {max}) was reached and this, the oldest connection,"),
            )
        {
            return Err(format!("too many connections (--max-connections {max})"));
        }
        if let (Some(cap), Some(ip)) = (self.limits.max_per_address, ip) {
            if self.conns.count(Scope::Address(ip), None) >= cap
                && !self.evict(
                    Scope::Address(ip),
                    None,
                    format!(
                        "{ip} reached its limit (--max-connections-per-address {cap}) and this, its oldest connection,"
                    ),
                )
            {
                return Err(format!("too many connections from {ip} (--max-connections-per-address {cap})"));
            }
        }
        Ok(())
    }

    /// Closes the connection in `scope` that gives way first (see [`conns::Table::make_room`])
    /// and logs why (`words` leads into the phase it was in); false when there is none.
    fn evict(&self, scope: Scope<'_>, except: Option<u64>, words: String) -> bool {
        let Some(e) = self.conns.make_room(scope, except) else { return false };
        // Logged outside the table's lock: a slow stdout must not hold up the connections.
        self.metrics.connection_evicted();
        Event::new("connection_closed")
            .peer(&e.peer)
            .reason(format!("{words} {}", e.why))
            .code("evicted")
            .connections(e.open)
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
        self.shared.conns.remove(self.id);
    }
}

/// Runs the server until SIGTERM/SIGINT.
pub fn run(opts: Options) -> Result<()> {
    let tls = tls::TlsSource::load(opts.tls.clone())?;
    let token = TokenSource::new(opts.token.clone()).assume_ttl(opts.assume_ttl);
    check_token_at_start(&opts.token, &token)?;
    let listener = bind(&opts.listen, "--listen")?;
    let local = listener.local_addr().map_err(|e| Error::new(Kind::Io, format!("listening socket: {e}")))?;
    let metrics_listener = match &opts.metrics_listen {
        Some(addr) => {
            let l = bind(addr, "--metrics-listen")?;
            let a = l.local_addr().map_err(|e| Error::new(Kind::Io, format!("metrics listening socket: {e}")))?;
            if metrics::is_exposed(&a) {
                crate::core::diag::warn(format!(
                    "the metrics listener {a} is not on loopback: anyone who reaches it can read the metrics (no token, but the token's expiry and refused clients); bind it to 127.0.0.1 or a management network"
                ));
            }
            Some((l, a))
        }
        None => None,
    };
    let shared = Arc::new(Shared {
        tls,
        token,
        allow: opts.allow.clone(),
        limits: opts.limits,
        shutting_down: AtomicBool::new(false),
        conns: Table::default(),
        metrics: Metrics::default(),
    });
    // Signals are set up before the first log line, so a SIGTERM right after it is graceful.
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| Error::new(Kind::Internal, format!("installing signal handlers: {e}")))?;
    spawn_named("signals", {
        let shared = shared.clone();
        move || handle_signals(signals, shared, local)
    })?;
    spawn_named("tls-watch", {
        let shared = shared.clone();
        move || loop {
            std::thread::sleep(TLS_CHECK_INTERVAL);
            if let Some(result) = shared.tls.refresh() {
                log_tls_reload(&shared.metrics, result, "a certificate, key, CA or CRL file changed");
            }
        }
    })?;
    let metrics_address = match metrics_listener {
        Some((l, a)) => {
            let shared = shared.clone();
            let started = crate::core::clock::now_unix();
            spawn_named("metrics", move || {
                let render = || shared.metrics.render(shared.open_connections(), &shared.token, started);
                metrics::serve(l, &shared.metrics, render, || health(&shared.token))
            })?;
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
        let addr = stream.peer_addr().ok();
        let peer = addr.map(|a| a.to_string()).unwrap_or_else(|| "?".into());
        shared.metrics.connection();
        if let Err(why) = shared.admit(addr.map(|a| a.ip())) {
            shared.metrics.connection_refused();
            let _ = stream.shutdown(Shutdown::Both);
            Event::new("connection_refused").peer(&peer).reason(why).connections(shared.open_connections()).emit();
            continue;
        }
        if let Some(result) = shared.tls.refresh() {
            log_tls_reload(&shared.metrics, result, "a certificate, key, CA or CRL file changed");
        }
        let built = shared.tls.current();
        let Some((id, cx)) = shared.conns.insert(&stream, peer.clone(), addr.map(|a| a.ip())) else {
            Event::new("connection_refused").peer(&peer).reason("cannot duplicate the socket").emit();
            continue;
        };
        let guard = ConnGuard { shared: shared.clone(), id };
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .stack_size(512 * 1024)
            .spawn(move || serve_connection(stream, built, cx, guard));
        if let Err(e) = spawned {
            Event::new("connection_refused").reason(format!("cannot start a thread: {e}")).emit();
        }
    }
    drop(listener);
    shutdown(&shared, opts.shutdown_timeout);
    Ok(())
}

/// Says at start what will be served: an unreadable token file stops the server (a wrong
/// user, which no waiting mends); anything else that keeps the token from being served is a
/// warning, and 503 until it is mended; a token file without metadata is served with an
/// assumed expiry, and a warning says so.
fn check_token_at_start(token: &std::path::Path, source: &TokenSource) -> Result<()> {
    use crate::core::files::{Part, Stored};
    // Opened only once it is known to be a regular file: opening a FIFO would block.
    if std::fs::metadata(token).is_ok_and(|m| m.is_file()) {
        if let Err(e) = std::fs::File::open(token) {
            let err = Error::io(token, &e).context("opening the token file (--token)");
            return Err(if e.kind() == std::io::ErrorKind::PermissionDenied {
                err.hint(
                    "token files are written with mode 0600: run wif-serve as the user that runs the refresh pipeline",
                )
            } else {
                err
            });
        }
    }
    match crate::core::files::read_token(token) {
        Stored::Found(_) => {}
        Stored::Missing(Part::Token, _) => crate::core::diag::warn(format!(
            "the token file {} does not exist yet; answering 503 until it does",
            token.display()
        )),
        Stored::Missing(Part::Meta, _) if source.assumes_ttl() => source.warn_if_assumed(),
        other => crate::core::diag::warn(format!("{}; answering 503 until that changes", other.detail())),
    }
    Ok(())
}

fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
        .map_err(|e| Error::new(Kind::Internal, format!("starting the {name} thread: {e}")))
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

/// Closes waiting connections, waits for those with a request (up to `grace`), and logs the end.
fn shutdown(shared: &Shared, grace: Duration) {
    let deadline = Instant::now() + grace;
    loop {
        shared.conns.close_waiting();
        if shared.conns.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Event::new("stopped").connections(shared.open_connections()).emit();
}

/// Why a certificate was refused: rustls's words (the finer cause, e.g. "not valid yet") and
/// the reason counted, whose label is also the log's `code`.
fn tls_refusal(tls: &rustls::Error) -> (String, Refusal) {
    (tls.to_string(), Refusal::of_tls(tls))
}

/// Why a handshake failed: rustls's words (or the I/O condition), and the reason counted.
fn handshake_failure(e: &std::io::Error) -> (String, Refusal) {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return tls_refusal(tls);
    }
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            ("handshake timed out".into(), Refusal::Timeout)
        }
        std::io::ErrorKind::UnexpectedEof => {
            ("the client closed the connection during the handshake".into(), Refusal::Other)
        }
        _ => (e.to_string(), Refusal::Other),
    }
}

/// A client verified in the handshake, and what must stay true for it to be served.
struct Verified {
    id: Identity,
    /// The earliest end of validity in the chain it presented, Unix seconds.
    valid_until: i64,
    /// The TLS build it was last verified under.
    generation: u64,
    tls_version: &'static str,
}

impl Verified {
    fn new(conn: &rustls::ServerConnection, generation: u64) -> Option<Verified> {
        let chain = conn.peer_certificates()?;
        let id = Identity::from_der(chain.first()?.as_ref());
        let intermediates = chain[1..]
            .iter()
            .filter_map(|c| x509_parser::parse_x509_certificate(c.as_ref()).ok())
            .map(|(_, c)| c.validity().not_after.timestamp());
        let valid_until = intermediates.fold(id.not_after, i64::min);
        let tls_version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        };
        Some(Verified { id, valid_until, generation, tls_version })
    }

    /// Whether the client may still be served: its certificates still in date, and, when
    /// the CA bundle or CRLs were reloaded since it was last verified, verified again under
    /// them. `Err` with why not and the reason counted.
    fn recheck(
        &mut self,
        tls: &tls::TlsSource,
        conn: &rustls::ServerConnection,
    ) -> std::result::Result<(), (String, Refusal)> {
        if crate::core::clock::now_unix() >= self.valid_until {
            return Err((
                format!(
                    "the client's certificate chain expired at {} while its connection was open",
                    crate::core::clock::rfc3339(self.valid_until)
                ),
                Refusal::Expired,
            ));
        }
        if tls.generation() != self.generation {
            let built = tls.current();
            built.verify_client(conn.peer_certificates().unwrap_or_default()).map_err(|e| {
                let (why, code) = tls_refusal(&e);
                (
                    format!("the client's certificate no longer verifies under the reloaded CA and CRL files: {why}"),
                    code,
                )
            })?;
            self.generation = built.generation;
        }
        Ok(())
    }
}

/// One connection: the handshake, then requests until close, time-out or shutdown.
fn serve_connection(tcp: TcpStream, built: Arc<tls::Built>, cx: Arc<Conn>, guard: ConnGuard) {
    let shared = guard.shared.clone();
    let _ = tcp.set_nodelay(true);
    let mut conn = match rustls::ServerConnection::new(built.config.clone()) {
        Ok(c) => c,
        Err(e) => {
            shared.metrics.refused(Refusal::Other);
            Event::new("handshake_failed").peer(&cx.peer).reason(e.to_string()).code(Refusal::Other.label()).emit();
            return;
        }
    };
    let mut sock = Deadlined { tcp: &tcp, deadline: cx.born + shared.limits.handshake_timeout };
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            if cx.phase() != Phase::Closed {
                let (reason, refusal) = handshake_failure(&e);
                shared.metrics.refused(refusal);
                Event::new("handshake_failed").peer(&cx.peer).reason(reason).code(refusal.label()).emit();
            }
            return;
        }
    }
    // Closed to make room (or by the shutdown) just as the handshake finished.
    if !cx.enter(Phase::Handshake, Phase::Fresh) {
        return;
    }
    // The verifier only lets a connection through with a verified certificate.
    let Some(client) = Verified::new(&conn, built.generation) else {
        shared.metrics.refused(Refusal::NoCertificate);
        Event::new("handshake_failed")
            .peer(&cx.peer)
            .reason("no client certificate")
            .code(Refusal::NoCertificate.label())
            .emit();
        return;
    };
    drop(built);
    let mut session = Session { conn, sock, client, cx };
    session.serve(&shared, guard.id);
    session.close();
    drop(guard);
}

/// A verified client's connection, after its handshake.
struct Session<'t> {
    conn: rustls::ServerConnection,
    sock: Deadlined<'t>,
    client: Verified,
    cx: Arc<Conn>,
}

impl<'t> Session<'t> {
    /// Refuses the client if it is not allowed or over its limit, else answers its requests
    /// until it closes, times out, is refused or the server stops.
    fn serve(&mut self, shared: &Shared, id: u64) {
        let limits = shared.limits;
        if !shared.allow.allows(&self.client.id) {
            // Counted once per connection, and never kept open: the slot goes back at once.
            shared.metrics.refused(Refusal::NotAllowed);
            let refusal =
                Response::error(403, "forbidden", "this client certificate is not on the server's allow-list")
                    .because("client identity not in the allow-list");
            return self.refuse(shared, refusal, "not_allowed");
        }
        let cap = limits.max_per_client;
        let key = self.client.id.fingerprint.clone();
        if shared.conns.join_client(id, &key) >= cap
            && !shared.evict(
                Scope::Client(&key),
                Some(id),
                format!("its client reached its limit (--max-connections-per-client {cap}) and this, its oldest connection,"),
            )
        {
            shared.metrics.connection_refused();
            let why = format!("this client holds too many connections at once (--max-connections-per-client {cap})");
            Event::new("connection_refused").peer(&self.cx.peer).client(&self.client.id).reason(&why).emit();
            let refusal = Response::error(
                503,
                "too_many_connections",
                "this client certificate holds too many connections to the server at once; retry shortly",
            )
            .header("Retry-After", "1")
            .because(why);
            return self.refuse(shared, refusal, "too_many_connections");
        }

        let age_limit = self.cx.born + limits.max_connection_age;
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
            let (req, resp, keep_alive) = match http::read_request(&mut self.stream(), &mut buf) {
                Incoming::Request(req) => {
                    if phase == Phase::Reading {
                        if !self.cx.enter(Phase::Reading, Phase::Busy) {
                            return;
                        }
                        phase = Phase::Busy;
                    }
                    // Before anything is answered: is this client still one to serve?
                    if let Err((reason, refusal)) = self.client.recheck(&shared.tls, &self.conn) {
                        shared.metrics.refused(refusal);
                        Event::new("connection_closed")
                            .peer(&self.cx.peer)
                            .client(&self.client.id)
                            .reason(reason)
                            .code(refusal.label())
                            .emit();
                        return;
                    }
                    let resp = respond(shared, &req);
                    let keep_alive = req.keep_alive
                        && !req.has_body
                        && !shared.shutting_down.load(Ordering::SeqCst)
                        && Instant::now() < age_limit;
                    (Some(req), resp, keep_alive)
                }
                Incoming::Invalid(r) => {
                    (None, Response::error(r.status, "bad_request", r.reason).because(r.reason), false)
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
            let sent = self.answer(shared, req.as_ref(), &resp, keep_alive, started);
            self.cx.mark_served();
            if !sent || !keep_alive || shared.shutting_down.load(Ordering::SeqCst) {
                // Its last answer is written (or cannot be): from here on the connection is
                // only being torn down, and no longer holds one of its client's slots.
                let _ = self.cx.enter(Phase::Busy, Phase::Closing);
                return;
            }
        }
    }

    fn stream(&mut self) -> rustls::Stream<'_, rustls::ServerConnection, Deadlined<'t>> {
        rustls::Stream::new(&mut self.conn, &mut self.sock)
    }

    /// Writes `resp` and logs the request line; false if it could not be sent.
    fn answer(
        &mut self,
        shared: &Shared,
        req: Option<&http::Request>,
        resp: &Response,
        keep_alive: bool,
        started: Instant,
    ) -> bool {
        let head_only = req.is_some_and(|r| r.method == "HEAD");
        let bytes = resp.to_bytes(head_only, keep_alive);
        self.sock.deadline = Instant::now() + shared.limits.idle_timeout;
        let mut stream = self.stream();
        let sent = stream.write_all(&bytes).and_then(|()| stream.flush()).is_ok();
        let body_bytes = if head_only || !sent { 0 } else { resp.body.len() };
        shared.metrics.request(req.map(|r| r.path.as_str()), resp.status);
        log::emit(&log::RequestLine {
            event: "request",
            time: log::now(),
            peer: self.cx.peer.clone(),
            subject: &self.client.id.subject,
            fingerprint: &self.client.id.fingerprint,
            tls: self.client.tls_version,
            method: req.map_or("-", |r| r.method.as_str()),
            path: req.map_or("-", |r| r.path.as_str()),
            status: resp.status,
            bytes: body_bytes,
            duration_ms: (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            reason: resp.reason.as_deref(),
        });
        sent
    }

    /// Refuses the client right after its handshake: its first request, if it comes within
    /// [`REFUSED_GRACE`], is answered with `refusal`; then the connection is closed. Until
    /// then it is the first to give way when a slot is needed.
    fn refuse(&mut self, shared: &Shared, refusal: Response, code: &'static str) {
        if !self.cx.enter(Phase::Fresh, Phase::Closing) {
            return;
        }
        self.sock.deadline = Instant::now() + REFUSED_GRACE;
        let started = Instant::now();
        let mut buf = Vec::new();
        match http::read_request(&mut self.stream(), &mut buf) {
            Incoming::Request(req) => {
                self.answer(shared, Some(&req), &refusal, false, started);
            }
            _ => Event::new("connection_closed")
                .peer(&self.cx.peer)
                .client(&self.client.id)
                .reason(format!("{}; closed after the handshake", refusal.reason.as_deref().unwrap_or("refused")))
                .code(code)
                .emit(),
        }
    }

    /// Says goodbye properly (best effort).
    fn close(&mut self) {
        self.conn.send_close_notify();
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut self.sock).is_err() {
                break;
            }
        }
    }
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

/// The answer to one well-formed request from a verified, allowed client.
fn respond(shared: &Shared, req: &http::Request) -> Response {
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
            // The client is told why without the server's paths; the log has them.
            State::Unavailable { reason, detail, .. } => {
                Response::error(503, "token_unavailable", &reason).header("Retry-After", "30").because(detail)
            }
        },
        Route::Health => health(&shared.token),
    }
}

/// The health answer: 200 with the token's expiry when a token can be served, else 503 with
/// why. Served at /healthz over mutual TLS and on the metrics listener (plain HTTP, for
/// kubelet probes and load-balancer health checks). Never the token.
fn health(token: &TokenSource) -> Response {
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
        State::Unavailable { reason, detail, expires_at, .. } => Response::json(
            503,
            &Health {
                status: "unavailable",
                expires_at,
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
