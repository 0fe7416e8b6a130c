//! `--jwks` / `--verify-cert`: JWT signatures checked against a JSON Web Key Set (a file,
//! a URL, or an OpenID discovery URL naming one) or a certificate, and exp/nbf with 60 s
//! of leeway.

use super::report::Verification;
use crate::core::clock;
use crate::core::error::{Error, Kind, Result};
use crate::core::jwt;
use crate::core::keys;
use crate::http;
use rustls_pki_types::CertificateDer;
use serde_json::Value;
use std::path::Path;

/// Keys to verify JWTs with.
pub enum Verifier {
    /// The public key of a certificate.
    Cert { der: Vec<u8>, label: String },
    /// The keys of a JWKS.
    Jwks { keys: Vec<Value>, label: String },
}

impl Verifier {
    /// The keys: `verify_cert` (the leaf of --verify-cert, already read, and its file),
    /// else the JWKS at `jwks`, fetched as `tool`.
    pub fn load(
        verify_cert: Option<(&CertificateDer<'static>, &Path)>,
        jwks: Option<&String>,
        tool: &str,
    ) -> Result<Verifier> {
        if let Some((cert, p)) = verify_cert {
            return Ok(Verifier::Cert { der: cert.as_ref().to_vec(), label: format!("certificate {}", p.display()) });
        }
        let Some(src) = jwks else { return Err(Error::usage("--verify needs --jwks or --verify-cert")) };
        let doing = format!("loading the JWKS {}", http::redact_query(src));
        let mut value = fetch_json(src, tool).map_err(|e| e.context(doing.clone()))?;
        // An OpenID discovery document names the JWKS.
        if value.get("keys").is_none() {
            if let Some(uri) = value.get("jwks_uri").and_then(Value::as_str).map(str::to_string) {
                value = fetch_json(&uri, tool).map_err(|e| e.context(format!("{doing}: following jwks_uri {uri}")))?;
            }
        }
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| Error::input("not a JSON Web Key Set (no \"keys\" list)").context(doing.clone()))?;
        Ok(Verifier::Jwks { keys, label: src.clone() })
    }

    /// Checks a JWT's signature and times.
    pub fn verify(&self, token: &str, now: i64) -> Verification {
        let mut problems = Vec::new();
        let (signature_valid, key) = match jsonwebtoken::decode_header(token) {
            Err(e) => {
                problems.push(format!("unreadable header: {e}"));
                (false, "none".to_string())
            }
            Ok(header) => match self.check_signature(token, &header) {
                Ok(k) => (true, k),
                Err(why) => {
                    problems.push(why.clone());
                    (false, why)
                }
            },
        };
        if let Some((_, claims)) = jwt::decode_unverified(token) {
            let num = |name: &str| jwt::numeric_claim(&claims, name);
            match num("exp") {
                Some(exp) if exp + 60 < now => problems.push(format!("expired at {}", clock::rfc3339(exp))),
                Some(_) => {}
                None => problems.push("no exp claim".into()),
            }
            if let Some(nbf) = num("nbf") {
                if nbf - 60 > now {
                    problems.push(format!("not valid before {}", clock::rfc3339(nbf)));
                }
            }
        }
        Verification { valid: problems.is_empty(), signature_valid, key, problems }
    }

    fn check_signature(&self, token: &str, header: &jsonwebtoken::Header) -> std::result::Result<String, String> {
        use jsonwebtoken::{Algorithm as A, DecodingKey, Validation};
        let alg = header.alg;
        if !matches!(alg, A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 | A::ES256 | A::ES384) {
            return Err(format!("algorithm {alg:?} is not accepted (only RSA and ECDSA signatures)"));
        }
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let try_key = |key: &DecodingKey| jsonwebtoken::decode::<Value>(token, key, &validation).is_ok();
        match self {
            Verifier::Cert { der, label } => {
                let Ok(public) = keys::cert_public_key(&CertificateDer::from(der.as_slice())) else {
                    return Err(format!("cannot read the public key of {label}"));
                };
                let key = if matches!(alg, A::ES256 | A::ES384) {
                    DecodingKey::from_ec_der(&public)
                } else {
                    DecodingKey::from_rsa_der(&public)
                };
                if try_key(&key) {
                    Ok(label.clone())
                } else {
                    Err(format!("the signature does not verify with {label}"))
                }
            }
            Verifier::Jwks { keys, label } => {
                let candidates: Vec<&Value> = keys
                    .iter()
                    .filter(|k| match (&header.kid, k.get("kid").and_then(Value::as_str)) {
                        (Some(want), Some(have)) => want == have,
                        (Some(_), None) => false,
                        (None, _) => true,
                    })
                    .collect();
                if candidates.is_empty() {
                    return Err(format!("no key in {label} has kid {:?}", header.kid.as_deref().unwrap_or_default()));
                }
                for k in candidates {
                    let Ok(jwk) = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone()) else { continue };
                    let Ok(key) = DecodingKey::from_jwk(&jwk) else { continue };
                    if try_key(&key) {
                        let kid = k.get("kid").and_then(Value::as_str).unwrap_or("(no kid)");
                        return Ok(format!("key {kid} of {label}"));
                    }
                }
                Err(format!("the signature does not verify with any key of {label}"))
            }
        }
    }
}

/// A JSON file, or a JSON document fetched from a URL.
fn fetch_json(src: &str, tool: &str) -> Result<Value> {
    let bytes = if src.starts_with("http://") || src.starts_with("https://") {
        let client = http::Client::new(http::HttpOptions { tool: tool.into(), ..Default::default() })?;
        let resp = client.send(&http::Request {
            method: "GET",
            url: src,
            headers: vec![("Accept", "application/json".into())],
            bearer: None,
            body: http::Body::Empty,
        })?;
        if !resp.ok() {
            return Err(Error::new(
                if resp.status >= 500 { Kind::Unavailable } else { Kind::Refused },
                format!("HTTP {}: {}", resp.status, resp.excerpt()),
            ));
        }
        resp.body
    } else {
        let p = Path::new(src);
        std::fs::read(p).map_err(|e| Error::io(p, &e))?
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::input(format!("not JSON (line {} column {})", e.line(), e.column())))
}
