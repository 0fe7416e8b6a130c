//! `wif-emulate`: an offline emulator of Azure AD (v1/v2 token endpoints, discovery, JWKS,
//! IMDS), other OIDC issuers, Kubernetes and GitHub Actions token issuers, Google STS (with downscoping), IAM Credentials and a Cloud
//! Storage subset that checks what it receives as strictly as the real services and answers
//! in their formats, for demos, tests and CI.

pub mod azure;
pub mod bearer_config;
pub mod boundary;
pub mod cel;
pub mod config;
pub mod downscope;
pub mod errors;
pub mod faults;
pub mod github;
pub mod iam;
pub mod issuer;
pub mod keys;
pub mod keyset;
pub mod kubernetes;
pub mod mtls;
mod routes;
pub mod server;
pub mod state;
pub mod storage;
pub mod sts;
mod sts_x509;
pub mod trust;
pub mod x509;

pub use state::State;

use crate::cli;
use crate::core::error::{Error, Kind, Result};
use crate::core::help::Example;
use clap::Parser;
use config::Config;
use serde_json::json;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

const TOOL: &str = "wif-emulate";

/// What the manual page says beyond the flags.
pub const PAGE: crate::core::help::Page =
    crate::core::help::Page { examples: EXAMPLES, files: FILES, environment: &[] };

/// The files of the manual page.
const FILES: &[(&str, &str)] = &[(
    "emulator.json",
    "the emulator configuration given with --config: tenant, apps and certificates, issuers, Kubernetes and GitHub Actions issuers, pools, providers, service accounts, Cloud Storage buckets with their objects and IAM bindings (wif-emulate --print-example-config; docs/EMULATOR.md)",
)];

/// Examples shown in --help and the manual page.
pub const EXAMPLES: &[Example] = &[
    Example {
        about: "Start the emulator with the example configuration (certificates under pki/)",
        cmd: "wif-emulate --print-example-config > emulator.json && scripts/gen-test-pki.sh pki && wif-emulate --config emulator.json --listen 127.0.0.1:8080",
    },
    Example {
        about: "Run the whole pipeline against it",
        cmd: "wif-sign --authority http://127.0.0.1:8080 --tenant-id 7a1c9e4b-0d2f-4c3a-9b8e-1f2a3b4c5d6e --client-id 0b6f3d2a-5c4e-4f1a-8e7d-9a0b1c2d3e4f --key pki/app-rsa.key --cert pki/app-rsa.crt | wif-azure --scope api://wif-gcp/.default | wif-sts --token-url http://127.0.0.1:8080/v1/token --audience //iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/wif-pool/providers/azure | wif-impersonate --endpoint http://127.0.0.1:8080 --service-account wif-demo@wif-demo.iam.gserviceaccount.com --token-out wif_token.txt",
    },
    Example {
        about: "Also listen with TLS (MSAL accepts only https:// authorities)",
        cmd: "wif-emulate --config emulator.json --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --tls-cert pki/server-chain.crt --tls-key pki/server.key",
    },
    Example {
        about: "Get a Kubernetes service-account token for batch/report from the example's issuer prod",
        cmd: "curl -s -H 'Content-Type: application/json' -d '{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenRequest\",\"spec\":{\"audiences\":[\"wif-serve\"],\"expirationSeconds\":3600}}' http://127.0.0.1:8080/k8s/prod/api/v1/namespaces/batch/serviceaccounts/report/token",
    },
    Example {
        about: "Test retries: the first two requests fail with 503",
        cmd: "wif-emulate --config emulator.json --fail-first 2",
    },
    Example {
        about: "Test failover: Azure AD is down, the first X.509 exchange is refused; the clock runs 10 minutes ahead",
        cmd: "wif-emulate --config emulator.json --fault azure=unavailable --fault sts-x509=refused:1 --clock-offset 10m",
    },
];

/// Command line of wif-emulate.
#[derive(Parser, Debug)]
#[command(
    name = "wif-emulate",
    version,
    about = "Offline emulator of Azure AD, Google STS, IAM Credentials and Cloud Storage for demos, tests and CI",
    long_about = "An offline emulator of the services the wif pipeline talks to: Azure AD (v2 and v1 token endpoints, \
OIDC discovery, JWKS, IMDS), other OAuth/OIDC issuers (jwt-bearer, client credentials with an audience), Kubernetes \
service-account token issuers (the TokenRequest API, issuer discovery, JWKS), GitHub Actions OIDC token issuers (the \
id-token endpoint a job calls, discovery, JWKS), Google STS \
(/v1/token, with downscoping by Credential Access Boundaries), IAM Credentials (generateAccessToken, \
generateIdToken) and a Cloud Storage JSON API subset (list objects, object metadata and media) that enforces \
bucket IAM bindings and the tokens' access boundaries.\n\n\
It verifies what it receives as strictly as the real services (assertion signatures against registered \
certificates, thumbprints, audiences, time windows, jti replay, scopes, provider issuer/audience/attribute \
condition, impersonation bindings, lifetimes, access boundaries) and answers in their formats and status codes, so the official \
client libraries work against it and every refusal can be tested.\n\n\
On start it prints one JSON line {\"event\":\"listening\",\"address\",\"url\"[,\"tls_url\"]} on stdout, then one \
JSON line per request (never a token). SIGTERM or SIGINT stop it. See docs/EMULATOR.md for the configuration.\n\n\
Each Kubernetes and GitHub issuer signs with its own key; POST /_emulator/rotate/{kubernetes|github}/NAME[?retire=true] \
(the emulator's own control, not a real API) makes a new key sign from then on, published first in the JWKS beside \
the old ones until retired.",
    after_help = crate::core::help::after_help("wif-emulate", EXAMPLES)
)]
pub struct Cli {
    /// Emulator configuration (JSON; see --print-example-config)
    #[arg(long, value_name = "FILE", required_unless_present = "print_example_config")]
    pub config: Option<PathBuf>,
    /// Plain HTTP listen address (loopback) [default: 127.0.0.1:0, a free port]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Also listen with TLS on this address (needs --tls-cert and --tls-key)
    #[arg(long, value_name = "ADDR:PORT", requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<String>,
    /// TLS certificate chain (PEM) for --tls-listen
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for --tls-listen
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Allow listening on addresses other than loopback
    #[arg(long)]
    pub allow_remote: bool,
    /// Fault injection: answer the first N requests with 503 and Retry-After
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub fail_first: u64,
    /// Fault injection: wait this long before answering each request, e.g. 2s
    #[arg(long, value_name = "DURATION")]
    pub delay: Option<String>,
    /// Fault injection per service: SERVICE=KIND[:N], SERVICE azure, issuer, sts, sts-x509, iam,
    /// storage, kubernetes or github; KIND unavailable (503, Retry-After: 1), refused (the service's own refusal)
    /// or reset (the connection closed unanswered); :N only the first N requests (repeatable)
    #[arg(long, value_name = "SERVICE=KIND[:N]")]
    pub fault: Vec<String>,
    /// Run the emulator's clock this far ahead of the machine's (negative: behind), e.g. 10m
    /// or -10m: every time check, issued timestamp and Date header follows it
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub clock_offset: Option<String>,
    /// Lifetime of every issued token, e.g. 30s (overrides the config's token_lifetime)
    #[arg(long, value_name = "DURATION")]
    pub token_lifetime: Option<String>,
    /// Print an example configuration and exit
    #[arg(long)]
    pub print_example_config: bool,
}

/// Entry point of wif-emulate.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::run(TOOL, || run(&cli))
}

/// Binds `addr`, given with `flag`: loopback only unless `allow_remote`.
fn bind(addr: &str, flag: &str, allow_remote: bool) -> Result<TcpListener> {
    let sock: std::net::SocketAddr =
        addr.parse().map_err(|_| Error::usage(format!("{addr:?} is not an ADDRESS:PORT like 127.0.0.1:8080")))?;
    if !sock.ip().is_loopback() && !allow_remote {
        return Err(Error::usage(format!("{addr} is not a loopback address"))
            .hint("the emulator is for tests and demos on this machine; add --allow-remote to listen elsewhere"));
    }
    crate::server::bind(&[sock], flag, |_, e| Error::new(Kind::Io, format!("cannot listen on {addr}: {e}")))
}

/// A signed duration in seconds: `10m`, `+10m`, `-10m`.
fn parse_offset(text: &str) -> Result<i64> {
    let t = text.trim();
    let (sign, magnitude) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let secs: i64 = crate::core::clock::parse_duration(magnitude)
        .map_err(|e| e.context("--clock-offset"))?
        .as_secs()
        .try_into()
        .map_err(|_| Error::usage(format!("--clock-offset {text:?} is too large")))?;
    Ok(sign * secs)
}

/// Starts the listeners and serves until SIGTERM/SIGINT.
pub fn run(cli: &Cli) -> Result<()> {
    if cli.print_example_config {
        return cli::write_stdout(config::EXAMPLE.as_bytes());
    }
    let path = cli.config.clone().ok_or_else(|| Error::usage("--config is required"))?;
    let config = Config::load(&path)?;
    let lifetime = match &cli.token_lifetime {
        Some(l) => {
            let secs = crate::core::clock::parse_duration(l)?.as_secs() as i64;
            if secs < 1 {
                return Err(Error::usage("--token-lifetime must be at least 1s"));
            }
            Some(secs)
        }
        None => None,
    };
    let delay = match &cli.delay {
        Some(d) => crate::core::clock::parse_duration(d)?,
        None => Duration::ZERO,
    };
    let plain = bind(cli.listen.as_deref().unwrap_or("127.0.0.1:0"), "--listen", cli.allow_remote)?;
    let tls = match (&cli.tls_listen, &cli.tls_cert, &cli.tls_key) {
        (Some(addr), Some(cert), Some(key)) => Some((
            bind(addr, "--tls-listen", cli.allow_remote)?,
            server::tls_config(cert, key).map_err(|e| e.context("loading the TLS certificate and key"))?,
        )),
        _ => None,
    };
    let offset = cli.clock_offset.as_deref().map(parse_offset).transpose()?.unwrap_or(0);
    let faults = faults::Faults::parse(&cli.fault)?;
    let state =
        Arc::new(State::new(config, lifetime, cli.fail_first, delay)?.with_clock_offset(offset).with_faults(faults));
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| Error::new(Kind::Internal, format!("installing the signal handler: {e}")))?;
    }
    let addr = plain.local_addr().map_err(|e| Error::new(Kind::Io, e.to_string()))?;
    let mut start = json!({"event": "listening", "address": addr.to_string(), "url": format!("http://{addr}")});
    let mut tls_thread = None;
    if let Some((listener, cfg)) = tls {
        let taddr = listener.local_addr().map_err(|e| Error::new(Kind::Io, e.to_string()))?;
        start["tls_address"] = json!(taddr.to_string());
        start["tls_url"] = json!(format!("https://{taddr}"));
        let (state, stop) = (state.clone(), stop.clone());
        tls_thread = Some(std::thread::spawn(move || server::accept_loop(listener, Some(cfg), state, stop)));
    }
    start["kid"] = json!(state.signer.kid);
    server::emit(&start);
    server::accept_loop(plain, None, state, stop)?;
    if let Some(t) = tls_thread {
        let _ = t.join();
    }
    server::emit(&json!({"event": "stopped", "time": crate::core::clock::rfc3339(crate::core::clock::now_unix())}));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_offsets_are_signed() {
        assert_eq!(super::parse_offset("10m").unwrap(), 600);
        assert_eq!(super::parse_offset("+1h").unwrap(), 3600);
        assert_eq!(super::parse_offset("-10m").unwrap(), -600);
        assert!(super::parse_offset("-soon").is_err());
    }
}
