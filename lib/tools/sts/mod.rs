//! `wif-sts`: the RFC 8693 token exchange at Google STS — a subject token, or the workload's
//! X.509 certificate over mutual TLS, for a federated access token — plus gcloud/google-auth
//! `external_account` credential configurations.

mod args;
mod config;
mod token;
mod x509;

pub use args::{Cli, EXAMPLES, PAGE};
pub use config::read_credential_config;

use crate::cli;
use crate::core::document::Document;
use crate::core::error::Result;
use crate::core::settings::{key, Settings};
use std::process::ExitCode;

/// Entry point of wif-sts.
pub fn main() -> ExitCode {
    let cli = cli::parse::<Cli>();
    if cli.print_credential_config {
        return cli::run(args::TOOL, || {
            let (_, settings) = cli.doc.load()?;
            let config = credential_config(&cli, &settings)?;
            let mut text = serde_json::to_string_pretty(&config).unwrap_or_default();
            text.push('\n');
            cli::write_stdout(text.as_bytes())
        });
    }
    cli::run_step(args::TOOL, &cli.doc, |doc, settings| run(&cli, doc, settings))
}

/// A gcloud / google-auth `external_account` configuration for the same provider, so client
/// libraries can do the STS exchange (and impersonation) themselves: from a token file or
/// URL, or on the X.509 path from the workload certificate.
pub fn credential_config(cli: &Cli, s: &Settings) -> Result<serde_json::Value> {
    let audience = args::audience(cli, s, None)?;
    if x509::wanted(cli, s, None)? {
        x509::credential_config(cli, s, audience)
    } else {
        config::credential_config(cli, s, audience)
    }
}

/// Exchanges the subject token, or the workload certificate on the X.509 path, and adds the
/// `sts` section.
pub fn run(cli: &Cli, doc: &mut Document, s: &Settings) -> Result<()> {
    let cred = match s.pick_file(cli.credential_config.clone(), "credential_config", key::CREDENTIAL_CONFIG)? {
        Some(f) => Some(read_credential_config(&f)?),
        None => None,
    };
    if x509::wanted(cli, s, cred.as_ref())? {
        x509::run(cli, doc, s, cred)
    } else {
        token::run(cli, doc, s, cred)
    }
}
