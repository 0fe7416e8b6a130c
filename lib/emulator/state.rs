//! What the emulator's handlers share: the configuration, the signing key, the `jti`s
//! seen, the federated tokens STS issued (for IAM), the access tokens IAM and STS
//! downscoping issued (for Cloud Storage), the injected faults, and the Kubernetes and
//! GitHub issuers' key sets.

use super::boundary::Boundary;
use super::config::{self, Config};
use super::keys;
use crate::core::error::Result;
use crate::core::jwt;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most access tokens remembered at once; beyond it the soonest to expire are forgotten.
const MAX_ACCESS_TOKENS: usize = 100_000;

/// What Cloud Storage and STS downscoping need to know about an access token the
/// emulator issued (IAM `generateAccessToken`, or STS downscoping).
#[derive(Clone, Debug)]
pub struct AccessToken {
    /// The service account it acts as.
    pub email: String,
    /// Its OAuth scopes.
    pub scopes: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// The Credential Access Boundary it carries (downscoped tokens).
    pub boundary: Option<Arc<Boundary>>,
}

/// What IAM needs to know about a federated token.
#[derive(Clone, Debug)]
pub struct FederatedToken {
    /// `projects/N/locations/global/workloadIdentityPools/P`.
    pub pool: String,
    /// `google.subject`.
    pub subject: String,
    /// `google.groups`.
    pub groups: Vec<String>,
    /// Custom attributes (`attribute.NAME` → values).
    pub attributes: Map<String, Value>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// Everything the handlers share.
pub struct State {
    /// The configuration.
    pub config: Config,
    /// The signing key.
    pub signer: keys::Signer,
    /// Lifetime of issued tokens, seconds.
    pub token_lifetime: i64,
    jtis: Mutex<HashMap<String, i64>>,
    /// Federated tokens issued by STS, by token.
    pub federated: Mutex<HashMap<String, FederatedToken>>,
    access: Mutex<HashMap<String, AccessToken>>,
    fail_left: AtomicU64,
    delay: Duration,
    /// How far the emulator's clock runs ahead of the machine's (negative: behind), seconds.
    clock_offset: i64,
    /// Per-service fault injection (`--fault`).
    pub faults: super::faults::Faults,
    /// The Kubernetes and GitHub issuers' key sets.
    pub issuer_keys: super::keyset::IssuerKeys,
}

impl State {
    /// A state for a configuration.
    pub fn new(config: Config, token_lifetime: Option<i64>, fail_first: u64, delay: Duration) -> Result<State> {
        let lifetime = token_lifetime.unwrap_or_else(|| config.token_lifetime());
        let issuer_keys = issuer_keys(&config)?;
        Ok(State {
            signer: keys::Signer::generate()?,
            token_lifetime: lifetime,
            config,
            jtis: Mutex::new(HashMap::new()),
            federated: Mutex::new(HashMap::new()),
            access: Mutex::new(HashMap::new()),
            fail_left: AtomicU64::new(fail_first),
            delay,
            clock_offset: 0,
            faults: super::faults::Faults::default(),
            issuer_keys,
        })
    }

    /// The same state with its clock `secs` ahead of the machine's (behind when negative).
    pub fn with_clock_offset(mut self, secs: i64) -> State {
        self.clock_offset = secs;
        self
    }

    /// The same state with these injected faults.
    pub fn with_faults(mut self, faults: super::faults::Faults) -> State {
        self.faults = faults;
        self
    }

    /// The emulator's clock, Unix seconds: the machine's plus `--clock-offset`. Every time
    /// check, issued timestamp and `Date` header reads it.
    pub fn now(&self) -> i64 {
        crate::core::clock::now_unix().saturating_add(self.clock_offset)
    }

    /// Records a client assertion's `jti`; false if it was seen before (a replay).
    pub fn fresh_jti(&self, scope: &str, jti: &str, exp: i64) -> bool {
        if !self.config.reject_replayed_assertions {
            return true;
        }
        let now = self.now();
        let Ok(mut seen) = self.jtis.lock() else { return false };
        seen.retain(|_, e| *e + 600 > now);
        seen.insert(format!("{scope}\n{jti}"), exp).is_none()
    }

    /// Verifies a client assertion for the token endpoint `endpoint` and records its `jti`.
    pub fn client_assertion(
        &self,
        token: &str,
        certs: &[config::RegisteredCert],
        thumbprints: &[Vec<u8>],
        require_thumbprint: bool,
        client_id: &str,
        endpoint: &str,
    ) -> std::result::Result<(), keys::AssertionError> {
        let now = self.now();
        let expect = keys::Expect {
            certs,
            thumbprints,
            require_thumbprint,
            client_id,
            audience: endpoint,
            now,
            skew: self.config.clock_skew(),
            max_lifetime: self.config.max_assertion_lifetime(),
        };
        let jws = keys::verify_assertion(token, &expect)?;
        let jti = jws.claims.get("jti").and_then(serde_json::Value::as_str).unwrap_or("");
        let exp = jwt::numeric_claim(&jws.claims, "exp").unwrap_or(now);
        if !self.fresh_jti(endpoint, jti, exp) {
            return Err(keys::AssertionError::Replayed(jti.to_string()));
        }
        Ok(())
    }

    /// Remembers an access token it issued, forgetting expired ones (and, past
    /// [`MAX_ACCESS_TOKENS`], the soonest to expire) so the map stays bounded.
    pub fn record_access_token(&self, token: String, info: AccessToken) {
        let now = self.now();
        let Ok(mut map) = self.access.lock() else { return };
        map.retain(|_, t| t.exp > now);
        while map.len() >= MAX_ACCESS_TOKENS {
            let Some(first) = map.iter().min_by_key(|(_, t)| t.exp).map(|(k, _)| k.clone()) else { break };
            map.remove(&first);
        }
        map.insert(token, info);
    }

    /// A live access token the emulator issued.
    pub fn access_token(&self, token: &str) -> Option<AccessToken> {
        let now = self.now();
        self.access.lock().ok()?.get(token).filter(|t| t.exp > now).cloned()
    }

    /// Fault injection before a request is answered: waits `--delay`; true when the
    /// request must fail (one of the first `--fail-first`).
    pub fn delay_or_fail(&self) -> bool {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.fail_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }

    /// The JWKS of the emulator's key.
    pub fn jwks(&self) -> serde_json::Value {
        json!({ "keys": [self.signer.jwk()] })
    }
}

/// Each Kubernetes and GitHub issuer's key set: its `signing_key`, or a fresh RSA-2048 key.
fn issuer_keys(config: &Config) -> Result<super::keyset::IssuerKeys> {
    use super::bearer_config::BearerKind;
    use super::keyset::KeySet;
    let mut keys = super::keyset::IssuerKeys::default();
    let k8s = config.kubernetes.iter().enumerate().map(|(i, k)| (BearerKind::Kubernetes, i, &k.name, &k.signing_key));
    let github = config.github.iter().enumerate().map(|(i, g)| (BearerKind::Github, i, &g.name, &g.signing_key));
    for (kind, i, name, signing_key) in k8s.chain(github) {
        let set =
            KeySet::load(signing_key.as_deref()).map_err(|e| e.context(format!("{}[{i}].signing_key", kind.name())))?;
        keys.insert(kind, name, set);
    }
    Ok(keys)
}
