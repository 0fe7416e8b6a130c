//! `wif-get`: the mTLS client. Fetches the token from `wif-serve` (or the seed's Flask
//! server) at `/get_wif_token` with a client certificate, verifies the server against the
//! given CA chain and host name, and writes the token atomically.
//!
//! - [`args`]: the command line and help;
//! - [`plan`]: what to do, from flags, environment and config;
//! - [`identity`]: the client certificate and key;
//! - [`fetch`]: the GET over mutual TLS with the shared [`crate::http::Client`];
//! - [`fetched`]: the `fetched` section, the `--out` file and `--min-ttl`;
//! - [`output`]: the formats printed;
//! - [`metadata`]: the GCE metadata server mode.

pub mod args;
pub mod fetch;
pub mod fetched;
pub mod identity;
pub mod metadata;
pub mod output;
pub mod plan;

pub use args::{Cli, EXAMPLES, PAGE};
use fetched::{fetch_and_store, Decision};

use crate::cli;
use crate::core::document::Document;
use crate::core::error::{Error, Result};
use crate::core::settings::key;
use crate::core::settings::Settings;
use args::{Format, TOOL};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Entry point of wif-get.
pub fn main() -> ExitCode {
    let cli = cli::parse::<Cli>();
    cli::run(TOOL, || {
        let (mut doc, settings) = cli.doc.load()?;
        run(&cli, &mut doc, &settings)
    })
}

/// Fetches (or skips), writes `--out`, adds `fetched` and prints the chosen format; or, with
/// `--metadata-server`, serves the token like the GCE metadata server until stopped.
pub fn run(cli: &Cli, doc: &mut Document, s: &Settings) -> Result<()> {
    let plan = plan::plan(cli, s)?;
    let metadata_server = s.pick(cli.metadata_server.clone(), key::GET_METADATA_SERVER)?;
    if !plan.splay.is_zero() && (metadata_server.is_some() || plan.min_ttl.is_none()) {
        return Err(Error::usage("--splay only applies with --min-ttl (and not with --metadata-server)")
            .hint("--splay delays a run from cron whose token is not yet urgent; the metadata server spreads its refreshes itself (--spread)"));
    }
    if let Some(addr) = metadata_server {
        return metadata::run(cli, s, &plan, &addr);
    }
    let prints_token = !matches!(plan.format, Format::Json | Format::Gcloud) || cli.show_token;
    if prints_token && !cli.force && std::io::stdout().is_terminal() {
        return Err(Error::usage("refusing to print the token to a terminal")
            .hint("redirect stdout to a file or a pipe, use --out FILE, or add --force"));
    }
    if plan.min_ttl.is_some() && plan.out.is_none() {
        return Err(Error::usage("--min-ttl needs --out: it checks the token already in that file"));
    }
    if plan.format == Format::Gcloud && plan.out.is_none() {
        return Err(Error::usage("--format gcloud needs --out: gcloud reads the token from that file")
            .hint("e.g. --out ~/.wif/token.txt --format gcloud, then eval the printed export line"));
    }

    let mut fetched = match fetched::fresh(&plan)? {
        Decision::Fresh(found) => *found,
        Decision::Urgent => fetch_and_store(cli, s, &plan)?,
        Decision::Due { early } => {
            let slept = fetched::splay(&plan, early);
            let mut got = fetch_and_store(cli, s, &plan)?;
            got.section.splay_ms = slept;
            got
        }
    };
    if cli.show_token {
        fetched.section.token = Some(fetched.token.clone());
    }
    output::print(&plan, doc, &fetched)
}
