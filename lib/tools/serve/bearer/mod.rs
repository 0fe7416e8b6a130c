//! The bearer-token fallback (`--bearer-issuers FILE`): trusted issuers, their keys (JWKS
//! from a URL or a file), and the verification of `Authorization: Bearer <JWT>` for clients
//! that present no certificate. Off by default; certificate clients never come here.

mod cache;
mod code;
mod identity;
pub mod issuers;
pub mod jwks;
mod verify;

use crate::core::error::{Error, Result};
use cache::{Cache, Fetch, FileFetch, UrlFetch};
use issuers::{IssuersFile, KeySource};
use std::path::Path;
use std::sync::Arc;
use verify::{Issuer, Presented};

pub use cache::IssuerStats;
pub use code::{Code, Refused};
pub use identity::{BearerIdentity, ClaimValue};

/// An issuer as the allow-list and the policy see it: its name and the identity claims its
/// tokens' identities keep (the policy's `claims` may name only those).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownIssuer {
    /// The issuer's name.
    pub name: String,
    /// The claims it keeps besides `sub`, as the issuers file names them.
    pub claims: Vec<String>,
}

/// The loaded issuers and their keys.
pub struct Bearer {
    max_token_bytes: usize,
    issuers: Vec<Issuer>,
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bearer").field("issuers", &self.issuer_names()).finish()
    }
}

impl Bearer {
    /// Reads and checks the issuers file, loads JWKS files (a failure stops the start) and
    /// fetches JWKS URLs once (a failure is a warning: the server starts, and the URL is
    /// tried again every 10 s from [`Bearer::tick`]).
    pub fn load(path: &Path) -> Result<Bearer> {
        let file = IssuersFile::load(path)?;
        let mut issuers = Vec::new();
        for config in file.issuers {
            let source: Box<dyn Fetch> = match &config.keys {
                KeySource::File(p) => Box::new(FileFetch(p.clone())),
                KeySource::Url { uri, ca_file } => Box::new(UrlFetch::new(uri, ca_file.as_deref()).map_err(|e| {
                    e.context(format!("issuer {}: the client for its jwks_uri", config.name))
                        .hint("jwks_ca_file must be a CA bundle (PEM)")
                })?),
            };
            let cache = Arc::new(Cache::new(&config.name, source));
            issuers.push(Issuer { config, cache });
        }
        let bearer = Bearer { max_token_bytes: file.max_token_bytes, issuers };
        bearer.first_loads(crate::core::clock::now_unix())?;
        Ok(bearer)
    }

    /// The loads at start, side by side (a slow URL does not hold up the others).
    fn first_loads(&self, now: i64) -> Result<()> {
        let results: Vec<(&Issuer, std::result::Result<(), String>)> = std::thread::scope(|scope| {
            let running: Vec<_> = self.issuers.iter().map(|i| (i, scope.spawn(move || i.cache.load(now)))).collect();
            running
                .into_iter()
                .map(|(i, h)| (i, h.join().unwrap_or_else(|_| Err("the load stopped unexpectedly".into()))))
                .collect()
        });
        for (issuer, result) in results {
            let Err(why) = result else { continue };
            let name = &issuer.config.name;
            if issuer.cache.is_url() {
                crate::core::diag::warn(format!(
                    "bearer issuer {name}: its keys could not be fetched ({why}); its tokens are refused \
                     (503 jwks_unavailable) until a fetch succeeds, tried again every 10 s"
                ));
            } else {
                return Err(Error::usage(format!("bearer issuer {name}: {why}"))
                    .hint("a jwks_file must hold a JWKS ({\"keys\": [...]}) with at least one usable public key"));
            }
        }
        Ok(())
    }

    /// Verifies one request's bearer token (§3 of the spec): `authorization` is the
    /// `Authorization` header's value as sent, `extra_authorization` whether there was more
    /// than one, `query` the request's query string.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        extra_authorization: bool,
        query: &str,
    ) -> std::result::Result<BearerIdentity, Refused> {
        let presented = Presented { authorization, extra_authorization, query };
        verify::verify(&self.issuers, self.max_token_bytes, &presented, crate::core::clock::now_unix())
    }

    /// The configured issuer names.
    pub fn issuer_names(&self) -> Vec<&str> {
        self.issuers.iter().map(|i| i.config.name.as_str()).collect()
    }

    /// The configured issuers with the claims each keeps (for the policy's checks).
    pub fn known_issuers(&self) -> Vec<KnownIssuer> {
        let known = |i: &Issuer| KnownIssuer {
            name: i.config.name.clone(),
            claims: i.config.claims.iter().map(|c| c.as_str().to_string()).collect(),
        };
        self.issuers.iter().map(known).collect()
    }

    /// From the 1 s watch loop: changed JWKS files re-read, due URL fetches started on
    /// threads of their own, keys too old dropped.
    pub fn tick(&self) {
        let now = crate::core::clock::now_unix();
        for issuer in &self.issuers {
            issuer.cache.tick(now);
        }
    }

    /// SIGHUP: JWKS files re-read, URLs fetched again now (in the background).
    pub fn reload(&self) {
        let now = crate::core::clock::now_unix();
        for issuer in &self.issuers {
            if issuer.cache.is_url() {
                issuer.cache.spawn_load();
            } else {
                let _ = issuer.cache.load(now);
            }
        }
    }

    /// Per issuer: its keys and loads, for the metrics.
    pub fn stats(&self) -> Vec<IssuerStats> {
        let now = crate::core::clock::now_unix();
        self.issuers.iter().map(|i| i.cache.stats(now)).collect()
    }
}

#[cfg(test)]
mod tests;
