//! `wif-inspect`: explains tokens and documents — decodes JWTs (header, claims, times as
//! local dates and "expires in …"), describes opaque tokens without showing them, prints the
//! thumbprints Azure AD knows a certificate by, and verifies JWT signatures.
//!
//! This file is the command line and the order of the work; `input` finds the tokens,
//! `token` describes one, `cert` describes certificates, `verify` checks signatures,
//! `redact` and `text` print, `report` holds what is printed.

mod cert;
mod input;
mod redact;
mod report;
mod text;
mod token;
mod verify;

pub use report::{local_time, CertReport, Report, TimeReport, TokenKind, TokenReport, Verification};
pub use token::PREFERRED_SECTIONS;

use crate::cli;
use crate::core::clock;
use crate::core::error::{Error, Kind, Result};
use crate::core::help::Example;
use crate::core::keys;
use cert::KeyArgs;
use clap::Parser;
use input::Input;
use report::Ctx;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use time::UtcOffset;
use verify::Verifier;

const TOOL: &str = "wif-inspect";

/// What the manual page says beyond the flags.
pub const PAGE: crate::core::help::Page =
    crate::core::help::Page { examples: EXAMPLES, files: crate::core::help::TOKEN_FILES, environment: &[] };

/// Examples shown in --help and the manual page.
pub const EXAMPLES: &[Example] = &[
    Example {
        about: "Onboarding: the sub claim of the Azure token, for the workload identity pool's attribute mapping",
        cmd: "wif-sign --config wif.json | wif-azure | wif-inspect --claim sub",
    },
    Example { about: "Explain every token in a saved document", cmd: "wif-inspect run.json" },
    Example {
        about: "How long the published token has left (reads wif_token.txt.meta.json too)",
        cmd: "wif-inspect --token-file /var/lib/wif/wif_token.txt",
    },
    Example {
        about: "The thumbprints Azure AD shows for the app's certificate, and whether the key belongs to it",
        cmd: "wif-inspect --cert app.crt --key app.key",
    },
    Example {
        about: "Verify the Azure token's signature against the tenant's published keys",
        cmd: "wif-azure < signed.json | wif-inspect --section azure --jwks https://login.microsoftonline.com/TENANT/discovery/v2.0/keys",
    },
];

/// Command line of wif-inspect.
#[derive(Parser, Debug)]
#[command(
    name = "wif-inspect",
    version,
    about = "Decode and explain tokens, wif documents and certificates; verify JWT signatures",
    long_about = "Decode and explain what the wif tools make. The input (FILE, or stdin) is a bare token or a wif JSON \
document; --token-file reads a token file and the FILE.meta.json beside it. For each token found (the document's \
assertion, azure, sts, impersonated and fetched sections, a bare JWT, or an OAuth token response) it shows the \
JWT header and claims, and exp/iat/nbf as local dates with \"expires in 41 min\" / \"expired 3 min ago\". Opaque \
tokens are shown by type, length, expiry and a six-character preview.\n\n\
The raw token and the JWT signature are never printed unless --show-secrets is given.\n\n\
--claim NAME prints one claim of the most relevant JWT (azure first; --section picks another). --cert prints the \
certificate's SHA-1 thumbprint as the Azure portal shows it, x5t and x5t#S256 as JWT headers carry them, subject, \
issuer and validity; with --key, whether the key belongs to it.\n\n\
--jwks FILE|URL or --verify-cert CERT verifies each JWT's signature (RS256/384/512, PS256/384/512, ES256/384) and \
its exp/nbf (60 s leeway). Exit status 3 when a signature or time check fails, so scripts can test it.",
    after_help = crate::core::help::after_help("wif-inspect", EXAMPLES)
)]
pub struct Cli {
    /// A token or a wif document to read; `-` or nothing: stdin
    #[arg(value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// A token file (as written by --token-out or wif-get --out) and its FILE.meta.json
    #[arg(long, value_name = "FILE", conflicts_with = "input")]
    pub token_file: Option<PathBuf>,
    /// Print only this claim of the chosen JWT (a string as is, anything else as JSON)
    #[arg(long, value_name = "NAME")]
    pub claim: Option<String>,
    /// Only the token of this document section: assertion, azure, sts, impersonated, fetched
    #[arg(long, value_name = "SECTION")]
    pub section: Option<String>,
    /// Certificate (PEM or DER) to describe: thumbprints, subject, validity
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// With --cert: check that this private key (PEM or PKCS#12) belongs to the certificate
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// File whose first line is the PKCS#12 password (for --key)
    #[arg(long, value_name = "FILE")]
    pub key_password_file: Option<PathBuf>,
    /// Name of the environment variable holding the PKCS#12 password (for --key)
    #[arg(long, value_name = "VAR")]
    pub key_password_env: Option<String>,
    /// Verify JWT signatures (needs --jwks or --verify-cert; either alone implies it)
    #[arg(long)]
    pub verify: bool,
    /// JSON Web Key Set to verify with: a file, or a URL (https, or http on loopback); an OpenID discovery URL works too
    #[arg(long, value_name = "FILE|URL")]
    pub jwks: Option<String>,
    /// Certificate (PEM or DER) whose public key must have signed the JWTs
    #[arg(long, value_name = "FILE", conflicts_with = "jwks")]
    pub verify_cert: Option<PathBuf>,
    /// Machine-readable output (one JSON object)
    #[arg(long)]
    pub json: bool,
    /// Also print raw tokens and JWT signatures
    #[arg(long)]
    pub show_secrets: bool,
    /// Print the document itself (or with --section, that section) with every token
    /// shortened: what to paste into a bug report or a terminal
    #[arg(long, conflicts_with_all = ["token_file", "claim", "cert", "verify", "jwks", "verify_cert", "show_secrets"])]
    pub redact: bool,
}

/// Entry point of wif-inspect.
pub fn main() -> ExitCode {
    // The local offset can only be read safely while the process has one thread: now.
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let cli = Cli::parse();
    cli::run(TOOL, || run(&cli, offset))
}

/// Reads the input, builds the report, prints it; fails (exit 3) when verification fails.
pub fn run(cli: &Cli, offset: UtcOffset) -> Result<()> {
    let now = clock::now_unix();
    let ctx = Ctx { now, offset };
    let mut report = Report::default();

    let wants_verify = cli.verify || cli.jwks.is_some() || cli.verify_cert.is_some();
    if cli.verify && cli.jwks.is_none() && cli.verify_cert.is_none() {
        return Err(Error::usage("--verify needs the keys: --jwks FILE|URL or --verify-cert CERT.pem"));
    }

    let mut cert_leaf = None;
    if let Some(path) = &cli.cert {
        let key_args = KeyArgs {
            key: cli.key.as_deref(),
            password_file: cli.key_password_file.as_ref(),
            password_env: cli.key_password_env.as_deref(),
        };
        let (reports, leaf) = cert::describe_certs(path, &key_args, &ctx)?;
        report.certificates = reports;
        cert_leaf = Some(leaf);
    }
    let verify_cert = match &cli.verify_cert {
        Some(p) => Some(keys::load_certs(p).map_err(|e| e.context("reading --verify-cert"))?.remove(0)),
        None => None,
    };

    let input = match &cli.token_file {
        Some(p) => Some(Input::TokenFile(p.clone())),
        None => input::read_input(cli.input.as_deref())?,
    };
    if cli.redact {
        let Some(Input::Bytes(bytes)) = input else {
            return Err(Error::usage("--redact needs a wif document on stdin or in FILE"));
        };
        return redact::print_redacted(&bytes, cli.section.as_deref());
    }
    match input {
        None if cli.cert.is_some() && cli.claim.is_none() && !wants_verify => {}
        None => {
            return Err(Error::usage("nothing to inspect: no token or document on stdin")
                .hint("pipe a wif document or a token, or give FILE, --token-file FILE or --cert FILE"))
        }
        Some(input) => {
            let (tokens, document) = input::collect(input, cli.section.as_deref(), &ctx)?;
            report.tokens = tokens;
            report.document = document;
        }
    }

    // The thumbprint check: does a token name the certificate given?
    let cert_for_thumb = verify_cert.as_ref().or(cert_leaf.as_ref());
    if let Some(cert) = cert_for_thumb {
        for t in &mut report.tokens {
            t.thumbprint_matches_cert = token::thumbprint_matches(t.header.as_ref(), cert);
        }
    }

    if wants_verify {
        let verifier = Verifier::load(verify_cert.as_ref().zip(cli.verify_cert.as_deref()), cli.jwks.as_ref(), TOOL)?;
        for t in &mut report.tokens {
            if let Some(raw) = token::raw_token_of(t) {
                t.verification = Some(verifier.verify(&raw, now));
            }
        }
        if !report.tokens.iter().any(|t| t.verification.is_some()) {
            return Err(Error::input("there is no JWT to verify in the input"));
        }
    }

    let failed: Vec<String> = report
        .tokens
        .iter()
        .filter(|t| t.verification.as_ref().is_some_and(|v| !v.valid))
        .map(|t| {
            format!("{}: {}", t.source, t.verification.as_ref().map(|v| v.problems.join("; ")).unwrap_or_default())
        })
        .collect();

    if let Some(name) = &cli.claim {
        let value = token::pick_claim(&report.tokens, name, cli.section.as_deref())?;
        if !failed.is_empty() {
            return Err(verify_failed(&failed));
        }
        let text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        return cli::write_stdout(format!("{text}\n").as_bytes());
    }

    if !cli.show_secrets {
        for t in &mut report.tokens {
            t.token = None;
            t.signature = None;
        }
    }
    let text = if cli.json {
        let mut s = serde_json::to_string_pretty(&report).map_err(|e| Error::new(Kind::Internal, e.to_string()))?;
        s.push('\n');
        s
    } else {
        text::render_text(&report, &ctx)
    };
    cli::write_stdout(text.as_bytes())?;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(verify_failed(&failed))
    }
}

fn verify_failed(failed: &[String]) -> Error {
    Error::input(format!("verification failed: {}", failed.join(", ")))
        .hint("the token was not signed by the key given, was altered, or is outside its validity period")
}
