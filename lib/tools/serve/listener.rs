//! wif-serve's listeners: binding, the accept loop, signals, reloads and the graceful stop.

use super::bearer::Bearer;
use super::broker::Broker;
use super::conns::Table;
use super::handshake::Owed;
use super::ledger::Ledger;
use super::log::{self, Event};
use super::metrics::{self, Metrics};
use super::options::Options;
use super::policy::DEFAULT_SOURCE;
use super::routes::{health, TOKEN_PATH};
use super::session::serve_connection;
use super::shared::{ConnGuard, Shared};
use super::tls;
use super::token::TokenSource;
use crate::core::error::{Error, Kind, Result};
use crate::server::workers::Workers;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Binds the address given to `flag`, with a clear message (and a hint) when it is taken.
fn bind(listen: &str, flag: &str) -> Result<TcpListener> {
    let addrs = crate::server::bind::resolve(listen, flag)?;
    crate::server::bind(&addrs, flag, |addr, e| {
        Error::io(std::path::Path::new(&addr.to_string()), e).context(format!("listening ({flag})"))
    })
}

/// The URL clients use for the bound address.
fn token_url(addr: &SocketAddr) -> String {
    format!("https://{}{}", host_port(addr), TOKEN_PATH)
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

/// The stack of a connection's thread.
const CONN_STACK: usize = 512 * 1024;

/// How long a connection's thread waits for the next connection before it ends.
const WORKER_IDLE: Duration = Duration::from_secs(30);

/// Threads beyond `--max-connections` for connections being torn down.
const WORKER_MARGIN: usize = 4;

/// Runs the server until SIGTERM/SIGINT.
pub fn run(opts: Options) -> Result<()> {
    let tls = tls::TlsSource::load(opts.tls.clone())?;
    // The issuers first: the allow-list and the policy name them.
    let bearer = match &opts.bearer_issuers {
        Some(path) => Some(Bearer::load(path)?),
        None => None,
    };
    let known = bearer.as_ref().map(Bearer::known_issuers);
    let issuers: Option<Vec<String>> = known.as_ref().map(|k| k.iter().map(|i| i.name.clone()).collect());
    let names: Vec<&str> = issuers.iter().flatten().map(String::as_str).collect();
    opts.allow.check_issuers(&names)?;
    let ledger = match (&opts.ledger, opts.policy.is_some()) {
        (Some(file), _) => Ledger::open(file)?,
        (None, true) => Ledger::Stdout,
        (None, false) => Ledger::Off,
    };
    let policy = match &opts.policy {
        Some(p) => Some((p.file.clone(), p.downscoper()?)),
        None => None,
    };
    let broker = Broker::new(opts.token.clone(), opts.assume_ttl, policy, known.unwrap_or_default(), ledger)?;
    for (name, source) in broker.sources_at_start() {
        let flag = if name == DEFAULT_SOURCE && opts.token.is_some() {
            "--token".to_string()
        } else {
            format!("token source {name} of --policy")
        };
        check_token_at_start(source.path(), &source, &flag)?;
    }
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
        broker,
        allow: opts.allow.clone(),
        limits: opts.limits,
        shutting_down: AtomicBool::new(false),
        conns: Table::default(),
        metrics: Metrics::new(issuers),
        bearer,
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
            shared.broker.refresh(false);
            if let Some(b) = &shared.bearer {
                b.tick();
            }
        }
    })?;
    let metrics_address = match metrics_listener {
        Some((l, a)) => {
            let shared = shared.clone();
            let started = crate::core::clock::now_unix();
            spawn_named("metrics", move || {
                let render = || {
                    let jwks = shared.bearer.as_ref().map(Bearer::stats).unwrap_or_default();
                    shared.metrics.render(shared.open_connections(), &shared.broker, started, &jwks)
                };
                metrics::serve(l, &shared.metrics, render, || health(&shared.broker))
            })?;
            Some(a)
        }
        None => None,
    };
    let url = token_url(&local);
    log::listening(&log::Listening {
        event: "listening",
        address: local.to_string(),
        url: &url,
        metrics_address: metrics_address.map(|a| a.to_string()),
        metrics_url: metrics_address.map(|a| http_url(&a, metrics::METRICS_PATH)),
    });
    shared.broker.log_loaded();

    // Connections past the limit are refused on accept; the margin is for threads still
    // tearing down a connection that has left the table.
    let workers = Workers::new("conn", CONN_STACK, WORKER_IDLE, opts.limits.max_connections + WORKER_MARGIN);
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
        let arrival = Owed::new(&shared, &cx);
        if let Err(e) = workers.run(Box::new(move || serve_connection(stream, built, cx, guard, arrival))) {
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
fn check_token_at_start(token: &std::path::Path, source: &TokenSource, flag: &str) -> Result<()> {
    use crate::core::files::{Part, Stored};
    // Opened only once it is known to be a regular file: opening a FIFO would block.
    if std::fs::metadata(token).is_ok_and(|m| m.is_file()) {
        if let Err(e) = std::fs::File::open(token) {
            let err = Error::io(token, &e).context(format!("opening the token file ({flag})"));
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
            shared.broker.invalidate_sources();
            shared.broker.refresh(true);
            log_tls_reload(&shared.metrics, shared.tls.reload(), "SIGHUP");
            if let Some(b) = &shared.bearer {
                b.reload();
            }
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
