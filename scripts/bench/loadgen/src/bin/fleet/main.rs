//! wif-fleet: a fleet of token clients against a real wif-serve, in compressed time.
//!
//! N simulated clients (one small thread each, one shared rustls `ClientConfig`) hold the
//! same token after a rotation, as every host of a fleet does once its cron jobs or metadata
//! servers fetched it. Each plans its refresh with the metadata server's rule
//! (`wif::core::spread::window`, at a fresh random point per token, or at the margin with
//! `--spread off`), fetches the token again over a new mutual-TLS connection, retries as
//! wif-get does (503 `overloaded` and other 5xx after Retry-After, connection failures with
//! its backoff; real seconds), and plans again. Meanwhile wif-fleet rotates the server's
//! token file like the pipeline does (`--rotate`). Token lifetimes, the refresh window and
//! --min-ttl are in simulated time (`--speed 60`: one real second is one simulated minute).
//!
//! The result is one JSON object on stdout: arrivals per 100 ms (every connection attempt,
//! first attempts, shed answers), the peak arrival rate, latency percentiles from the planned
//! moment to the token in hand (retries included), shed and other retried answers, failed
//! fetches and how many clients ever held an expired token.

mod client;
mod fetch;
mod rotate;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::{ClientConfig, RootCertStore};
use serde::Serialize;
use wif::core::spread::Spread;
use wif_loadgen::{
    parse_duration, parse_url, percentile, proc_usage, read_pem_certs, round3, servers_cpu, CachingVerifier,
};

use client::{Rules, SimClock, Tally, BIN_MS};
use fetch::{Fetcher, Outcome};
use rotate::Rotator;

/// Command-line options.
#[derive(Parser, Debug)]
#[command(name = "wif-fleet", version, about = "A fleet of token clients against wif-serve, in compressed time")]
struct Args {
    /// The token URL, e.g. https://127.0.0.1:8443/get_wif_token
    #[arg(long)]
    url: String,
    /// Client certificate chain (PEM), shared by every simulated client
    #[arg(long)]
    cert: PathBuf,
    /// Client private key (PEM)
    #[arg(long)]
    key: PathBuf,
    /// CA certificates that sign the server's certificate (PEM)
    #[arg(long)]
    ca: PathBuf,
    /// The server's token file (--token of wif-serve): wif-fleet writes it and its metadata
    /// like the pipeline does, a new token every --rotate-every
    #[arg(long)]
    rotate: PathBuf,
    /// Simulated clients
    #[arg(long, default_value_t = 5000)]
    clients: usize,
    /// Simulated seconds per real second
    #[arg(long, default_value_t = 60.0)]
    speed: f64,
    /// How refreshes are spread: auto, off, or a duration (wif-get's --spread)
    #[arg(long, default_value = "auto")]
    spread: String,
    /// Simulated lifetime of each token
    #[arg(long, default_value = "60m")]
    token_life: String,
    /// Simulated time between two rotations of the server's token [default: half the token life]
    #[arg(long)]
    rotate_every: Option<String>,
    /// wif-get's --min-ttl, simulated
    #[arg(long, default_value = "5m")]
    min_ttl: String,
    /// Simulated time over which clients keep refreshing
    #[arg(long, default_value = "120m")]
    duration: String,
    /// wif-get's --retries: attempts after the first, per fetch
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Time-out per connect, read and write, real (wif-get's --timeout)
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Process ids of the server: its CPU time over the run and peak RSS go in the result
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
}

/// Latency percentiles, milliseconds.
#[derive(Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

/// The JSON object on stdout.
#[derive(Serialize)]
struct Report {
    clients: usize,
    speed: f64,
    spread: String,
    token_life_s: f64,
    rotate_every_s: f64,
    min_ttl_s: i64,
    sim_duration_s: f64,
    real_duration_s: f64,
    rotations: u64,
    fetches: u64,
    first_try: u64,
    attempts: u64,
    retries: u64,
    shed_503: u64,
    other_retried: u64,
    refused: u64,
    connection_errors: u64,
    failed_fetches: u64,
    stranded_clients: u64,
    expired_held: u64,
    latency_ms: Latency,
    bin_ms: f64,
    arrivals: Vec<u32>,
    planned: Vec<u32>,
    shed: Vec<u32>,
    peak_arrivals_per_s: u32,
    peak_planned_per_s: u32,
    peak_arrivals_per_100ms: u32,
    client_cpu_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cpu_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_peak_rss_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

fn sim_seconds(text: &str, flag: &str) -> Result<f64, String> {
    wif::core::clock::parse_duration(text).map(|d| d.as_secs_f64()).map_err(|e| format!("{flag}: {e}"))
}

/// One config for every client: full handshakes (no resumption, as a fleet of fresh processes
/// makes), the client certificate, server chains remembered once verified.
fn client_config(args: &Args) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for c in read_pem_certs(&args.ca)? {
        roots.add(c).map_err(|e| format!("{}: {e}", args.ca.display()))?;
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("building the server verifier: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = Arc::new(CachingVerifier { inner, verified: Default::default() });
    let chain = read_pem_certs(&args.cert)?;
    let key = PrivateKeyDer::from_pem_file(&args.key).map_err(|e| format!("reading {}: {e}", args.key.display()))?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("client certificate: {e}"))?;
    config.resumption = Resumption::disabled();
    config.enable_sni = false;
    Ok(Arc::new(config))
}

/// Waits (up to 5 s) until the server serves the token that expires at `expires_at`.
fn await_token(fetcher: &Fetcher, expires_at: i64) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let outcome = fetcher.attempt();
        match outcome {
            Outcome::Token { expires_at: e } if e == expires_at => return Ok(()),
            _ if Instant::now() > until => {
                return Err(format!("{}: the server does not serve the new token: {outcome:?}", fetcher.target.path))
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Counts per bin.
fn histogram(bins: impl Iterator<Item = usize>, len: usize) -> Vec<u32> {
    let mut h = vec![0u32; len];
    for b in bins {
        if b < len {
            h[b] += 1;
        }
    }
    h
}

/// The largest sum over `width` consecutive bins.
fn peak(h: &[u32], width: usize) -> u32 {
    h.windows(width.min(h.len()).max(1)).map(|w| w.iter().sum()).max().unwrap_or(0)
}

/// CPU time (user + system) of this process so far, seconds.
fn own_cpu() -> f64 {
    proc_usage(std::process::id()).map(|(cpu, _)| cpu).unwrap_or(0.0)
}

fn run(args: Args) -> Result<Report, String> {
    if args.clients == 0 || !args.speed.is_finite() || args.speed <= 0.0 {
        return Err("--clients and --speed must be above 0".into());
    }
    let spread = Spread::parse(&args.spread, "--spread").map_err(|e| e.to_string())?;
    let life = sim_seconds(&args.token_life, "--token-life")?;
    let every = match &args.rotate_every {
        Some(t) => sim_seconds(t, "--rotate-every")?,
        None => life / 2.0,
    };
    let min_ttl = sim_seconds(&args.min_ttl, "--min-ttl")? as i64;
    let sim_duration = sim_seconds(&args.duration, "--duration")?;
    if every <= 0.0 || every >= life {
        return Err("--rotate-every must be above 0 and below --token-life".into());
    }
    let fetcher = Arc::new(Fetcher::new(client_config(&args)?, parse_url(&args.url)?, args.timeout)?);
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs_f64();
    let clock = Arc::new(SimClock { t0: unix, started: Instant::now(), speed: args.speed });
    let rotator = Arc::new(Rotator { path: args.rotate.clone(), every, life });
    // The rotation every client has just fetched the token of.
    let first_expiry = rotator.rotate(&clock)?;
    await_token(&fetcher, first_expiry)?;
    let rules = Arc::new(Rules { spread, min_ttl, retries: args.retries, end: clock.real(sim_duration) });
    let cpu0 = (own_cpu(), servers_cpu(&args.server_pid));

    let rotations = {
        let (rotator, clock, end) = (rotator.clone(), clock.clone(), rules.end);
        std::thread::spawn(move || rotator.run(&clock, end))
    };
    let mut handles = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let (fetcher, clock, rules) = (fetcher.clone(), clock.clone(), rules.clone());
        let h = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || client::run(&fetcher, &clock, &rules, first_expiry as f64))
            .map_err(|e| format!("starting client thread {}: {e}", handles.len() + 1))?;
        handles.push(h);
    }
    let tallies: Vec<Tally> = handles
        .into_iter()
        .map(|h| h.join().map_err(|_| "a client thread panicked".to_string()))
        .collect::<Result<_, _>>()?;
    let rotations = rotations.join().map_err(|_| "the rotator panicked".to_string())?;
    let real_duration = clock.started.elapsed().as_secs_f64();
    let cpu1 = (own_cpu(), servers_cpu(&args.server_pid));
    Ok(report(&args, tallies, rotations, real_duration, (cpu0, cpu1), (life, every, min_ttl, sim_duration)))
}

type Cpu = ((f64, f64), (f64, f64));

fn report(
    args: &Args,
    tallies: Vec<Tally>,
    rotations: u64,
    real_duration: f64,
    cpu: Cpu,
    (life, every, min_ttl, sim_duration): (f64, f64, i64, f64),
) -> Report {
    // The whole simulated time, even when the last refresh came before its end.
    let span = real_duration.max(sim_duration / args.speed);
    let bins = (span * 1000.0 / BIN_MS).ceil() as usize + 1;
    let sum = |f: fn(&Tally) -> u64| tallies.iter().map(f).sum::<u64>();
    let arrivals = histogram(tallies.iter().flat_map(|t| t.arrivals.iter().copied()), bins);
    let planned = histogram(tallies.iter().flat_map(|t| t.planned.iter().copied()), bins);
    let shed = histogram(tallies.iter().flat_map(|t| t.shed_at.iter().copied()), bins);
    let mut latencies: Vec<u32> = tallies.iter().flat_map(|t| t.latencies.iter().copied()).collect();
    latencies.sort_unstable();
    let per_s = (1000.0 / BIN_MS) as usize;
    let server = (!args.server_pid.is_empty()).then_some(());
    Report {
        clients: args.clients,
        speed: args.speed,
        spread: args.spread.clone(),
        token_life_s: life,
        rotate_every_s: every,
        min_ttl_s: min_ttl,
        sim_duration_s: sim_duration,
        real_duration_s: round3(real_duration),
        rotations: rotations + 1,
        fetches: sum(|t| t.fetches),
        first_try: sum(|t| t.first_try),
        attempts: sum(|t| t.arrivals.len() as u64),
        retries: sum(|t| t.retries),
        shed_503: sum(|t| t.shed),
        other_retried: sum(|t| t.busy),
        refused: sum(|t| t.refused),
        connection_errors: sum(|t| t.broken),
        failed_fetches: sum(|t| t.failed_fetches),
        stranded_clients: sum(|t| u64::from(t.stranded)),
        expired_held: sum(|t| u64::from(t.held_expired)),
        latency_ms: Latency {
            p50: round3(percentile(&latencies, 0.50)),
            p90: round3(percentile(&latencies, 0.90)),
            p99: round3(percentile(&latencies, 0.99)),
            max: round3(latencies.last().copied().unwrap_or(0) as f64 / 1000.0),
        },
        bin_ms: BIN_MS,
        peak_arrivals_per_s: peak(&arrivals, per_s),
        peak_planned_per_s: peak(&planned, per_s),
        peak_arrivals_per_100ms: peak(&arrivals, 1),
        arrivals,
        planned,
        shed,
        client_cpu_s: round3(cpu.1 .0 - cpu.0 .0),
        server_cpu_s: server.map(|_| round3(cpu.1 .1 - cpu.0 .1)),
        server_peak_rss_kib: server
            .map(|_| args.server_pid.iter().filter_map(|p| proc_usage(*p)).map(|(_, r)| r).sum()),
        first_error: tallies.iter().find_map(|t| t.first_error.clone()),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).and_then(|r| serde_json::to_string(&r).map_err(|e| format!("writing the report: {e}"))) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wif-fleet: {e}");
            ExitCode::from(1)
        }
    }
}
