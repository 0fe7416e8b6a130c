//! wif-cryptospeed: how fast aws-lc (the crypto under rustls and so under wif-serve) does the
//! public-key operations of one mutual-TLS handshake, on one thread, and the handshake rate
//! that this allows per core. The server's share of a TLS 1.3 handshake with a client
//! certificate is: one key exchange (ephemeral key generation + derivation), one signature
//! (CertificateVerify) and three verifications (client certificate by the intermediate,
//! intermediate by the root, the client's CertificateVerify). Prints one JSON line.
//!
//! usage: wif-cryptospeed [SECONDS_PER_OPERATION]   (default 1)

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};

/// Runs `op` repeatedly for `time` and returns operations per second.
fn rate(time: Duration, mut op: impl FnMut()) -> f64 {
    // A short warm-up so the first call's table set-up is not counted.
    for _ in 0..10 {
        op();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < time {
        for _ in 0..16 {
            op();
        }
        n += 16;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn main() -> std::process::ExitCode {
    let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let time = Duration::from_secs_f64(secs);
    let rng = SystemRandom::new();
    let msg = [7u8; 130]; // the size of a TLS 1.3 CertificateVerify input with SHA-256

    let peer = match EphemeralPrivateKey::generate(&agreement::X25519, &rng).and_then(|k| k.compute_public_key()) {
        Ok(p) => p.as_ref().to_vec(),
        Err(_) => return fail("X25519 key generation failed"),
    };
    let x25519 = rate(time, || {
        let Ok(k) = EphemeralPrivateKey::generate(&agreement::X25519, &rng) else { return };
        let _ = black_box(k.compute_public_key().map(|p| p.as_ref()[0]));
        let _ = agreement::agree_ephemeral(k, UnparsedPublicKey::new(&agreement::X25519, &peer), (), |s| {
            Ok(black_box(s[0]))
        });
    });

    let Ok(ec) = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING) else {
        return fail("P-256 key generation failed");
    };
    let Ok(ec_sig) = ec.sign(&rng, &msg) else { return fail("P-256 signing failed") };
    let ec_pub = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, ec.public_key().as_ref());
    if ec_pub.verify(&msg, ec_sig.as_ref()).is_err() {
        return fail("P-256 verification failed");
    }
    let p256_sign = rate(time, || {
        let _ = black_box(ec.sign(&rng, &msg));
    });
    let p256_verify = rate(time, || {
        let _ = black_box(ec_pub.verify(&msg, ec_sig.as_ref()));
    });

    let Ok(rsa) = RsaKeyPair::generate(KeySize::Rsa2048) else { return fail("RSA key generation failed") };
    let mut rsa_sig = vec![0u8; rsa.public_modulus_len()];
    if rsa.sign(&signature::RSA_PSS_SHA256, &rng, &msg, &mut rsa_sig).is_err() {
        return fail("RSA signing failed");
    }
    let rsa_pub = signature::UnparsedPublicKey::new(&signature::RSA_PSS_2048_8192_SHA256, rsa.public_key().as_ref());
    if rsa_pub.verify(&msg, &rsa_sig).is_err() {
        return fail("RSA verification failed");
    }
    let mut out = vec![0u8; rsa.public_modulus_len()];
    let rsa_sign = rate(time, || {
        let _ = black_box(rsa.sign(&signature::RSA_PSS_SHA256, &rng, &msg, &mut out));
    });
    let rsa_verify = rate(time, || {
        let _ = black_box(rsa_pub.verify(&msg, &rsa_sig));
    });

    // Seconds of CPU per handshake = sum of the operations' costs.
    let ec_hs = 1.0 / (1.0 / x25519 + 1.0 / p256_sign + 3.0 / p256_verify);
    let rsa_hs = 1.0 / (1.0 / x25519 + 1.0 / rsa_sign + 3.0 / rsa_verify);
    let report = serde_json::json!({
        "library": "aws-lc (aws-lc-rs 1)",
        "seconds_per_operation": secs,
        "x25519_keygen_derive_per_s": round1(x25519),
        "ecdsa_p256_sign_per_s": round1(p256_sign),
        "ecdsa_p256_verify_per_s": round1(p256_verify),
        "rsa2048_pss_sign_per_s": round1(rsa_sign),
        "rsa2048_pss_verify_per_s": round1(rsa_verify),
        "max_handshakes_per_s_p256": round1(ec_hs),
        "max_handshakes_per_s_rsa2048": round1(rsa_hs),
    });
    println!("{report}");
    std::process::ExitCode::SUCCESS
}

fn fail(what: &str) -> std::process::ExitCode {
    eprintln!("wif-cryptospeed: {what}");
    std::process::ExitCode::from(1)
}
