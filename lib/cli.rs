//! What every binary shares: reading the document, printing it, reporting errors and
//! mapping them to exit codes.

use crate::core::diag;
use crate::core::document::{Document, MAX_DOCUMENT_BYTES};
use crate::core::error::{Context, Error, Kind, Result};
use crate::core::settings::key;
use crate::core::settings::Settings;
use clap::Args;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags every document-reading tool has.
#[derive(Args, Debug, Clone, Default)]
pub struct DocArgs {
    /// Config file (JSON object of settings; the document's own `config` wins over it)
    #[arg(long, value_name = "FILE", env = "WIF_CONFIG")]
    pub config: Option<PathBuf>,
}

impl DocArgs {
    /// Reads the document from stdin and loads the settings in force.
    pub fn load(&self) -> Result<(Document, Settings)> {
        let mut doc = read_document().context("reading the document on stdin")?;
        let settings = Settings::load(&doc, self.config.as_deref())?;
        settings.pass_on(&mut doc);
        Ok((doc, settings))
    }
}

/// Reads the document from stdin; a terminal (nothing piped) gives an empty document.
pub fn read_document() -> Result<Document> {
    match read_stdin().map_err(|e| Error::new(Kind::Io, format!("stdin: {e}")))? {
        Some(buf) => Document::parse(&buf),
        None => Ok(Document::new()),
    }
}

/// What is piped to stdin, up to one byte more than a document may hold (so that the
/// caller can tell "too large"); `None` when stdin is a terminal (nothing piped).
pub fn read_stdin() -> std::io::Result<Option<Vec<u8>>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(None);
    }
    read_bounded(stdin.lock()).map(Some)
}

/// Reads up to one byte more than a document may hold.
pub fn read_bounded(reader: impl Read) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    reader.take(MAX_DOCUMENT_BYTES as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Writes the document to stdout. A closed pipe is not an error worth a message.
pub fn write_document(doc: &Document) -> Result<()> {
    write_stdout(doc.to_json().as_bytes())
}

/// Writes bytes to stdout, flushing; a closed pipe ends quietly.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::new(Kind::Io, format!("writing to stdout: {e}"))),
    }
}

/// Parses the command line like `C::parse()`, and remembers which arguments came from the
/// command line and which from their environment variable, so that errors can name the one
/// the user wrote (see [`crate::core::settings::given_as`]).
pub fn parse<C: clap::Parser>() -> C {
    use clap::parser::ValueSource;
    let command = C::command();
    let mut matches = command.clone().get_matches();
    let given = command
        .get_arguments()
        .filter_map(|a| {
            let shown = match matches.value_source(a.get_id().as_str())? {
                ValueSource::EnvVariable => a.get_env()?.to_string_lossy().into_owned(),
                ValueSource::CommandLine => format!("--{}", a.get_long()?),
                _ => return None,
            };
            Some((a.get_id().to_string(), shown))
        })
        .collect();
    crate::core::settings::remember_given(given);
    C::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut C::command()).exit())
}

/// Runs a tool's body: installs the crypto provider, reports failure and picks the exit code.
pub fn run(tool: &str, body: impl FnOnce() -> Result<()>) -> ExitCode {
    diag::set_tool(tool);
    crate::core::tls::install_crypto_provider();
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            diag::report(tool, &e);
            ExitCode::from(e.kind().exit_code())
        }
    }
}

/// The usual shape of a pipeline step: read the document, add a section, print it.
pub fn run_step(tool: &str, args: &DocArgs, step: impl FnOnce(&mut Document, &Settings) -> Result<()>) -> ExitCode {
    run(tool, || {
        let (mut doc, settings) = args.load()?;
        step(&mut doc, &settings)?;
        write_document(&doc)
    })
}

/// Flags every tool that talks to a remote service has.
#[derive(Args, Debug, Clone, Default)]
pub struct NetArgs {
    /// Time-out for each HTTP attempt, e.g. 30s [default: 30s]
    #[arg(long, value_name = "DURATION", env = key::TIMEOUT.env)]
    pub timeout: Option<String>,
    /// Retries after a connection error, 429 or 5xx (never after other 4xx) [default: 3]
    #[arg(long, value_name = "N", env = key::RETRIES.env)]
    pub retries: Option<u32>,
    /// CA bundle (PEM) to trust for HTTPS instead of the built-in Mozilla roots
    #[arg(long, value_name = "FILE", env = key::CA_FILE.env)]
    pub ca_file: Option<PathBuf>,
}

impl NetArgs {
    /// Builds the HTTP client with these settings.
    pub fn client(&self, tool: &str, settings: &Settings) -> Result<crate::http::Client> {
        self.client_presenting(tool, settings, None)
    }

    /// Builds the HTTP client with these settings, presenting `identity` (mutual TLS).
    pub fn client_presenting(
        &self,
        tool: &str,
        settings: &Settings,
        identity: Option<crate::http::ClientIdentity>,
    ) -> Result<crate::http::Client> {
        let timeout = settings.duration_over_zero(
            self.timeout.clone(),
            key::TIMEOUT,
            "--timeout",
            None,
            std::time::Duration::from_secs(30),
        )?;
        let ca_file = settings.pick_file(self.ca_file.clone(), "ca_file", key::CA_FILE)?;
        let opts = crate::http::HttpOptions {
            timeout,
            retries: settings.pick_or(self.retries, key::RETRIES, 3)?,
            max_total: timeout.saturating_mul(4).max(std::time::Duration::from_secs(60)),
            roots: crate::http::Roots::Public(ca_file.as_ref().map(|f| f.path.clone())),
            identity,
            tool: tool.to_string(),
            ..Default::default()
        };
        // Only reading the CA bundle can fail: name the setting that gave it.
        crate::http::Client::new(opts).map_err(|e| {
            let origin = ca_file.map(|f| f.origin).unwrap_or_else(|| "SSL_CERT_FILE".into());
            e.file_setting(&origin, "a CA bundle (PEM) to trust for HTTPS")
        })
    }
}

/// `--token-out`: every token-producing step can also write its token to a file.
#[derive(Args, Debug, Clone, Default)]
pub struct TokenOutArgs {
    /// Also write the token (exact bytes, mode 0600, atomically) to FILE, with FILE.meta.json beside it
    #[arg(long, value_name = "FILE")]
    pub token_out: Option<PathBuf>,
}

impl TokenOutArgs {
    /// Writes the section's token if `--token-out` was given.
    pub fn write(&self, tool: &str, token: &crate::core::document::TokenFields) -> Result<()> {
        if let Some(path) = &self.token_out {
            crate::core::files::write_token(path, &token.token, &token.token_type, token.expires_at.as_deref(), tool)
                .map_err(|e| e.context("writing --token-out"))?;
        }
        Ok(())
    }
}
