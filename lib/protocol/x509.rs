//! Workload Identity Federation with X.509 certificates, as google-auth (≥ 2.39) speaks it:
//! the subject token built from the certificate chain, Google's `certificate_config.json`
//! and where it is found, the mutual-TLS endpoints, and the facts of a certificate worth
//! recording.

use crate::core::clock::{self, Timestamp};
use crate::core::document::WorkloadCertificate;
use crate::core::error::{Context, Error, Result};
use crate::core::files::absolute;
use crate::core::keys;
use crate::core::secret::Secret;
use crate::core::settings::FileSetting;
use crate::http::ClientIdentity;
use base64::Engine;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The subject token type of the X.509 path.
pub const MTLS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:mtls";
/// Google STS over mutual TLS.
pub const DEFAULT_MTLS_TOKEN_URL: &str = "https://sts.mtls.googleapis.com/v1/token";
/// IAM Credentials over mutual TLS.
pub const DEFAULT_MTLS_IAM_ENDPOINT: &str = "https://iamcredentials.mtls.googleapis.com";
/// The environment variable naming the certificate configuration (google-auth, gcloud).
pub const CERTIFICATE_CONFIG_ENV: &str = "GOOGLE_API_CERTIFICATE_CONFIG";
/// The file name of the certificate configuration in gcloud's configuration directory.
pub const CERTIFICATE_CONFIG_NAME: &str = "certificate_config.json";

/// The workload certificate and key a `certificate_config.json` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateConfig {
    /// The certificate (PEM).
    pub cert_path: PathBuf,
    /// Its private key (PEM).
    pub key_path: PathBuf,
}

#[derive(Deserialize)]
struct CertificateConfigFile {
    #[serde(default)]
    cert_configs: Option<Value>,
}

/// The `certificate_config.json` google-auth finds when none is named: the one
/// `GOOGLE_API_CERTIFICATE_CONFIG` names, else gcloud's default. `None` when none is set.
pub fn find_certificate_config() -> Option<PathBuf> {
    match std::env::var_os(CERTIFICATE_CONFIG_ENV).filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => default_certificate_config(),
    }
}

/// gcloud's default `certificate_config.json`: in `$CLOUDSDK_CONFIG`, else
/// `~/.config/gcloud`. `None` when neither that variable nor `HOME` is set.
pub fn default_certificate_config() -> Option<PathBuf> {
    let dir = match std::env::var_os("CLOUDSDK_CONFIG").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".config/gcloud"),
    };
    Some(dir.join(CERTIFICATE_CONFIG_NAME))
}

/// gcloud's default `certificate_config.json` as a message names it: its path, else the
/// usual one.
pub fn default_certificate_config_shown() -> String {
    default_certificate_config()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.config/gcloud/certificate_config.json".into())
}

/// Reads a `certificate_config.json`: `{"version": 1, "cert_configs": {"workload":
/// {"cert_path", "key_path"}}}`. Relative paths in it are taken from the file's directory.
pub fn read_certificate_config(path: &Path) -> Result<CertificateConfig> {
    let doing = format!("reading the certificate configuration {}", path.display());
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e)).context(doing.clone())?;
    parse_certificate_config(&bytes, path.parent().unwrap_or(Path::new("."))).context(doing)
}

fn parse_certificate_config(bytes: &[u8], dir: &Path) -> Result<CertificateConfig> {
    let shape = "it must look like {\"version\": 1, \"cert_configs\": {\"workload\": {\"cert_path\": \"…\", \"key_path\": \"…\"}}}";
    let file: CertificateConfigFile =
        serde_json::from_slice(bytes).map_err(|_| Error::input("it is not a JSON object").hint(shape))?;
    let workload = file.cert_configs.as_ref().and_then(|c| c.get("workload"));
    let Some(workload) = workload else {
        return Err(Error::input("it has no cert_configs.workload").hint(shape));
    };
    let path = |name: &str| -> Result<PathBuf> {
        match workload.get(name) {
            Some(Value::String(p)) if !p.is_empty() => Ok(dir.join(p)),
            _ => Err(Error::input(format!("cert_configs.workload.{name} is missing or not a path")).hint(shape)),
        }
    };
    Ok(CertificateConfig { cert_path: path("cert_path")?, key_path: path("key_path")? })
}

/// The `certificate_config.json` content naming `cert` and `key`.
pub fn certificate_config_json(cert: &Path, key: &Path) -> Value {
    json!({"version": 1, "cert_configs": {"workload": {"cert_path": cert, "key_path": key}}})
}

/// The `subject_token` of the X.509 path: a JSON array of the standard-base64 DER
/// certificates, the leaf first, then the trust chain in its order — text for text what
/// google-auth's `json.dumps` makes. A trust chain may start with the leaf (it is then
/// not repeated) but must not hold it anywhere else.
pub fn subject_token(leaf: &CertificateDer<'_>, trust_chain: &[CertificateDer<'_>]) -> Result<Secret> {
    let b64 = |c: &CertificateDer<'_>| base64::engine::general_purpose::STANDARD.encode(c.as_ref());
    let mut chain = vec![b64(leaf)];
    for (i, cert) in trust_chain.iter().enumerate() {
        if cert.as_ref() == leaf.as_ref() {
            if i == 0 {
                continue;
            }
            return Err(Error::input(format!(
                "the trust chain holds the leaf certificate as its certificate {}",
                i + 1
            ))
            .hint("the trust chain file lists the intermediate CAs (the leaf may only come first)"));
        }
        chain.push(b64(cert));
    }
    let quoted: Vec<String> = chain.iter().map(|c| format!("\"{c}\"")).collect();
    Ok(Secret::new(format!("[{}]", quoted.join(", "))))
}

/// What is worth recording about the workload certificate.
#[derive(Debug, Clone)]
pub struct CertFacts {
    /// SHA-256 of the DER certificate, lowercase hex.
    pub sha256: String,
    /// Its subject as text, e.g. `O=wif test, CN=wif-client`.
    pub subject: String,
    /// The end of its validity.
    pub not_after: Timestamp,
    /// The start of its validity.
    pub not_before: Timestamp,
}

/// Reads the facts of a certificate.
pub fn facts(cert: &CertificateDer<'_>) -> Result<CertFacts> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| Error::input("the workload certificate is not valid X.509"))?;
    let v = c.validity();
    Ok(CertFacts {
        sha256: keys::sha256_hex(cert.as_ref()),
        subject: c.subject().to_string(),
        not_after: Timestamp::from_unix(v.not_after.timestamp()),
        not_before: Timestamp::from_unix(v.not_before.timestamp()),
    })
}

/// What `cert` names, for the hint when it names no file.
const WORKLOAD_CERT: &str =
    "the workload certificate (PEM, leaf first, or PKCS#12) from a CA in the provider's trust store";

/// Where a workload certificate is, each file with where it was named (for errors).
pub struct WorkloadFiles {
    /// The certificate (PEM chain, leaf first, or PKCS#12).
    pub cert: FileSetting,
    /// Its key, when not in `cert`.
    pub key: Option<FileSetting>,
    /// The file holding the PKCS#12 password.
    pub password_file: Option<FileSetting>,
    /// The environment variable holding the PKCS#12 password.
    pub password_env: Option<String>,
    /// The intermediate CA certificates sent after the leaf.
    pub trust_chain: Option<FileSetting>,
}

/// A workload certificate loaded: what a client presents and what it sends STS.
pub struct Workload {
    /// The leaf.
    pub leaf: CertificateDer<'static>,
    /// The certificates after it: the trust chain file's, else those after the leaf in the
    /// certificate file.
    pub trust_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// Its facts.
    pub facts: CertFacts,
}

impl WorkloadFiles {
    /// The files an `sts` section recorded (see [`WorkloadFiles::record`]).
    pub fn recorded(c: &WorkloadCertificate) -> WorkloadFiles {
        let named = |path: &Path, what: &str| FileSetting {
            path: path.to_path_buf(),
            origin: format!("sts.certificate.{what}"),
        };
        WorkloadFiles {
            cert: named(&c.cert_file, "cert_file"),
            key: Some(named(&c.key_file, "key_file")),
            password_file: c.key_password_file.as_deref().map(|p| named(p, "key_password_file")),
            password_env: c.key_password_env.clone(),
            trust_chain: c.trust_chain_file.as_deref().map(|p| named(p, "trust_chain_file")),
        }
    }

    /// Loads the certificate, its key (which must be the certificate's) and its chain.
    pub fn load(&self) -> Result<Workload> {
        let password = keys::read_password(self.password_file.as_ref(), self.password_env.as_deref(), "key password")?;
        let (chain, key) = keys::load_cert_and_key(&self.cert, self.key.as_ref(), password.as_ref(), WORKLOAD_CERT)
            .context("loading the workload certificate")?;
        let trust_chain = match &self.trust_chain {
            Some(f) => keys::load_certs(&f.path)
                .context("reading the trust chain")
                .map_err(f.explain("a PEM file of the intermediate CA certificates"))?,
            None => chain.rest().to_vec(),
        };
        let leaf = chain.leaf().clone();
        let facts = facts(&leaf)?;
        Ok(Workload { leaf, trust_chain, key, facts })
    }

    /// What the `sts` section records of the certificate these files hold: its facts and
    /// the files, absolute, so the next step presents it too.
    pub fn record(&self, facts: &CertFacts) -> Result<WorkloadCertificate> {
        Ok(WorkloadCertificate {
            sha256: facts.sha256.clone(),
            subject: facts.subject.clone(),
            not_after: facts.not_after.to_string(),
            cert_file: absolute(&self.cert.path)?,
            key_file: absolute(&self.key.as_ref().unwrap_or(&self.cert).path)?,
            key_password_file: self.password_file.as_ref().map(|f| absolute(&f.path)).transpose()?,
            key_password_env: self.password_env.clone(),
            trust_chain_file: self.trust_chain.as_ref().map(|f| absolute(&f.path)).transpose()?,
        })
    }
}

impl Workload {
    /// The TLS identity: the leaf, then the trust chain.
    pub fn identity(&self) -> ClientIdentity {
        let chain = std::iter::once(self.leaf.clone()).chain(self.trust_chain.iter().cloned()).collect();
        ClientIdentity { chain, key: self.key.clone_key() }
    }
}

/// Refuses a certificate that has expired or is not valid yet: STS would refuse it too.
pub fn check_current(f: &CertFacts) -> Result<()> {
    let now = clock::now_unix();
    if f.not_after.unix() < now {
        return Err(Error::input(format!("the workload certificate ({}) expired at {}", f.subject, f.not_after))
            .hint("renew it from your CA; STS refuses expired certificates"));
    }
    if f.not_before.unix() > now {
        return Err(Error::input(format!(
            "the workload certificate ({}) is not valid before {}",
            f.subject, f.not_before
        ))
        .hint("wait until then, or check this machine's clock"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_config_paths() {
        let c = parse_certificate_config(
            br#"{"version": 1, "cert_configs": {"workload": {"cert_path": "c.pem", "key_path": "/k.pem"}}}"#,
            Path::new("/etc/wif"),
        )
        .unwrap();
        assert_eq!(c.cert_path, Path::new("/etc/wif/c.pem"));
        assert_eq!(c.key_path, Path::new("/k.pem"));
        assert!(parse_certificate_config(br#"{"cert_configs": {}}"#, Path::new("/")).is_err());
        assert!(parse_certificate_config(br#"{"cert_configs": {"workload": {"cert_path": "c"}}}"#, Path::new("/"))
            .unwrap_err()
            .to_string()
            .contains("key_path"));
        let round = certificate_config_json(Path::new("/c"), Path::new("/k"));
        let back = parse_certificate_config(round.to_string().as_bytes(), Path::new("/")).unwrap();
        assert_eq!(back.cert_path, Path::new("/c"));
    }

    #[test]
    fn subject_token_like_google_auth() {
        let leaf = CertificateDer::from(vec![1u8, 2, 3]);
        let ca = CertificateDer::from(vec![4u8, 5]);
        assert_eq!(subject_token(&leaf, &[]).unwrap().expose(), r#"["AQID"]"#);
        assert_eq!(subject_token(&leaf, std::slice::from_ref(&ca)).unwrap().expose(), r#"["AQID", "BAU="]"#);
        assert_eq!(subject_token(&leaf, &[leaf.clone(), ca.clone()]).unwrap().expose(), r#"["AQID", "BAU="]"#);
        assert!(subject_token(&leaf, &[ca, leaf.clone()]).is_err());
    }
}
