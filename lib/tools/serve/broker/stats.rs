//! The broker's counters, by rule: grants and their outcome, STS downscoping calls, cache
//! hits, unmatched clients and policy reloads. Rule names come from the policy, so the
//! number of series is bounded by it.

use super::downscope::Call;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The outcome of a grant, as the `outcome` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// A credential was handed out.
    Issued,
    /// No credential could be (503).
    Unavailable,
}

impl Outcome {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Issued => "issued",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// A snapshot of the counters.
#[derive(Default)]
pub struct Samples {
    /// Grants by rule and outcome.
    pub grants: BTreeMap<(String, Outcome), u64>,
    /// STS downscoping calls by rule and result (`ok`, `refused`, `failed`).
    pub calls: BTreeMap<(String, &'static str), u64>,
    /// Cache hits by rule.
    pub cache_hits: BTreeMap<String, u64>,
    /// Clients no rule matched.
    pub unmatched: u64,
    /// Policies read and taken.
    pub reloads_ok: u64,
    /// Policies read and refused.
    pub reloads_refused: u64,
    /// Rules of the policy in force, with a policy.
    pub rules: Option<usize>,
}

#[derive(Default)]
pub(super) struct Stats {
    counts: Mutex<Samples>,
    unmatched: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_refused: AtomicU64,
}

impl Stats {
    fn with(&self, f: impl FnOnce(&mut Samples)) {
        f(&mut self.counts.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn unmatched(&self) {
        self.unmatched.fetch_add(1, Ordering::Relaxed);
    }

    pub fn policy_reload(&self, ok: bool) {
        let c = if ok { &self.reloads_ok } else { &self.reloads_refused };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a grant under `rule`; `hit`: handed out from the cache.
    pub fn grant(&self, rule: &str, outcome: Outcome, hit: bool) {
        self.with(|s| {
            *s.grants.entry((rule.to_string(), outcome)).or_default() += 1;
            if hit {
                *s.cache_hits.entry(rule.to_string()).or_default() += 1;
            }
        });
    }

    pub fn downscope_call(&self, rule: &str, call: Call) {
        self.with(|s| *s.calls.entry((rule.to_string(), call.label())).or_default() += 1);
    }

    pub fn samples(&self, rules: Option<usize>) -> Samples {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        Samples {
            grants: c.grants.clone(),
            calls: c.calls.clone(),
            cache_hits: c.cache_hits.clone(),
            unmatched: self.unmatched.load(Ordering::Relaxed),
            reloads_ok: self.reloads_ok.load(Ordering::Relaxed),
            reloads_refused: self.reloads_refused.load(Ordering::Relaxed),
            rules,
        }
    }
}
