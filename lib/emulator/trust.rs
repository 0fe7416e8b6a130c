//! An X.509 provider's trust store: Google's camelCase form (`trustAnchors`,
//! `intermediateCas`, each `{"pemCertificate": PEM}`, or the emulator's
//! `{"pemCertificateFile": path}`), inline or in a file as gcloud's
//! `--trust-store-config-path` takes it (`{"trustStore": {…}}`); Google's limits checked when
//! the configuration loads (1–3 anchors, at most 10 intermediates, anchors self-signed CAs,
//! RSA 2048–4096 or ECDSA P-256/P-384 keys), each error naming its JSON path; and the chain
//! check of an mtls exchange (rustls-webpki, with the aws-lc-rs provider's algorithms).

use super::x509::{self, KeyType};
use crate::core::error::{Error, Result};
use rustls::pki_types::{CertificateDer, UnixTime};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Most trust anchors a trust store holds (Google's limit).
pub const MAX_ANCHORS: usize = 3;
/// Most intermediate CAs a trust store holds (Google's limit).
pub const MAX_INTERMEDIATES: usize = 10;
/// Longest path from the leaf up to (not counting) the anchor: the leaf and its
/// intermediate CAs.
pub const MAX_DEPTH: usize = 5;

/// The `x509` object of a provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X509Config {
    /// The trust store inline.
    #[serde(default)]
    pub trust_store: Option<TrustStoreJson>,
    /// A file `{"trustStore": {…}}` (gcloud's `--trust-store-config-path`, as JSON), relative
    /// to the config file.
    #[serde(default)]
    pub trust_store_config: Option<PathBuf>,
    /// The certificates, loaded and checked.
    #[serde(skip)]
    pub store: TrustStore,
}

/// Google's trust store object.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrustStoreJson {
    /// Root CAs.
    #[serde(default)]
    trust_anchors: Vec<PemEntry>,
    /// Intermediate CAs that help build chains.
    #[serde(default)]
    intermediate_cas: Vec<PemEntry>,
}

/// One certificate of a trust store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PemEntry {
    #[serde(default)]
    pem_certificate: Option<String>,
    #[serde(default)]
    pem_certificate_file: Option<PathBuf>,
}

/// gcloud's trust store configuration file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TrustStoreFile {
    trust_store: TrustStoreJson,
}

/// A loaded trust store (DER).
#[derive(Debug, Default)]
pub struct TrustStore {
    /// Trust anchors.
    pub anchors: Vec<CertificateDer<'static>>,
    /// Intermediate CAs.
    pub intermediates: Vec<CertificateDer<'static>>,
}

/// Why a chain does not verify against a trust store.
#[derive(Debug, PartialEq, Eq)]
pub enum ChainError {
    /// It does not build to an anchor (unknown issuer, bad signature, wrong usage…).
    Untrusted(String),
    /// A certificate on the path is expired or not yet valid.
    Time(String),
    /// The path is longer than [`MAX_DEPTH`].
    TooDeep,
}

impl X509Config {
    /// Loads and checks the trust store; `at` is the JSON path of this object (for errors),
    /// `base` the config file's directory.
    pub fn prepare(&mut self, base: &Path, at: &str) -> Result<()> {
        self.store = match (&self.trust_store, &self.trust_store_config) {
            (Some(json), None) => TrustStore::load(json, base, &format!("{at}.trust_store"))?,
            (None, Some(file)) => {
                let full = base.join(file);
                let bytes = std::fs::read(&full)
                    .map_err(|e| Error::io(&full, &e).context(format!("{at}.trust_store_config")))?;
                let parsed: TrustStoreFile = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::input(format!("{at}.trust_store_config: {} is not a trust store configuration: {e}", full.display()))
                        .hint(r#"gcloud's trust store file as JSON: {"trustStore": {"trustAnchors": [{"pemCertificate": "-----BEGIN CERTIFICATE-----\n…"}], "intermediateCas": […]}}"#)
                })?;
                let dir = full.parent().map(Path::to_path_buf).unwrap_or_default();
                TrustStore::load(&parsed.trust_store, &dir, &format!("{} trustStore", full.display()))?
            }
            _ => return Err(Error::input(format!("{at}: give exactly one of trust_store and trust_store_config"))),
        };
        Ok(())
    }
}

impl TrustStore {
    /// Loads the certificates of `json` and checks Google's limits; `at` names it in errors.
    fn load(json: &TrustStoreJson, base: &Path, at: &str) -> Result<TrustStore> {
        let anchors_at = format!("{at}.trustAnchors");
        if !(1..=MAX_ANCHORS).contains(&json.trust_anchors.len()) {
            return Err(Error::input(format!(
                "{anchors_at}: a trust store holds 1 to {MAX_ANCHORS} trust anchors (Google's limit), not {}",
                json.trust_anchors.len()
            )));
        }
        let inter_at = format!("{at}.intermediateCas");
        if json.intermediate_cas.len() > MAX_INTERMEDIATES {
            return Err(Error::input(format!(
                "{inter_at}: a trust store holds at most {MAX_INTERMEDIATES} intermediate CAs (Google's limit), not {}",
                json.intermediate_cas.len()
            )));
        }
        let mut store = TrustStore::default();
        for (i, entry) in json.trust_anchors.iter().enumerate() {
            let here = format!("{anchors_at}[{i}]");
            let der = entry.load(base, &here)?;
            if !x509::self_signed(&der) || !x509::parse(&der).is_some_and(|c| x509::is_ca(&c)) {
                return Err(Error::input(format!("{here}: a trust anchor must be a self-signed CA certificate")));
            }
            store.anchors.push(der);
        }
        for (i, entry) in json.intermediate_cas.iter().enumerate() {
            let here = format!("{inter_at}[{i}]");
            let der = entry.load(base, &here)?;
            if !x509::parse(&der).is_some_and(|c| x509::is_ca(&c)) {
                return Err(Error::input(format!(
                    "{here}: an intermediate CA must be a CA certificate (basicConstraints cA)"
                )));
            }
            store.intermediates.push(der);
        }
        Ok(store)
    }

    /// Verifies that `chain` (DER, leaf first; the rest and the store's intermediates may
    /// build the path) leads to one of the anchors at `now` (Unix seconds), for client
    /// authentication, in at most [`MAX_DEPTH`] certificates below the anchor.
    pub fn verify(&self, chain: &[Vec<u8>], now: i64) -> std::result::Result<(), ChainError> {
        let untrusted = |e: webpki::Error| ChainError::Untrusted(format!("{e:?}"));
        let Some(leaf) = chain.first() else { return Err(ChainError::Untrusted("no certificate".into())) };
        let leaf = CertificateDer::from(leaf.as_slice());
        let end_entity = webpki::EndEntityCert::try_from(&leaf).map_err(untrusted)?;
        let anchors: Vec<_> = self.anchors.iter().filter_map(|a| webpki::anchor_from_trusted_cert(a).ok()).collect();
        let mut intermediates: Vec<CertificateDer<'_>> =
            chain[1..].iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        intermediates.extend(self.intermediates.iter().cloned());
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(u64::try_from(now).unwrap_or(0)));
        let depth = |path: &webpki::VerifiedPath<'_>| match 1 + path.intermediate_certificates().count() {
            n if n > MAX_DEPTH => Err(webpki::Error::MaximumPathDepthExceeded),
            _ => Ok(()),
        };
        let verified = end_entity.verify_for_usage(
            x509::algorithms().all,
            &anchors,
            &intermediates,
            time,
            webpki::KeyUsage::client_auth(),
            None,
            Some(&depth),
        );
        match verified {
            Ok(_) => Ok(()),
            Err(webpki::Error::MaximumPathDepthExceeded) => Err(ChainError::TooDeep),
            Err(e @ (webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. })) => {
                Err(ChainError::Time(format!("{e:?}")))
            }
            Err(e) => Err(untrusted(e)),
        }
    }
}

impl PemEntry {
    /// The one certificate of this entry (DER), its key type within Google's limits.
    fn load(&self, base: &Path, at: &str) -> Result<CertificateDer<'static>> {
        let (bytes, from) = match (&self.pem_certificate, &self.pem_certificate_file) {
            (Some(pem), None) => (pem.as_bytes().to_vec(), format!("{at}.pemCertificate")),
            (None, Some(file)) => {
                let full = base.join(file);
                let bytes = std::fs::read(&full)
                    .map_err(|e| Error::io(&full, &e).context(format!("{at}.pemCertificateFile")))?;
                (bytes, format!("{at}.pemCertificateFile ({})", full.display()))
            }
            _ => return Err(Error::input(format!("{at}: give exactly one of pemCertificate and pemCertificateFile"))),
        };
        let mut certs = crate::core::keys::certs_from_bytes(&bytes).map_err(|e| e.context(from.clone()))?;
        if certs.len() != 1 {
            return Err(Error::input(format!("{from}: holds {} certificates; give one per entry", certs.len())));
        }
        let der = certs.remove(0);
        let cert = x509::parse(&der).ok_or_else(|| Error::input(format!("{from}: not an X.509 certificate")))?;
        let key = KeyType::of(&cert);
        if !key.allowed() {
            return Err(Error::input(format!(
                "{from}: {} has {}; Google accepts RSA 2048 to 4096 bits or ECDSA P-256/P-384",
                x509::subject(&cert),
                key.describe()
            )));
        }
        Ok(der)
    }
}
