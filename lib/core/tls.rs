//! TLS plumbing: the one crypto provider (aws-lc-rs) and trust roots for outgoing HTTPS.

use crate::core::error::{Error, Result};
use rustls_pki_types::CertificateDer;
use std::path::Path;

/// Installs aws-lc-rs as the process-wide rustls provider (idempotent).
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which is the state we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The trust roots for outgoing HTTPS: a given CA file, else `SSL_CERT_FILE`, else the
/// Mozilla roots built in.
pub fn roots(ca_file: Option<&Path>) -> Result<Option<Vec<CertificateDer<'static>>>> {
    let env_file = std::env::var_os("SSL_CERT_FILE").filter(|s| !s.is_empty());
    let path = match (ca_file, env_file.as_deref()) {
        (Some(p), _) => p,
        (None, Some(p)) => Path::new(p),
        (None, None) => return Ok(None),
    };
    let certs = crate::core::keys::load_certs(path).map_err(|e| e.context("loading the CA bundle for HTTPS"))?;
    if certs.is_empty() {
        return Err(Error::input(format!("{} holds no certificates", path.display())));
    }
    Ok(Some(certs))
}
