//! What the request handlers share with the refresher: the token served, the wish for a
//! fresh one, and the rate-limited log of refused requests.

use super::identity::{printable, Identity};
use super::tree::{tree, Node};
use crate::core::secret::Secret;
use std::collections::HashSet;
use std::sync::{Condvar, Mutex, RwLock};
use std::time::Duration;

/// Refused requests logged a minute at most; a page in a loop must not flood the log.
const REFUSALS_LOGGED: u32 = 10;

/// The token being served and when it expires.
pub struct Current {
    /// The token.
    pub token: Secret,
    /// Its expiry, Unix seconds.
    pub expires_at: i64,
    /// The lifetime assumed, seconds, when the server gave no expiry (see [`refresh_delay`]).
    pub assumed_ttl: Option<i64>,
}

/// What the request handlers share with the refresher.
pub struct State {
    pub(super) identity: Identity,
    /// The port the server listens on: a `Host` with another port is not for us.
    pub(super) port: u16,
    /// The metadata tree served, built once from `identity`.
    pub(super) tree: Node,
    pub(super) current: RwLock<Option<Current>>,
    pub(super) warned_scopes: Mutex<HashSet<String>>,
    pub(super) refusals: Mutex<Refusals>,
    /// Set when a client found no valid token; wakes the refresher.
    wanted: Mutex<bool>,
    wake: Condvar,
}

/// Refused requests logged in the current minute, and those not logged since the last line.
#[derive(Default)]
pub(super) struct Refusals {
    minute: i64,
    pub(super) logged: u32,
    pub(super) unlogged: u64,
}

impl State {
    /// A state with no token yet, for a server listening on `port`.
    pub fn new(identity: Identity, port: u16) -> State {
        State {
            tree: tree(&identity),
            identity,
            port,
            current: RwLock::new(None),
            warned_scopes: Mutex::new(HashSet::new()),
            refusals: Mutex::new(Refusals::default()),
            wanted: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    /// Logs a refused request (one line, REFUSALS_LOGGED a minute at most; the next line
    /// logged counts those that were not).
    pub(super) fn log_refusal(&self, method: &str, path: &str, why: &str, now: i64) {
        let Ok(mut r) = self.refusals.lock() else { return };
        if r.minute != now.div_euclid(60) {
            r.minute = now.div_euclid(60);
            r.logged = 0;
        }
        if r.logged >= REFUSALS_LOGGED {
            r.unlogged += 1;
            return;
        }
        r.logged += 1;
        let unlogged = std::mem::take(&mut r.unlogged);
        drop(r);
        let more = match unlogged {
            0 => String::new(),
            n => format!(" ({n} more refused since the last line, not logged)"),
        };
        let (method, path) = (printable(method, 20), printable(path, 200));
        crate::core::diag::warn(format!("metadata server: refused {method} {path}: {why}{more}"));
    }

    /// Tells the refresher a client found no valid token.
    pub(super) fn want(&self) {
        if let Ok(mut w) = self.wanted.lock() {
            *w = true;
            self.wake.notify_all();
        }
    }

    /// Whether a client has found no valid token since the last refresh attempt.
    pub(super) fn is_wanted(&self) -> bool {
        self.wanted.lock().map(|w| *w).unwrap_or(false)
    }

    /// Forgets the clients' wish: a refresh has just been tried.
    pub(super) fn clear_wanted(&self) {
        if let Ok(mut w) = self.wanted.lock() {
            *w = false;
        }
    }

    /// Sleeps up to `d`, or less if a client comes to want a token meanwhile.
    pub(super) fn sleep_unless_wanted(&self, d: Duration) {
        match self.wanted.lock() {
            Ok(w) => drop(self.wake.wait_timeout_while(w, d, |w| !*w)),
            Err(_) => std::thread::sleep(d),
        }
    }

    /// Replaces the token served.
    pub fn set(&self, current: Current) {
        if let Ok(mut c) = self.current.write() {
            *c = Some(current);
        }
    }

    /// The expiry of the token served, if any.
    pub(super) fn expires_at(&self) -> Option<i64> {
        self.current.read().ok().and_then(|c| c.as_ref().map(|c| c.expires_at))
    }
}
