//! Test-held JWT signing keys for the bearer-token tests: RS256 and ES256 keys made per test,
//! their JWKS (written to a `jwks_file`), and compact JWS tokens signed with them (or, for
//! the key-confusion tests, HMAC-signed with a public key as the secret).

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};

/// A private signing key held by a test, with the `kid` it publishes under.
pub struct SigningKey {
    pair: Pair,
    /// The key id in the JWKS and in token headers (unique per key in the test run).
    pub kid: String,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

fn next_kid(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A fresh RSA-2048 key (RS256).
pub fn signing_key_rsa() -> SigningKey {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("generating an RSA key");
    SigningKey { pair: Pair::Rsa(pair), kid: next_kid("test-rsa") }
}

/// A fresh EC P-256 key (ES256).
pub fn signing_key_ec() -> SigningKey {
    let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).expect("generating an EC key");
    SigningKey { pair: Pair::Ec(pair), kid: next_kid("test-ec") }
}

impl SigningKey {
    /// The key with another `kid` (for rotation and unknown-kid tests): the same key material.
    pub fn with_kid(mut self, kid: &str) -> SigningKey {
        self.kid = kid.to_string();
        self
    }

    /// The JWS algorithm this key signs with: `RS256` or `ES256`.
    pub fn alg(&self) -> &'static str {
        match self.pair {
            Pair::Rsa(_) => "RS256",
            Pair::Ec(_) => "ES256",
        }
    }

    /// The public key as a JWK (`kid`, `alg`, `use: sig`).
    pub fn jwk(&self) -> Value {
        match &self.pair {
            Pair::Rsa(p) => {
                let pk = p.public_key();
                json!({
                    "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                    "n": URL_SAFE_NO_PAD.encode(pk.modulus().big_endian_without_leading_zero()),
                    "e": URL_SAFE_NO_PAD.encode(pk.exponent().big_endian_without_leading_zero()),
                })
            }
            Pair::Ec(p) => {
                // The uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = p.public_key().as_ref();
                json!({
                    "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
                })
            }
        }
    }

    /// The public key as X.509 SubjectPublicKeyInfo DER.
    pub fn public_der(&self) -> Vec<u8> {
        let der: PublicKeyX509Der<'static> = match &self.pair {
            Pair::Rsa(p) => p.public_key().as_der().expect("RSA public key DER"),
            Pair::Ec(p) => p.public_key().as_der().expect("EC public key DER"),
        };
        der.as_ref().to_vec()
    }

    /// The public key as a `PUBLIC KEY` PEM (what a key-confusion attacker uses as the HMAC secret).
    pub fn public_pem(&self) -> String {
        pem_rfc7468::encode_string("PUBLIC KEY", pem_rfc7468::LineEnding::LF, &self.public_der()).expect("PEM")
    }

    /// The private key as a PKCS#8 `PRIVATE KEY` PEM (e.g. an emulator's `signing_key`).
    pub fn private_pem(&self) -> String {
        let der = match &self.pair {
            Pair::Rsa(p) => p.as_der().expect("RSA PKCS#8").as_ref().to_vec(),
            Pair::Ec(p) => p.to_pkcs8v1().expect("EC PKCS#8").as_ref().to_vec(),
        };
        pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, &der).expect("PEM")
    }

    fn signature(&self, input: &[u8]) -> Vec<u8> {
        match &self.pair {
            Pair::Rsa(p) => {
                let mut sig = vec![0u8; p.public_modulus_len()];
                p.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), input, &mut sig).expect("RSA signing");
                sig
            }
            Pair::Ec(p) => p.sign(&SystemRandom::new(), input).expect("EC signing").as_ref().to_vec(),
        }
    }
}

/// `{"keys": [...]}` of the keys' public JWKs, as JSON text (for a `jwks_file`).
pub fn jwks_json(keys: &[&SigningKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

/// The token header: `{"alg", "kid", "typ": "JWT"}` of the key, then `header_extra`'s members
/// (a member set to `null` is removed: `{"kid": null}` makes a token without `kid`).
fn header(alg: &str, kid: &str, header_extra: &Value) -> Value {
    let mut h = Map::new();
    h.insert("alg".into(), json!(alg));
    h.insert("kid".into(), json!(kid));
    h.insert("typ".into(), json!("JWT"));
    if let Some(extra) = header_extra.as_object() {
        for (k, v) in extra {
            if v.is_null() {
                h.remove(k);
            } else {
                h.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(h)
}

/// The signing input `b64url(header).b64url(claims)`.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// A compact JWS of `claims` signed by `key` (its algorithm), with `header_extra` merged into
/// the header (`json!({})` for none). The header's `alg` may be overridden; the signature is
/// still the key's own.
pub fn sign(key: &SigningKey, header_extra: &Value, claims: &Value) -> String {
    let input = signing_input(&header(key.alg(), &key.kid, header_extra), claims);
    let sig = key.signature(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// A compact JWS of a header and claims given as JSON text, exactly as written (repeated
/// members, odd spacing), signed by `key`.
pub fn sign_text(key: &SigningKey, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let sig = key.signature(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// A compact JWS with `alg: HS256`, HMAC-SHA256 signed with `secret` (the key-confusion attack:
/// the secret is the issuer's public key as PEM or DER).
pub fn sign_hs256(secret: &[u8], kid: &str, claims: &Value) -> String {
    let input = signing_input(&header("HS256", kid, &json!({})), claims);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// An unsigned token (`alg: none`, empty signature).
pub fn sign_none(kid: &str, claims: &Value) -> String {
    format!("{}.", signing_input(&header("none", kid, &json!({})), claims))
}

/// Unix seconds now (the one clock of the tests, for claims).
pub use super::server::now;

/// Claims valid now for `iss`/`aud`/`sub`: `iat`/`nbf` now, `exp` in 10 minutes, a `jti`.
pub fn claims(iss: &str, aud: &str, sub: &str) -> Value {
    let now = now();
    json!({"iss": iss, "aud": aud, "sub": sub, "iat": now, "nbf": now, "exp": now + 600, "jti": next_kid("jti")})
}
