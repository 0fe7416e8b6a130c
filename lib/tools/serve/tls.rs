//! The server's TLS configuration: its certificate chain and key, the client CA bundle, CRLs;
//! built once, shared by every connection, and rebuilt when one of the files changes.

use super::token::Stamp;
use crate::core::error::{Error, Kind, Result};
use crate::core::settings::{key, Key};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The files the TLS configuration is made of.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Server certificate chain (leaf first).
    pub cert: PathBuf,
    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates a client certificate must chain to (root and intermediates).
    pub client_ca: PathBuf,
    /// Certificate revocation lists (PEM or DER).
    pub crls: Vec<PathBuf>,
    /// Whether a client may come without a certificate (`--bearer-issuers`: it then shows a
    /// bearer token instead); a certificate it presents is verified all the same.
    pub certificate_optional: bool,
}

impl TlsFiles {
    fn all(&self) -> Vec<&Path> {
        let mut v = vec![self.cert.as_path(), self.key.as_path(), self.client_ca.as_path()];
        v.extend(self.crls.iter().map(PathBuf::as_path));
        v
    }

    fn stamps(&self) -> Vec<Option<Stamp>> {
        self.all().into_iter().map(|p| Stamp::of(p).ok()).collect()
    }
}

/// One build of the TLS files: the configuration new handshakes use, and the verifier that
/// judges client certificates under it (kept to judge open connections again after a
/// reload).
pub struct Built {
    /// The server configuration.
    pub config: Arc<ServerConfig>,
    /// Its client certificate verifier.
    pub verifier: Arc<dyn ClientCertVerifier>,
    /// Which build this is: 0 at start, one more on every successful reload.
    pub generation: u64,
    /// The configuration of shed connections: the same certificate and key, no client
    /// certificate asked for (nothing to verify), its own session cache.
    pub shed: Arc<ServerConfig>,
}

impl Built {
    fn new(config: Arc<ServerConfig>, verifier: Arc<dyn ClientCertVerifier>, generation: u64) -> Result<Built> {
        let mut shed = ServerConfig::builder_with_provider(config.crypto_provider().clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| Error::new(Kind::Internal, e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(config.cert_resolver.clone());
        shed.alpn_protocols = config.alpn_protocols.clone();
        // The server's choice of suite, as for full handshakes (see `server_provider`).
        shed.ignore_client_order = config.ignore_client_order;
        Ok(Built { config, verifier, generation, shed: Arc::new(shed) })
    }

    /// Verifies a client's certificate chain (leaf first, as it presented it) again, now.
    pub fn verify_client(&self, chain: &[CertificateDer<'_>]) -> std::result::Result<(), rustls::Error> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        self.verifier.verify_client_cert(leaf, intermediates, UnixTime::now()).map(|_| ())
    }
}

/// Where a file setting of wif-serve was given: its flag or variable, else its config key.
fn origin(arg: &str, key: Key) -> String {
    crate::core::settings::given_as(arg).unwrap_or_else(|| format!("config key \"{}\"", key.name))
}

/// Builds the server configuration: TLS 1.3 and 1.2, aws-lc-rs, and a client certificate
/// verified against the client CA bundle and the CRLs; required, unless
/// `certificate_optional` (bearer clients).
pub fn build(files: &TlsFiles) -> Result<(Arc<ServerConfig>, Arc<dyn ClientCertVerifier>)> {
    let chain = crate::core::keys::load_chain(&files.cert).map_err(|e| {
        e.context("loading the server certificate")
            .file_setting(&origin("cert", key::SERVE_CERT), "the server's certificate chain")
            .hint("give the server's certificate chain in PEM, leaf first")
    })?;
    let _ = crate::core::keys::warn_if_not_current(
        chain.leaf(),
        &format!("the server certificate {}", files.cert.display()),
        "clients will refuse it",
        crate::core::keys::ValidityCheck::ExpiryAndStart,
    );
    let key = crate::core::keys::load_key(&files.key, None)
        .map_err(|e| {
            e.context("loading the server key")
                .file_setting(&origin("key", key::SERVE_KEY), "the private key of the server certificate (PEM)")
        })?
        .key;

    let ca = crate::core::keys::load_certs(&files.client_ca).map_err(|e| {
        e.context("loading the client CA bundle")
            .file_setting(&origin("client_ca", key::CLIENT_CA), "the CA certificates that issue client certificates")
            .hint("give the root and intermediate certificates that issue client certificates, in PEM")
    })?;
    let mut roots = RootCertStore::empty();
    for (i, cert) in ca.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            Error::input(format!(
                "certificate #{} of {} cannot be a trust anchor: {e}",
                i + 1,
                files.client_ca.display()
            ))
            .context("loading the client CA bundle (--client-ca)")
        })?;
    }
    let mut crls = Vec::new();
    for path in &files.crls {
        let crl = load_crls(path)
            .map_err(|e| e.file_setting(&origin("crl", key::CRL), "a certificate revocation list (PEM or DER)"))?;
        crls.extend(crl);
    }

    let provider = Arc::new(server_provider());
    // CRLs are given for the issuers the operator revokes from; a chain element whose
    // issuer published no CRL here (e.g. the intermediate under the root) is not refused
    // for that alone.
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        .allow_unknown_revocation_status();
    if files.certificate_optional {
        builder = builder.allow_unauthenticated();
    }
    let verifier = builder
        .build()
        .map_err(|e| Error::input(e.to_string()).context("setting up client certificate verification"))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::new(Kind::Internal, e.to_string()))?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(chain.into_vec(), key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => Error::input(format!(
                "the key {} does not belong to the certificate {}",
                files.key.display(),
                files.cert.display()
            ))
            .hint("compare: openssl x509 -noout -pubkey -in CERT vs openssl pkey -pubout -in KEY"),
            other => Error::input(format!("the server certificate or key is unusable: {other}")),
        })
        .map_err(|e| e.context("setting up TLS"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    // rustls' default TLS 1.3 tickets stay on, though one-shot clients never resume: the
    // tickets are also the server's immediate answer to the client's Finished, and without
    // them a client that leaves Nagle on (TCP_NODELAY off) waits for the server's delayed ACK
    // (40 ms) before its request goes out; measured: 50,000 handshakes took 5x longer. The
    // session cache belongs to this config, so a reload (new certificates or CRL) starts an
    // empty one and no session resumes past a revocation.
    Ok((Arc::new(config), verifier))
}

/// Reads every CRL in a file (PEM with one or more `X509 CRL` blocks, or one DER CRL).
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let ctx = || format!("loading the CRL {}", path.display());
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e).context(ctx()))?;
    let crls: Vec<CertificateRevocationListDer<'static>> = if crate::core::keys::looks_like_der(&bytes) {
        vec![CertificateRevocationListDer::from(bytes)]
    } else {
        CertificateRevocationListDer::pem_slice_iter(&bytes).collect::<std::result::Result<_, _>>().map_err(|e| {
            Error::input(format!("malformed PEM: {}", crate::core::keys::pem_problem(&e))).context(ctx())
        })?
    };
    if crls.is_empty() {
        return Err(Error::input("no X509 CRL found")
            .context(ctx())
            .hint("a CRL file starts with -----BEGIN X509 CRL-----"));
    }
    for (i, crl) in crls.iter().enumerate() {
        check_crl(crl).map_err(|e| e.context(format!("CRL #{} of {}", i + 1, path.display())).context(ctx()))?;
    }
    Ok(crls)
}

/// What the verifier needs of a CRL and rustls would only call "ParseError": RFC 5280's
/// version 2 with extensions (a CRL number at least). `openssl ca -gencrl` writes version 1
/// unless the CA has a `crlnumber` file or `crl_extensions`.
fn check_crl(crl: &CertificateRevocationListDer<'_>) -> Result<()> {
    let (_, parsed) = x509_parser::parse_x509_crl(crl.as_ref())
        .map_err(|e| Error::input(format!("not a certificate revocation list: {e}")))?;
    if parsed.version().is_none() || parsed.extensions().is_empty() {
        return Err(Error::input(
            "it is a version 1 CRL (no extensions); revocation checking needs a version 2 CRL with a CRL number, as RFC 5280 requires",
        )
        .hint(
            "make the CA write version 2 CRLs: in its openssl config set `crlnumber = $dir/crlnumber` (create the file: echo 1000 > crlnumber) \
             and `crl_extensions = crl_ext` with a [crl_ext] section holding `authorityKeyIdentifier = keyid:always`, then run openssl ca -gencrl again",
        ));
    }
    Ok(())
}

/// aws-lc with the server's preference among the suites: TLS_AES_128_GCM_SHA256 before
/// TLS_AES_256_GCM_SHA384 (rustls' client default lists the latter first). Its SHA-256
/// transcript and key schedule cost less than SHA-384's (measured: about a tenth of a full
/// handshake's CPU). Every suite stays enabled.
fn server_provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
        _ => 2,
    });
    provider
}

/// The configuration in force, swapped atomically when the files change.
pub struct TlsSource {
    files: TlsFiles,
    current: RwLock<Arc<Built>>,
    /// The generation of `current`, readable without the lock (checked on every request).
    generation: AtomicU64,
    stamps: Mutex<Vec<Option<Stamp>>>,
}

impl TlsSource {
    /// Loads the configuration; errors here stop the server from starting.
    pub fn load(files: TlsFiles) -> Result<TlsSource> {
        let stamps = files.stamps();
        let (config, verifier) = build(&files)?;
        Ok(TlsSource {
            files,
            current: RwLock::new(Arc::new(Built::new(config, verifier, 0)?)),
            generation: AtomicU64::new(0),
            stamps: Mutex::new(stamps),
        })
    }

    /// The build in force: its configuration for a new connection's handshake.
    pub fn current(&self) -> Arc<Built> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The generation of the build in force; when it differs from the one a connection's
    /// client was verified under, that client must be verified again.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Rebuilds the configuration if a file changed; `None` when nothing changed. On failure
    /// the previous configuration stays in force. New handshakes use the new build; open
    /// connections have their client verified again before their next request.
    pub fn refresh(&self) -> Option<Result<()>> {
        self.rebuild(false)
    }

    /// Rebuilds the configuration now, changed or not (SIGHUP).
    pub fn reload(&self) -> Result<()> {
        self.rebuild(true).unwrap_or(Ok(()))
    }

    fn rebuild(&self, force: bool) -> Option<Result<()>> {
        let now = self.files.stamps();
        {
            let mut seen = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *seen == now {
                return None;
            }
            // Recorded even when the rebuild fails, so a broken file is reported once and
            // tried again when it changes next (e.g. the key after the certificate).
            *seen = now;
        }
        Some(build(&self.files).and_then(|(config, verifier)| {
            let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
            let generation = current.generation + 1;
            *current = Arc::new(Built::new(config, verifier, generation)?);
            self.generation.store(generation, Ordering::Release);
            Ok(())
        }))
    }
}
