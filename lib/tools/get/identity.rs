//! The client certificate and key wif-get presents, loaded and checked.

use super::args::Cli;
use crate::core::error::Result;
use crate::core::keys;
use crate::core::settings::key;
use crate::core::settings::Settings;
use crate::http::ClientIdentity;

/// What `--cert` names, for the hint when it names no file.
const CLIENT_CERT: &str = "the client certificate (PEM chain, leaf first, or PKCS#12) from the CA wif-serve trusts";

/// The client certificate chain and key, with facts for error hints.
pub(crate) struct Identity {
    /// What the HTTP client presents.
    pub(crate) tls: ClientIdentity,
    /// The certificate's subject, for the hint when the server does not allow it.
    pub(crate) subject: String,
    /// The certificate's SHA-256 (hex), likewise.
    pub(crate) sha256: String,
}

/// Loads `--cert` / `--key` (PEM or PKCS#12), checks that they belong together, and warns
/// when the certificate has expired.
pub(crate) fn load_identity(cli: &Cli, s: &Settings) -> Result<Identity> {
    let cert = s.require_file(cli.cert.clone(), "cert", key::GET_CERT, "--cert")?;
    let key_file = s.pick_file(cli.key.clone(), "key", key::GET_KEY)?;
    let password = keys::read_password(
        s.pick_file(cli.key_password_file.clone(), "key_password_file", key::GET_KEY_PASSWORD_FILE)?.as_ref(),
        s.pick::<String>(cli.key_password_env.clone(), key::GET_KEY_PASSWORD_ENV)?.as_deref(),
        "key password",
    )?;
    let (chain, key) = keys::load_cert_and_key(&cert, key_file.as_ref(), password.as_ref(), CLIENT_CERT)?;
    let subject = x509_parser::parse_x509_certificate(chain.leaf().as_ref())
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_else(|_| "(unparsable)".into());
    let sha256 = keys::sha256_hex(chain.leaf().as_ref());
    let _ = keys::warn_if_not_current(
        chain.leaf(),
        "the client certificate",
        "the server will refuse it",
        keys::ValidityCheck::Expiry,
    );
    Ok(Identity { tls: ClientIdentity { chain: chain.into_vec(), key }, subject, sha256 })
}
