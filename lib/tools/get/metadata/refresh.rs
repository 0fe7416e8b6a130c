//! Keeping the token fresh: when to fetch it again, and the refresher's loop.

use super::state::{Current, State};
use crate::core::clock;
use crate::core::error::{Error, Kind, Result};
use crate::core::settings::Settings;
use crate::core::spread::{self, Spread};
use crate::tools::get::args::Cli;
use crate::tools::get::fetched::fetch_and_store;
use crate::tools::get::plan::Plan;
use std::time::Duration;

/// The tool whose name starts the refresher's lines.
pub(super) const TOOL: &str = "wif-get";
/// Longest pause between two refresh attempts after failures.
const MAX_RETRY_DELAY: u64 = 60;
/// Longest sleep of the refresher before it looks at the wall clock again: the monotonic
/// clock stops while the machine is suspended, the wall clock does not.
const SLEEP_SLICE: i64 = 15;
/// Least time between two refresh attempts when clients ask for a token there is none of.
const MIN_WANTED_GAP: i64 = 2;
/// Least time between two planned fetches of a token whose lifetime is assumed: its server
/// has no newer expiry to tell, so fetching sooner would learn nothing new.
const MIN_ASSUMED_REFRESH: i64 = 30;

/// When the next refresh is, in seconds from now, and why then (for the log line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Next {
    /// Seconds to wait.
    pub wait: u64,
    /// Why that long.
    pub why: Why,
}

/// Why the next refresh is when it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Exactly at the margin: `--spread off`, or no room left to spread.
    Margin,
    /// At random in the window before the margin, `earliest..=latest` seconds from now.
    Spread {
        /// The window's first second.
        earliest: u64,
        /// Its last: the unspread refresh time.
        latest: u64,
    },
    /// Near expiry, polling the server for a newer token: at random in `earliest..=latest`.
    Poll {
        /// Half the poll interval (never below 1 s).
        earliest: u64,
        /// The poll interval.
        latest: u64,
    },
}

impl std::fmt::Display for Why {
    /// The end of the log line, after "next refresh in N s".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Margin => Ok(()),
            Why::Spread { earliest, latest } => write!(f, " (spread over {earliest}..{latest} s)"),
            Why::Poll { earliest, latest } => {
                write!(f, " (polling near expiry, jittered over {earliest}..{latest} s)")
            }
        }
    }
}

impl Next {
    /// A refresh at `wait`, drawn in `earliest..=latest`: spread when that has room.
    fn within(wait: u64, earliest: u64, latest: u64) -> Next {
        let why = if earliest < latest { Why::Spread { earliest, latest } } else { Why::Margin };
        Next { wait, why }
    }
}

/// When to refresh a token with `remaining` seconds left, `u` (in [0, 1)) being this
/// refresh's draw: at `u` of the way through `spread::window`, which ends when `min_ttl` or
/// a quarter of the token's life is left, whichever is more (with `Spread::Off`, exactly
/// then). When that is (nearly) now, the server has no newer token yet, so poll it every
/// so often without hammering it (jittered unless `Spread::Off`).
///
/// A token whose lifetime was assumed (`assumed_ttl`: the server sent no expiry) always
/// comes with the same `remaining`, so a margin as large as its lifetime would poll for
/// ever: the margin is capped at half the lifetime, and fetches are MIN_ASSUMED_REFRESH
/// apart at least (but before the token runs out); spread within those rules.
pub fn next_refresh(remaining: i64, min_ttl: i64, assumed_ttl: Option<i64>, spread: Spread, u: f64) -> Next {
    if let Some(ttl) = assumed_ttl {
        // At least a quarter of `remaining` (remaining <= ttl), so the window's margin is
        // this one: it ends where the unspread rule refreshes.
        let margin = spread::margin(remaining, min_ttl).min(ttl / 2);
        let window = spread::window(0, remaining, margin, spread);
        let rules = |t: i64| t.max(MIN_ASSUMED_REFRESH).min(remaining - 1).max(1) as u64;
        return Next::within(rules(window.at(u)), rules(window.earliest), rules(window.latest));
    }
    let window = spread::window(0, remaining, min_ttl, spread);
    if window.latest >= 5 {
        return Next::within(window.at(u) as u64, window.earliest as u64, window.latest as u64);
    }
    let poll = (remaining / 2).clamp(1, 30) as u64;
    match spread {
        Spread::Off => Next { wait: poll, why: Why::Margin },
        _ => {
            Next { wait: spread::jitter(poll, u), why: Why::Poll { earliest: spread::jitter(poll, 0.0), latest: poll } }
        }
    }
}

/// Seconds to wait after `failures` failed refreshes in a row: 1, 2, 4, … up to a minute;
/// unless `Spread::Off`, drawn at `u` between half of that and all of it (never below 1 s).
pub fn retry_delay(failures: u32, spread: Spread, u: f64) -> u64 {
    let wait = (1u64 << failures.saturating_sub(1).min(6)).min(MAX_RETRY_DELAY);
    match spread {
        Spread::Off => wait,
        _ => spread::jitter(wait, u),
    }
}

/// When the next refresh is due, Unix seconds: as `planned`, or, when a client has found no
/// valid token (`wanted`), as soon as MIN_WANTED_GAP has passed since the last attempt.
pub fn refresh_due(planned: i64, last_attempt: i64, wanted: bool) -> i64 {
    if wanted {
        planned.min(last_attempt + MIN_WANTED_GAP)
    } else {
        planned
    }
}

/// How long to sleep at `now` before looking again for a refresh `due` then: `None` when it
/// is due, else at most SLEEP_SLICE, so that a suspend (or a VM pause) that the monotonic
/// sleep did not see is noticed within that time of the wall clock's jump.
pub fn sleep_slice(now: i64, due: i64) -> Option<Duration> {
    (due > now).then(|| Duration::from_secs((due - now).min(SLEEP_SLICE) as u64))
}

/// Fetches the token now and whenever it runs low; logs one line per refresh or failure.
pub(super) fn refresh_loop(
    cli: &Cli,
    s: &Settings,
    plan: &Plan,
    state: &State,
    min_ttl: i64,
    fatal: std::sync::mpsc::Sender<Error>,
) {
    let url = plan.url_for_messages().to_string();
    let mut failures = 0u32;
    let mut fetched_once = false;
    loop {
        let attempt = fetch(cli, s, plan);
        let last_attempt = clock::now_unix();
        let wait = match attempt {
            Ok(current) => {
                let now = clock::now_unix();
                let remaining = current.expires_at - now;
                let sha = crate::core::keys::sha256_hex(current.token.expose().as_bytes());
                let next = next_refresh(remaining, min_ttl, current.assumed_ttl, plan.spread, spread::unit_random());
                let expires_at = current.expires_at;
                let assumed = if current.assumed_ttl.is_some() { " assumed" } else { "" };
                // Served before it is announced: whoever reads the line can use it.
                state.set(current);
                crate::core::diag::info(
                    TOOL,
                    format_args!(
                    "metadata server: fetched the token from {url} (sha256 {}, expires{assumed} {}, in {remaining} s); next refresh in {} s{}",
                    &sha[..12],
                    clock::rfc3339(expires_at),
                    next.wait,
                    next.why,
                    ),
                );
                failures = 0;
                fetched_once = true;
                next.wait
            }
            Err(e) => {
                if !fetched_once && e.kind() != Kind::Unavailable {
                    let _ = fatal.send(e.context("starting the metadata server"));
                    return;
                }
                failures += 1;
                let now = clock::now_unix();
                let serving = match state.expires_at() {
                    Some(exp) if exp > now => {
                        format!("serving the previous token until it expires at {}", clock::rfc3339(exp))
                    }
                    Some(_) => "the previous token has expired: answering 503".to_string(),
                    None => "no token to serve yet: answering 503".to_string(),
                };
                let wait = retry_delay(failures, plan.spread, spread::unit_random());
                let hint = e.hint_text().map(|h| format!(" (hint: {h})")).unwrap_or_default();
                let retry = crate::core::diag::Retry { attempt: failures, of: None, delay: Duration::from_secs(wait) };
                crate::core::diag::retrying(
                    TOOL,
                    "metadata server",
                    &format!("refreshing the token failed: {e}{hint}; {serving}"),
                    retry,
                );
                wait
            }
        };
        // Whoever found no token before now has been answered by this attempt's outcome.
        state.clear_wanted();
        // Planned by the wall clock, slept in slices: see sleep_slice.
        let planned = last_attempt + wait as i64;
        loop {
            let wanted = state.is_wanted();
            match sleep_slice(clock::now_unix(), refresh_due(planned, last_attempt, wanted)) {
                None => break,
                // Already wanted: waiting on the flag would return at once, so just sleep.
                Some(d) if wanted => std::thread::sleep(d),
                Some(d) => state.sleep_unless_wanted(d),
            }
        }
    }
}

/// One fetch through wif-get's client, which also tells when the token expires (or what
/// lifetime it assumed).
fn fetch(cli: &Cli, s: &Settings, plan: &Plan) -> Result<Current> {
    let fetched = fetch_and_store(cli, s, plan)?;
    let doing = || format!("fetching {}", plan.url_for_messages());
    let expires_at = fetched.expires_at.unix();
    if expires_at <= clock::now_unix() {
        return Err(Error::new(
            Kind::Unavailable,
            format!("the server gave a token that expired at {}", fetched.expires_at),
        )
        .context(doing())
        .hint("the server's refresh job is behind; check it (wif-serve answers 503 for expired tokens)"));
    }
    Ok(Current { token: fetched.token, expires_at, assumed_ttl: fetched.section.assumed_ttl_seconds.map(|t| t as i64) })
}
