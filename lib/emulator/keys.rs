//! The emulator's signing keys (RSA-2048 made at start, or a configured RSA / EC P-256 PEM
//! key; published as JWKs) and the checks on client assertions: JWS parsing, signature
//! verification with a registered certificate (RS256, PS256, ES256, ES384), thumbprint
//! matching and the time window.

use super::config::RegisteredCert;
use crate::core::error::{Error, Kind, Result};
use crate::core::jwt::{self, Jws};
use crate::core::keys::KeyType;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::path::Path;

/// The private half of a signing key.
enum Pair {
    /// RSA: RS256.
    Rsa(RsaKeyPair),
    /// ECDSA on P-256: ES256.
    EcP256(EcdsaKeyPair),
}

/// A key the emulator signs tokens with: the Azure AD tenant's and other issuers' key, and
/// each bearer issuer's keys.
pub struct Signer {
    pair: Pair,
    /// Key id (`kid`) in token headers and the JWKS.
    pub kid: String,
}

impl Signer {
    /// A fresh RSA-2048 key.
    pub fn generate() -> Result<Signer> {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| Error::new(Kind::Internal, "generating the RSA signing key failed"))?;
        Ok(Signer::with(Pair::Rsa(pair)))
    }

    /// A fresh key of the same type as this one (a rotation keeps the algorithm).
    pub fn generate_like(&self) -> Result<Signer> {
        match self.pair {
            Pair::Rsa(_) => Signer::generate(),
            Pair::EcP256(_) => EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                .map(|p| Signer::with(Pair::EcP256(p)))
                .map_err(|_| Error::new(Kind::Internal, "generating the EC P-256 signing key failed")),
        }
    }

    /// The key in a PEM file: RSA (2048 bits or more) signs RS256, EC P-256 signs ES256.
    pub fn from_pem_file(path: &Path) -> Result<Signer> {
        let bundle = crate::core::keys::load_key(path, None)?;
        let key = crate::core::keys::signing_key(&bundle.key)
            .map_err(|e| e.context(format!("loading the private key {}", path.display())))?;
        let rejected = |why: String| Error::input(format!("{}: {why}", path.display()));
        let pair = match key.key_type {
            KeyType::Rsa => RsaKeyPair::from_der(&key.jwt_der)
                .map(Pair::Rsa)
                .map_err(|e| rejected(format!("RSA key rejected: {e}")))?,
            KeyType::EcP256 => EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &key.jwt_der)
                .map(Pair::EcP256)
                .map_err(|e| rejected(format!("EC key rejected: {e}")))?,
            KeyType::EcP384 => {
                return Err(rejected("an EC P-384 key; an issuer signs with RSA (RS256) or EC P-256 (ES256)".into()))
            }
        };
        if let Pair::Rsa(rsa) = &pair {
            if rsa.public_modulus_len() < 256 {
                return Err(rejected(format!(
                    "an RSA key of {} bits; at least 2048 are needed",
                    rsa.public_modulus_len() * 8
                )));
            }
        }
        Ok(Signer::with(pair))
    }

    fn with(pair: Pair) -> Signer {
        // The kid is the x5t-style thumbprint of the public key: stable for the key's life.
        let kid = crate::core::keys::thumbprint_sha1(&Signer::public_bytes(&pair));
        Signer { pair, kid }
    }

    /// The RSA modulus, or the EC point.
    fn public_bytes(pair: &Pair) -> Vec<u8> {
        match pair {
            Pair::Rsa(p) => p.public_key().modulus().big_endian_without_leading_zero().to_vec(),
            Pair::EcP256(p) => p.public_key().as_ref().to_vec(),
        }
    }

    /// The JWS algorithm this key signs with.
    pub fn alg(&self) -> &'static str {
        match self.pair {
            Pair::Rsa(_) => "RS256",
            Pair::EcP256(_) => "ES256",
        }
    }

    /// Signs claims as a JWT with `typ` JWT, this key's `alg` and `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Map::new();
        header.insert("typ".into(), json!("JWT"));
        self.sign_with_header(header, claims)
    }

    /// Signs claims with `header` plus this key's `alg` and `kid` (set last, so they win).
    pub fn sign_with_header(&self, mut header: Map<String, Value>, claims: &Value) -> String {
        header.insert("alg".into(), json!(self.alg()));
        header.insert("kid".into(), json!(self.kid));
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // Signing with a valid in-memory key only fails on allocation failure.
        let sig = match &self.pair {
            Pair::Rsa(p) => {
                let mut sig = vec![0u8; p.public_modulus_len()];
                let _ = p.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig);
                sig
            }
            Pair::EcP256(p) => {
                p.sign(&SystemRandom::new(), input.as_bytes()).map(|s| s.as_ref().to_vec()).unwrap_or_default()
            }
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig))
    }

    /// The public key as a JWK (`use: sig`, `alg`, `kid`).
    pub fn jwk(&self) -> Value {
        match &self.pair {
            Pair::Rsa(p) => {
                let pk = p.public_key();
                let (n, e) =
                    (pk.modulus().big_endian_without_leading_zero(), pk.exponent().big_endian_without_leading_zero());
                json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)})
            }
            Pair::EcP256(p) => {
                // The uncompressed point: 0x04, x, y.
                let point = p.public_key().as_ref();
                let (x, y) = point[1..].split_at(32);
                json!({"kty": "EC", "use": "sig", "alg": "ES256", "kid": self.kid, "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)})
            }
        }
    }

    /// Verifies a JWS made by this key.
    pub fn verify(&self, jws: &Jws) -> bool {
        if jws.header.get("alg").and_then(Value::as_str) != Some(self.alg())
            || jws.header.get("kid").and_then(Value::as_str) != Some(self.kid.as_str())
        {
            return false;
        }
        let (algorithm, der): (&dyn signature::VerificationAlgorithm, &[u8]) = match &self.pair {
            Pair::Rsa(p) => (&signature::RSA_PKCS1_2048_8192_SHA256, p.public_key().as_ref()),
            Pair::EcP256(p) => (&signature::ECDSA_P256_SHA256_FIXED, p.public_key().as_ref()),
        };
        UnparsedPublicKey::new(algorithm, der).verify(jws.signing_input.as_bytes(), &jws.signature).is_ok()
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
    fn ec_keys_sign_es256_and_publish_their_point() {
        let s = Signer::generate().unwrap();
        let ec = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let ec = Signer::with(Pair::EcP256(ec));
        assert_eq!((s.alg(), ec.alg()), ("RS256", "ES256"));
        let t = ec.sign(&json!({"sub": "x"}));
        let jws = Jws::parse(&t).unwrap();
        assert_eq!((jws.header["alg"].as_str(), jws.header["typ"].as_str()), (Some("ES256"), Some("JWT")));
        assert_eq!(jws.signature.len(), 64);
        assert!(ec.verify(&jws));
        assert!(!s.verify(&jws));
        let jwk = ec.jwk();
        assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("EC"), Some("P-256")));
        assert_eq!(jwt::base64url_decode(jwk["x"].as_str().unwrap()).unwrap().len(), 32);
        let next = ec.generate_like().unwrap();
        assert_eq!(next.alg(), "ES256");
        assert_ne!(next.kid, ec.kid);
    }

    #[test]
    fn thumbprints_with_or_without_padding() {
        assert_eq!(thumb(&json!("AAEC")), Some(vec![0, 1, 2]));
        assert_eq!(thumb(&json!("AAE=")), Some(vec![0, 1]));
        assert_eq!(thumb(&json!("AAE")), Some(vec![0, 1]));
    }
}
