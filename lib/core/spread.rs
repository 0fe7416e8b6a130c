//! When a holder of a short-lived token fetches it again: a margin before the token expires,
//! spread at random over a window before that margin, so that a fleet holding the same token
//! (every host got it from the same server after one rotation, so it expires at the same
//! second everywhere) does not come back at one moment.
//!
//! Spreading only ever moves a refresh *earlier* than the margin would: the latest moment of
//! the window is the unspread refresh time, so a client never holds a token closer to its
//! expiry than it would without spreading, and never an expired one.

use crate::core::error::{Error, Result};

/// The refresh margin of a token with `remaining` seconds left: fetch it again when
/// `min_ttl` or a quarter of its remaining life is left, whichever is more.
pub fn margin(remaining: i64, min_ttl: i64) -> i64 {
    min_ttl.max(remaining / 4)
}

/// How refreshes are spread (`--spread`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// Not at all: every holder refreshes exactly at the margin (`--spread 0` or `off`).
    Off,
    /// Over a window as wide as the margin itself (the default, `auto`).
    Auto,
    /// Over a window this many seconds wide (never wider than the margin allows, below).
    Seconds(i64),
}

impl Spread {
    /// Parses `off`, `0`, `auto` or a duration such as `10m` (the words `--spread` takes).
    pub fn parse(text: &str, flag: &str) -> Result<Spread> {
        match text.trim() {
            "auto" => Ok(Spread::Auto),
            "off" | "none" | "0" => Ok(Spread::Off),
            other => match crate::core::clock::parse_duration(other) {
                Ok(d) if d.is_zero() => Ok(Spread::Off),
                Ok(d) => Ok(Spread::Seconds(d.as_secs().min(i64::MAX as u64) as i64)),
                Err(_) => Err(Error::usage(format!("{flag} {other:?} is not auto, off or a duration"))
                    .hint(format!("e.g. {flag} auto (as wide as the refresh margin), {flag} 10m, or {flag} off"))),
            },
        }
    }

    /// The width of the window, in seconds, for a refresh margin of `margin` seconds.
    pub fn width(self, margin: i64) -> i64 {
        match self {
            Spread::Off => 0,
            Spread::Auto => margin.max(0),
            Spread::Seconds(s) => s.max(0),
        }
    }
}

/// The moments between which a token should be fetched again, Unix seconds, both included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The earliest moment of the window.
    pub earliest: i64,
    /// The latest: the unspread refresh time (`expires_at` minus the margin).
    pub latest: i64,
}

impl Window {
    /// The moment at `u` (in [0, 1)) of the way through the window.
    pub fn at(self, u: f64) -> i64 {
        let span = (self.latest - self.earliest).max(0);
        let u = if u.is_finite() { u.clamp(0.0, 1.0) } else { 0.0 };
        (self.earliest + (u * (span as f64 + 1.0)).floor() as i64).min(self.latest)
    }
}

/// The refresh window at `now` of a token expiring at `expires_at`: it ends at the margin
/// ([`margin`] with `min_ttl`) and begins `spread`'s width before, but never more than half
/// way from now to its end (a token just fetched is not fetched again at once).
pub fn window(now: i64, expires_at: i64, min_ttl: i64, spread: Spread) -> Window {
    let remaining = expires_at - now;
    let latest = expires_at - margin(remaining, min_ttl);
    let room = ((latest - now) / 2).max(0);
    let width = spread.width(margin(remaining, min_ttl)).min(room);
    Window { earliest: latest - width, latest }
}

/// The remaining life at or below which a one-shot client (`wif-get --min-ttl` from cron)
/// fetches again: `min_ttl` plus `u` (in [0, 1)) of the spread's width for a margin of
/// `min_ttl`.
pub fn threshold(min_ttl: i64, spread: Spread, u: f64) -> i64 {
    let u = if u.is_finite() { u.clamp(0.0, 1.0) } else { 0.0 };
    min_ttl + (u * spread.width(min_ttl) as f64).floor() as i64
}

/// The one-shot threshold of [`threshold`] for a token that had `life` seconds left when it
/// was written: its spread part is capped at half of the time from then to the margin
/// (`life - min_ttl`), as [`window`] caps the window at half the way from now. Without the
/// cap a `--min-ttl` close to the token's lifetime would make every run fetch the same token
/// again; with it a run never fetches sooner than the unspread rule would, by more than half.
pub fn threshold_within(min_ttl: i64, spread: Spread, u: f64, life: i64) -> i64 {
    let room = (life.saturating_sub(min_ttl) / 2).max(0);
    min_ttl + (threshold(min_ttl, spread, u) - min_ttl).min(room)
}

/// A wait of `wait` seconds with jitter: drawn at `u` (in [0, 1)) between half of it and
/// all of it, never below 1 s (a wait of 0 stays 0). Polls and retry backoffs of a fleet
/// that started together drift apart instead of arriving in step.
pub fn jitter(wait: u64, u: f64) -> u64 {
    if wait == 0 {
        return 0;
    }
    let u = if u.is_finite() { u.clamp(0.0, 1.0) } else { 0.0 };
    let low = wait / 2;
    let span = wait - low;
    (low + (u * (span as f64 + 1.0)).floor() as u64).clamp(1, wait)
}

/// The environment variable that, when set and not empty, names this host for
/// [`host_id`] instead of `/etc/machine-id`. Meant for tests and for hosts cloned from one
/// image that share a machine id; it only moves where in the window this host refreshes.
pub const HOST_ID_ENV: &str = "WIF_HOST_ID";

/// What names this host for spreading one-shot refreshes: `$WIF_HOST_ID` if set, else
/// `/etc/machine-id`, else the host name (`/proc/sys/kernel/hostname`, `/etc/hostname`),
/// else an empty string (every such host then agrees, as without spreading by host).
pub fn host_id() -> String {
    if let Some(id) = std::env::var(HOST_ID_ENV).ok().filter(|v| !v.trim().is_empty()) {
        return id.trim().to_string();
    }
    ["/etc/machine-id", "/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|text| text.trim().to_string())
        .find(|text| !text.is_empty())
        .unwrap_or_default()
}

/// The `u` of a one-shot client on host `host` (see [`host_id`]) holding the token whose
/// SHA-256 is `token_sha256` (hex): the same on every run of that host for that token, and
/// different from host to host and from token to token.
pub fn one_shot_unit(host: &str, token_sha256: &str) -> f64 {
    unit_from(format!("{host}\n{token_sha256}").as_bytes())
}

/// A number in [0, 1) from the system's random generator.
pub fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    unit_of(b)
}

/// A number in [0, 1) fixed by `seed` (its SHA-256): the same seed always gives the same
/// number, different seeds numbers spread evenly. A one-shot client seeds it with its host
/// and the token it holds, so that its runs from cron agree on when to fetch that token.
pub fn unit_from(seed: &[u8]) -> f64 {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, seed);
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest.as_ref()[..8]);
    unit_of(b)
}

fn unit_of(b: [u8; 8]) -> f64 {
    // The top 53 bits: every value exactly representable, never 1.0.
    (u64::from_be_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_google_token_is_refreshed_in_the_quarter_before_its_margin() {
        // 60 minutes left, --min-ttl 5m: margin 15 min, window 30..45 minutes from now.
        let w = window(0, 3600, 300, Spread::Auto);
        assert_eq!(w, Window { earliest: 1800, latest: 2700 });
        assert_eq!(w.at(0.0), 1800);
        assert_eq!(w.at(0.999_999_9), 2700);
        assert_eq!(window(0, 3600, 300, Spread::Off), Window { earliest: 2700, latest: 2700 });
        // A fixed width, capped at half the way to the margin.
        assert_eq!(window(0, 3600, 300, Spread::Seconds(600)).earliest, 2100);
        assert_eq!(window(0, 3600, 300, Spread::Seconds(99_999)).earliest, 1350);
    }

    #[test]
    fn spreading_never_moves_a_refresh_later_or_into_the_past() {
        for now in [0i64, 17, 1000] {
            for life in [1i64, 4, 10, 61, 300, 301, 900, 3599, 3600, 43_200] {
                for min_ttl in [0i64, 1, 60, 300, 600] {
                    let unspread = window(now, now + life, min_ttl, Spread::Off).latest;
                    for spread in [Spread::Off, Spread::Auto, Spread::Seconds(30), Spread::Seconds(1 << 40)] {
                        let w = window(now, now + life, min_ttl, spread);
                        assert_eq!(w.latest, unspread);
                        assert!(w.earliest <= w.latest);
                        for u in [0.0, 0.25, 0.5, 0.999_999, 1.0, f64::NAN] {
                            let t = w.at(u);
                            assert!(t <= unspread, "{now} {life} {min_ttl} {spread:?} {u}");
                            assert!(t >= w.earliest);
                            if unspread >= now {
                                assert!(t >= now, "{now} {life} {min_ttl} {spread:?} {u}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn thresholds_and_units() {
        assert_eq!(threshold(600, Spread::Auto, 0.0), 600);
        assert_eq!(threshold(600, Spread::Auto, 0.5), 900);
        assert_eq!(threshold(600, Spread::Off, 0.9), 600);
        assert_eq!(threshold(600, Spread::Seconds(60), 0.5), 630);
        assert_eq!(unit_from(b"host-a|abc"), unit_from(b"host-a|abc"));
        assert_ne!(unit_from(b"host-a|abc"), unit_from(b"host-b|abc"));
        let draws: Vec<f64> = (0..1000).map(|_| unit_random()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let low = draws.iter().filter(|u| **u < 0.5).count();
        assert!((350..650).contains(&low), "{low} of 1000 below one half");
    }

    #[test]
    fn one_shot_thresholds_are_capped_and_waits_jittered() {
        // --min-ttl 10m, a 60-minute token: the spread part (up to 10 min) fits.
        assert_eq!(threshold_within(600, Spread::Auto, 0.5, 3600), 900);
        // --min-ttl 50m of a 60-minute token: at most half of the 10 minutes before the margin.
        assert_eq!(threshold_within(3000, Spread::Auto, 0.99, 3600), 3300);
        assert_eq!(threshold_within(3000, Spread::Off, 0.99, 3600), 3000);
        assert_eq!(threshold_within(600, Spread::Auto, 0.9, 100), 600);
        for u in [0.0, 0.3, 0.999_999, 1.0, f64::NAN] {
            for wait in [1u64, 2, 3, 30, 60] {
                let j = jitter(wait, u);
                assert!(j >= 1 && j <= wait && j >= wait / 2, "{wait} {u} {j}");
            }
        }
        assert_eq!((jitter(0, 0.5), jitter(60, 0.0), jitter(60, 0.999_999)), (0, 30, 60));
        assert_eq!(one_shot_unit("a", "ff"), one_shot_unit("a", "ff"));
        assert_ne!(one_shot_unit("a", "ff"), one_shot_unit("b", "ff"));
        assert_ne!(one_shot_unit("a", "ff"), one_shot_unit("a", "fe"));
    }

    #[test]
    fn spread_words() {
        assert_eq!(Spread::parse("auto", "--spread").unwrap(), Spread::Auto);
        assert_eq!(Spread::parse("off", "--spread").unwrap(), Spread::Off);
        assert_eq!(Spread::parse("0s", "--spread").unwrap(), Spread::Off);
        assert_eq!(Spread::parse("10m", "--spread").unwrap(), Spread::Seconds(600));
        assert!(Spread::parse("soon", "--spread").is_err());
    }
}
