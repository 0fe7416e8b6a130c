//! The pipeline's part: a new token in the server's token file every `every` simulated
//! seconds, each living `life` simulated seconds, written with the pipeline's own writer
//! (`wif::core::files::write_token`: metadata first, then the token, both renamed into place),
//! with real expiries in compressed time.

use std::path::{Path, PathBuf};

use wif::core::secret::Secret;

use crate::client::SimClock;

/// The token rotations of one run.
pub struct Rotator {
    pub path: PathBuf,
    /// Simulated seconds between two rotations.
    pub every: f64,
    /// Simulated lifetime of each token.
    pub life: f64,
}

impl Rotator {
    /// Writes a new token now; returns its expiry (Unix seconds, a whole second as in the
    /// metadata).
    pub fn rotate(&self, clock: &SimClock) -> Result<i64, String> {
        let expires_at = (clock.now() + self.life / clock.speed).ceil() as i64;
        write(&self.path, expires_at)?;
        Ok(expires_at)
    }

    /// Rotates at every `every` after t0 until real Unix time `end`; returns how many times.
    pub fn run(&self, clock: &SimClock, end: f64) -> u64 {
        let mut n = 0;
        for k in 1u64.. {
            let at = clock.real(k as f64 * self.every);
            if at > end {
                break;
            }
            clock.sleep_until(at);
            match self.rotate(clock) {
                Ok(_) => n += 1,
                Err(e) => eprintln!("wif-fleet: rotating the token: {e}"),
            }
        }
        n
    }
}

/// A fresh 1,536-byte token, Google-access-token-like, in `path` with its metadata.
fn write(path: &Path, expires_at: i64) -> Result<(), String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut random = vec![0u8; 1529];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| "no random bytes".to_string())?;
    let mut token = String::from("ya29.c.");
    token.extend(random.iter().map(|b| ALPHABET[(b & 63) as usize] as char));
    let expiry = wif::core::clock::rfc3339(expires_at);
    wif::core::files::write_token(path, &Secret::new(token), "access_token", Some(&expiry), "wif-fleet")
        .map(|_| ())
        .map_err(|e| e.to_string())
}
