//! The client's TLS: which CAs it trusts, and the certificate it presents (mutual TLS).

use super::failure::Wording;
use crate::core::error::{Error, Kind, Result};
use crate::core::secret::Secret;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::Arc;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};

/// The CAs a client trusts.
#[derive(Clone, Debug)]
pub enum Roots {
    /// A CA bundle file if given (else `SSL_CERT_FILE`), else the Mozilla roots built in:
    /// for public services and the emulator.
    Public(Option<PathBuf>),
    /// Exactly these CA certificates, nothing else (wif-get's `--ca`: a private CA chain).
    Only(Vec<CertificateDer<'static>>),
}

/// The certificate chain (leaf first) and key a client presents for mutual TLS. Its
/// `Debug` shows the number of certificates, never the key.
pub struct ClientIdentity {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientIdentity({} certificates, key withheld)", self.chain.len())
    }
}

/// The ureq TLS configuration: rustls with aws-lc-rs, the roots, and the client identity.
pub(super) fn config(roots: &Roots, identity: Option<&ClientIdentity>, w: &Wording) -> Result<TlsConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    check_usable(roots, identity, &provider, w)?;
    let root_certs = match roots {
        Roots::Public(ca_file) => match crate::core::tls::roots(ca_file.as_deref())? {
            Some(certs) => ureq_roots(&certs),
            None => RootCerts::WebPki,
        },
        Roots::Only(certs) => ureq_roots(certs),
    };
    let client_cert = identity.map(ureq_identity).transpose()?;
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider)
        .root_certs(root_certs)
        .client_cert(client_cert)
        .build())
}

fn ureq_roots(certs: &[CertificateDer<'static>]) -> RootCerts {
    RootCerts::from(certs.iter().map(|c| Certificate::from_der(c.as_ref()).to_owned()))
}

/// ureq builds its rustls configuration lazily and panics on a bad key, so build one here
/// first: it fails cleanly on roots and keys rustls cannot use.
fn check_usable(
    roots: &Roots,
    identity: Option<&ClientIdentity>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
    w: &Wording,
) -> Result<()> {
    let mut store = rustls::RootCertStore::empty();
    if let Roots::Only(certs) = roots {
        let (added, _) = store.add_parsable_certificates(certs.iter().cloned());
        if added == 0 {
            return Err(Error::input(w.no_usable_root));
        }
    }
    let Some(id) = identity else { return Ok(()) };
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(Kind::Internal, e.to_string()))?
        .with_root_certificates(store)
        .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
        .map_err(|e| {
            Error::input(format!("the client key cannot be used for TLS: {e}")).context(w.unusable_identity)
        })?;
    Ok(())
}

/// The identity as ureq takes it: keys as DER with a kind it does not export, or as PEM,
/// so the key is handed over as PEM.
fn ureq_identity(id: &ClientIdentity) -> Result<ClientCert> {
    let (label, der) = match &id.key {
        PrivateKeyDer::Pkcs1(k) => ("RSA PRIVATE KEY", k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => ("EC PRIVATE KEY", k.secret_sec1_der()),
        PrivateKeyDer::Pkcs8(k) => ("PRIVATE KEY", k.secret_pkcs8_der()),
        _ => return Err(Error::input("unsupported client key format").hint("use a PKCS#8, PKCS#1 or SEC1 PEM key")),
    };
    let key = pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der)
        .map(Secret::new)
        .map_err(|e| e.to_string())
        .and_then(|pem| PrivateKey::from_pem(pem.expose().as_bytes()).map_err(|e| e.to_string()))
        .map_err(|e| Error::new(Kind::Internal, format!("re-encoding the client key: {e}")))?;
    let chain: Vec<Certificate<'static>> =
        id.chain.iter().map(|c| Certificate::from_der(c.as_ref()).to_owned()).collect();
    Ok(ClientCert::new_with_certs(&chain, key))
}
