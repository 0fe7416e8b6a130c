//! The emulator's signing key (RSA, made at start, published as a JWKS) and the checks on
//! client assertions: JWS parsing, signature verification with a registered certificate
//! (RS256, PS256, ES256, ES384), thumbprint matching and the time window.

use super::config::RegisteredCert;
use crate::core::error::{Error, Result};
use crate::core::jwt::{self, Jws};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair, UnparsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

/// The key the emulator signs its tokens with.
pub struct Signer {
    pair: RsaKeyPair,
    /// Key id (`kid`) in token headers and the JWKS.
    pub kid: String,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl Signer {
    /// A fresh RSA-2048 key.
    pub fn generate() -> Result<Signer> {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| Error::new(crate::core::error::Kind::Internal, "generating the RSA signing key failed"))?;
        let pk = pair.public_key();
        let n = pk.modulus().big_endian_without_leading_zero().to_vec();
        let e = pk.exponent().big_endian_without_leading_zero().to_vec();
        // The kid is the x5t-style thumbprint of the modulus: stable for the key's life.
        let kid = crate::core::keys::thumbprint_sha1(&n);
        Ok(Signer { pair, kid, n, e })
    }

    /// Signs claims as an RS256 JWT with `typ` JWT and this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        // Signing with a valid in-memory key only fails on allocation failure.
        let _ = self.pair.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig);
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig))
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": URL_SAFE_NO_PAD.encode(&self.n), "e": URL_SAFE_NO_PAD.encode(&self.e)})
    }

    /// Verifies a JWS made by this key.
    pub fn verify(&self, jws: &Jws) -> bool {
        if jws.header.get("alg").and_then(Value::as_str) != Some("RS256")
            || jws.header.get("kid").and_then(Value::as_str) != Some(self.kid.as_str())
        {
            return false;
        }
        let der = self.pair.public_key().as_ref().to_vec();
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der)
            .verify(jws.signing_input.as_bytes(), &jws.signature)
            .is_ok()
    }
}

/// Random bytes as base64url (token bodies, ids).
pub fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    let _ = aws_lc_rs::rand::fill(&mut b);
    URL_SAFE_NO_PAD.encode(&b)
}

/// Why a client assertion was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum AssertionError {
    /// Not a JWS, or a required claim is missing or of the wrong type.
    Malformed(String),
    /// The header names no certificate thumbprint.
    NoThumbprint,
    /// No registered certificate has this thumbprint (hex).
    UnknownKey(String),
    /// The certificate with this thumbprint (hex) has expired.
    KeyExpired(String),
    /// The signature does not verify with the registered certificate (hex thumbprint).
    BadSignature(String),
    /// `iss`/`sub` are not the client id.
    WrongClient(String),
    /// `aud` is not the token endpoint.
    WrongAudience(String),
    /// Outside its valid time range.
    Time(String),
    /// Its `jti` was seen before.
    Replayed(String),
}

/// What an assertion must satisfy.
pub struct Expect<'a> {
    /// Registered certificates of the client.
    pub certs: &'a [RegisteredCert],
    /// Thumbprints registered without a certificate (which then comes in `x5c`).
    pub thumbprints: &'a [Vec<u8>],
    /// Whether a thumbprint header is required (Azure) or all certificates are tried.
    pub require_thumbprint: bool,
    /// The client id (`iss` = `sub`).
    pub client_id: &'a str,
    /// The exact token endpoint URL (`aud`).
    pub audience: &'a str,
    /// Now, Unix seconds.
    pub now: i64,
    /// Tolerated skew.
    pub skew: i64,
    /// Longest lifetime.
    pub max_lifetime: i64,
}

/// Decodes a thumbprint header: base64url with or without `=` padding (MSAL pads).
fn thumb(v: &Value) -> Option<Vec<u8>> {
    jwt::base64url_decode(v.as_str()?)
}

/// Verifies a client assertion; returns its claims. The caller checks `jti` replay.
pub fn verify_assertion(token: &str, x: &Expect<'_>) -> std::result::Result<Jws, AssertionError> {
    use AssertionError as E;
    let jws = Jws::parse(token).ok_or_else(|| E::Malformed("JWT token is invalid or malformed.".into()))?;
    let alg = jws.header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !matches!(alg, "RS256" | "PS256" | "ES256" | "ES384") {
        return Err(E::Malformed(format!("'{alg}' is not a supported signature algorithm for client assertions.")));
    }
    let s256 = jws.header.get("x5t#S256").and_then(thumb);
    let s1 = jws.header.get("x5t").and_then(thumb);
    let mut candidates: Vec<RegisteredCert> = match (&s256, &s1) {
        (Some(t), _) => x.certs.iter().filter(|c| &c.sha256 == t).cloned().collect(),
        (None, Some(t)) => x.certs.iter().filter(|c| &c.sha1 == t).cloned().collect(),
        (None, None) if x.require_thumbprint => return Err(E::NoThumbprint),
        (None, None) => x.certs.to_vec(),
    };
    if let Some(leaf) = x5c_leaf(&jws.header) {
        // A thumbprint registered on its own: the certificate in x5c must have it.
        let hit = |c: &RegisteredCert| {
            x.thumbprints
                .iter()
                .any(|t| (t == &c.sha1 || t == &c.sha256) && [&s256, &s1].iter().any(|h| h.as_ref() == Some(t)))
        };
        if hit(&leaf) {
            candidates.push(leaf);
        }
    }
    let shown = s256.as_deref().or(s1.as_deref()).map(hex::encode_upper).unwrap_or_default();
    let Some(cert) = candidates.iter().find(|c| signature_ok(&jws, alg, c)) else {
        return Err(match candidates.first() {
            None => E::UnknownKey(shown),
            Some(_) => E::BadSignature(shown),
        });
    };
    if cert.not_after < x.now {
        return Err(E::KeyExpired(hex::encode_upper(&cert.sha1)));
    }
    let c = &jws.claims;
    let iss = c.get("iss").and_then(Value::as_str);
    let sub = c.get("sub").and_then(Value::as_str);
    if iss != Some(x.client_id) || sub != Some(x.client_id) {
        return Err(E::WrongClient(format!(
            "iss {:?} and sub {:?} must both be the client id {:?}",
            iss.unwrap_or(""),
            sub.unwrap_or(""),
            x.client_id
        )));
    }
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => a == x.audience,
        Some(Value::Array(a)) => a.len() == 1 && a[0].as_str() == Some(x.audience),
        _ => false,
    };
    if !aud_ok {
        return Err(E::WrongAudience(c.get("aud").map(|a| a.to_string()).unwrap_or_else(|| "(none)".into())));
    }
    let exp =
        jwt::numeric_claim(c, "exp").ok_or_else(|| E::Malformed("the assertion has no numeric exp claim.".into()))?;
    let nbf = jwt::numeric_claim(c, "nbf");
    let iat = jwt::numeric_claim(c, "iat");
    let start = nbf.or(iat).unwrap_or(x.now);
    let when = |t: i64| crate::core::clock::rfc3339(t);
    let range = format!(
        "Current time: {}, assertion valid from {}, expiry time of assertion {}.",
        when(x.now),
        when(start),
        when(exp)
    );
    if exp <= x.now || start > x.now + x.skew || iat.is_some_and(|i| i > x.now + x.skew) {
        return Err(E::Time(format!("Client assertion is not within its valid time range. {range}")));
    }
    if exp - start > x.max_lifetime {
        return Err(E::Time(format!(
            "Client assertion lifetime of {} s is longer than the {} s allowed. {range}",
            exp - start,
            x.max_lifetime
        )));
    }
    match c.get("jti").and_then(Value::as_str) {
        Some(j) if !j.is_empty() => {}
        _ => return Err(E::Malformed("the assertion has no jti claim.".into())),
    }
    Ok(jws)
}

/// The leaf certificate of an `x5c` header (standard base64 DER).
fn x5c_leaf(header: &Value) -> Option<RegisteredCert> {
    use base64::engine::general_purpose::STANDARD;
    let first = header.get("x5c")?.as_array()?.first()?.as_str()?;
    let der = STANDARD.decode(first).ok()?;
    RegisteredCert::from_der("x5c".into(), &der)
}

fn signature_ok(jws: &Jws, alg: &str, cert: &RegisteredCert) -> bool {
    let algorithm: &dyn signature::VerificationAlgorithm = match (alg, cert.rsa, cert.public_key.len()) {
        ("RS256", true, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        ("PS256", true, _) => &signature::RSA_PSS_2048_8192_SHA256,
        ("ES256", false, 65) => &signature::ECDSA_P256_SHA256_FIXED,
        ("ES384", false, 97) => &signature::ECDSA_P384_SHA384_FIXED,
        _ => return false,
    };
    UnparsedPublicKey::new(algorithm, &cert.public_key).verify(jws.signing_input.as_bytes(), &jws.signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_its_own_tokens() {
        let s = Signer::generate().unwrap();
        let t = s.sign(&json!({"sub": "x"}));
        let jws = Jws::parse(&t).unwrap();
        assert!(s.verify(&jws));
        assert_eq!(jws.claims["sub"], "x");
        let mut forged = Jws::parse(&t).unwrap();
        forged.signing_input.push('x');
        assert!(!s.verify(&forged));
        assert_eq!(s.jwk()["kid"], s.kid);
    }

    #[test]
    fn thumbprints_with_or_without_padding() {
        assert_eq!(thumb(&json!("AAEC")), Some(vec![0, 1, 2]));
        assert_eq!(thumb(&json!("AAE=")), Some(vec![0, 1]));
        assert_eq!(thumb(&json!("AAE")), Some(vec![0, 1]));
    }
}
