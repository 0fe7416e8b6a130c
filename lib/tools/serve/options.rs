//! wif-serve's options, resolved from flags, environment, the document's config and --config.

use super::allow::AllowList;
use super::command::Cli;
use super::{tls, token};
use crate::core::error::{Error, Result};
use crate::core::settings::{key, Key, Settings};
use std::path::PathBuf;
use std::time::Duration;

/// Everything the server needs, resolved from flags, environment and config.
#[derive(Debug)]
pub struct Options {
    /// Where to listen.
    pub listen: String,
    /// TLS files.
    pub tls: tls::TlsFiles,
    /// The token file (`--token`); optional with a policy whose rules all name a source.
    pub token: Option<PathBuf>,
    /// The policy, and how to downscope for it.
    pub policy: Option<PolicyOptions>,
    /// The issuance ledger file.
    pub ledger: Option<PathBuf>,
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
    /// The trusted bearer-token issuers (`--bearer-issuers`); `None`: every client needs a certificate.
    pub bearer_issuers: Option<PathBuf>,
}

/// A duration setting: the flag, else the setting `key`, else `default` seconds; never 0.
fn duration(s: &Settings, flag: Option<String>, key: Key, name: &str, default: u64) -> Result<Duration> {
    s.duration_over_zero(flag, key, name, Some(name), Duration::from_secs(default))
}

impl Options {
    /// Resolves the options (flags > environment > document config > --config file).
    pub fn resolve(cli: &Cli, s: &Settings) -> Result<Options> {
        let allow = if cli.allow.is_empty() { s.list(key::ALLOW)? } else { cli.allow.clone() };
        let crls = if cli.crl.is_empty() {
            s.list(key::CRL)?.into_iter().map(PathBuf::from).collect()
        } else {
            cli.crl.clone()
        };
        let max_connections = s.pick_or(cli.max_connections, key::MAX_CONNECTIONS, 256)?;
        let max_per_client =
            s.pick_or(cli.max_connections_per_client, key::MAX_CONNECTIONS_PER_CLIENT, (max_connections / 4).max(1))?;
        let max_per_address = s.pick(cli.max_connections_per_address, key::MAX_CONNECTIONS_PER_ADDRESS)?;
        let max_handshake_queue =
            s.pick_or(cli.max_handshake_queue, key::MAX_HANDSHAKE_QUEUE, default_handshake_queue())?;
        for (n, flag) in [
            (Some(max_handshake_queue), "--max-handshake-queue"),
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
                key::HANDSHAKE_TIMEOUT,
                "--handshake-timeout",
                10,
            )?,
            idle_timeout: duration(s, cli.idle_timeout.clone(), key::IDLE_TIMEOUT, "--idle-timeout", 30)?,
            header_timeout: duration(s, cli.header_timeout.clone(), key::HEADER_TIMEOUT, "--header-timeout", 5)?,
            max_connection_age: duration(
                s,
                cli.max_connection_age.clone(),
                key::MAX_CONNECTION_AGE,
                "--max-connection-age",
                600,
            )?,
            max_connections,
            max_per_client,
            max_per_address,
            max_handshake_queue,
        };
        let bearer_issuers = s.pick::<PathBuf>(cli.bearer_issuers.clone(), key::SERVE_BEARER_ISSUERS)?;
        let policy = match s.pick::<PathBuf>(cli.policy.clone(), key::SERVE_POLICY)? {
            Some(file) => Some(PolicyOptions::resolve(cli, s, file)?),
            None => None,
        };
        Ok(Options {
            listen: s.require(cli.listen.clone(), key::LISTEN, "--listen")?,
            tls: tls::TlsFiles {
                cert: s.require(cli.cert.clone(), key::SERVE_CERT, "--cert")?,
                key: s.require(cli.key.clone(), key::SERVE_KEY, "--key")?,
                client_ca: s.require(cli.client_ca.clone(), key::CLIENT_CA, "--client-ca")?,
                crls,
                certificate_optional: bearer_issuers.is_some(),
            },
            token: match &policy {
                Some(_) => s.pick(cli.token.clone(), key::TOKEN_FILE)?,
                None => Some(s.require(cli.token.clone(), key::TOKEN_FILE, "--token")?),
            },
            policy,
            ledger: s.pick(cli.ledger.clone(), key::SERVE_LEDGER)?,
            assume_ttl: match s.pick::<String>(cli.assume_ttl.clone(), key::SERVE_ASSUME_TTL)? {
                Some(t) => Some(crate::core::clock::parse_duration(&t).map_err(|e| e.context("--assume-ttl"))?)
                    .filter(|d| !d.is_zero()),
                None => Some(token::DEFAULT_ASSUME_TTL),
            },
            allow: AllowList::parse(&allow)?,
            limits,
            shutdown_timeout: duration(
                s,
                cli.shutdown_timeout.clone(),
                key::SHUTDOWN_TIMEOUT,
                "--shutdown-timeout",
                10,
            )?,
            metrics_listen: s.pick(cli.metrics_listen.clone(), key::SERVE_METRICS_LISTEN)?,
            bearer_issuers,
        })
    }
}

/// `--policy` and how its boundaries are applied.
#[derive(Debug)]
pub struct PolicyOptions {
    /// The policy file.
    pub file: PathBuf,
    /// The STS token endpoint that downscopes.
    pub sts_endpoint: String,
    /// A CA bundle for it, instead of the Mozilla roots.
    pub sts_ca_file: Option<crate::core::settings::FileSetting>,
    /// Time-out of one downscoping call.
    pub sts_timeout: Duration,
}

impl PolicyOptions {
    fn resolve(cli: &Cli, s: &Settings, file: PathBuf) -> Result<PolicyOptions> {
        let sts_endpoint = s
            .pick(cli.sts_endpoint.clone(), key::SERVE_STS_ENDPOINT)?
            .unwrap_or_else(|| crate::protocol::sts::DEFAULT_TOKEN_URL.to_string());
        crate::http::check_url(&sts_endpoint).map_err(|e| e.context("--sts-endpoint"))?;
        Ok(PolicyOptions {
            file,
            sts_endpoint,
            sts_ca_file: s.pick_file(cli.sts_ca_file.clone(), "sts_ca_file", key::SERVE_STS_CA_FILE)?,
            sts_timeout: duration(s, cli.sts_timeout.clone(), key::SERVE_STS_TIMEOUT, "--sts-timeout", 10)?,
        })
    }

    /// The HTTP client and endpoint that downscope: one quick retry, then the client gets
    /// 503 and comes back (its own retry is the better one: the source may have changed).
    pub fn downscoper(&self) -> Result<super::broker::downscope::Downscoper> {
        let opts = crate::http::HttpOptions {
            timeout: self.sts_timeout,
            connect_timeout: self.sts_timeout.min(Duration::from_secs(5)),
            retries: 1,
            max_total: self.sts_timeout,
            roots: crate::http::Roots::Public(self.sts_ca_file.as_ref().map(|f| f.path.clone())),
            tool: super::command::TOOL.to_string(),
            ..Default::default()
        };
        let client = crate::http::Client::new(opts).map_err(|e| match &self.sts_ca_file {
            Some(f) => e.file_setting(&f.origin, "a CA bundle (PEM) to trust for the STS endpoint"),
            None => e,
        })?;
        Ok(super::broker::downscope::Downscoper { client, url: self.sts_endpoint.clone() })
    }
}

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
    /// Handshakes waiting for CPU at which a new connection is shed (503, Retry-After).
    pub max_handshake_queue: usize,
}

/// `--max-handshake-queue` by default: 64 per CPU the process may run on, so a full queue is
/// a fraction of a second of handshake work (about 0.4 ms of CPU each).
fn default_handshake_queue() -> usize {
    64 * std::thread::available_parallelism().map_or(1, |n| n.get())
}
