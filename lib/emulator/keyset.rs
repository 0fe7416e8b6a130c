//! The bearer issuers' key sets: each Kubernetes and GitHub issuer signs with its own key
//! (made at start, or its `signing_key`), publishes every key it keeps as a JWKS, and can be
//! rotated (`POST /_emulator/rotate/{kind}/{name}[?retire=true]`, the emulator's own control,
//! not any real API): a new key signs from then on and is listed first; the old ones stay
//! published until retired.

use super::bearer_config::BearerKind;
use super::keys::Signer;
use crate::core::error::Result;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// Most keys one issuer keeps published; past it a rotation drops the oldest.
const MAX_KEYS: usize = 10;

/// One issuer's keys: the first signs, all are published.
pub struct KeySet {
    keys: RwLock<Vec<Arc<Signer>>>,
}

impl KeySet {
    /// A key set with one key: `signing_key`'s, or a fresh RSA-2048 key.
    pub fn load(signing_key: Option<&Path>) -> Result<KeySet> {
        let first = match signing_key {
            Some(path) => Signer::from_pem_file(path)?,
            None => Signer::generate()?,
        };
        Ok(KeySet { keys: RwLock::new(vec![Arc::new(first)]) })
    }

    /// Every key, newest first (a poisoned lock still holds whole keys).
    fn all(&self) -> Vec<Arc<Signer>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The key that signs now.
    fn current(&self) -> Arc<Signer> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys[0].clone()
    }

    /// Signs `claims` with the current key: `header` plus its `alg` and `kid`.
    pub fn sign(&self, header: Map<String, Value>, claims: &Value) -> String {
        self.current().sign_with_header(header, claims)
    }

    /// The `kid`s published, newest first.
    pub fn kids(&self) -> Vec<String> {
        self.all().iter().map(|k| k.kid.clone()).collect()
    }

    /// The algorithms of the keys published, each once, newest key's first.
    pub fn algs(&self) -> Vec<&'static str> {
        let mut algs = Vec::new();
        for k in self.all() {
            if !algs.contains(&k.alg()) {
                algs.push(k.alg());
            }
        }
        algs
    }

    /// The JWKS: every key kept, newest first.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.all().iter().map(|k| k.jwk()).collect::<Vec<_>>() })
    }

    /// A new key (of the current key's type) signs from now on; `retire` drops the others.
    /// Returns the new key's `kid`.
    pub fn rotate(&self, retire: bool) -> Result<String> {
        // Made outside the lock: generating an RSA key takes a while.
        let fresh = Arc::new(self.current().generate_like()?);
        let kid = fresh.kid.clone();
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if retire {
            keys.clear();
        }
        keys.insert(0, fresh);
        keys.truncate(MAX_KEYS);
        Ok(kid)
    }
}

/// The key sets of every Kubernetes and GitHub issuer, by kind, then name (so a request's
/// lookup borrows the name from its path).
#[derive(Default)]
pub struct IssuerKeys(BTreeMap<BearerKind, BTreeMap<String, KeySet>>);

impl IssuerKeys {
    /// Adds an issuer's key set.
    pub fn insert(&mut self, kind: BearerKind, name: &str, keys: KeySet) {
        self.0.entry(kind).or_default().insert(name.to_string(), keys);
    }

    /// The key set of issuer `name` of `kind`.
    pub fn get(&self, kind: BearerKind, name: &str) -> Option<&KeySet> {
        self.0.get(&kind)?.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::jwt::Jws;

    #[test]
    fn rotation_puts_the_new_key_first_and_retire_drops_the_old() {
        let set = KeySet::load(None).unwrap();
        let first = set.kids();
        assert_eq!(first.len(), 1);
        let t = set.sign(Map::new(), &json!({"sub": "a"}));
        assert_eq!(Jws::parse(&t).unwrap().header["kid"], first[0]);
        let kid = set.rotate(false).unwrap();
        assert_eq!(set.kids(), vec![kid.clone(), first[0].clone()]);
        let t = set.sign(Map::new(), &json!({"sub": "a"}));
        assert_eq!(Jws::parse(&t).unwrap().header["kid"], kid);
        assert_eq!(set.jwks()["keys"][0]["kid"], kid);
        let newest = set.rotate(true).unwrap();
        assert_eq!(set.kids(), vec![newest]);
        for _ in 0..MAX_KEYS + 2 {
            set.rotate(false).unwrap();
        }
        assert_eq!(set.kids().len(), MAX_KEYS);
    }
}
