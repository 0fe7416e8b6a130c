//! The issuers file (`--bearer-issuers FILE`, version 1): which token issuers wif-serve
//! trusts, for which audiences, with which keys and limits. Read once at start, trusted on
//! the policy's terms, every flaw named by its JSON path.

use super::jwks::Alg;
use crate::core::error::{Error, Result};
use crate::core::files::{read_trusted, Part};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The issuers file format this server reads.
pub const VERSION: u32 = 1;
/// `max_token_bytes` when not given, and its bounds (the request head is at most 8 KiB).
const MAX_TOKEN_BYTES: (usize, std::ops::RangeInclusive<usize>) = (4096, 512..=7168);
/// `max_lifetime` when not given, and its bounds, in seconds.
const MAX_LIFETIME: (&str, std::ops::RangeInclusive<i64>) = ("2h", 60..=86_400);
/// `leeway` when not given, and its bounds, in seconds.
const LEEWAY: (&str, std::ops::RangeInclusive<i64>) = ("30s", 0..=300);
/// Most identity claims one issuer may keep.
const MAX_CLAIMS: usize = 16;

/// The checked issuers file.
#[derive(Debug)]
pub struct IssuersFile {
    /// Longest token accepted, in bytes.
    pub max_token_bytes: usize,
    /// The issuers, in the file's order.
    pub issuers: Vec<IssuerConfig>,
}

/// One trusted issuer.
#[derive(Clone, Debug)]
pub struct IssuerConfig {
    /// Its name (logs, metrics, the allow-list and the policy).
    pub name: String,
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// The audiences accepted: the token's `aud` must hold one of them.
    pub audiences: Vec<String>,
    /// Where its keys come from.
    pub keys: KeySource,
    /// The algorithms its tokens may be signed with.
    pub algorithms: Vec<Alg>,
    /// Longest lifetime accepted (`exp` − `iat`), in seconds.
    pub max_lifetime: i64,
    /// Clock leeway for `exp`, `nbf` and `iat`, in seconds.
    pub leeway: i64,
    /// The identity claims kept besides `sub`.
    pub claims: Vec<ClaimName>,
}

/// Where an issuer's JWKS comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// Fetched over HTTPS (or HTTP on loopback).
    Url {
        /// The JWKS URL.
        uri: String,
        /// A CA bundle to trust for it instead of the Mozilla roots.
        ca_file: Option<PathBuf>,
    },
    /// Read from a file (resolved against the issuers file's folder).
    File(PathBuf),
}

/// An identity claim: a top-level name, or an RFC 6901 JSON Pointer into the claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimName(String);

impl ClaimName {
    /// The name as the file gives it (the key in the identity's `claims`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The claim's value in a token's claims, if present.
    pub fn find<'a>(&self, claims: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
        if self.0.starts_with('/') {
            claims.pointer(&self.0)
        } else {
            claims.get(&self.0)
        }
    }

    fn parse(text: &str) -> std::result::Result<ClaimName, String> {
        if text.is_empty() || text.len() > 256 {
            return Err(format!("{text:?} is not a claim name: give 1 to 256 characters"));
        }
        if text.starts_with('/') && !valid_pointer(text) {
            return Err(format!("{text:?} is not a JSON Pointer (RFC 6901): '~' must be followed by 0 or 1"));
        }
        if text.chars().any(char::is_control) {
            return Err(format!("{text:?} holds control characters"));
        }
        Ok(ClaimName(text.to_string()))
    }
}

/// An RFC 6901 pointer: every `~` is `~0` or `~1`.
fn valid_pointer(text: &str) -> bool {
    let b = text.as_bytes();
    b.iter().enumerate().all(|(i, c)| *c != b'~' || matches!(b.get(i + 1), Some(b'0' | b'1')))
}

/// What an issuer's `kind` sets: the default identity claims.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    #[default]
    Oidc,
    Kubernetes,
    Github,
    Azure,
}

impl Kind {
    fn default_claims(self) -> &'static [&'static str] {
        match self {
            Kind::Oidc => &[],
            Kind::Kubernetes => &["/kubernetes.io/namespace", "/kubernetes.io/serviceaccount/name"],
            Kind::Github => &["repository", "repository_owner", "ref", "environment", "job_workflow_ref"],
            Kind::Azure => &["tid", "oid", "azp", "appid", "roles"],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: u32,
    #[serde(default)]
    max_token_bytes: Option<usize>,
    issuers: Vec<RawIssuer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    name: String,
    #[serde(default)]
    kind: Kind,
    issuer: String,
    audience: OneOrMany,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    jwks_file: Option<PathBuf>,
    #[serde(default)]
    jwks_ca_file: Option<PathBuf>,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    max_lifetime: Option<String>,
    #[serde(default)]
    leeway: Option<String>,
    #[serde(default)]
    claims: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A flaw: the JSON path and why.
type Flaw = (String, String);

impl IssuersFile {
    /// Reads and checks the issuers file (trusted on the policy's terms).
    pub fn load(path: &Path) -> Result<IssuersFile> {
        let bytes = read_trusted(path, Part::Issuers).map_err(|s| Error::usage(s.detail()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        IssuersFile::parse(&bytes, base).map_err(|e| {
            e.context(format!("reading the bearer issuers file {}", path.display()))
                .hint("see wif-serve(1) and docs/BEARER.md for the format; the file is JSON with \"version\": 1")
        })
    }

    /// Parses and checks the file's bytes; relative paths are resolved against `base`.
    pub fn parse(bytes: &[u8], base: &Path) -> Result<IssuersFile> {
        let raw: RawFile =
            serde_json::from_slice(bytes).map_err(|e| Error::usage(format!("not a valid bearer issuers file: {e}")))?;
        check_file(raw, base).map_err(|(path, why)| Error::usage(format!("{path}: {why}")))
    }
}

fn check_file(raw: RawFile, base: &Path) -> std::result::Result<IssuersFile, Flaw> {
    if raw.version != VERSION {
        let why = format!("{} is not a version this server reads (it reads {VERSION})", raw.version);
        return Err(("version".into(), why));
    }
    let (default_bytes, bytes_range) = MAX_TOKEN_BYTES;
    let max_token_bytes = raw.max_token_bytes.unwrap_or(default_bytes);
    if !bytes_range.contains(&max_token_bytes) {
        let why = format!(
            "{max_token_bytes} is out of range: allowed {} to {} (a request head is at most 8 KiB)",
            bytes_range.start(),
            bytes_range.end()
        );
        return Err(("max_token_bytes".into(), why));
    }
    if raw.issuers.is_empty() {
        return Err(("issuers".into(), "is empty: name at least one issuer".into()));
    }
    let mut issuers: Vec<IssuerConfig> = Vec::new();
    for (i, r) in raw.issuers.into_iter().enumerate() {
        let at = |field: &str| if field.is_empty() { format!("issuers[{i}]") } else { format!("issuers[{i}].{field}") };
        let issuer = check_issuer(r, base).map_err(|(field, why)| (at(&field), why))?;
        if issuers.iter().any(|x| x.name == issuer.name) {
            return Err((at("name"), format!("{:?} names an earlier issuer too; names are unique", issuer.name)));
        }
        if issuers.iter().any(|x| x.issuer == issuer.issuer) {
            return Err((at("issuer"), format!("{:?} is an earlier issuer's too; issuers are unique", issuer.issuer)));
        }
        issuers.push(issuer);
    }
    Ok(IssuersFile { max_token_bytes, issuers })
}

/// One issuer checked; a flaw's path is relative to the issuer (`audience[1]`).
fn check_issuer(r: RawIssuer, base: &Path) -> std::result::Result<IssuerConfig, Flaw> {
    check_name(&r.name).map_err(|why| ("name".to_string(), why))?;
    check_url(&r.issuer).map_err(|why| ("issuer".to_string(), why))?;
    let audiences = check_audiences(r.audience)?;
    let keys = match (r.jwks_uri, r.jwks_file, r.jwks_ca_file) {
        (Some(uri), None, ca_file) => {
            check_url(&uri).map_err(|why| ("jwks_uri".to_string(), why))?;
            KeySource::Url { uri, ca_file: ca_file.map(|f| base.join(f)) }
        }
        (None, Some(_), Some(_)) => {
            return Err(("jwks_ca_file".into(), "is only for jwks_uri: a jwks_file is read, not fetched".into()))
        }
        (None, Some(file), None) if file.as_os_str().is_empty() => {
            return Err(("jwks_file".into(), "is empty: give the JWKS file's path".into()))
        }
        (None, Some(file), None) => KeySource::File(base.join(file)),
        (Some(_), Some(_), _) => {
            return Err(("jwks_uri".into(), "and jwks_file are both given: give exactly one".into()))
        }
        (None, None, _) => {
            return Err((String::new(), "names no keys: give jwks_uri (fetched) or jwks_file (read)".into()))
        }
    };
    let algorithms = check_algorithms(r.algorithms)?;
    let max_lifetime = check_duration("max_lifetime", r.max_lifetime, MAX_LIFETIME)?;
    let leeway = check_duration("leeway", r.leeway, LEEWAY)?;
    let claims = check_claims(r.claims, r.kind)?;
    Ok(IssuerConfig { name: r.name, issuer: r.issuer, audiences, keys, algorithms, max_lifetime, leeway, claims })
}

/// Issuer names: 1–64 of `A-Z a-z 0-9 . _ -` (they go into logs, labels and `--allow`).
fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a name: use 1 to 64 letters, digits, '.', '_' or '-'"))
    }
}

/// https anywhere, http on loopback only (the one HTTP client's rule).
fn check_url(url: &str) -> std::result::Result<(), String> {
    crate::http::check_url(url).map_err(|e| {
        let hint = e.hint_text().map(|h| format!(" ({h})")).unwrap_or_default();
        format!("{}{hint}", e.cause())
    })
}

fn check_audiences(given: OneOrMany) -> std::result::Result<Vec<String>, Flaw> {
    let (audiences, listed) = match given {
        OneOrMany::One(a) => (vec![a], false),
        OneOrMany::Many(v) => (v, true),
    };
    if audiences.is_empty() {
        return Err(("audience".into(), "is an empty list: give at least one audience".into()));
    }
    for (j, a) in audiences.iter().enumerate() {
        let path = if listed { format!("audience[{j}]") } else { "audience".into() };
        if a.is_empty() {
            return Err((path, "is empty: give the audience this server's tokens are issued for".into()));
        }
        if a.trim() != a {
            return Err((path, format!("{a:?} has white space around it; audiences are matched exactly")));
        }
    }
    Ok(audiences)
}

fn check_algorithms(given: Option<Vec<String>>) -> std::result::Result<Vec<Alg>, Flaw> {
    let Some(names) = given else { return Ok(vec![Alg::RS256, Alg::ES256]) };
    if names.is_empty() {
        return Err(("algorithms".into(), "is an empty list: leave it out for RS256 and ES256".into()));
    }
    let mut algs = Vec::new();
    for (j, n) in names.iter().enumerate() {
        let Some(alg) = Alg::parse(n) else {
            let why = format!(
                "{n:?} is not an asymmetric algorithm: a bearer token must be verified with the issuer's public \
                 key; HMAC and none are never accepted (allowed: {})",
                Alg::ALL.map(Alg::name).join(" ")
            );
            return Err((format!("algorithms[{j}]"), why));
        };
        if !algs.contains(&alg) {
            algs.push(alg);
        }
    }
    Ok(algs)
}

/// A duration in seconds within `range`, or the default.
fn check_duration(
    field: &str,
    given: Option<String>,
    (default, range): (&str, std::ops::RangeInclusive<i64>),
) -> std::result::Result<i64, Flaw> {
    let text = given.as_deref().unwrap_or(default);
    let secs = crate::core::clock::parse_duration(text)
        .map_err(|e| (field.to_string(), format!("{} (write e.g. 90s, 10m or 1h)", e.cause())))?
        .as_secs();
    match i64::try_from(secs) {
        Ok(s) if range.contains(&s) => Ok(s),
        _ => Err((
            field.to_string(),
            format!("{text:?} is out of range: allowed {} to {}", human(*range.start()), human(*range.end())),
        )),
    }
}

fn human(secs: i64) -> String {
    if secs == 0 {
        "0s".into()
    } else {
        crate::core::clock::human(secs)
    }
}

fn check_claims(given: Option<Vec<String>>, kind: Kind) -> std::result::Result<Vec<ClaimName>, Flaw> {
    let Some(names) = given else {
        return Ok(kind.default_claims().iter().map(|n| ClaimName(n.to_string())).collect());
    };
    if names.len() > MAX_CLAIMS {
        return Err(("claims".into(), format!("names {} claims: at most {MAX_CLAIMS}", names.len())));
    }
    let mut claims: Vec<ClaimName> = Vec::new();
    for (j, n) in names.iter().enumerate() {
        let claim = ClaimName::parse(n).map_err(|why| (format!("claims[{j}]"), why))?;
        if claims.contains(&claim) {
            return Err((format!("claims[{j}]"), format!("{n:?} is named twice")));
        }
        if n == "sub" {
            return Err((format!("claims[{j}]"), "\"sub\" is always part of the identity: leave it out".into()));
        }
        claims.push(claim);
    }
    Ok(claims)
}
