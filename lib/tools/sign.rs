//! `wif-sign`: makes the RFC 7523 client-assertion JWT that proves the application holds
//! its private key, in the form MSAL makes it for Azure AD.

use crate::cli::{self, DocArgs, TokenOutArgs};
use crate::core::clock;
use crate::core::document::{AssertionSection, Document, TokenFields};
use crate::core::error::{Error, Result};
use crate::core::help::Example;
use crate::core::keys;
use crate::core::settings::key;
use crate::core::settings::Settings;
use crate::protocol::assertion::{self, Alg, AssertionRequest, KeyMaterial, SignerFiles, Thumbprint};
use crate::protocol::azure;
use clap::builder::PossibleValue;
use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

const TOOL: &str = "wif-sign";

// The algorithms and thumbprints as --alg and --thumbprint offer them.
impl ValueEnum for Alg {
    fn value_variants<'a>() -> &'a [Self] {
        &[Alg::Rs256, Alg::Ps256, Alg::Es256, Alg::Es384]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self {
            Alg::Rs256 => "RSASSA-PKCS1-v1_5 with SHA-256 (RSA keys; MSAL's default)",
            Alg::Ps256 => "RSASSA-PSS with SHA-256 (RSA keys; pairs with x5t#S256)",
            Alg::Es256 => "ECDSA P-256 with SHA-256",
            Alg::Es384 => "ECDSA P-384 with SHA-384",
        };
        Some(PossibleValue::new(self.name()).help(help))
    }
}

impl ValueEnum for Thumbprint {
    fn value_variants<'a>() -> &'a [Self] {
        &[Thumbprint::Sha1, Thumbprint::Sha256]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Thumbprint::Sha1 => {
                PossibleValue::new("sha1").help("`x5t`: SHA-1 of the certificate (what Azure AD shows and MSAL sends)")
            }
            Thumbprint::Sha256 => PossibleValue::new("sha256")
                .help("`x5t#S256`: SHA-256 of the certificate (Azure's newer form, signed with PS256 for RSA)"),
        })
    }
}

/// What the manual page says beyond the flags.
pub const PAGE: crate::core::help::Page =
    crate::core::help::Page { examples: EXAMPLES, files: crate::core::help::CONFIG_FILES, environment: &[] };

/// Examples shown in --help and the manual page.
pub const EXAMPLES: &[Example] = &[
    Example {
        about: "Sign for Azure AD and run the whole pipeline",
        cmd: "wif-sign --client-id $APP_ID --tenant-id $TENANT_ID --key app.key --cert app.crt | wif-azure | wif-sts --audience $AUD | wif-impersonate --service-account $SA --token-out wif_token.txt",
    },
    Example {
        about: "Take every setting from a config file (cron, systemd)",
        cmd: "wif-sign --config /etc/wif/wif.json | wif-azure | wif-sts | wif-impersonate --token-out /var/lib/wif/wif_token.txt",
    },
    Example {
        about: "A PKCS#12 key whose password is in a file, for another OAuth issuer",
        cmd: "wif-sign --client-id $ID --key app.p12 --key-password-file pw.txt --audience https://issuer.example.com/v1/token",
    },
    Example {
        about: "Use the SHA-256 thumbprint (x5t#S256, PS256) and include the chain",
        cmd: "wif-sign --client-id $APP_ID --tenant-id $TENANT_ID --key app.key --cert app.crt --thumbprint sha256 --x5c",
    },
];

/// Command line of wif-sign.
#[derive(Parser, Debug)]
#[command(
    name = "wif-sign",
    version,
    about = "Sign a client-assertion JWT with the application's private key (first step of the wif pipeline)",
    long_about = "Sign a client-assertion JWT (RFC 7523) with the application's private key, as MSAL does for \
Azure AD certificate credentials: header alg, typ JWT and the certificate thumbprint (x5t, or x5t#S256); claims \
aud = the token endpoint, iss = sub = the client id, a random jti, nbf/iat = now minus 30 s (so a verifier whose clock is a little behind still accepts it) and exp = now + lifetime.\n\n\
Reads the wif JSON document on stdin (nothing piped: an empty one), adds the `assertion` section and writes the \
document to stdout for wif-azure. The private key never leaves this process; only the signed JWT does. The section's \
`signer` records how to sign again (the key and certificate files as absolute paths, the password file or variable \
name, alg, thumbprint, x5c, lifetime; never a secret): wif-azure signs again with it, once, at Azure AD's time when \
this machine's clock is off.",
    after_help = crate::core::help::after_help("wif-sign", EXAMPLES)
)]
pub struct Cli {
    /// Application (client) id: the assertion's iss and sub
    #[arg(long, value_name = "ID", env = key::CLIENT_ID.env)]
    pub client_id: Option<String>,
    /// Azure AD tenant id or domain; the token endpoint is {authority}/{tenant}/oauth2/v2.0/token
    #[arg(long, value_name = "TENANT", env = key::TENANT_ID.env)]
    pub tenant_id: Option<String>,
    /// Private key: PEM (PKCS#8, PKCS#1 RSA, SEC1 EC) or PKCS#12 (.p12/.pfx)
    #[arg(long, value_name = "FILE", env = key::KEY.env)]
    pub key: Option<PathBuf>,
    /// Certificate (PEM or DER) registered with the identity provider; optional with a PKCS#12 key that holds it
    #[arg(long, value_name = "FILE", env = key::CERT.env)]
    pub cert: Option<PathBuf>,
    /// File whose first line is the PKCS#12 password
    #[arg(long, value_name = "FILE", env = key::KEY_PASSWORD_FILE.env)]
    pub key_password_file: Option<PathBuf>,
    /// Name of the environment variable holding the PKCS#12 password
    #[arg(long, value_name = "VAR", env = key::KEY_PASSWORD_ENV.env)]
    pub key_password_env: Option<String>,
    /// Azure AD authority [default: https://login.microsoftonline.com]
    #[arg(long, value_name = "URL", env = key::AUTHORITY.env)]
    pub authority: Option<String>,
    /// The assertion's aud for issuers other than Azure AD (replaces the Azure token endpoint)
    #[arg(long, value_name = "URL", env = key::ASSERTION_AUDIENCE.env)]
    pub audience: Option<String>,
    /// Assertion lifetime [default: 10m]
    #[arg(long, value_name = "DURATION", env = key::ASSERTION_LIFETIME.env)]
    pub lifetime: Option<String>,
    /// Signing algorithm [default: RS256 for RSA keys (PS256 with --thumbprint sha256), ES256/ES384 for EC keys]
    #[arg(long, value_enum, env = key::ASSERTION_ALG.env)]
    pub alg: Option<Alg>,
    /// Thumbprint header: x5t (sha1) or x5t#S256 (sha256) [default: sha1]
    #[arg(long, value_enum, env = key::THUMBPRINT.env)]
    pub thumbprint: Option<Thumbprint>,
    /// Also send the certificate chain in the x5c header (for subject-name/issuer registration)
    #[arg(long, env = key::X5C.env)]
    pub x5c: bool,
    #[command(flatten)]
    pub token_out: TokenOutArgs,
    #[command(flatten)]
    pub doc: DocArgs,
}

/// Entry point of wif-sign.
pub fn main() -> ExitCode {
    let cli = cli::parse::<Cli>();
    cli::run_step(TOOL, &cli.doc, |doc, settings| sign(&cli, doc, settings))
}

/// Signs the assertion and adds the `assertion` section.
pub fn sign(cli: &Cli, doc: &mut Document, s: &Settings) -> Result<()> {
    let client_id: String = s.require(cli.client_id.clone(), key::CLIENT_ID, "--client-id")?;
    let key_file = s.require_file(cli.key.clone(), "key", key::KEY, "--key")?;
    let cert_file = s.pick_file(cli.cert.clone(), "cert", key::CERT)?;
    let audience: Option<String> = s.pick(cli.audience.clone(), key::ASSERTION_AUDIENCE)?;
    let tenant: Option<String> = s.pick(cli.tenant_id.clone(), key::TENANT_ID)?;
    let token_endpoint = match (&audience, &tenant) {
        (Some(aud), _) => aud.clone(),
        (None, Some(t)) => {
            let authority: String =
                s.pick_or(cli.authority.clone(), key::AUTHORITY, azure::DEFAULT_AUTHORITY.to_string())?;
            crate::http::check_url(&authority).map_err(|e| e.context("checking --authority"))?;
            azure::token_endpoint(&authority, t)?
        }
        (None, None) => {
            return Err(Error::usage("--tenant-id is required (or --audience for issuers other than Azure AD)")
                .hint("give --tenant-id, set WIF_TENANT_ID, or put \"tenant_id\" in the config"))
        }
    };
    let lifetime =
        assertion::check_lifetime(match s.pick::<String>(cli.lifetime.clone(), key::ASSERTION_LIFETIME)? {
            Some(l) => clock::parse_duration(&l)?.as_secs() as i64,
            None => assertion::DEFAULT_LIFETIME_SECS,
        })?;

    let password_file = s.pick_file(cli.key_password_file.clone(), "key_password_file", key::KEY_PASSWORD_FILE)?;
    let password_env: Option<String> = s.pick(cli.key_password_env.clone(), key::KEY_PASSWORD_ENV)?;
    let files = SignerFiles {
        key_file: &key_file,
        cert_file: cert_file.as_ref(),
        key_password_file: password_file.as_ref(),
        key_password_env: password_env.as_deref(),
    };
    let KeyMaterial { key, chain } = files.load()?;
    check_cert_dates(chain.leaf())?;

    let thumbprint = s.pick_or(cli.thumbprint, key::THUMBPRINT, Thumbprint::Sha1)?;
    let alg = assertion::choose_alg(s.pick(cli.alg, key::ASSERTION_ALG)?, key.key_type, thumbprint)?;
    let request = AssertionRequest {
        client_id: client_id.clone(),
        audience: token_endpoint.clone(),
        lifetime_secs: lifetime,
        alg,
        thumbprint,
        x5c: s.pick_or(Some(cli.x5c).filter(|b| *b), key::X5C, false)?,
    };
    let signed = assertion::sign(&request, &key, chain.certs())?;
    let signer = assertion::recipe(&files, &request)?;

    let section = AssertionSection {
        token: TokenFields {
            token: signed.jwt,
            token_type: assertion::CLIENT_ASSERTION_TYPE.into(),
            expires_at: Some(clock::rfc3339(signed.claims.exp)),
        },
        client_id: client_id.clone(),
        tenant_id: if audience.is_none() { tenant } else { None },
        token_endpoint: token_endpoint.clone(),
        header: serde_json::to_value(&signed.header).unwrap_or_default(),
        claims: serde_json::to_value(&signed.claims).unwrap_or_default(),
        signer: Some(signer),
    };
    cli.token_out.write(TOOL, &section.token)?;
    doc.set(&section)
}

fn check_cert_dates(cert: &[u8]) -> Result<()> {
    keys::warn_if_not_current(
        cert,
        "the certificate",
        "identity providers refuse assertions for expired credentials",
        keys::ValidityCheck::Expiry,
    )
}
