//! The broker's counters, by rule: grants and their outcome, STS downscoping calls, cache
//! hits, and policy reloads. (Clients no rule matches are counted with the refusals, as
//! `no_policy_match`.) Rule names come from the policy, so the
//! number of series is bounded by it.

use super::downscope::Call;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The outcome of a grant, as the `outcome` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A credential was handed out.
    Issued,
    /// No credential could be (503).
    Unavailable,
}

/// One rule's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct RuleCounts {
    /// Credentials handed out.
    pub issued: u64,
    /// Requests answered 503.
    pub unavailable: u64,
    /// Credentials handed out from the cache.
    pub cache_hits: u64,
    /// STS downscoping calls by result, in the order of [`Call::ALL`].
    pub calls: [u64; 3],
}

/// A snapshot of the counters.
#[derive(Default)]
pub struct Samples {
    /// The counters of each rule that has been asked for.
    pub rules: BTreeMap<String, RuleCounts>,
    /// Policies read and taken.
    pub reloads_ok: u64,
    /// Policies read and refused.
    pub reloads_refused: u64,
    /// Rules of the policy in force, with a policy.
    pub policy_rules: Option<usize>,
}

#[derive(Default)]
pub(super) struct Stats {
    rules: Mutex<BTreeMap<String, RuleCounts>>,
    reloads_ok: AtomicU64,
    reloads_refused: AtomicU64,
}

impl Stats {
    /// Changes the counters of `rule` (its name is copied only the first time).
    fn with(&self, rule: &str, f: impl FnOnce(&mut RuleCounts)) {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        match rules.get_mut(rule) {
            Some(c) => f(c),
            None => f(rules.entry(rule.to_string()).or_default()),
        }
    }

    pub fn policy_reload(&self, ok: bool) {
        let c = if ok { &self.reloads_ok } else { &self.reloads_refused };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a grant under `rule`; `hit`: handed out from the cache.
    pub fn grant(&self, rule: &str, outcome: Outcome, hit: bool) {
        self.with(rule, |c| match outcome {
            Outcome::Issued => {
                c.issued += 1;
                c.cache_hits += u64::from(hit);
            }
            Outcome::Unavailable => c.unavailable += 1,
        });
    }

    pub fn downscope_call(&self, rule: &str, call: Call) {
        self.with(rule, |c| c.calls[call as usize] += 1);
    }

    pub fn samples(&self, policy_rules: Option<usize>) -> Samples {
        Samples {
            rules: self.rules.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            reloads_ok: self.reloads_ok.load(Ordering::Relaxed),
            reloads_refused: self.reloads_refused.load(Ordering::Relaxed),
            policy_rules,
        }
    }
}
