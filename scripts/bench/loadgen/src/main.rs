//! wif-loadgen: a small mTLS load generator for wif's server benchmarks.
//!
//! `--mode new` makes a full TLS handshake (resumption disabled, client certificate) for every
//! request, which is what a fleet of `wif-get` cron jobs does to `wif-serve`; most HTTP load tools
//! resume sessions and so measure something cheaper. `--mode keepalive` sends many requests per
//! connection. The result is one JSON line on stdout.
//!
//! Blocking threads, one per concurrent connection: the load generator runs on its own core, and
//! the cost it must keep low is per handshake, not per thread.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{aws_lc_rs, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde::Serialize;
use wif_loadgen::{
    find, parse_duration, parse_url, percentile, proc_usage, read_pem_certs, round3, servers_cpu, CachingVerifier,
    Target,
};

/// Command-line options.
#[derive(Parser, Debug)]
#[command(name = "wif-loadgen", version, about = "mTLS load generator: full handshakes or keep-alive requests")]
struct Args {
    /// URL to GET, e.g. https://127.0.0.1:8443/get_wif_token
    #[arg(long)]
    url: String,
    /// Client certificate chain (PEM)
    #[arg(long)]
    cert: PathBuf,
    /// Client private key (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long)]
    key: PathBuf,
    /// CA certificates that sign the server's certificate (PEM)
    #[arg(long)]
    ca: PathBuf,
    /// `new`: a full handshake per request; `keepalive`: --requests-per-conn requests per connection
    #[arg(long, value_enum, default_value_t = Mode::New)]
    mode: Mode,
    /// Concurrent connections (one thread each)
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Measured time, e.g. 10, 10s, 500ms
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load before the measured time starts (not counted)
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Requests per connection in keep-alive mode (0 = unlimited)
    #[arg(long, default_value_t = 0)]
    requests_per_conn: u64,
    /// Offer only TLS 1.2
    #[arg(long, conflicts_with = "tls13")]
    tls12: bool,
    /// Offer only TLS 1.3 (the default offers both; servers pick 1.3)
    #[arg(long)]
    tls13: bool,
    /// Key-exchange group to offer
    #[arg(long, value_enum, default_value_t = Kx::X25519)]
    kx: Kx,
    /// Verify the server's certificate chain on every handshake (by default a chain that verified
    /// once is remembered; the server's per-handshake signature is always verified). Makes the
    /// client slower, not the server.
    #[arg(long)]
    full_verify: bool,
    /// Process ids of the server: their CPU time (utime+stime) over the measured time and peak
    /// RSS (VmHWM) are added to the result
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Connect/read/write time-out per operation
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    New,
    Keepalive,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Kx {
    X25519,
    P256,
    X25519mlkem768,
}

impl Kx {
    fn group(self) -> &'static dyn SupportedKxGroup {
        match self {
            Kx::X25519 => aws_lc_rs::kx_group::X25519,
            Kx::P256 => aws_lc_rs::kx_group::SECP256R1,
            Kx::X25519mlkem768 => aws_lc_rs::kx_group::X25519MLKEM768,
        }
    }
}

fn client_config(args: &Args) -> Result<Arc<ClientConfig>, String> {
    let mut provider = aws_lc_rs::default_provider();
    // P-256 is offered too (without a TLS 1.3 key share) because TLS 1.2 servers may only use a
    // P-256 certificate when the client lists the curve (RFC 8422 section 5.1); the chosen group
    // is first, so it is the one used.
    provider.kx_groups = vec![args.kx.group()];
    if args.kx != Kx::P256 {
        provider.kx_groups.push(aws_lc_rs::kx_group::SECP256R1);
    }
    let provider = Arc::new(provider);
    let versions: &[&rustls::SupportedProtocolVersion] = if args.tls12 {
        &[&rustls::version::TLS12]
    } else if args.tls13 {
        &[&rustls::version::TLS13]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let mut roots = RootCertStore::empty();
    for c in read_pem_certs(&args.ca)? {
        roots.add(c).map_err(|e| format!("{}: {e}", args.ca.display()))?;
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("building the server verifier: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> =
        if args.full_verify { inner } else { Arc::new(CachingVerifier { inner, verified: Mutex::new(Vec::new()) }) };
    let chain = read_pem_certs(&args.cert)?;
    let key = PrivateKeyDer::from_pem_file(&args.key).map_err(|e| format!("reading {}: {e}", args.key.display()))?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("client certificate: {e}"))?;
    config.resumption = Resumption::disabled();
    config.enable_sni = false; // an IP address has no SNI anyway; keeps hostnames and IPs alike
    Ok(Arc::new(config))
}

/// What a worker saw, in microseconds since the run's start.
#[derive(Default)]
struct Tally {
    /// (start, latency) of successful requests.
    requests: Vec<(u64, u32)>,
    /// Finish times of completed handshakes.
    handshakes: Vec<u64>,
    /// Times and messages of failures.
    errors: Vec<(u64, String)>,
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

struct Worker {
    config: Arc<ClientConfig>,
    target: Arc<Target>,
    server_name: ServerName<'static>,
    request: Arc<Vec<u8>>,
    mode: Mode,
    requests_per_conn: u64,
    timeout: Duration,
    start: Instant,
}

impl Worker {
    fn micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn connect(&self) -> io::Result<Tls> {
        let tcp = TcpStream::connect_timeout(&self.target.addr, self.timeout)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(self.timeout))?;
        tcp.set_write_timeout(Some(self.timeout))?;
        let conn = ClientConnection::new(self.config.clone(), self.server_name.clone()).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(tls)
    }

    fn run(&self, stop: &AtomicBool) -> Tally {
        let mut t = Tally::default();
        let mut buf = vec![0u8; 16 * 1024];
        while !stop.load(Ordering::Relaxed) {
            let began = self.micros();
            let mut tls = match self.connect() {
                Ok(s) => s,
                Err(e) => {
                    t.errors.push((self.micros(), format!("handshake: {e}")));
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            t.handshakes.push(self.micros());
            let mut sent = 0u64;
            let mut req_start = began;
            loop {
                match request(&mut tls, &self.request, &mut buf) {
                    Ok(keep) => {
                        let now = self.micros();
                        t.requests.push((req_start, (now - req_start).min(u32::MAX as u64) as u32));
                        sent += 1;
                        let more = self.mode == Mode::Keepalive
                            && keep
                            && (self.requests_per_conn == 0 || sent < self.requests_per_conn)
                            && !stop.load(Ordering::Relaxed);
                        if !more {
                            break;
                        }
                        req_start = now;
                    }
                    Err(e) => {
                        t.errors.push((self.micros(), format!("request: {e}")));
                        break;
                    }
                }
            }
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        t
    }
}

/// Sends one request and reads the whole response; returns whether the connection stays open.
fn request(tls: &mut Tls, req: &[u8], buf: &mut [u8]) -> io::Result<bool> {
    tls.write_all(req)?;
    tls.flush()?;
    let mut have = 0usize;
    let header_end = loop {
        if have == buf.len() {
            return Err(io::Error::other("response header larger than 16 KiB"));
        }
        let n = tls.read(&mut buf[have..])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response"));
        }
        have += n;
        if let Some(i) = find(&buf[..have], b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = std::str::from_utf8(&buf[..header_end]).map_err(|_| io::Error::other("response header is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let http10 = status_line.starts_with("HTTP/1.0");
    let mut length: Option<usize> = None;
    let mut close = http10;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close") || (http10 && !value.eq_ignore_ascii_case("keep-alive"));
        }
    }
    let mut body = have - header_end;
    match length {
        Some(len) => {
            while body < len {
                let n = tls.read(buf)?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-body"));
                }
                body += n;
            }
        }
        None => {
            // No length: the body ends when the server closes.
            loop {
                match tls.read(buf) {
                    Ok(0) => break,
                    Ok(n) => body += n,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            close = true;
        }
    }
    if status != 200 {
        return Err(io::Error::other(format!("HTTP status {status}")));
    }
    if body == 0 {
        return Err(io::Error::other("empty body"));
    }
    Ok(!close)
}

/// The JSON line on stdout.
#[derive(Serialize)]
struct Report {
    mode: Mode,
    tls: &'static str,
    kx: String,
    concurrency: usize,
    duration_s: f64,
    handshakes: u64,
    requests: u64,
    errors: u64,
    handshakes_per_s: f64,
    requests_per_s: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cpu_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cpu_ms_per_handshake: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cpu_ms_per_request: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_peak_rss_kib: Option<u64>,
}

fn run(args: Args) -> Result<Report, String> {
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let config = client_config(&args)?;
    let target = Arc::new(parse_url(&args.url)?);
    let server_name =
        ServerName::try_from(target.host.clone()).map_err(|e| format!("{}: bad server name: {e}", args.url))?;
    let connection = if args.mode == Mode::New { "close" } else { "keep-alive" };
    let request = Arc::new(
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: wif-loadgen\r\nConnection: {connection}\r\n\r\n",
            target.path, target.addr
        )
        .into_bytes(),
    );
    // One handshake up front, so a wrong URL or certificate fails loudly instead of as a count.
    let probe = Worker {
        config: config.clone(),
        target: target.clone(),
        server_name: server_name.clone(),
        request: request.clone(),
        mode: Mode::New,
        requests_per_conn: 1,
        timeout: args.timeout,
        start: Instant::now(),
    };
    let mut tls = probe.connect().map_err(|e| format!("{}: handshake failed: {e}", args.url))?;
    request_once(&mut tls, &request).map_err(|e| format!("{}: first request failed: {e}", args.url))?;
    drop(tls);

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let w = Worker {
            config: config.clone(),
            target: target.clone(),
            server_name: server_name.clone(),
            request: request.clone(),
            mode: args.mode,
            requests_per_conn: args.requests_per_conn,
            timeout: args.timeout,
            start,
        };
        let stop = stop.clone();
        let h = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || w.run(&stop))
            .map_err(|e| format!("starting a worker thread: {e}"))?;
        handles.push(h);
    }
    std::thread::sleep(args.warmup);
    let t0 = start.elapsed().as_micros() as u64;
    let cpu0 = servers_cpu(&args.server_pid);
    std::thread::sleep(args.duration);
    let t1 = start.elapsed().as_micros() as u64;
    let cpu1 = servers_cpu(&args.server_pid);
    stop.store(true, Ordering::Relaxed);

    let mut latencies = Vec::new();
    let (mut handshakes, mut errors, mut first_error) = (0u64, 0u64, None);
    for h in handles {
        let t = h.join().map_err(|_| "a worker thread panicked".to_string())?;
        latencies.extend(t.requests.iter().filter(|(s, l)| *s >= t0 && s + *l as u64 <= t1).map(|(_, l)| *l));
        handshakes += t.handshakes.iter().filter(|&&f| f >= t0 && f <= t1).count() as u64;
        for (at, msg) in t.errors {
            if at >= t0 && at <= t1 {
                errors += 1;
                first_error.get_or_insert(msg);
            }
        }
    }
    latencies.sort_unstable();
    let secs = (t1 - t0) as f64 / 1e6;
    let requests = latencies.len() as u64;
    let (cpu, rss) = if args.server_pid.is_empty() {
        (None, None)
    } else {
        let rss = args.server_pid.iter().filter_map(|p| proc_usage(*p)).map(|(_, r)| r).sum();
        (Some(cpu1 - cpu0), Some(rss))
    };
    let per = |n: u64| cpu.filter(|_| n > 0).map(|c| round3(c * 1000.0 / n as f64));
    Ok(Report {
        mode: args.mode,
        tls: if args.tls12 {
            "1.2"
        } else if args.tls13 {
            "1.3"
        } else {
            "default"
        },
        kx: format!("{:?}", args.kx).to_lowercase(),
        concurrency: args.concurrency,
        duration_s: round3(secs),
        handshakes,
        requests,
        errors,
        handshakes_per_s: round3(handshakes as f64 / secs),
        requests_per_s: round3(requests as f64 / secs),
        p50_ms: round3(percentile(&latencies, 0.50)),
        p90_ms: round3(percentile(&latencies, 0.90)),
        p99_ms: round3(percentile(&latencies, 0.99)),
        max_ms: round3(latencies.last().copied().unwrap_or(0) as f64 / 1000.0),
        first_error,
        server_cpu_s: cpu.map(round3),
        server_cpu_ms_per_handshake: per(handshakes),
        server_cpu_ms_per_request: per(requests),
        server_peak_rss_kib: rss,
    })
}

fn request_once(tls: &mut Tls, req: &[u8]) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    request(tls, req, &mut buf).map(|_| ())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wif-loadgen: writing the report: {e}");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            eprintln!("wif-loadgen: {e}");
            ExitCode::from(1)
        }
    }
}
