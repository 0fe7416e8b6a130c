//! `wif-inspect`: explains tokens and documents — decodes JWTs (header, claims, times as
//! local dates and "expires in …"), describes opaque tokens without showing them, prints the
//! thumbprints Azure AD knows a certificate by, and verifies JWT signatures.

use crate::cli;
use crate::core::clock;
use crate::core::document::MAX_DOCUMENT_BYTES;
use crate::core::error::{Error, Kind, Result};
use crate::core::files;
use crate::core::help::Example;
use crate::core::keys;
use crate::http;
use clap::Parser;
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use serde_json::{Map, Value};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use time::{OffsetDateTime, UtcOffset};

const TOOL: &str = "wif-inspect";

/// Sections that carry a token, most relevant first for `--claim`.
pub const PREFERRED_SECTIONS: &[&str] = &["azure", "impersonated", "sts", "assertion", "fetched"];

/// What the manual page says beyond the flags.
pub const PAGE: crate::core::help::Page =
    crate::core::help::Page { examples: EXAMPLES, files: crate::core::help::TOKEN_FILES };

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

/// A time claim shown three ways.
#[derive(Serialize, Debug, Clone)]
pub struct TimeReport {
    /// Unix seconds.
    pub unix: i64,
    /// RFC 3339 UTC.
    pub utc: String,
    /// Local date and time with offset.
    pub local: String,
    /// Relative to now: "expires in 41 min", "3 min ago".
    pub relative: String,
}

/// The outcome of signature verification.
#[derive(Serialize, Debug, Clone)]
pub struct Verification {
    /// Whether signature and times check out.
    pub valid: bool,
    /// Whether the signature verifies.
    pub signature_valid: bool,
    /// Which key verified it (or why none did).
    pub key: String,
    /// Why it is not valid.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One token found in the input.
#[derive(Serialize, Debug, Clone)]
pub struct TokenReport {
    /// Where it was found: a section name, `token`, or `file:PATH`.
    pub source: String,
    /// `jwt`, `opaque`, or `withheld` (the document holds facts but not the token).
    pub kind: &'static str,
    /// The token type recorded with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Length in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<usize>,
    /// SHA-256 (hex) of the token, to compare with metadata and logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Expiry, RFC 3339 UTC (the JWT's exp, else the document's or metadata's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// "expires in 41 min" or "expired 3 min ago".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    /// Whether it has expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired: Option<bool>,
    /// The JWT header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<Value>,
    /// The JWT claims (unverified unless `verification` says so).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<Value>,
    /// exp, iat, nbf (and auth_time) as dates.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub times: Map<String, Value>,
    /// First six characters of an opaque token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// The section's other, non-secret fields (endpoint, audience, scope, …).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub facts: Map<String, Value>,
    /// Signature verification, with --jwks or --verify-cert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Whether the header's x5t / x5t#S256 names the --cert or --verify-cert certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbprint_matches_cert: Option<bool>,
    /// The raw token (--show-secrets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The JWT signature (--show-secrets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A certificate described.
#[derive(Serialize, Debug, Clone)]
pub struct CertReport {
    /// The file it came from.
    pub file: String,
    /// Position in the file (0 = first, the leaf).
    pub index: usize,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number (hex).
    pub serial: String,
    /// Subject alternative names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub san: Vec<String>,
    /// Start of validity.
    pub not_before: TimeReport,
    /// End of validity.
    pub not_after: TimeReport,
    /// Whether it has expired.
    pub expired: bool,
    /// SHA-1 thumbprint in upper-case hex, as the Azure portal lists certificates.
    pub thumbprint_sha1_hex: String,
    /// SHA-256 fingerprint in upper-case hex.
    pub thumbprint_sha256_hex: String,
    /// `x5t`: base64url SHA-1, unpadded (as wif-sign sends it).
    pub x5t: String,
    /// `x5t#S256`: base64url SHA-256, unpadded.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
    /// `customKeyIdentifier` of an Azure app manifest keyCredential: standard base64 SHA-1.
    pub custom_key_identifier: String,
    /// With --key: whether the key is the certificate's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_matches: Option<bool>,
}

/// The whole report.
#[derive(Serialize, Debug, Default)]
pub struct Report {
    /// Tokens found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenReport>,
    /// Certificates described.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertReport>,
    /// The document's sections (when the input was a document).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<Value>,
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
        let (reports, leaf) = describe_certs(cli, path, &ctx)?;
        report.certificates = reports;
        cert_leaf = Some(leaf);
    }
    let verify_cert = match &cli.verify_cert {
        Some(p) => Some(keys::load_certs(p).map_err(|e| e.context("reading --verify-cert"))?.remove(0)),
        None => None,
    };

    let input = match &cli.token_file {
        Some(p) => Some(Input::TokenFile(p.clone())),
        None => read_input(cli.input.as_deref())?,
    };
    if cli.redact {
        let Some(Input::Bytes(bytes)) = input else {
            return Err(Error::usage("--redact needs a wif document on stdin or in FILE"));
        };
        return print_redacted(&bytes, cli.section.as_deref());
    }
    match input {
        None if cli.cert.is_some() && cli.claim.is_none() && !wants_verify => {}
        None => {
            return Err(Error::usage("nothing to inspect: no token or document on stdin")
                .hint("pipe a wif document or a token, or give FILE, --token-file FILE or --cert FILE"))
        }
        Some(input) => {
            let (tokens, document) = collect(input, cli.section.as_deref(), &ctx)?;
            report.tokens = tokens;
            report.document = document;
        }
    }

    // The thumbprint check: does a token name the certificate given?
    let cert_for_thumb = verify_cert.as_ref().or(cert_leaf.as_ref());
    if let Some(cert) = cert_for_thumb {
        for t in &mut report.tokens {
            t.thumbprint_matches_cert = thumbprint_matches(t.header.as_ref(), cert);
        }
    }

    if wants_verify {
        let verifier = Verifier::load(cli, verify_cert.as_ref())?;
        for t in &mut report.tokens {
            if let Some(raw) = raw_token_of(t) {
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
        let value = pick_claim(&report.tokens, name, cli.section.as_deref())?;
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
        render_text(&report, &ctx)
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

struct Ctx {
    now: i64,
    offset: UtcOffset,
}

impl Ctx {
    fn time(&self, unix: i64, past: &str, future: &str) -> TimeReport {
        let rel = unix - self.now;
        let relative = if rel > 0 {
            format!("{future} in {}", clock::human(rel))
        } else {
            format!("{past} {} ago", clock::human(rel))
        };
        TimeReport {
            unix,
            utc: clock::rfc3339(unix),
            local: local_time(unix, self.offset),
            relative: relative.trim().into(),
        }
    }
}

/// `2026-11-23 13:05:00 +01:00` (or `… UTC`).
pub fn local_time(unix: i64, offset: UtcOffset) -> String {
    let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH).to_offset(offset);
    let text = if offset == UtcOffset::UTC {
        t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC"))
    } else {
        t.format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory]:[offset_minute]"
        ))
    };
    text.unwrap_or_else(|_| clock::rfc3339(unix))
}

enum Input {
    Bytes(Vec<u8>),
    TokenFile(PathBuf),
}

/// Prints a document (or one section) as JSON with every token replaced by its preview.
fn print_redacted(bytes: &[u8], section: Option<&str>) -> Result<()> {
    let doc = crate::core::document::Document::parse(bytes)?;
    let mut value = match section {
        Some(name) => {
            let v = doc.get(name).cloned().ok_or_else(|| {
                Error::input(format!("the document has no \"{name}\" section"))
                    .hint(format!("its sections: {}", doc.fields().keys().cloned().collect::<Vec<_>>().join(", ")))
            })?;
            serde_json::json!({ name: v })
        }
        None => Value::Object(doc.fields().clone()),
    };
    redact(&mut value, false);
    let mut text = serde_json::to_string_pretty(&value).map_err(|e| Error::new(Kind::Internal, e.to_string()))?;
    text.push('\n');
    cli::write_stdout(text.as_bytes())
}

/// Shortens secret strings in place: fields named like tokens, and anything token-shaped.
fn redact(v: &mut Value, secret_field: bool) {
    match v {
        Value::String(s) if secret_field || crate::core::secret::scrub(s) != *s => {
            *s = crate::core::secret::Secret::new(std::mem::take(s)).preview();
        }
        Value::Array(items) => items.iter_mut().for_each(|i| redact(i, secret_field)),
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let named_secret = k == "token"
                    || k.ends_with("_token")
                    || (k.contains("secret") && !k.ends_with("_file") && !k.ends_with("_env"));
                redact(item, named_secret && item.is_string());
            }
        }
        _ => {}
    }
}

fn read_input(path: Option<&Path>) -> Result<Option<Input>> {
    let mut buf = Vec::new();
    match path {
        Some(p) if p != Path::new("-") => {
            let f = std::fs::File::open(p).map_err(|e| Error::io(p, &e).context("reading the input"))?;
            f.take(MAX_DOCUMENT_BYTES as u64 + 1)
                .read_to_end(&mut buf)
                .map_err(|e| Error::io(p, &e).context("reading the input"))?;
        }
        _ => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Ok(None);
            }
            stdin
                .lock()
                .take(MAX_DOCUMENT_BYTES as u64 + 1)
                .read_to_end(&mut buf)
                .map_err(|e| Error::new(Kind::Io, format!("reading stdin: {e}")))?;
        }
    }
    if buf.len() > MAX_DOCUMENT_BYTES {
        return Err(Error::input(format!("the input is larger than {MAX_DOCUMENT_BYTES} bytes")));
    }
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(Some(Input::Bytes(buf)))
}

/// A token as found, before it is described.
struct Found {
    source: String,
    token: Option<String>,
    token_type: Option<String>,
    expires_at: Option<String>,
    facts: Map<String, Value>,
    bytes: Option<usize>,
    sha256: Option<String>,
}

fn collect(input: Input, section: Option<&str>, ctx: &Ctx) -> Result<(Vec<TokenReport>, Option<Value>)> {
    let (found, document) = match input {
        Input::TokenFile(path) => (vec![from_token_file(&path)?], None),
        Input::Bytes(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| Error::input("the input is not UTF-8 text"))?;
            let trimmed = text.trim();
            if trimmed.starts_with('{') {
                let value: Value = serde_json::from_str(trimmed).map_err(|e| {
                    Error::input(format!(
                        "the input looks like JSON but does not parse (line {} column {})",
                        e.line(),
                        e.column()
                    ))
                })?;
                let Value::Object(fields) = value else {
                    return Err(Error::input("the input is JSON but not an object"));
                };
                let found = from_document(&fields);
                let outline: Vec<Value> = fields.keys().map(|k| Value::String(k.clone())).collect();
                let mut doc = Map::new();
                if let Some(v) = fields.get("version") {
                    doc.insert("version".into(), v.clone());
                }
                doc.insert("fields".into(), Value::Array(outline));
                if let Some(c) = fields.get("config") {
                    doc.insert("config".into(), c.clone());
                }
                (found, Some(Value::Object(doc)))
            } else {
                if trimmed.chars().any(char::is_whitespace) {
                    return Err(Error::input("the input is neither a JSON document nor a single token"));
                }
                (vec![bare("token", trimmed)], None)
            }
        }
    };
    let found: Vec<Found> = match section {
        Some(name) => {
            let kept: Vec<Found> = found.into_iter().filter(|f| f.source == name).collect();
            if kept.is_empty() {
                return Err(Error::input(format!("the input has no token in a \"{name}\" section"))
                    .hint(format!("token sections: {}", PREFERRED_SECTIONS.join(", "))));
            }
            kept
        }
        None => found,
    };
    if found.is_empty() {
        return Err(Error::input("no token found in the input").hint(
            "wif-inspect reads a JWT, a token, or a wif document with assertion/azure/sts/impersonated/fetched sections",
        ));
    }
    Ok((found.into_iter().map(|f| describe(f, ctx)).collect(), document))
}

fn bare(source: &str, token: &str) -> Found {
    Found {
        source: source.into(),
        token: Some(token.into()),
        token_type: None,
        expires_at: None,
        facts: Map::new(),
        bytes: None,
        sha256: None,
    }
}

/// Token-bearing objects of a document: any section with a string `token` (or a `fetched`
/// section, which holds only facts), plus OAuth responses' `access_token`/`id_token`.
fn from_document(fields: &Map<String, Value>) -> Vec<Found> {
    let mut out = Vec::new();
    for (name, v) in fields {
        match v {
            Value::Object(sec) if sec.get("token").is_some_and(Value::is_string) || name == "fetched" => {
                let mut facts = Map::new();
                for (k, fv) in sec {
                    if !matches!(k.as_str(), "token" | "header" | "claims" | "token_type" | "expires_at") {
                        facts.insert(k.clone(), fv.clone());
                    }
                }
                out.push(Found {
                    source: name.clone(),
                    token: sec.get("token").and_then(Value::as_str).map(str::to_string),
                    token_type: sec.get("token_type").and_then(Value::as_str).map(str::to_string),
                    expires_at: sec.get("expires_at").and_then(Value::as_str).map(str::to_string),
                    bytes: sec.get("bytes").and_then(Value::as_u64).map(|b| b as usize),
                    sha256: sec.get("sha256").and_then(Value::as_str).map(str::to_string),
                    facts,
                });
            }
            Value::String(s) if matches!(name.as_str(), "access_token" | "id_token" | "saml_response") => {
                let mut f = bare(name, s);
                f.token_type = fields.get("token_type").and_then(Value::as_str).map(str::to_string);
                if let Some(secs) = fields.get("expires_in").and_then(Value::as_i64) {
                    f.facts.insert("expires_in".into(), Value::from(secs));
                }
                out.push(f);
            }
            _ => {}
        }
    }
    out
}

fn from_token_file(path: &Path) -> Result<Found> {
    // The expiry beside the token is believed only as wif-serve and wif-get believe it: both
    // files trusted, and an entry of the metadata matching the token.
    let meta_path = files::meta_path(path);
    if meta_path.symlink_metadata().is_ok() {
        match files::read_token(path) {
            files::Stored::Found(t) => {
                let mut found = bare(&format!("file:{}", path.display()), t.token.expose());
                found.expires_at = Some(t.meta.expires_at.to_string());
                found.token_type = Some(t.meta.token_type);
                found.facts.insert("written_at".into(), Value::from(t.meta.written_at.to_string()));
                found.facts.insert("written_by".into(), Value::from(t.meta.written_by));
                found.facts.insert("meta".into(), Value::from(meta_path.display().to_string()));
                return Ok(found);
            }
            files::Stored::Mismatch(_) => crate::core::diag::warn(format!(
                "{} does not belong to the token in {} (SHA-256 differs); its expiry is ignored",
                meta_path.display(),
                path.display()
            )),
            files::Stored::Missing(files::Part::Token, _) => {}
            other => crate::core::diag::warn(format!("{}; the metadata is ignored", other.detail())),
        }
    }
    // Any file the user names, a pipe included (--token-file <(...)).
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e).context("reading --token-file"))?;
    let token = String::from_utf8(bytes).map_err(|_| Error::input(format!("{} is not text", path.display())))?;
    Ok(bare(&format!("file:{}", path.display()), token.trim_end_matches(['\r', '\n'])))
}

fn describe(f: Found, ctx: &Ctx) -> TokenReport {
    let mut r = TokenReport {
        source: f.source,
        kind: "withheld",
        token_type: f.token_type,
        bytes: f.bytes,
        sha256: f.sha256,
        expires_at: None,
        expiry: None,
        expired: None,
        header: None,
        claims: None,
        times: Map::new(),
        preview: None,
        facts: f.facts,
        verification: None,
        thumbprint_matches_cert: None,
        token: None,
        signature: None,
    };
    let mut exp = f.expires_at.as_deref().and_then(|e| clock::parse_rfc3339(e).ok());
    if let Some(token) = f.token {
        r.bytes = Some(token.len());
        r.sha256 = Some(keys::sha256_hex(token.as_bytes()));
        if let Some((header, claims)) = crate::core::jwt::decode_unverified(&token) {
            r.kind = "jwt";
            for (name, past, future) in [
                ("exp", "expired", "expires"),
                ("nbf", "became valid", "becomes valid"),
                ("iat", "issued", "issued"),
                ("auth_time", "authenticated", "authenticated"),
            ] {
                if let Some(v) = claims.get(name).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))) {
                    let t = ctx.time(v, past, future);
                    r.times.insert(name.into(), serde_json::to_value(t).unwrap_or_default());
                    if name == "exp" {
                        exp = Some(v);
                    }
                }
            }
            r.header = Some(header);
            r.claims = Some(claims);
            r.signature = token.rsplit('.').next().map(str::to_string);
        } else {
            r.kind = "opaque";
            // Six characters say which kind of token it is (ya29., gho_…) without giving
            // much of it away; short tokens get no preview at all.
            let n = if token.chars().count() >= 20 { 6 } else { 0 };
            let head: String = token.chars().take(n).collect();
            r.preview = Some(format!("{head}…"));
        }
        r.token = Some(token);
    }
    if let Some(e) = exp {
        r.expires_at = Some(clock::rfc3339(e));
        r.expiry = Some(clock::describe_expiry(e, ctx.now));
        r.expired = Some(e <= ctx.now);
    }
    r
}

fn raw_token_of(t: &TokenReport) -> Option<String> {
    (t.kind == "jwt").then(|| t.token.clone()).flatten()
}

/// The claim from the most relevant JWT: the one chosen with --section, else azure first.
fn pick_claim(tokens: &[TokenReport], name: &str, section: Option<&str>) -> Result<Value> {
    let jwts: Vec<&TokenReport> = tokens.iter().filter(|t| t.claims.is_some()).collect();
    let rank =
        |t: &TokenReport| PREFERRED_SECTIONS.iter().position(|s| *s == t.source).unwrap_or(PREFERRED_SECTIONS.len());
    let chosen = jwts.iter().min_by_key(|t| rank(t)).ok_or_else(|| {
        Error::input(match section {
            Some(s) => format!("the token in \"{s}\" is not a JWT, so it has no claims"),
            None => "no JWT in the input, so there are no claims".to_string(),
        })
        .hint("opaque tokens (like Google access tokens) carry no readable claims")
    })?;
    let claims = chosen.claims.as_ref().and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(v) = claims.get(name) {
        return Ok(v.clone());
    }
    // A dotted path reaches into nested claims (e.g. `xms_az_claims.sub`).
    let mut cur: Option<&Value> = None;
    for (i, part) in name.split('.').enumerate() {
        cur = if i == 0 { claims.get(part) } else { cur.and_then(|c| c.get(part)) };
    }
    cur.cloned().ok_or_else(|| {
        let names: Vec<&str> = claims.keys().map(String::as_str).collect();
        Error::input(format!("the {} token has no claim \"{name}\"", chosen.source))
            .hint(format!("its claims are: {}", names.join(", ")))
    })
}

fn thumbprint_matches(header: Option<&Value>, cert: &[u8]) -> Option<bool> {
    let h = header?;
    let strip = |s: &str| s.trim_end_matches('=').to_string();
    if let Some(x5t) = h.get("x5t").and_then(Value::as_str) {
        return Some(strip(x5t) == keys::thumbprint_sha1(cert));
    }
    if let Some(x5t) = h.get("x5t#S256").and_then(Value::as_str) {
        return Some(strip(x5t) == keys::thumbprint_sha256(cert));
    }
    None
}

/// The reports on the certificates in `--cert`, and its leaf certificate.
fn describe_certs(cli: &Cli, path: &Path, ctx: &Ctx) -> Result<(Vec<CertReport>, CertificateDer<'static>)> {
    let password_file = cli
        .key_password_file
        .clone()
        .map(|path| crate::core::settings::FileSetting { path, origin: "--key-password-file".into() });
    let password = || keys::read_password(password_file.as_ref(), cli.key_password_env.as_deref(), "key password");
    // A PKCS#12 keystore holds the certificate and its key: describe both.
    let (certs, own_key) = if crate::core::keys::is_pkcs12(path) {
        let bundle = keys::load_key(path, password()?.as_ref()).map_err(|e| e.context("reading --cert"))?;
        let Some(chain) = bundle.chain else {
            return Err(Error::input(format!("{} holds no certificate", path.display())));
        };
        (chain.into_vec(), Some(bundle.key))
    } else {
        (keys::load_certs(path).map_err(|e| e.context("reading --cert"))?, None)
    };
    let key = match (&cli.key, own_key) {
        (Some(kp), _) => Some((keys::load_key(kp, password()?.as_ref())?.key, kp.display().to_string())),
        (None, Some(k)) => Some((k, path.display().to_string())),
        (None, None) => None,
    };
    let key_matches = match key {
        Some((k, name)) => {
            let key = keys::signing_key(&k).map_err(|e| e.context(format!("reading the key in {name}")))?;
            Some(keys::check_key_matches_cert(&key, &certs[0]).is_ok())
        }
        None => None,
    };
    let mut out = Vec::new();
    for (index, der) in certs.iter().enumerate() {
        let (_, c) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|_| Error::input(format!("certificate {index} in {} is not valid X.509", path.display())))?;
        let v = c.validity();
        let (nb, na) = (v.not_before.timestamp(), v.not_after.timestamp());
        let san = c
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| ext.value.general_names.iter().map(|g| g.to_string()).collect())
            .unwrap_or_default();
        let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der.as_ref());
        out.push(CertReport {
            file: path.display().to_string(),
            index,
            subject: c.subject().to_string(),
            issuer: c.issuer().to_string(),
            serial: c.raw_serial_as_string(),
            san,
            not_before: ctx.time(nb, "became valid", "becomes valid"),
            not_after: ctx.time(na, "expired", "expires"),
            expired: na < ctx.now,
            thumbprint_sha1_hex: keys::thumbprint_sha1_hex(der.as_ref()),
            thumbprint_sha256_hex: keys::sha256_hex(der.as_ref()).to_ascii_uppercase(),
            x5t: keys::thumbprint_sha1(der.as_ref()),
            x5t_s256: keys::thumbprint_sha256(der.as_ref()),
            custom_key_identifier: {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(sha1.as_ref())
            },
            key_matches: if index == 0 { key_matches } else { None },
        });
    }
    let leaf =
        certs.into_iter().next().ok_or_else(|| Error::input(format!("{} holds no certificate", path.display())))?;
    Ok((out, leaf))
}

/// Keys to verify JWTs with.
enum Verifier {
    Cert { der: Vec<u8>, label: String },
    Jwks { keys: Vec<Value>, label: String },
}

impl Verifier {
    /// The keys: `verify_cert` (the leaf of --verify-cert, already read), else --jwks.
    fn load(cli: &Cli, verify_cert: Option<&CertificateDer<'static>>) -> Result<Verifier> {
        if let (Some(cert), Some(p)) = (verify_cert, &cli.verify_cert) {
            return Ok(Verifier::Cert { der: cert.as_ref().to_vec(), label: format!("certificate {}", p.display()) });
        }
        let Some(src) = &cli.jwks else { return Err(Error::usage("--verify needs --jwks or --verify-cert")) };
        let doing = format!("loading the JWKS {}", http::redact_query(src));
        let mut value = fetch_json(src).map_err(|e| e.context(doing.clone()))?;
        // An OpenID discovery document names the JWKS.
        if value.get("keys").is_none() {
            if let Some(uri) = value.get("jwks_uri").and_then(Value::as_str).map(str::to_string) {
                value = fetch_json(&uri).map_err(|e| e.context(format!("{doing}: following jwks_uri {uri}")))?;
            }
        }
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| Error::input("not a JSON Web Key Set (no \"keys\" list)").context(doing.clone()))?;
        Ok(Verifier::Jwks { keys, label: src.clone() })
    }

    fn verify(&self, token: &str, now: i64) -> Verification {
        let mut problems = Vec::new();
        let (signature_valid, key) = match jsonwebtoken::decode_header(token) {
            Err(e) => {
                problems.push(format!("unreadable header: {e}"));
                (false, "none".to_string())
            }
            Ok(header) => match self.check_signature(token, &header) {
                Ok(k) => (true, k),
                Err(why) => {
                    problems.push(why.clone());
                    (false, why)
                }
            },
        };
        if let Some((_, claims)) = crate::core::jwt::decode_unverified(token) {
            let num = |n: &str| claims.get(n).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
            match num("exp") {
                Some(exp) if exp + 60 < now => problems.push(format!("expired at {}", clock::rfc3339(exp))),
                Some(_) => {}
                None => problems.push("no exp claim".into()),
            }
            if let Some(nbf) = num("nbf") {
                if nbf - 60 > now {
                    problems.push(format!("not valid before {}", clock::rfc3339(nbf)));
                }
            }
        }
        Verification { valid: problems.is_empty(), signature_valid, key, problems }
    }

    fn check_signature(&self, token: &str, header: &jsonwebtoken::Header) -> std::result::Result<String, String> {
        use jsonwebtoken::{Algorithm as A, DecodingKey, Validation};
        let alg = header.alg;
        if !matches!(alg, A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 | A::ES256 | A::ES384) {
            return Err(format!("algorithm {alg:?} is not accepted (only RSA and ECDSA signatures)"));
        }
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let try_key = |key: &DecodingKey| jsonwebtoken::decode::<Value>(token, key, &validation).is_ok();
        match self {
            Verifier::Cert { der, label } => {
                let Ok(public) = keys::cert_public_key(&rustls_pki_types::CertificateDer::from(der.as_slice())) else {
                    return Err(format!("cannot read the public key of {label}"));
                };
                let key = if matches!(alg, A::ES256 | A::ES384) {
                    DecodingKey::from_ec_der(&public)
                } else {
                    DecodingKey::from_rsa_der(&public)
                };
                if try_key(&key) {
                    Ok(label.clone())
                } else {
                    Err(format!("the signature does not verify with {label}"))
                }
            }
            Verifier::Jwks { keys, label } => {
                let candidates: Vec<&Value> = keys
                    .iter()
                    .filter(|k| match (&header.kid, k.get("kid").and_then(Value::as_str)) {
                        (Some(want), Some(have)) => want == have,
                        (Some(_), None) => false,
                        (None, _) => true,
                    })
                    .collect();
                if candidates.is_empty() {
                    return Err(format!("no key in {label} has kid {:?}", header.kid.as_deref().unwrap_or_default()));
                }
                for k in candidates {
                    let Ok(jwk) = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone()) else { continue };
                    let Ok(key) = DecodingKey::from_jwk(&jwk) else { continue };
                    if try_key(&key) {
                        let kid = k.get("kid").and_then(Value::as_str).unwrap_or("(no kid)");
                        return Ok(format!("key {kid} of {label}"));
                    }
                }
                Err(format!("the signature does not verify with any key of {label}"))
            }
        }
    }
}

fn fetch_json(src: &str) -> Result<Value> {
    let bytes = if src.starts_with("http://") || src.starts_with("https://") {
        let client = http::Client::new(http::HttpOptions { tool: TOOL.into(), ..Default::default() })?;
        let resp = client.send(&http::Request {
            method: "GET",
            url: src,
            headers: vec![("Accept", "application/json".into())],
            bearer: None,
            body: http::Body::Empty,
        })?;
        if !resp.ok() {
            return Err(Error::new(
                if resp.status >= 500 { Kind::Unavailable } else { Kind::Refused },
                format!("HTTP {}: {}", resp.status, resp.excerpt()),
            ));
        }
        resp.body
    } else {
        let p = Path::new(src);
        std::fs::read(p).map_err(|e| Error::io(p, &e))?
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::input(format!("not JSON (line {} column {})", e.line(), e.column())))
}

/// The human-readable report.
fn render_text(r: &Report, ctx: &Ctx) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if let Some(doc) = &r.document {
        let fields: Vec<&str> = doc
            .get("fields")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let _ = writeln!(s, "document (version {}): {}", doc.get("version").unwrap_or(&Value::Null), fields.join(", "));
        if let Some(Value::Object(c)) = doc.get("config") {
            let keys: Vec<&str> = c.keys().map(String::as_str).collect();
            let _ = writeln!(s, "  config: {}", keys.join(", "));
        }
        s.push('\n');
    }
    for t in &r.tokens {
        let what = match t.kind {
            "jwt" => "JWT".to_string(),
            "opaque" => format!("opaque token {}", t.preview.as_deref().unwrap_or("")),
            _ => "token not in the document".to_string(),
        };
        let _ = write!(s, "{}: {what}", t.source);
        if let Some(tt) = &t.token_type {
            let _ = write!(s, ", type {tt}");
        }
        if let Some(b) = t.bytes {
            let _ = write!(s, ", {b} bytes");
        }
        s.push('\n');
        if let (Some(e), Some(x)) = (&t.expires_at, &t.expiry) {
            let local = clock::parse_rfc3339(e).ok().map(|u| local_time(u, ctx.offset)).unwrap_or_default();
            let _ = writeln!(s, "  expiry:    {x} ({local})");
        }
        if let Some(sha) = &t.sha256 {
            let _ = writeln!(s, "  sha256:    {sha}");
        }
        for (k, v) in &t.facts {
            let _ = writeln!(s, "  {k}: {}", plain(v));
        }
        if let Some(h) = &t.header {
            let _ = writeln!(s, "  header:    {}", h);
        }
        if let Some(Value::Object(claims)) = &t.claims {
            s.push_str("  claims:\n");
            for (k, v) in claims {
                let _ = write!(s, "    {k}: {}", plain(v));
                if let Some(tr) = t.times.get(k) {
                    let _ = write!(
                        s,
                        "  ({}, {})",
                        tr.get("local").and_then(Value::as_str).unwrap_or(""),
                        tr.get("relative").and_then(Value::as_str).unwrap_or("")
                    );
                }
                s.push('\n');
            }
        }
        if let Some(m) = t.thumbprint_matches_cert {
            let _ = writeln!(
                s,
                "  thumbprint: {}",
                if m { "names the given certificate" } else { "names ANOTHER certificate" }
            );
        }
        if let Some(v) = &t.verification {
            if v.valid {
                let _ = writeln!(s, "  verified:  signature valid ({}), within its validity period", v.key);
            } else {
                let _ = writeln!(s, "  verified:  INVALID: {}", v.problems.join("; "));
            }
        }
        if let Some(tok) = &t.token {
            let _ = writeln!(s, "  token:     {tok}");
        }
        if let Some(sig) = &t.signature {
            let _ = writeln!(s, "  signature: {sig}");
        }
        s.push('\n');
    }
    for c in &r.certificates {
        let _ = writeln!(s, "certificate {} #{}", c.file, c.index);
        let _ = writeln!(s, "  subject:   {}", c.subject);
        let _ = writeln!(s, "  issuer:    {}", c.issuer);
        let _ = writeln!(s, "  serial:    {}", c.serial);
        if !c.san.is_empty() {
            let _ = writeln!(s, "  san:       {}", c.san.join(", "));
        }
        let _ = writeln!(s, "  valid:     {} to {} ({})", c.not_before.local, c.not_after.local, c.not_after.relative);
        let _ = writeln!(s, "  thumbprint (Azure portal, SHA-1): {}", c.thumbprint_sha1_hex);
        let _ = writeln!(s, "  x5t:       {}", c.x5t);
        let _ = writeln!(s, "  x5t#S256:  {}", c.x5t_s256);
        let _ = writeln!(s, "  SHA-256:   {}", c.thumbprint_sha256_hex);
        let _ = writeln!(s, "  customKeyIdentifier (app manifest): {}", c.custom_key_identifier);
        if let Some(m) = c.key_matches {
            let _ = writeln!(
                s,
                "  key:       {}",
                if m { "matches this certificate" } else { "does NOT belong to this certificate" }
            );
        }
        s.push('\n');
    }
    while s.ends_with("\n\n") {
        s.pop();
    }
    s
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_carry_their_offset() {
        assert_eq!(local_time(0, UtcOffset::UTC), "1970-01-01 00:00:00 UTC");
        let cet = UtcOffset::from_hms(1, 0, 0).unwrap();
        assert_eq!(local_time(0, cet), "1970-01-01 01:00:00 +01:00");
        let ny = UtcOffset::from_hms(-5, -30, 0).unwrap();
        assert_eq!(local_time(0, ny), "1969-12-31 18:30:00 -05:30");
    }

    #[test]
    fn relative_times() {
        let ctx = Ctx { now: 1000, offset: UtcOffset::UTC };
        assert_eq!(ctx.time(1000 + 41 * 60, "expired", "expires").relative, "expires in 41 min");
        assert_eq!(ctx.time(1000 - 180, "expired", "expires").relative, "expired 3 min ago");
    }
}
