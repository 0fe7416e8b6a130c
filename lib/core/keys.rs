//! Keys and certificates: PEM (PKCS#1, PKCS#8, SEC1) and PKCS#12 loading, `CertChain` (a
//! certificate chain that is never empty), thumbprints, the check that a key belongs to its
//! certificate, and the one warning for a certificate that is expired or not yet valid.

use crate::core::error::{Error, Kind, Result};
use crate::core::secret::Secret;
use crate::core::settings::FileSetting;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::Path;

/// A private key with the certificates that came with it (from PKCS#12 or a combined PEM).
pub struct KeyBundle {
    /// The private key.
    pub key: PrivateKeyDer<'static>,
    /// Certificates found in the same file, leaf first, if there were any.
    pub chain: Option<CertChain>,
}

impl std::fmt::Debug for KeyBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyBundle(<private key>, {} certificates)", self.chain.as_ref().map_or(0, CertChain::len))
    }
}

/// A certificate chain that is never empty: the leaf, then the certificates that issued it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertChain(Vec<CertificateDer<'static>>);

impl CertChain {
    /// The chain of `certs` (leaf first), or `None` when there are none.
    pub fn new(certs: Vec<CertificateDer<'static>>) -> Option<Self> {
        (!certs.is_empty()).then_some(CertChain(certs))
    }

    /// The end-entity certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.0[0]
    }

    /// The certificates after the leaf (intermediates, perhaps a root).
    pub fn rest(&self) -> &[CertificateDer<'static>] {
        &self.0[1..]
    }

    /// Every certificate, leaf first.
    pub fn certs(&self) -> &[CertificateDer<'static>] {
        &self.0
    }

    /// How many certificates (at least one).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The certificates, leaf first, as rustls takes them.
    pub fn into_vec(self) -> Vec<CertificateDer<'static>> {
        self.0
    }
}

/// The validity checks [`warn_if_not_current`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidityCheck {
    /// Only whether it has expired.
    Expiry,
    /// Whether it has expired or is not valid yet.
    ExpiryAndStart,
}

/// Warns when a certificate has expired (`{what} expired at {time}; {consequence}`) or, with
/// [`ValidityCheck::ExpiryAndStart`], is not valid yet (`{what} is not valid yet`). A
/// certificate that is not X.509 is an error (callers that checked it already ignore it).
pub fn warn_if_not_current(cert: &[u8], what: &str, consequence: &str, check: ValidityCheck) -> Result<()> {
    let Ok((_, c)) = x509_parser::parse_x509_certificate(cert) else {
        return Err(Error::input("the certificate is not valid X.509"));
    };
    let v = c.validity();
    let now = crate::core::clock::now_unix();
    if v.not_after.timestamp() < now {
        let at = crate::core::clock::Timestamp::from_unix(v.not_after.timestamp());
        crate::core::diag::warn(format!("{what} expired at {at}; {consequence}"));
    } else if check == ValidityCheck::ExpiryAndStart && v.not_before.timestamp() > now {
        crate::core::diag::warn(format!("{what} is not valid yet"));
    }
    Ok(())
}

/// The kinds of signing key wif supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// RSA, 2048 bits or more: RS256 / PS256.
    Rsa,
    /// ECDSA on P-256: ES256.
    EcP256,
    /// ECDSA on P-384: ES384.
    EcP384,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, &e).context(format!("reading the {what}")))
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Loads a certificate chain, leaf first, from a PEM file (a DER file holds the leaf alone).
pub fn load_chain(path: &Path) -> Result<CertChain> {
    let certs = load_certs(path)?;
    CertChain::new(certs).ok_or_else(|| Error::input(format!("no certificate in {}", path.display())))
}

/// Loads every certificate in a PEM file (a DER file holds one): a CA bundle, or a chain.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read(path, "certificate file")?;
    certs_from_bytes(&bytes).map_err(|e| e.context(format!("reading certificates from {}", path.display())))
}

/// Parses PEM certificates (or a single DER certificate).
pub fn certs_from_bytes(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    if !looks_like_pem(bytes) {
        if looks_like_der(bytes) {
            return Ok(vec![CertificateDer::from(bytes.to_vec())]);
        }
        return Err(
            Error::input("no PEM certificate found").hint("a certificate file starts with -----BEGIN CERTIFICATE-----")
        );
    }
    let certs: Vec<_> = CertificateDer::pem_slice_iter(bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::input(format!("malformed PEM: {}", pem_problem(&e))))?;
    if certs.is_empty() {
        return Err(Error::input("the file holds PEM blocks but no CERTIFICATE")
            .hint("is this the key file instead of the certificate?"));
    }
    Ok(certs)
}

/// What is wrong with a PEM file, in words that quote nothing of it: the parser's own
/// messages quote the offending line (a key file's, or whatever file a document named as
/// one) and base64 errors name the offending byte.
pub fn pem_problem(e: &rustls_pki_types::pem::Error) -> &'static str {
    use rustls_pki_types::pem::Error as Pem;
    match e {
        Pem::MissingSectionEnd { .. } => "a -----BEGIN section has no -----END line",
        Pem::IllegalSectionStart { .. } => "a -----BEGIN line is not of the form -----BEGIN LABEL-----",
        Pem::Base64Decode(_) => "a section's body is not valid base64",
        Pem::NoItemsFound => "no PEM section of the expected kind",
        Pem::SectionTooLarge => "a PEM section is larger than 256 MB",
        _ => "the file could not be read as PEM",
    }
}

/// Loads a private key: PEM (PKCS#8, PKCS#1, SEC1) or PKCS#12 (`.p12`/`.pfx`, or any
/// non-PEM file) opened with `password`.
pub fn load_key(path: &Path, password: Option<&Secret>) -> Result<KeyBundle> {
    let bytes = read(path, "private key")?;
    let ctx = || format!("loading the private key {}", path.display());
    let bundle = if looks_like_pem(&bytes) { key_from_pem(&bytes) } else { key_from_pkcs12(&bytes, password) };
    let bundle = bundle.map_err(|e| e.context(ctx()))?;
    warn_if_readable_by_others(path);
    Ok(bundle)
}

/// Whether a path names a PKCS#12 keystore (`.p12`, `.pfx`).
pub fn is_pkcs12(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("p12") || e.eq_ignore_ascii_case("pfx"))
}

/// Parses a PEM private key, plus any certificates in the same file.
pub fn key_from_pem(bytes: &[u8]) -> Result<KeyBundle> {
    if bytes.windows(20).any(|w| w == b"ENCRYPTED PRIVATE KE") {
        return Err(Error::input("the PEM key is encrypted").hint(
            "decrypt it (openssl pkcs8 -in key.pem -out plain.pem) into a 0600 file, or use a PKCS#12 file with a password file",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => Error::input("no private key in the file")
            .hint("a key file starts with -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY)"),
        other => Error::input(format!("malformed PEM key: {}", pem_problem(&other))),
    })?;
    let chain = CertChain::new(CertificateDer::pem_slice_iter(bytes).filter_map(|c| c.ok()).collect());
    Ok(KeyBundle { key, chain })
}

/// Opens a PKCS#12 file with its password.
pub fn key_from_pkcs12(bytes: &[u8], password: Option<&Secret>) -> Result<KeyBundle> {
    let pw = password.map(Secret::expose).unwrap_or("");
    let store = p12_keystore::KeyStore::from_pkcs12(bytes, pw).map_err(|e| {
        use p12_keystore::error::Error as P;
        match e {
            P::MacError(_) => Error::input("wrong password for the PKCS#12 file (its integrity check failed)").hint(
                if password.is_none() {
                    "give the password with --key-password-file FILE or --key-password-env VAR"
                } else {
                    "check the password file/variable; a trailing newline in a password file is ignored"
                },
            ),
            _ => Error::input("not a PEM key and not a readable PKCS#12 file")
                .hint("give a PEM key (PKCS#8, PKCS#1 or SEC1) or a .p12/.pfx file"),
        }
    })?;
    let Some((_, chain)) = store.private_key_chain() else {
        return Err(Error::input("the PKCS#12 file holds no private key"));
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().to_vec()));
    let certs = chain.chain().iter().map(|c| CertificateDer::from(c.as_der().to_vec())).collect();
    Ok(KeyBundle { key, chain: CertChain::new(certs) })
}

/// Reads a secret — `what`, e.g. "key password" — from a file (its first line) or from the
/// named environment variable.
pub fn read_password(file: Option<&FileSetting>, env_name: Option<&str>, what: &str) -> Result<Option<Secret>> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(&f.path)
            .map_err(|e| Error::io(&f.path, &e).context(format!("reading the {what} file")))
            .map_err(f.explain(&format!("a file whose first line is the {what}")))?;
        let line = text.lines().next().unwrap_or("");
        return Ok(Some(Secret::new(line)));
    }
    if let Some(name) = env_name {
        return match std::env::var(name) {
            Ok(v) => Ok(Some(Secret::new(v))),
            Err(_) => Err(Error::usage(format!("the environment variable {name} (named for the {what}) is not set"))),
        };
    }
    Ok(None)
}

/// Warns like ssh does when a private key file is readable by group or others.
pub fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                crate::core::diag::warn(format!(
                    "private key {} is accessible by others (mode {mode:04o}); run chmod 600 on it",
                    path.display()
                ));
            }
        }
    }
}

/// A signing key identified by type, with its public key in the form certificates carry.
pub struct SigningKey {
    /// The key's type.
    pub key_type: KeyType,
    /// DER for jsonwebtoken: PKCS#1 for RSA, PKCS#8 for EC.
    pub jwt_der: Vec<u8>,
    /// The public key as in a certificate's subjectPublicKey bit string.
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({:?}, <private>)", self.key_type)
    }
}

/// Identifies the key type and prepares it for signing.
pub fn signing_key(key: &PrivateKeyDer<'_>) -> Result<SigningKey> {
    let unsupported = || {
        Error::input("unsupported key type")
            .hint("wif signs with RSA (2048 bits or more), ECDSA P-256 or ECDSA P-384 keys")
    };
    match key {
        PrivateKeyDer::Pkcs1(k) => {
            let pair = RsaKeyPair::from_der(k.secret_pkcs1_der())
                .map_err(|e| Error::input(format!("RSA key rejected: {e}")))?;
            Ok(SigningKey {
                key_type: KeyType::Rsa,
                jwt_der: k.secret_pkcs1_der().to_vec(),
                public_key: pair.public_key().as_ref().to_vec(),
            })
        }
        PrivateKeyDer::Sec1(k) => ec_from_der(k.secret_sec1_der()).ok_or_else(unsupported),
        PrivateKeyDer::Pkcs8(k) => {
            let der = k.secret_pkcs8_der();
            if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
                let pkcs1 = pkcs8_inner_key(der).ok_or_else(|| Error::input("malformed PKCS#8 RSA key"))?;
                return Ok(SigningKey {
                    key_type: KeyType::Rsa,
                    jwt_der: pkcs1,
                    public_key: pair.public_key().as_ref().to_vec(),
                });
            }
            ec_from_der(der).ok_or_else(unsupported)
        }
        _ => Err(unsupported()),
    }
}

fn ec_from_der(der: &[u8]) -> Option<SigningKey> {
    for (alg, key_type) in
        [(&ECDSA_P256_SHA256_FIXED_SIGNING, KeyType::EcP256), (&ECDSA_P384_SHA384_FIXED_SIGNING, KeyType::EcP384)]
    {
        if let Ok(pair) = EcdsaKeyPair::from_private_key_der(alg, der) {
            let pkcs8 = pair.to_pkcs8v1().ok()?;
            return Some(SigningKey {
                key_type,
                jwt_der: pkcs8.as_ref().to_vec(),
                public_key: pair.public_key().as_ref().to_vec(),
            });
        }
    }
    None
}

/// The `privateKey` OCTET STRING of a PKCS#8 PrivateKeyInfo (PKCS#1 for RSA keys).
fn pkcs8_inner_key(pkcs8: &[u8]) -> Option<Vec<u8>> {
    use der::asn1::{AnyRef, OctetStringRef};
    use der::Reader;
    let mut reader = der::SliceReader::new(pkcs8).ok()?;
    reader
        .sequence(|info| {
            let _version: u8 = info.decode()?;
            let _algorithm: AnyRef<'_> = info.decode()?;
            let key: OctetStringRef<'_> = info.decode()?;
            // Attributes and a public key (OneAsymmetricKey) may follow; they are not needed.
            info.read_slice(info.remaining_len())?;
            Ok(key.as_bytes().to_vec())
        })
        .ok()
}

/// Whether `bytes` start like DER: with a SEQUENCE, as certificates and CRLs do.
pub fn looks_like_der(bytes: &[u8]) -> bool {
    use der::Reader;
    der::SliceReader::new(bytes).is_ok_and(|r| r.peek_tag() == Ok(der::Tag::Sequence))
}

/// The subjectPublicKey bit string of a certificate.
pub fn cert_public_key(cert: &CertificateDer<'_>) -> Result<Vec<u8>> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| Error::input("the certificate is not valid X.509 DER"))?;
    Ok(c.tbs_certificate.subject_pki.subject_public_key.data.to_vec())
}

/// Fails unless the key is the private half of the certificate's public key.
pub fn check_key_matches_cert(key: &SigningKey, cert: &CertificateDer<'_>) -> Result<()> {
    if cert_public_key(cert)? == key.public_key {
        Ok(())
    } else {
        Err(Error::new(Kind::Input, "the private key does not belong to the certificate")
            .hint("use the key the certificate was issued for (compare: openssl x509 -noout -pubkey -in CERT vs openssl pkey -pubout -in KEY)"))
    }
}

/// The certificate chain (leaf first) and key a client presents for mutual TLS: `cert` a PEM
/// chain with `key` a PEM key, or one file (PKCS#12 opened with `password`, or a PEM holding
/// both) when `key` is `None` or names the same file. `cert_what` says what `cert` should
/// be, for the error when it names no file. Checks that the key belongs to the leaf.
pub fn load_cert_and_key(
    cert: &FileSetting,
    key: Option<&FileSetting>,
    password: Option<&Secret>,
    cert_what: &str,
) -> Result<(CertChain, PrivateKeyDer<'static>)> {
    let (chain, key) = match key {
        // No key file: the certificate file is a PKCS#12 (or a PEM holding key and certificate).
        None => {
            let bundle = load_key(&cert.path, password)
                .map_err(cert.explain(cert_what))
                .map_err(|e| e.hint("give --key KEY.pem, or a PKCS#12 file as --cert with --key-password-file"))?;
            let Some(chain) = bundle.chain else {
                return Err(Error::usage(format!("{} holds a key but no certificate", cert.path.display()))
                    .hint("give the certificate with --cert and the key with --key"));
            };
            (chain, bundle.key)
        }
        Some(kf) => {
            let bundle = load_key(&kf.path, password)
                .map_err(kf.explain("the certificate's private key (PEM, or the PKCS#12 file)"))?;
            // One file for both (PKCS#12, or PEM with key and certificate): its certificates.
            let chain = match bundle.chain {
                Some(chain) if kf.path == cert.path => chain,
                _ => load_chain(&cert.path)
                    .map_err(|e| e.context("loading the certificate"))
                    .map_err(cert.explain(cert_what))?,
            };
            (chain, bundle.key)
        }
    };
    if let Ok(sk) = signing_key(&key) {
        check_key_matches_cert(&sk, chain.leaf())
            .map_err(|e| e.context(format!("checking the key against {}", cert.origin)))?;
    }
    Ok((chain, key))
}

/// `x5t`: base64url SHA-1 of the certificate DER, without padding (RFC 7515).
pub fn thumbprint_sha1(cert: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, cert))
}

/// `x5t#S256`: base64url SHA-256 of the certificate DER, without padding.
pub fn thumbprint_sha256(cert: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert))
}

/// The SHA-1 thumbprint in hex, as the Azure portal shows it (upper case).
pub fn thumbprint_sha1_hex(cert: &[u8]) -> String {
    hex::encode_upper(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, cert))
}

/// SHA-256 of some bytes as lower-case hex (fingerprints in logs).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

/// Standard base64 of a certificate, as `x5c` carries it.
pub fn x5c_entry(cert: &[u8]) -> String {
    STANDARD.encode(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_gives_the_pkcs1_key_inside() {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&pair).unwrap().as_ref().to_vec();
        let pkcs1 = pkcs8_inner_key(&pkcs8).unwrap();
        assert_eq!(RsaKeyPair::from_der(&pkcs1).unwrap().public_key().as_ref(), pair.public_key().as_ref());
        // Attributes after the key ([0], as OneAsymmetricKey allows) are skipped.
        let mut with_attributes = pkcs8.clone();
        with_attributes.extend_from_slice(&[0xa0, 0x00]);
        let grown = u16::from_be_bytes([pkcs8[2], pkcs8[3]]) + 2;
        with_attributes[2..4].copy_from_slice(&grown.to_be_bytes());
        assert_eq!(pkcs8_inner_key(&with_attributes).unwrap(), pkcs1);
        // Truncated anywhere, or a length not in its shortest form: refused, never a panic.
        for n in 0..pkcs8.len() {
            assert!(pkcs8_inner_key(&pkcs8[..n]).is_none(), "{n}");
        }
        assert!(pkcs8_inner_key(&[0x30, 0x00]).is_none());
        assert!(pkcs8_inner_key(&[0x30, 0x81, 0x08, 0x02, 0x01, 0x00, 0x30, 0x00, 0x04, 0x01, 0x07]).is_none());
        assert_eq!(pkcs8_inner_key(&[0x30, 0x08, 0x02, 0x01, 0x00, 0x30, 0x00, 0x04, 0x01, 0x07]).unwrap(), [7]);
        assert!(pkcs8_inner_key(&[0x30, 0x08, 0x02, 0x01, 0x00, 0x30, 0x00, 0x05, 0x01, 0x07]).is_none());
    }

    #[test]
    fn der_is_told_from_pem_by_its_first_tag() {
        assert!(looks_like_der(&[0x30, 0x82, 0x01]));
        assert!(looks_like_der(&[0x30]));
        for other in [&b""[..], b"-----BEGIN CERTIFICATE-----", &[0x31, 0x00], &[0x04, 0x00]] {
            assert!(!looks_like_der(other), "{other:?}");
        }
    }

    #[test]
    fn digests_in_hex() {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), abc);
        assert_eq!(thumbprint_sha1_hex(b""), "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709");
    }

    #[test]
    fn thumbprints_are_unpadded_base64url() {
        let t = thumbprint_sha1(b"abc");
        assert_eq!(t.len(), 27);
        assert!(!t.contains('=') && !t.contains('+') && !t.contains('/'));
        assert_eq!(thumbprint_sha1_hex(b"abc"), "A9993E364706816ABA3E25717850C26C9CD0D89D");
    }
}
