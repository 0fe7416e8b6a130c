//! One simulated client: it holds the token every client got after the rotation, plans its
//! refresh with the metadata server's rule (`wif::core::spread`: the very window wif-get uses,
//! in simulated seconds), fetches the token again then, retries as wif-get does (503 and
//! connection failures, honouring Retry-After, in real seconds), and plans again.

use std::time::{Duration, Instant};

use wif::core::spread::{self, Spread};
use wif::tools::get::metadata::refresh;

use crate::fetch::{Fetcher, Outcome};

/// Width of one bin of the arrival histograms, milliseconds.
pub const BIN_MS: f64 = 100.0;
/// Longest a client keeps trying after the simulated time is over, real seconds.
const GRACE_S: f64 = 60.0;

/// Compressed time: `speed` simulated seconds per real second, from `t0` (Unix seconds).
pub struct SimClock {
    pub t0: f64,
    pub started: Instant,
    pub speed: f64,
}

impl SimClock {
    /// Real Unix time now.
    pub fn now(&self) -> f64 {
        self.t0 + self.started.elapsed().as_secs_f64()
    }

    /// Simulated seconds since t0 at real Unix time `unix`.
    pub fn sim(&self, unix: f64) -> f64 {
        (unix - self.t0) * self.speed
    }

    /// Real Unix time of simulated second `sim`.
    pub fn real(&self, sim: f64) -> f64 {
        self.t0 + sim / self.speed
    }

    /// Sleeps until real Unix time `unix` (at once if it has passed).
    pub fn sleep_until(&self, unix: f64) {
        let d = unix - self.now();
        if d > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(d));
        }
    }

    /// The histogram bin of real Unix time `unix`.
    pub fn bin(&self, unix: f64) -> usize {
        (((unix - self.t0) * 1000.0 / BIN_MS).max(0.0)) as usize
    }
}

/// The rules every client follows.
pub struct Rules {
    pub spread: Spread,
    /// `--min-ttl`, simulated seconds.
    pub min_ttl: i64,
    /// wif-get's `--retries` (attempts after the first, per fetch).
    pub retries: u32,
    /// No refresh is planned after this real Unix time.
    pub end: f64,
}

/// What one client saw.
#[derive(Default)]
pub struct Tally {
    /// Bins of every connection attempt.
    pub arrivals: Vec<usize>,
    /// Bins of first attempts (the planned moments reached).
    pub planned: Vec<usize>,
    /// Bins of shed answers.
    pub shed_at: Vec<usize>,
    /// Planned moment to token in hand, microseconds, per fetch.
    pub latencies: Vec<u32>,
    pub fetches: u64,
    pub first_try: u64,
    pub retries: u64,
    pub shed: u64,
    pub busy: u64,
    pub refused: u64,
    pub broken: u64,
    /// Fetches that ran out of retries (wif-get would have failed).
    pub failed_fetches: u64,
    /// The client held a token past its expiry at some moment.
    pub held_expired: bool,
    /// The client ended the run without a valid token.
    pub stranded: bool,
    pub first_error: Option<String>,
}

/// The real Unix time of the next refresh of a token expiring at `expires_at` (Unix
/// seconds), planned at real time `now`: the metadata server's own rule
/// (`refresh::next_refresh`) in simulated seconds, with a fresh draw.
pub fn plan(clock: &SimClock, rules: &Rules, now: f64, expires_at: f64) -> f64 {
    let now_s = clock.sim(now).floor() as i64;
    let remaining = clock.sim(expires_at).round() as i64 - now_s;
    let next = refresh::next_refresh(remaining, rules.min_ttl, None, rules.spread, spread::unit_random());
    clock.real((now_s + next.wait as i64) as f64)
}

/// Runs one client from the token it holds (expiring at `expires_at`, Unix seconds) to the
/// end of the run.
pub fn run(fetcher: &Fetcher, clock: &SimClock, rules: &Rules, mut expires_at: f64) -> Tally {
    let mut t = Tally::default();
    let mut next = plan(clock, rules, clock.now(), expires_at);
    while next <= rules.end {
        clock.sleep_until(next);
        match fetch(fetcher, clock, rules, next, &mut t) {
            Some(new_expiry) => {
                if clock.now() > expires_at {
                    t.held_expired = true;
                }
                expires_at = new_expiry;
            }
            None => {
                t.stranded = true;
                t.held_expired |= clock.now() > expires_at;
                return t;
            }
        }
        next = plan(clock, rules, clock.now(), expires_at);
    }
    t
}

/// One refresh planned at `planned`: wif-get's attempts (with its backoff), and after a
/// failed fetch the metadata server's pause, until a token is in hand; None when the run's
/// grace time is over first.
fn fetch(fetcher: &Fetcher, clock: &SimClock, rules: &Rules, planned: f64, t: &mut Tally) -> Option<f64> {
    let mut failures = 0u32;
    let mut first = true;
    loop {
        for attempt in 0..=rules.retries {
            let began = clock.now();
            t.arrivals.push(clock.bin(began));
            if first {
                t.planned.push(clock.bin(began));
            } else {
                t.retries += 1;
            }
            let retry_after = match fetcher.attempt() {
                Outcome::Token { expires_at } => {
                    let now = clock.now();
                    t.fetches += 1;
                    t.first_try += u64::from(first);
                    t.latencies.push(((now - planned) * 1e6).clamp(0.0, u32::MAX as f64) as u32);
                    return Some(expires_at as f64);
                }
                Outcome::Shed { retry_after } => {
                    t.shed += 1;
                    t.shed_at.push(clock.bin(began));
                    retry_after
                }
                Outcome::Busy { status, retry_after } => {
                    t.busy += 1;
                    t.first_error.get_or_insert_with(|| format!("HTTP {status}"));
                    retry_after
                }
                Outcome::Refused { status } => {
                    t.refused += 1;
                    t.first_error.get_or_insert_with(|| format!("HTTP {status} (not retried)"));
                    first = false;
                    break;
                }
                Outcome::Broken(e) => {
                    t.broken += 1;
                    t.first_error.get_or_insert(e);
                    None
                }
            };
            first = false;
            if attempt < rules.retries {
                std::thread::sleep(wif::http::backoff(attempt, retry_after));
            }
        }
        t.failed_fetches += 1;
        failures += 1;
        // The metadata server's pause, in real seconds.
        let resume = clock.now() + refresh::retry_delay(failures, rules.spread, spread::unit_random()) as f64;
        if resume > rules.end + GRACE_S {
            return None;
        }
        clock.sleep_until(resume);
    }
}
