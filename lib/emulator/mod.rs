//! `wif-emulate`: an offline emulator of Azure AD (v1/v2 token endpoints, discovery, JWKS,
//! IMDS), other OIDC issuers, Google STS and IAM Credentials that checks what it receives
//! as strictly as the real services and answers in their formats, for demos, tests and CI.

pub mod azure;
pub mod cel;
pub mod config;
pub mod errors;
pub mod iam;
pub mod issuer;
pub mod keys;
pub mod server;
pub mod sts;

use crate::cli;
use crate::core::error::{Error, Kind, Result};
use crate::core::help::Example;
use clap::Parser;
use config::Config;
use serde_json::json;
use server::{Req, Resp};
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOOL: &str = "wif-emulate";

/// What the manual page says beyond the flags.
pub const PAGE: crate::core::help::Page = crate::core::help::Page { examples: EXAMPLES, files: FILES };

/// The files of the manual page.
const FILES: &[(&str, &str)] = &[(
    "emulator.json",
    "the emulator configuration given with --config: tenant, apps and certificates, issuers, pools, providers, service accounts (wif-emulate --print-example-config; docs/EMULATOR.md)",
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
        about: "Test retries: the first two requests fail with 503",
        cmd: "wif-emulate --config emulator.json --fail-first 2",
    },
];

/// Command line of wif-emulate.
#[derive(Parser, Debug)]
#[command(
    name = "wif-emulate",
    version,
    about = "Offline emulator of Azure AD, Google STS and IAM Credentials for demos, tests and CI",
    long_about = "An offline emulator of the services the wif pipeline talks to: Azure AD (v2 and v1 token endpoints, \
OIDC discovery, JWKS, IMDS), other OAuth/OIDC issuers (jwt-bearer, client credentials with an audience), Google STS \
(/v1/token) and IAM Credentials (generateAccessToken, generateIdToken).\n\n\
It verifies what it receives as strictly as the real services (assertion signatures against registered \
certificates, thumbprints, audiences, time windows, jti replay, scopes, provider issuer/audience/attribute \
condition, impersonation bindings, lifetimes) and answers in their formats and status codes, so the official \
client libraries work against it and every refusal can be tested.\n\n\
On start it prints one JSON line {\"event\":\"listening\",\"address\",\"url\"[,\"tls_url\"]} on stdout, then one \
JSON line per request (never a token). SIGTERM or SIGINT stop it. See docs/EMULATOR.md for the configuration.",
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
    /// Lifetime of every issued token, e.g. 30s (overrides the config's token_lifetime)
    #[arg(long, value_name = "DURATION")]
    pub token_lifetime: Option<String>,
    /// Print an example configuration and exit
    #[arg(long)]
    pub print_example_config: bool,
}

/// Everything the handlers share.
pub struct State {
    /// The configuration.
    pub config: Config,
    /// The signing key.
    pub signer: keys::Signer,
    /// Lifetime of issued tokens, seconds.
    pub token_lifetime: i64,
    jtis: Mutex<HashMap<String, i64>>,
    /// Federated tokens issued by STS, by token.
    pub federated: Mutex<HashMap<String, sts::FederatedToken>>,
    fail_left: AtomicU64,
    delay: Duration,
}

impl State {
    /// A state for a configuration.
    pub fn new(config: Config, token_lifetime: Option<i64>, fail_first: u64, delay: Duration) -> Result<State> {
        let lifetime = token_lifetime.unwrap_or_else(|| config.token_lifetime());
        Ok(State {
            signer: keys::Signer::generate()?,
            token_lifetime: lifetime,
            config,
            jtis: Mutex::new(HashMap::new()),
            federated: Mutex::new(HashMap::new()),
            fail_left: AtomicU64::new(fail_first),
            delay,
        })
    }

    /// Records a client assertion's `jti`; false if it was seen before (a replay).
    pub fn fresh_jti(&self, scope: &str, jti: &str, exp: i64) -> bool {
        if !self.config.reject_replayed_assertions {
            return true;
        }
        let now = crate::core::clock::now_unix();
        let Ok(mut seen) = self.jtis.lock() else { return false };
        seen.retain(|_, e| *e + 600 > now);
        seen.insert(format!("{scope}\n{jti}"), exp).is_none()
    }

    /// Verifies a client assertion for the token endpoint `endpoint` and records its `jti`.
    pub fn client_assertion(
        &self,
        token: &str,
        certs: &[config::RegisteredCert],
        thumbprints: &[Vec<u8>],
        require_thumbprint: bool,
        client_id: &str,
        endpoint: &str,
    ) -> std::result::Result<(), keys::AssertionError> {
        let now = crate::core::clock::now_unix();
        let expect = keys::Expect {
            certs,
            thumbprints,
            require_thumbprint,
            client_id,
            audience: endpoint,
            now,
            skew: self.config.clock_skew(),
            max_lifetime: self.config.max_assertion_lifetime(),
        };
        let jws = keys::verify_assertion(token, &expect)?;
        let jti = jws.claims.get("jti").and_then(serde_json::Value::as_str).unwrap_or("");
        let exp = crate::core::jwt::numeric_claim(&jws.claims, "exp").unwrap_or(now);
        if !self.fresh_jti(endpoint, jti, exp) {
            return Err(keys::AssertionError::Replayed(jti.to_string()));
        }
        Ok(())
    }

    /// Answers one request (after any injected delay or failure).
    pub fn handle(&self, req: &Req) -> Resp {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        if self.fail_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return errors::unavailable();
        }
        self.route(req)
    }

    fn route(&self, req: &Req) -> Resp {
        let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        let post = |f: &dyn Fn() -> Resp| if req.method == "POST" { f() } else { errors::method_not_allowed("POST") };
        let get = |f: &dyn Fn() -> Resp| if req.method == "GET" { f() } else { errors::method_not_allowed("GET") };
        match segs.as_slice() {
            ["v1", "token"] => post(&|| sts::token(self, req)),
            ["v1", "projects", _, "serviceAccounts", rest] => post(&|| iam::handle(self, req, rest)),
            ["metadata", "identity", "oauth2", "token"] => get(&|| azure::imds(self, req)),
            ["issuers", name, "v1", "token"] => post(&|| issuer::token(self, req, name)),
            ["issuers", name, ".well-known", "openid-configuration"] => get(&|| issuer::discovery(self, req, name)),
            ["issuers", name, "jwks"] => get(&|| issuer::jwks(self, name)),
            ["common", "discovery", "instance"] => get(&|| azure::instance_discovery(self, req)),
            [tenant, "oauth2", "v2.0", "token"] => post(&|| azure::token(self, req, tenant, true)),
            [tenant, "oauth2", "token"] => post(&|| azure::token(self, req, tenant, false)),
            [tenant, "v2.0", ".well-known", "openid-configuration"] => {
                get(&|| azure::discovery(self, req, tenant, true))
            }
            [tenant, ".well-known", "openid-configuration"] => get(&|| azure::discovery(self, req, tenant, false)),
            [tenant, "discovery", "v2.0", "keys"] | [tenant, "discovery", "keys"] => get(&|| azure::jwks(self, tenant)),
            _ => errors::not_found(&req.path),
        }
    }

    /// Prints the request's log line.
    pub fn log_request(&self, req: &Req, resp: &Resp, took: Duration) {
        server::emit(&server::log_line(req, resp, took));
    }

    /// The JWKS of the emulator's key.
    pub fn jwks(&self) -> serde_json::Value {
        json!({ "keys": [self.signer.jwk()] })
    }
}

/// Entry point of wif-emulate.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::run(TOOL, || run(&cli))
}

fn bind(addr: &str, allow_remote: bool) -> Result<TcpListener> {
    let sock: std::net::SocketAddr =
        addr.parse().map_err(|_| Error::usage(format!("{addr:?} is not an ADDRESS:PORT like 127.0.0.1:8080")))?;
    if !sock.ip().is_loopback() && !allow_remote {
        return Err(Error::usage(format!("{addr} is not a loopback address"))
            .hint("the emulator is for tests and demos on this machine; add --allow-remote to listen elsewhere"));
    }
    TcpListener::bind(sock).map_err(|e| Error::new(Kind::Io, format!("cannot listen on {addr}: {e}")))
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
    let plain = bind(cli.listen.as_deref().unwrap_or("127.0.0.1:0"), cli.allow_remote)?;
    let tls = match (&cli.tls_listen, &cli.tls_cert, &cli.tls_key) {
        (Some(addr), Some(cert), Some(key)) => Some((
            bind(addr, cli.allow_remote)?,
            server::tls_config(cert, key).map_err(|e| e.context("loading the TLS certificate and key"))?,
        )),
        _ => None,
    };
    let state = Arc::new(State::new(config, lifetime, cli.fail_first, delay)?);
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
