//! `wif-serve`: publishes the token file over mutual TLS at `GET /get_wif_token`.
//!
//! One thread accepts; each connection is served on a thread of its own while it lasts
//! (bounded by `--max-connections`; threads are kept and reused for the next connection,
//! `server::workers`), so handshakes run in parallel and a silent client only ever holds
//! its own thread until its time-out, or until a new client needs its slot at the limit.
//! Under a herd, new connections are shed with 503 (`--max-handshake-queue`, `shed`). The
//! TLS configuration and the token are shared and re-read when their files change (the
//! token looked at every 25 ms at most); SIGHUP forces that, SIGTERM/SIGINT stop gracefully.

pub mod allow;
pub mod bearer;
mod bearer_session;
pub mod broker;
mod command;
pub mod conns;
mod handshake;
pub mod ledger;
mod listener;
pub mod log;
pub mod metrics;
mod options;
pub mod policy;
pub mod routes;
mod session;
mod shared;
mod shed;
pub mod tls;
pub mod token;

use crate::cli;
pub use command::{Cli, EXAMPLES, PAGE, TOOL};
pub use listener::run;
pub use options::{Limits, Options};
use std::process::ExitCode;

/// Entry point of wif-serve.
pub fn main() -> ExitCode {
    let cli = cli::parse::<Cli>();
    cli::run(TOOL, || {
        let (_, settings) = cli.doc.load()?;
        let opts = Options::resolve(&cli, &settings)?;
        run(opts)
    })
}
