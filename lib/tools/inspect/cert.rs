//! `--cert`: what Azure AD and JWT headers know a certificate by (thumbprints, x5t,
//! customKeyIdentifier), its names and validity, and whether `--key` belongs to it.

use super::report::{CertReport, Ctx};
use crate::core::error::{Error, Result};
use crate::core::keys;
use crate::core::settings::FileSetting;
use base64::Engine;
use rustls_pki_types::CertificateDer;
use std::path::{Path, PathBuf};

/// The key to check against the certificate, and where its PKCS#12 password is.
pub struct KeyArgs<'a> {
    /// `--key`.
    pub key: Option<&'a Path>,
    /// `--key-password-file`.
    pub password_file: Option<&'a PathBuf>,
    /// `--key-password-env`.
    pub password_env: Option<&'a str>,
}

/// The reports on the certificates in `--cert`, and its leaf certificate.
pub fn describe_certs(
    path: &Path,
    key_args: &KeyArgs<'_>,
    ctx: &Ctx,
) -> Result<(Vec<CertReport>, CertificateDer<'static>)> {
    let password_file =
        key_args.password_file.map(|path| FileSetting { path: path.clone(), origin: "--key-password-file".into() });
    let password = || keys::read_password(password_file.as_ref(), key_args.password_env, "key password");
    // A PKCS#12 keystore holds the certificate and its key: describe both.
    let (certs, own_key) = if keys::is_pkcs12(path) {
        let bundle = keys::load_key(path, password()?.as_ref()).map_err(|e| e.context("reading --cert"))?;
        let Some(chain) = bundle.chain else {
            return Err(Error::input(format!("{} holds no certificate", path.display())));
        };
        (chain.into_vec(), Some(bundle.key))
    } else {
        (keys::load_certs(path).map_err(|e| e.context("reading --cert"))?, None)
    };
    let key = match (key_args.key, own_key) {
        (Some(kp), _) => Some((keys::load_key(kp, password()?.as_ref())?.key, kp.display().to_string())),
        (None, Some(k)) => Some((k, path.display().to_string())),
        (None, None) => None,
    };
    let key_matches = match key {
        Some((k, name)) => {
            let key = keys::signing_key(&k).map_err(|e| e.context(format!("reading the key in {name}")))?;
            Some(keys::check_key_matches_cert(&key, &certs[0]).is_ok())
        }
        None => None,
    };
    let mut out = Vec::new();
    for (index, der) in certs.iter().enumerate() {
        let (_, c) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|_| Error::input(format!("certificate {index} in {} is not valid X.509", path.display())))?;
        let v = c.validity();
        let (nb, na) = (v.not_before.timestamp(), v.not_after.timestamp());
        let san = c
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| ext.value.general_names.iter().map(|g| g.to_string()).collect())
            .unwrap_or_default();
        let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der.as_ref());
        out.push(CertReport {
            file: path.display().to_string(),
            index,
            subject: c.subject().to_string(),
            issuer: c.issuer().to_string(),
            serial: c.raw_serial_as_string(),
            san,
            not_before: ctx.time(nb, "became valid", "becomes valid"),
            not_after: ctx.time(na, "expired", "expires"),
            expired: na < ctx.now,
            thumbprint_sha1_hex: keys::thumbprint_sha1_hex(der.as_ref()),
            thumbprint_sha256_hex: keys::sha256_hex(der.as_ref()).to_ascii_uppercase(),
            x5t: keys::thumbprint_sha1(der.as_ref()),
            x5t_s256: keys::thumbprint_sha256(der.as_ref()),
            custom_key_identifier: base64::engine::general_purpose::STANDARD.encode(sha1.as_ref()),
            key_matches: if index == 0 { key_matches } else { None },
        });
    }
    let leaf =
        certs.into_iter().next().ok_or_else(|| Error::input(format!("{} holds no certificate", path.display())))?;
    Ok((out, leaf))
}
