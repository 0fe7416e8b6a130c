//! Google STS's mtls exchange (`subject_token_type=urn:ietf:params:oauth:token-type:mtls`)
//! for an X.509 provider: the client certificate of the TLS handshake, the `subject_token`
//! (a JSON array of base64 DER certificates, leaf first) whose leaf must be that certificate,
//! every certificate within its validity and Google's key types, and a chain that builds to
//! one of the provider's trust anchors. What it proves is the `assertion` the attribute
//! mapping reads (`x509::assertion`).

use super::errors::oauth;
use super::server::Req;
use super::state::State;
use super::trust::{ChainError, X509Config, MAX_DEPTH};
use super::x509::{self, KeyType};
use crate::core::clock;
use crate::server::Response;
use serde_json::Value;
use x509_parser::certificate::X509Certificate;

fn invalid_grant(msg: &str) -> Response {
    oauth(400, "invalid_grant", msg)
}

/// Verifies an mtls exchange for the provider's trust store `x509`: the leaf's `assertion`.
pub fn verify(st: &State, req: &Req, x509: &X509Config, subject: &str) -> Result<Value, Response> {
    let Some(presented) = req.peer_certs.first() else {
        return Err(oauth(400, "invalid_request", "An X.509 token exchange must be made over mutual TLS with the client certificate (sts.mtls.googleapis.com): no client certificate was presented in the TLS handshake."));
    };
    let chain = x509::decode_subject_token(subject)
        .map_err(|why| oauth(400, "invalid_request", &format!("Invalid value for \"subject_token\": {why}.")))?;
    if chain[0] != *presented {
        return Err(oauth(401, "unauthorized_client", "The leaf certificate of the subject_token does not match the client certificate presented in the mTLS handshake."));
    }
    let now = st.now();
    // decode_subject_token has checked each is X.509.
    let certs: Vec<_> = chain.iter().filter_map(|der| x509::parse(der)).collect();
    for (i, cert) in certs.iter().enumerate() {
        check_certificate(cert, i, now)?;
    }
    x509.store.verify(&chain, now).map_err(|e| match e {
        ChainError::TooDeep => invalid_grant(&format!("The certificate chain is too long: at most {MAX_DEPTH} certificates (the leaf and its intermediate CAs) may lead to a trust anchor.")),
        ChainError::Time(detail) => invalid_grant(&format!("A certificate of the chain is not within its validity period ({detail}).")),
        ChainError::Untrusted(detail) => invalid_grant(&format!("The certificate chain could not be verified against the trust store of the workload identity pool provider: it does not build to one of its trust anchors ({detail}).")),
    })?;
    Ok(x509::assertion(&chain[0], &certs[0]))
}

/// The validity period and key type of `subject_token[i]`.
fn check_certificate(cert: &X509Certificate<'_>, i: usize, now: i64) -> Result<(), Response> {
    let name = x509::subject(cert);
    let validity = cert.validity();
    let (not_before, not_after) = (validity.not_before.timestamp(), validity.not_after.timestamp());
    if now > not_after {
        return Err(invalid_grant(&format!(
            "The certificate {name} (subject_token[{i}]) has expired: its validity ended at {}.",
            clock::rfc3339(not_after)
        )));
    }
    if now < not_before {
        return Err(invalid_grant(&format!(
            "The certificate {name} (subject_token[{i}]) is not yet valid: its validity starts at {}.",
            clock::rfc3339(not_before)
        )));
    }
    let key = KeyType::of(cert);
    if !key.allowed() {
        return Err(invalid_grant(&format!(
            "The certificate {name} (subject_token[{i}]) has {}; only RSA keys of 2048 to 4096 bits and ECDSA P-256 or P-384 keys are supported.",
            key.describe()
        )));
    }
    Ok(())
}
