//! wif-serve's policy (`--policy FILE`, version 1): which verified client gets which
//! credential. Ordered rules, first match wins; each names a client match (for certificate
//! clients: subject CN, DNS or URI SAN, SPKI or certificate pin; for bearer clients: the
//! issuer, `sub` and identity claims; all given keys required) and a grant: a token source
//! (one of several token files) and/or a Credential Access Boundary applied by downscoping.
//! Everything is checked when the file is read, and a flaw is named by its JSON path.

use super::allow::{digest_hex, Principal, Rule as Id};
use super::bearer::KnownIssuer;
use crate::core::error::{Error, Result};
use crate::core::files::{read_trusted, Part};
use crate::core::wire::check_name;
use crate::protocol::boundary::AccessBoundary;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The policy format this server reads.
pub const VERSION: u32 = 1;
/// The token source `--token` provides, unless the policy's `tokens` defines it.
pub const DEFAULT_SOURCE: &str = "default";

/// A loaded, checked policy.
#[derive(Debug)]
pub struct Policy {
    /// Token source name → token file (relative paths resolved against the policy's folder).
    pub tokens: BTreeMap<String, PathBuf>,
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

/// One rule.
#[derive(Debug)]
pub struct Rule {
    /// Its name: in headers, the log, the ledger and metric labels.
    pub name: String,
    /// Which clients it matches.
    pub matcher: Matcher,
    /// The token source it hands out (narrowed, if it has a boundary).
    pub source: String,
    /// The boundary applied by downscoping, if any.
    pub boundary: Option<Arc<Boundary>>,
}

/// A boundary with its digest, computed once.
#[derive(Debug)]
pub struct Boundary {
    /// Google's boundary object.
    pub boundary: AccessBoundary,
    /// [`AccessBoundary::digest`].
    pub digest: String,
}

/// Which clients a rule matches.
#[derive(Debug)]
pub enum Matcher {
    /// Every verified client (`"any": true`).
    Any,
    /// Certificate clients: every key given must match; a key matches when one of its
    /// values does.
    All(Vec<Vec<Id>>),
    /// Bearer clients: the issuer is one of `issuers`, the `sub` one of `subs` (when given),
    /// and every claim named has one of its values.
    Bearer(BearerMatch),
}

/// A rule's match on bearer clients.
#[derive(Debug)]
pub struct BearerMatch {
    /// Issuer names (of `--bearer-issuers`).
    pub issuers: Vec<String>,
    /// Subjects, exactly; `None`: any.
    pub subs: Option<Vec<String>>,
    /// Claim name → accepted values (an array claim matches when one element is one of them).
    pub claims: BTreeMap<String, Vec<String>>,
}

impl Matcher {
    /// Whether a verified client matches. A rule's keys are for certificate clients or for
    /// bearer clients, never both; `any` matches every verified client.
    pub fn matches(&self, client: &Principal) -> bool {
        match (self, client) {
            (Matcher::Any, _) => true,
            (Matcher::All(keys), Principal::Certificate(_)) => {
                keys.iter().all(|any| any.iter().any(|r| r.matches(client)))
            }
            (Matcher::Bearer(m), Principal::Bearer(b)) => {
                m.issuers.contains(&b.issuer)
                    && m.subs.as_ref().map_or(true, |subs| subs.contains(&b.sub))
                    && m.claims
                        .iter()
                        .all(|(name, values)| b.claims.get(name).is_some_and(|have| values.iter().any(|v| have.has(v))))
            }
            (Matcher::All(_), Principal::Bearer(_)) | (Matcher::Bearer(_), Principal::Certificate(_)) => false,
        }
    }
}

impl Policy {
    /// The first rule matching the client, if any.
    pub fn select(&self, client: &Principal) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matcher.matches(client))
    }

    /// Reads and checks the policy file. `has_default`: whether `--token` was given (the
    /// `default` source); `issuers`: those of `--bearer-issuers` (none when it is off).
    pub fn load(path: &Path, has_default: bool, issuers: &[KnownIssuer]) -> Result<Policy> {
        let bytes = read_trusted(path, Part::Policy).map_err(|s| Error::input(s.detail()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Policy::parse(&bytes, base, has_default, issuers).map_err(|e| {
            e.context(format!("reading the policy {}", path.display()))
                .hint("see wif-serve(1) and docs/POLICY.md for the format; the file is JSON with \"version\": 1")
        })
    }

    /// Parses and checks a policy's bytes; relative token paths are resolved against `base`;
    /// an `issuer` must be one of `issuers`, and a claim in `claims` one every issuer of its
    /// rule keeps.
    pub fn parse(bytes: &[u8], base: &Path, has_default: bool, issuers: &[KnownIssuer]) -> Result<Policy> {
        let raw: RawPolicy =
            serde_json::from_slice(bytes).map_err(|e| Error::input(format!("not a valid policy: {e}")))?;
        let flaw = |path: String, why: String| Error::input(format!("{path}: {why}"));
        if raw.version != VERSION {
            return Err(flaw(
                "version".into(),
                format!("{} is not a version this server reads (it reads {VERSION})", raw.version),
            ));
        }
        let mut tokens = BTreeMap::new();
        for (name, file) in raw.tokens {
            check_name(&name).map_err(|why| flaw(format!("tokens.{name}"), why))?;
            if file.as_os_str().is_empty() {
                return Err(flaw(format!("tokens.{name}"), "is empty: give the token file's path".into()));
            }
            tokens.insert(name, base.join(file));
        }
        if raw.rules.is_empty() {
            return Err(flaw("rules".into(), "is empty: a policy has at least one rule".into()));
        }
        let mut rules: Vec<Rule> = Vec::new();
        for (i, r) in raw.rules.into_iter().enumerate() {
            let at = |field: &str| format!("rules[{i}].{field}");
            check_name(&r.name).map_err(|why| flaw(at("name"), why))?;
            if rules.iter().any(|x| x.name == r.name) {
                return Err(flaw(at("name"), format!("{:?} names an earlier rule too; rule names are unique", r.name)));
            }
            let matcher =
                r.matches.matcher(issuers).map_err(|(key, why)| flaw(format!("rules[{i}].match{key}"), why))?;
            let source = r.token.unwrap_or_else(|| DEFAULT_SOURCE.to_string());
            if !(tokens.contains_key(&source) || source == DEFAULT_SOURCE && has_default) {
                let why = if source == DEFAULT_SOURCE {
                    "the rule names no token source and --token was not given: add \"token\": NAME, or give --token"
                        .to_string()
                } else {
                    format!("{source:?} is not a token source of \"tokens\"")
                };
                return Err(flaw(at("token"), why));
            }
            let boundary = match r.access_boundary {
                Some(b) => {
                    b.check().map_err(|f| flaw(format!("{}.{}", at("access_boundary"), f.path), f.why))?;
                    Some(Arc::new(Boundary { digest: b.digest(), boundary: b }))
                }
                None => None,
            };
            rules.push(Rule { name: r.name, matcher, source, boundary });
        }
        Ok(Policy { tokens, rules })
    }

    /// The token file of source `name` (`default`: `--token`).
    pub fn source_path<'a>(&'a self, name: &str, default: Option<&'a Path>) -> Option<&'a Path> {
        self.tokens.get(name).map(PathBuf::as_path).or(if name == DEFAULT_SOURCE { default } else { None })
    }

    /// The names of the token sources the rules use, each once.
    pub fn used_sources(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.rules.iter().map(|r| r.source.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: u32,
    #[serde(default)]
    tokens: BTreeMap<String, PathBuf>,
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(rename = "match")]
    matches: RawMatch,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_boundary: Option<AccessBoundary>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn values(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    cn: Option<OneOrMany>,
    #[serde(default)]
    dns: Option<OneOrMany>,
    #[serde(default)]
    uri: Option<OneOrMany>,
    #[serde(default)]
    spki_sha256: Option<OneOrMany>,
    #[serde(default)]
    cert_sha256: Option<OneOrMany>,
    #[serde(default)]
    any: Option<bool>,
    #[serde(default)]
    issuer: Option<OneOrMany>,
    #[serde(default)]
    sub: Option<OneOrMany>,
    #[serde(default)]
    claims: Option<BTreeMap<String, OneOrMany>>,
}

/// A flaw in a `match`: the key's path below `match` (e.g. `.cn[1]`) and why.
type MatchFlaw = (String, String);

/// A `match` key: its name, its values as given, and how one value becomes an identity.
type MatchKey = (&'static str, Option<OneOrMany>, fn(&str) -> Option<Id>);

/// Checks the values of a `match` key: a non-empty list of values without white space
/// around them; `at` is the key's path below `match`.
fn checked_values(at: &str, given: OneOrMany) -> std::result::Result<Vec<String>, MatchFlaw> {
    let values = given.values();
    if values.is_empty() {
        return Err((at.to_string(), "is an empty list: give at least one value".into()));
    }
    for (j, v) in values.iter().enumerate() {
        if v.is_empty() {
            return Err((format!("{at}[{j}]"), "\"\" is not a value".into()));
        }
        if v.trim() != v {
            // Not trimmed: "wif-client " would then name the client "wif-client".
            return Err((
                format!("{at}[{j}]"),
                format!("{v:?} has white space around it; values are matched exactly: remove it"),
            ));
        }
    }
    Ok(values)
}

/// A claim a rule matches on must be one that every issuer of the rule keeps in its
/// identities: any other is never there, and the rule would silently match no one.
fn check_kept(at: &str, claim: &str, issuers: &[&KnownIssuer]) -> std::result::Result<(), MatchFlaw> {
    let Some(issuer) = issuers.iter().find(|i| !i.claims.iter().any(|c| c == claim)) else { return Ok(()) };
    let kept = if issuer.claims.is_empty() {
        "none besides sub".to_string()
    } else {
        issuer.claims.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ")
    };
    Err((
        at.to_string(),
        format!(
            "issuer {} does not keep the claim {claim:?} (it keeps {kept}): add it to that issuer's \"claims\" in \
             --bearer-issuers (a restart), or match on a kept claim; as written the rule would match no one",
            issuer.name
        ),
    ))
}

impl RawMatch {
    fn matcher(mut self, issuers: &[KnownIssuer]) -> std::result::Result<Matcher, MatchFlaw> {
        let bearer = self.bearer_match(issuers)?;
        let certificate = self.certificate_keys()?;
        match (self.any, certificate.is_empty(), bearer) {
            (Some(true), true, None) => Ok(Matcher::Any),
            (Some(true), _, _) => {
                Err((String::new(), "\"any\": true matches every client; it cannot be combined with other keys".into()))
            }
            (Some(false), _, _) => {
                Err((".any".into(), "false matches nothing: leave it out, or use true for every client".into()))
            }
            (None, false, Some(_)) => Err((
                String::new(),
                "mixes certificate keys (cn, dns, uri, spki_sha256, cert_sha256) with bearer keys (issuer, sub, claims): a rule matches certificate clients or bearer clients; write one rule for each".into(),
            )),
            (None, true, Some(m)) => Ok(Matcher::Bearer(m)),
            (None, true, None) => Err((
                String::new(),
                "is empty: name at least one of cn, dns, uri, spki_sha256, cert_sha256, issuer (with sub, claims), or \"any\": true".into(),
            )),
            (None, false, None) => Ok(Matcher::All(certificate)),
        }
    }

    /// The bearer keys (`issuer`, `sub`, `claims`), taken out of the match; `None` when
    /// none is given.
    fn bearer_match(&mut self, issuers: &[KnownIssuer]) -> std::result::Result<Option<BearerMatch>, MatchFlaw> {
        let (issuer, sub, claims) = (self.issuer.take(), self.sub.take(), self.claims.take());
        let Some(issuer) = issuer else {
            if sub.is_some() || claims.is_some() {
                let key = if sub.is_some() { ".sub" } else { ".claims" };
                return Err((
                    key.into(),
                    "has no issuer beside it: name the issuer: the same sub can come from two issuers".into(),
                ));
            }
            return Ok(None);
        };
        let names = checked_values(".issuer", issuer)?;
        let mut named = Vec::new();
        for (j, name) in names.iter().enumerate() {
            let Some(known) = issuers.iter().find(|i| i.name == *name) else {
                let known = if issuers.is_empty() {
                    "bearer clients are off (no --bearer-issuers)".to_string()
                } else {
                    let all: Vec<&str> = issuers.iter().map(|i| i.name.as_str()).collect();
                    format!("the issuers of --bearer-issuers are {}", all.join(", "))
                };
                return Err((format!(".issuer[{j}]"), format!("{name:?} is not an issuer name: {known}")));
            };
            named.push(known);
        }
        let subs = sub.map(|s| checked_values(".sub", s)).transpose()?;
        let mut wanted = BTreeMap::new();
        if let Some(claims) = claims {
            if claims.is_empty() {
                return Err((".claims".into(), "is empty: name at least one claim, or leave it out".into()));
            }
            for (name, values) in claims {
                let values = checked_values(&format!(".claims.{name}"), values)?;
                check_kept(&format!(".claims.{name}"), &name, &named)?;
                wanted.insert(name, values);
            }
        }
        Ok(Some(BearerMatch { issuers: names, subs, claims: wanted }))
    }

    /// The certificate keys given, each as the identities any of which matches.
    fn certificate_keys(&mut self) -> std::result::Result<Vec<Vec<Id>>, MatchFlaw> {
        let keys: [MatchKey; 5] = [
            ("cn", self.cn.take(), |v| Some(Id::Cn(v.to_string()))),
            ("dns", self.dns.take(), |v| Some(Id::Dns(v.to_ascii_lowercase()))),
            ("uri", self.uri.take(), |v| Some(Id::Uri(v.to_string()))),
            ("spki_sha256", self.spki_sha256.take(), |v| digest_hex(v).map(Id::Spki)),
            ("cert_sha256", self.cert_sha256.take(), |v| digest_hex(v).map(Id::Cert)),
        ];
        let mut all = Vec::new();
        for (key, given, make) in keys {
            let Some(given) = given else { continue };
            let values = checked_values(&format!(".{key}"), given)?;
            let mut any = Vec::new();
            for (j, v) in values.iter().enumerate() {
                let Some(id) = make(v) else {
                    let what = if key.ends_with("sha256") { "a SHA-256 digest (hex or base64)" } else { "a value" };
                    return Err((format!(".{key}[{j}]"), format!("{v:?} is not {what}")));
                };
                any.push(id);
            }
            all.push(any);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests;
