//! The X.509 path of wif-sts: the workload certificate presented to STS over mutual TLS,
//! with google-auth's subject token (the certificate chain), and the credential
//! configuration and `certificate_config.json` client libraries need for the same path.

use super::args::{audience, Cli, TOOL};
use super::config::finish_config;
use super::token::{record, sts_options, Asked};
use crate::core::document::{Document, WorkloadCertificate};
use crate::core::error::{Error, Result};
use crate::core::files::absolute;
use crate::core::keys;
use crate::core::settings::{key, FileSetting, Settings};
use crate::protocol::external_account::{CertificateSource, CredentialConfig};
use crate::protocol::sts::{self, DEFAULT_SCOPE};
use crate::protocol::x509::{
    self, Workload, WorkloadFiles, DEFAULT_MTLS_IAM_ENDPOINT, DEFAULT_MTLS_TOKEN_URL, MTLS_TOKEN_TYPE,
};
use serde_json::json;

/// Whether the X.509 path is asked for: `--x509` (or the `x509` setting), or a credential
/// configuration whose source is a certificate.
pub fn wanted(cli: &Cli, s: &Settings, cred: Option<&CredentialConfig>) -> Result<bool> {
    Ok(certificate_source(cred).is_some() || s.pick_or(Some(cli.x509).filter(|b| *b), key::X509, false)?)
}

/// The certificate source of a credential configuration, if it has one.
fn certificate_source(cred: Option<&CredentialConfig>) -> Option<&CertificateSource> {
    cred?.credential_source.as_ref()?.certificate.as_ref()
}

/// Where the certificate and key are: `--cert`/`--key`, else the certificate configuration
/// (`--certificate-config`, the credential configuration's, `GOOGLE_API_CERTIFICATE_CONFIG`,
/// gcloud's default).
fn locate(cli: &Cli, s: &Settings, cred: Option<&CredentialConfig>) -> Result<WorkloadFiles> {
    let source = certificate_source(cred);
    let trust_chain = match s.pick_file(cli.trust_chain.clone(), "trust_chain", key::TRUST_CHAIN)? {
        Some(f) => Some(f),
        None => source
            .and_then(|c| c.trust_chain_path.clone())
            .filter(|p| !p.as_os_str().is_empty())
            .map(|path| FileSetting { path, origin: "credential_source.certificate.trust_chain_path".into() }),
    };
    if let Some(cert) = s.pick_file(cli.cert.clone(), "cert", key::X509_CERT)? {
        let key = s.pick_file(cli.key.clone(), "key", key::X509_KEY)?;
        return with_password(
            cli,
            s,
            WorkloadFiles { cert, key, password_file: None, password_env: None, trust_chain },
        );
    }
    let (config, origin) =
        match s.pick_file(cli.certificate_config.clone(), "certificate_config", key::CERTIFICATE_CONFIG)? {
            Some(f) => (f.path, f.origin),
            None => match source.map(CertificateSource::location).transpose()?.flatten() {
                Some(p) => (p.clone(), "credential_source.certificate.certificate_config_location".to_string()),
                None => match x509::find_certificate_config().filter(|p| p.exists()) {
                    Some(p) => {
                        (p, format!("{} or gcloud's default certificate configuration", x509::CERTIFICATE_CONFIG_ENV))
                    }
                    None => {
                        return Err(Error::usage("the X.509 path needs the workload certificate").hint(format!(
                        "give --cert and --key, or a certificate_config.json with --certificate-config, {}, or at {}",
                        x509::CERTIFICATE_CONFIG_ENV,
                        x509::default_certificate_config_shown()
                    )))
                    }
                },
            },
        };
    let named = x509::read_certificate_config(&config)
        .map_err(|e| e.file_setting(&origin, "Google's certificate_config.json"))?;
    let from = |what: &str| format!("cert_configs.workload.{what} of {}", config.display());
    let files = WorkloadFiles {
        cert: FileSetting { path: named.cert_path, origin: from("cert_path") },
        key: Some(FileSetting { path: named.key_path, origin: from("key_path") }),
        password_file: None,
        password_env: None,
        trust_chain,
    };
    with_password(cli, s, files)
}

/// The files with the PKCS#12 password's file or variable from the settings.
fn with_password(cli: &Cli, s: &Settings, files: WorkloadFiles) -> Result<WorkloadFiles> {
    Ok(WorkloadFiles {
        password_file: s.pick_file(cli.key_password_file.clone(), "key_password_file", key::X509_KEY_PASSWORD_FILE)?,
        password_env: s.pick::<String>(cli.key_password_env.clone(), key::X509_KEY_PASSWORD_ENV)?,
        ..files
    })
}

/// Loads and checks the workload certificate (current, its key the certificate's) and what
/// the `sts` section records of it.
fn load(files: &WorkloadFiles) -> Result<(Workload, WorkloadCertificate)> {
    let workload = files.load()?;
    x509::check_current(&workload.facts)?;
    let recorded = files.record(&workload.facts)?;
    Ok((workload, recorded))
}

/// Exchanges the workload certificate at STS over mutual TLS and adds the `sts` section.
pub fn run(cli: &Cli, doc: &mut Document, s: &Settings, cred: Option<CredentialConfig>) -> Result<()> {
    let audience = audience(cli, s, cred.as_ref())?;
    let token_url: String = match s.pick(cli.token_url.clone(), key::STS_TOKEN_URL)? {
        Some(u) => u,
        None => cred.as_ref().and_then(|c| c.token_url.clone()).unwrap_or_else(|| DEFAULT_MTLS_TOKEN_URL.into()),
    };
    if let Some(t) = s.pick::<String>(cli.subject_token_type.clone(), key::SUBJECT_TOKEN_TYPE)? {
        if sts::expand_token_type(&t)? != MTLS_TOKEN_TYPE {
            return Err(Error::usage(format!("--subject-token-type {t} does not go with the X.509 path"))
                .hint(format!("the X.509 path sends {MTLS_TOKEN_TYPE}; drop --subject-token-type")));
        }
    }
    let scope = s.pick_or(cli.scope.clone(), key::STS_SCOPE, DEFAULT_SCOPE.to_string())?;
    let options = sts_options(s.pick(cli.options.clone(), key::STS_OPTIONS)?, cred.as_ref())?;
    let (workload, recorded) = load(&locate(cli, s, cred.as_ref())?)?;
    let subject = x509::subject_token(&workload.leaf, &workload.trust_chain)?;
    let client = cli.net.client_presenting(TOOL, s, Some(workload.identity()))?;
    let asked = Asked { endpoint: token_url, audience, scope, subject_token_type: MTLS_TOKEN_TYPE.into() };
    let exchanged = sts::exchange(&client, &asked.request(&subject, options.as_deref()))
        .map_err(|e| e.context(format!("presenting the workload certificate {}", workload.facts.subject)))?;
    record(cli, doc, exchanged, asked, cred.as_ref(), Some(recorded))
}

/// The credential configuration of the X.509 path (`credential_source.certificate`), and
/// with `--certificate-config-out` the `certificate_config.json` it names.
pub fn credential_config(cli: &Cli, s: &Settings, audience: String) -> Result<serde_json::Value> {
    let files = locate(cli, s, None)?;
    let (_, recorded) = load(&files)?;
    let key_file = &recorded.key_file;
    if keys::is_pkcs12(key_file) || recorded.key_password_file.is_some() || recorded.key_password_env.is_some() {
        return Err(Error::usage(format!("{} is a PKCS#12 file; certificate_config.json names PEM files", key_file.display()))
            .hint("convert it: openssl pkcs12 -in workload.p12 -nokeys -out workload.crt && openssl pkcs12 -in workload.p12 -nocerts -nodes -out workload.key (mode 0600)"));
    }
    let token_url = s.pick_or(cli.token_url.clone(), key::STS_TOKEN_URL, DEFAULT_MTLS_TOKEN_URL.to_string())?;
    let mut certificate = serde_json::Map::new();
    match (
        &cli.certificate_config_out,
        s.pick_file(cli.certificate_config.clone(), "certificate_config", key::CERTIFICATE_CONFIG)?,
    ) {
        (Some(out), _) => {
            let content = x509::certificate_config_json(&recorded.cert_file, &recorded.key_file);
            let mut text = serde_json::to_string_pretty(&content).unwrap_or_default();
            text.push('\n');
            crate::core::files::write_atomic(out, text.as_bytes(), 0o644)
                .map_err(|e| e.context("writing --certificate-config-out"))?;
            certificate.insert("certificate_config_location".into(), json!(absolute(out)?));
        }
        (None, Some(existing)) if cli.cert.is_none() => {
            certificate.insert("certificate_config_location".into(), json!(absolute(&existing.path)?));
        }
        _ => {
            certificate.insert("use_default_certificate_config".into(), json!(true));
            crate::core::diag::warn(format!(
                "the configuration says use_default_certificate_config: client libraries look for the certificate in \
                 ${} or {}; write that file with --certificate-config-out",
                x509::CERTIFICATE_CONFIG_ENV,
                x509::default_certificate_config_shown()
            ));
        }
    }
    if let Some(chain) = &recorded.trust_chain_file {
        certificate.insert("trust_chain_path".into(), json!(chain));
    }
    let source = json!({ "certificate": certificate });
    finish_config(cli, s, &audience, MTLS_TOKEN_TYPE, &token_url, source, DEFAULT_MTLS_IAM_ENDPOINT)
}
