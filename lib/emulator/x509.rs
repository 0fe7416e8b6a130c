//! What STS reads of the certificates of an mtls exchange: the `subject_token` (a JSON
//! array of base64 DER certificates, leaf first), each certificate's validity and key type
//! (Google's limits: RSA 2048–4096 bits, ECDSA P-256 or P-384), whether a certificate is a
//! self-signed CA (trust anchors), and the `assertion` the attribute mapping reads from
//! the leaf.

use base64::Engine as _;
use rustls::crypto::WebPkiSupportedAlgorithms;
use serde_json::{json, Value};
use std::sync::LazyLock;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::X509Name;

const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";

/// A certificate's key type, as Google's limits see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// RSA with this many bits.
    Rsa(usize),
    /// ECDSA on P-256.
    EcP256,
    /// ECDSA on P-384.
    EcP384,
    /// Anything else (another curve, DSA, Ed25519…), described.
    Other(String),
}

impl KeyType {
    /// Of a parsed certificate.
    pub fn of(cert: &X509Certificate<'_>) -> KeyType {
        let spki = &cert.tbs_certificate.subject_pki;
        match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => KeyType::Rsa(rsa.key_size()),
            Ok(PublicKey::EC(_)) => {
                let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
                match curve.as_deref() {
                    Some(P256) => KeyType::EcP256,
                    Some(P384) => KeyType::EcP384,
                    other => KeyType::Other(format!("an EC key on curve {}", other.unwrap_or("unknown"))),
                }
            }
            _ => KeyType::Other(format!("a key of algorithm {}", spki.algorithm.algorithm.to_id_string())),
        }
    }

    /// Whether Google accepts it: RSA 2048–4096 bits, ECDSA P-256 or P-384.
    pub fn allowed(&self) -> bool {
        match self {
            KeyType::Rsa(bits) => (2048..=4096).contains(bits),
            KeyType::EcP256 | KeyType::EcP384 => true,
            KeyType::Other(_) => false,
        }
    }

    /// For error messages: `an RSA 1024-bit key`, `an EC P-256 key`.
    pub fn describe(&self) -> String {
        match self {
            KeyType::Rsa(bits) => format!("an RSA {bits}-bit key"),
            KeyType::EcP256 => "an EC P-256 key".into(),
            KeyType::EcP384 => "an EC P-384 key".into(),
            KeyType::Other(what) => what.clone(),
        }
    }
}

/// The aws-lc-rs provider's signature verification algorithms, which the TLS handshake,
/// chain building and the self-signed check all verify with. Read once: building the
/// provider allocates its cipher suites and key-exchange groups.
pub fn algorithms() -> WebPkiSupportedAlgorithms {
    static ALGORITHMS: LazyLock<WebPkiSupportedAlgorithms> =
        LazyLock::new(|| rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms);
    *ALGORITHMS
}

/// Parses DER as X.509; `None` when it is not.
pub fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    x509_parser::parse_x509_certificate(der).ok().map(|(_, c)| c)
}

/// The subject as one line, e.g. `O=wif test, CN=wif-client`.
pub fn subject(cert: &X509Certificate<'_>) -> String {
    cert.subject().to_string()
}

/// Whether the certificate is a CA (basicConstraints cA).
pub fn is_ca(cert: &X509Certificate<'_>) -> bool {
    cert.basic_constraints().ok().flatten().is_some_and(|b| b.value.ca)
}

/// Whether a certificate is self-signed: its issuer is its subject and its own key
/// verifies its signature (with [`algorithms`]).
pub fn self_signed(der: &[u8]) -> bool {
    let Some(cert) = parse(der) else { return false };
    cert.subject().as_raw() == cert.issuer().as_raw() && signed_by(der, &cert, &cert)
}

/// Whether `issuer`'s public key verifies the signature of `cert` (parsed from `der`).
fn signed_by(der: &[u8], cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    let (Some(sig_alg), Some(key_alg)) =
        (signature_algorithm(der), first_element(issuer.tbs_certificate.subject_pki.raw))
    else {
        return false;
    };
    let key = &issuer.tbs_certificate.subject_pki.subject_public_key.data;
    algorithms().all.iter().any(|alg| {
        alg.signature_alg_id().as_ref() == sig_alg.as_slice()
            && alg.public_key_alg_id().as_ref() == key_alg.as_slice()
            && alg.verify_signature(key, cert.tbs_certificate.as_ref(), &cert.signature_value.data).is_ok()
    })
}

/// The contents of a certificate's signatureAlgorithm (an AlgorithmIdentifier without its
/// SEQUENCE header, as rustls's algorithms name themselves).
fn signature_algorithm(der: &[u8]) -> Option<Vec<u8>> {
    use der::asn1::AnyRef;
    use der::Reader;
    let mut reader = der::SliceReader::new(der).ok()?;
    reader
        .sequence(|c| {
            let _tbs: AnyRef<'_> = c.decode()?;
            let alg: AnyRef<'_> = c.decode()?;
            c.read_slice(c.remaining_len())?;
            Ok(alg.value().to_vec())
        })
        .ok()
}

/// The contents of the first element of a SEQUENCE (an SPKI's AlgorithmIdentifier).
fn first_element(seq: &[u8]) -> Option<Vec<u8>> {
    use der::asn1::AnyRef;
    use der::Reader;
    let mut reader = der::SliceReader::new(seq).ok()?;
    reader
        .sequence(|s| {
            let first: AnyRef<'_> = s.decode()?;
            s.read_slice(s.remaining_len())?;
            Ok(first.value().to_vec())
        })
        .ok()
}

/// Most certificates a `subject_token` may hold: the leaf, its intermediate CAs up to the
/// depth limit and the anchor, with room to spare. Google documents no number; the emulator
/// refuses a longer list before it parses any of it, so a request cannot make it parse and
/// try hundreds of certificates.
pub const MAX_SUBJECT_CERTS: usize = 10;

/// The certificates (DER, leaf first) of a `subject_token`, each parsed once to make sure it
/// is X.509; or why the token is not what STS takes.
pub fn decode_subject_token(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let list: Vec<Value> = match serde_json::from_str(text) {
        Ok(Value::Array(list)) => list,
        _ => return Err("the subject_token must be a JSON array of base64-encoded DER certificates".into()),
    };
    if list.is_empty() {
        return Err("the subject_token holds no certificate".into());
    }
    if list.len() > MAX_SUBJECT_CERTS {
        return Err(format!(
            "the subject_token holds {} certificates, more than {MAX_SUBJECT_CERTS}: send the leaf and the intermediate CAs that lead to the trust anchor",
            list.len()
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let der = v
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .ok_or_else(|| format!("subject_token[{i}] is not a base64-encoded DER certificate"))?;
            parse(&der).ok_or_else(|| format!("subject_token[{i}] is not an X.509 certificate"))?;
            Ok(der)
        })
        .collect()
}

/// A DN's `cn`, `o` and `ou`, each its first value; an attribute the DN lacks is absent
/// (reading it is an evaluation error, as for a missing claim).
fn dn(name: &X509Name<'_>) -> Value {
    let mut out = serde_json::Map::new();
    let attributes = [
        ("cn", name.iter_common_name().next()),
        ("o", name.iter_organization().next()),
        ("ou", name.iter_organizational_unit().next()),
    ];
    for (key, attr) in attributes {
        if let Some(text) = attr.and_then(|a| a.as_str().ok()) {
            out.insert(key.into(), json!(text));
        }
    }
    Value::Object(out)
}

/// The `assertion` the attribute mapping and condition read of a leaf: `subject.dn.{cn,o,ou}`,
/// `issuer.dn.{cn,o,ou}`, `san.{dns,uri,email,ip}` (the first name of each kind, as Google's
/// guide describes them; absent when there is none), `sha256Fingerprint` (standard
/// base64 of the SHA-256 of the DER, unpadded) and `serialNumberHex` (uppercase hex).
pub fn assertion(der: &[u8], cert: &X509Certificate<'_>) -> Value {
    let (mut dns, mut uri, mut email, mut ip) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => dns.push(n.to_string()),
                GeneralName::URI(u) => uri.push(u.to_string()),
                GeneralName::RFC822Name(e) => email.push(e.to_string()),
                GeneralName::IPAddress(bytes) => ip.extend(ip_text(bytes)),
                _ => {}
            }
        }
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    json!({
        "subject": {"dn": dn(cert.subject())},
        "issuer": {"dn": dn(cert.issuer())},
        "san": first_names([("dns", dns), ("uri", uri), ("email", email), ("ip", ip)]),
        "sha256Fingerprint": base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref()),
        "serialNumberHex": format!("{:X}", cert.tbs_certificate.serial),
    })
}

/// The first name of each kind that the certificate has.
fn first_names(kinds: [(&str, Vec<String>); 4]) -> Value {
    let firsts =
        kinds.into_iter().filter_map(|(kind, names)| Some((kind.to_string(), json!(names.into_iter().next()?))));
    Value::Object(firsts.collect())
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes).ok().map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}
