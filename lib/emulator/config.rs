//! The emulator's configuration file: the Azure AD tenant with its registered applications
//! and resources, other OIDC issuers, Kubernetes and GitHub Actions token issuers, the Google project's workload identity pools and
//! providers, and the service accounts with who may impersonate them.
//!
//! Paths in it (certificates) are relative to the config file. Unknown keys are refused,
//! so a typo cannot silently weaken what the emulator checks.

use super::cel::{self, Expr};
use super::storage::config::StorageConfig;
use crate::core::clock::parse_duration;
use crate::core::error::{Context, Error, Result};
use crate::core::keys;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Azure AD tenant.
    #[serde(default)]
    pub azure: Option<AzureConfig>,
    /// Other OAuth/OIDC issuers (client credentials with an audience, or jwt-bearer).
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// The Google Cloud side.
    #[serde(default)]
    pub google: Option<GoogleConfig>,
    /// Kubernetes service-account token issuers (TokenRequest API).
    #[serde(default)]
    pub kubernetes: Vec<super::bearer_config::KubernetesConfig>,
    /// GitHub Actions OIDC token issuers.
    #[serde(default)]
    pub github: Vec<super::bearer_config::GithubConfig>,
    /// Default lifetime of issued tokens, e.g. `1h` [default: 1h].
    #[serde(default)]
    pub token_lifetime: Option<String>,
    /// Clock skew tolerated for `nbf`/`iat` in the future, e.g. `5m` [default: 5m].
    #[serde(default)]
    pub clock_skew: Option<String>,
    /// Longest client-assertion lifetime accepted (`exp - iat`/`nbf`) [default: 1h].
    #[serde(default)]
    pub max_assertion_lifetime: Option<String>,
    /// Refuse a client assertion whose `jti` was seen before [default: true]. MSAL reuses
    /// its assertion for up to nine minutes across token requests, which Azure accepts;
    /// set false to allow that.
    #[serde(default = "yes")]
    pub reject_replayed_assertions: bool,
    /// The three durations above, parsed (defaults filled in).
    #[serde(skip)]
    pub timing: Timing,
}

/// The configuration's durations, parsed once when it is loaded.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Default lifetime of issued tokens.
    pub token_lifetime: Duration,
    /// Clock skew tolerated for `nbf`/`iat` in the future.
    pub clock_skew: Duration,
    /// Longest client-assertion lifetime accepted.
    pub max_assertion_lifetime: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            token_lifetime: Duration::from_secs(3600),
            clock_skew: Duration::from_secs(300),
            max_assertion_lifetime: Duration::from_secs(3600),
        }
    }
}

/// The Azure AD tenant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// Tenant id (GUID).
    pub tenant: String,
    /// Other names of the tenant that the endpoints accept (e.g. contoso.onmicrosoft.com).
    #[serde(default)]
    pub tenant_domains: Vec<String>,
    /// Registered applications that may ask for tokens (confidential clients).
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    /// Resources (APIs) tokens can be issued for.
    #[serde(default)]
    pub resources: Vec<ResourceConfig>,
    /// Managed identities served at the IMDS endpoint.
    #[serde(default)]
    pub managed_identities: Vec<ManagedIdentityConfig>,
}

/// A registered application (client).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Application (client) id.
    pub client_id: String,
    /// The service principal's object id in this tenant: the tokens' `sub` and `oid`.
    pub object_id: String,
    /// Display name (for logs).
    #[serde(default)]
    pub name: Option<String>,
    /// Registered certificates (PEM paths, relative to the config file).
    #[serde(default)]
    pub certificates: Vec<PathBuf>,
    /// Thumbprints registered without the certificate (SHA-1/SHA-256, hex or base64url):
    /// the assertion must then carry the certificate in `x5c`.
    #[serde(default)]
    pub thumbprints: Vec<String>,
    /// Client secrets (test values only).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// App roles granted to the app, put in the tokens' `roles`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Loaded certificates.
    #[serde(skip)]
    pub certs: Vec<RegisteredCert>,
    /// Decoded `thumbprints`.
    #[serde(skip)]
    pub thumbprint_bytes: Vec<Vec<u8>>,
}

/// A resource (API app registration) that tokens are issued for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    /// The API's application id (GUID): v2 tokens' `aud`.
    pub app_id: String,
    /// Application ID URIs (e.g. `api://wif-gcp`): what `scope`/`resource` name.
    #[serde(default)]
    pub identifier_uris: Vec<String>,
    /// `accessTokenAcceptedVersion`: 1 (Azure's default) or 2.
    #[serde(default = "default_version")]
    pub token_version: u8,
}

fn yes() -> bool {
    true
}

fn default_version() -> u8 {
    1
}

/// A managed identity (IMDS).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedIdentityConfig {
    /// Its client id.
    pub client_id: String,
    /// Its object (principal) id: the tokens' `sub`/`oid`.
    pub object_id: String,
}

/// Another OAuth/OIDC issuer (e.g. ServiceAuthCentral), served under `/issuers/{name}/`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Path segment: endpoints are `/issuers/{name}/v1/token` and `/issuers/{name}/.well-known/openid-configuration`.
    pub name: String,
    /// The `iss` of its tokens (what the workload identity provider names).
    pub issuer: String,
    /// Its clients.
    #[serde(default)]
    pub clients: Vec<IssuerClient>,
}

/// A client of another issuer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerClient {
    /// Client id: the tokens' `sub`.
    pub client_id: String,
    /// Registered certificates for jwt-bearer and client assertions (PEM paths).
    #[serde(default)]
    pub certificates: Vec<PathBuf>,
    /// Client secrets (test values only).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Audiences this client may ask for.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Loaded certificates.
    #[serde(skip)]
    pub certs: Vec<RegisteredCert>,
}

/// The Google Cloud project.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// Project number (digits), as in the provider audience.
    pub project_number: String,
    /// Workload identity pools.
    #[serde(default)]
    pub pools: Vec<PoolConfig>,
    /// Service accounts.
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccountConfig>,
    /// Cloud Storage: buckets, objects, bucket IAM.
    #[serde(default)]
    pub storage: StorageConfig,
}

/// A workload identity pool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Pool id.
    pub id: String,
    /// A disabled pool refuses exchanges.
    #[serde(default)]
    pub disabled: bool,
    /// Its providers.
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
}

/// A workload identity pool provider: OIDC (`issuer`) or X.509 (`x509`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Provider id.
    pub id: String,
    /// Issuer URI of an OIDC provider; must be one the emulator issues tokens as.
    #[serde(default)]
    pub issuer: String,
    /// An X.509 provider's trust store (instead of `issuer`).
    #[serde(default)]
    pub x509: Option<super::trust::X509Config>,
    /// Allowed audiences [default: https://iam.googleapis.com/ + the provider's resource name].
    #[serde(default)]
    pub allowed_audiences: Vec<String>,
    /// Attribute mapping: target (`google.subject`, `google.groups`, `attribute.NAME`) → CEL expression.
    #[serde(default)]
    pub attribute_mapping: BTreeMap<String, String>,
    /// CEL condition on `assertion`, `google` and `attribute`.
    #[serde(default)]
    pub attribute_condition: Option<String>,
    /// A disabled provider refuses exchanges.
    #[serde(default)]
    pub disabled: bool,
    /// `attribute_mapping` compiled, in its order (a mapping may read the ones before it).
    #[serde(skip)]
    pub mapping: Vec<Mapping>,
    /// `attribute_condition` compiled.
    #[serde(skip)]
    pub condition: Option<Expr>,
}

/// One attribute mapping, compiled.
#[derive(Debug)]
pub struct Mapping {
    /// `google.subject`, `google.groups` or `attribute.NAME`.
    pub target: String,
    /// The CEL expression that gives its value.
    pub expr: Expr,
}

/// A service account and its IAM policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountConfig {
    /// Email.
    pub email: String,
    /// Numeric unique id (the ID tokens' `sub`) [default: derived from the email].
    #[serde(default)]
    pub unique_id: Option<String>,
    /// A disabled service account cannot be impersonated.
    #[serde(default)]
    pub disabled: bool,
    /// Role bindings on the service account.
    #[serde(default)]
    pub bindings: Vec<Binding>,
}

/// One IAM role binding.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// `roles/iam.workloadIdentityUser` or `roles/iam.serviceAccountTokenCreator`.
    pub role: String,
    /// `principal://…`, `principalSet://…` or `serviceAccount:EMAIL` members.
    pub members: Vec<String>,
}

/// A registered certificate: its public key and thumbprints.
#[derive(Debug, Clone)]
pub struct RegisteredCert {
    /// Where it came from.
    pub path: PathBuf,
    /// SHA-1 of the DER.
    pub sha1: Vec<u8>,
    /// SHA-256 of the DER.
    pub sha256: Vec<u8>,
    /// subjectPublicKey bits (PKCS#1 RSA public key, or an EC point).
    pub public_key: Vec<u8>,
    /// Whether the key is RSA (else EC).
    pub rsa: bool,
    /// notAfter, Unix seconds.
    pub not_after: i64,
}

impl Config {
    /// Reads and checks a config file, loading the certificates it names.
    pub fn load(path: &Path) -> Result<Config> {
        let doing = format!("reading the emulator config {}", path.display());
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e)).context(doing.clone()).map_err(|e| {
            e.file_setting("--config", "the emulator's configuration (wif-emulate --print-example-config)")
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&bytes, &base).context(doing)
    }

    /// Parses a config; certificate paths are taken relative to `base`.
    pub fn parse(bytes: &[u8], base: &Path) -> Result<Config> {
        let mut c: Config = serde_json::from_slice(bytes)
            .map_err(|e| Error::input(format!("not a valid emulator config: {e}")))
            .map_err(|e| e.hint("wif-emulate --print-example-config shows a complete one; see docs/EMULATOR.md"))?;
        let defaults = Timing::default();
        c.timing = Timing {
            token_lifetime: duration_or(&c.token_lifetime, defaults.token_lifetime)?,
            clock_skew: duration_or(&c.clock_skew, defaults.clock_skew)?,
            max_assertion_lifetime: duration_or(&c.max_assertion_lifetime, defaults.max_assertion_lifetime)?,
        };
        if let Some(az) = &mut c.azure {
            if !is_guid(&az.tenant) {
                return Err(Error::input(format!("azure.tenant {:?} is not a GUID", az.tenant)));
            }
            for app in &mut az.apps {
                for id in [&app.client_id, &app.object_id] {
                    if !is_guid(id) {
                        return Err(Error::input(format!("app id {id:?} is not a GUID")));
                    }
                }
                app.certs = load_registered(&app.certificates, base)?;
                for t in &app.thumbprints {
                    let bytes = parse_thumbprint(t).ok_or_else(|| {
                        Error::input(format!("app {}: {t:?} is not a SHA-1 or SHA-256 thumbprint", app.client_id))
                    })?;
                    app.thumbprint_bytes.push(bytes);
                }
            }
            for r in &az.resources {
                if !matches!(r.token_version, 1 | 2) {
                    return Err(Error::input(format!("resource {}: token_version must be 1 or 2", r.app_id)));
                }
            }
        }
        super::bearer_config::prepare(&mut c.kubernetes, &mut c.github, base)?;
        for iss in &mut c.issuers {
            if iss.name.is_empty() || !iss.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
                return Err(Error::input(format!("issuer name {:?} must be letters, digits, - or _", iss.name)));
            }
            for cl in &mut iss.clients {
                cl.certs = load_registered(&cl.certificates, base)?;
            }
        }
        if let Some(g) = &mut c.google {
            if g.project_number.is_empty() || !g.project_number.chars().all(|ch| ch.is_ascii_digit()) {
                return Err(Error::input(format!("google.project_number {:?} is not a number", g.project_number)));
            }
            g.storage.prepare()?;
            for (pi, pool) in g.pools.iter_mut().enumerate() {
                for (ri, p) in pool.providers.iter_mut().enumerate() {
                    let at = format!("google.pools[{pi}].providers[{ri}]");
                    match (&mut p.x509, p.issuer.is_empty()) {
                        (Some(x509), true) => {
                            x509.prepare(base, &format!("{at}.x509"))?;
                            if p.attribute_mapping.is_empty() {
                                // Google's default for X.509 providers.
                                p.attribute_mapping.insert("google.subject".into(), "assertion.subject.dn.cn".into());
                            }
                        }
                        (None, false) => {}
                        _ => {
                            return Err(Error::input(format!(
                                "{at} ({}): give exactly one of issuer (OIDC) and x509",
                                p.id
                            )))
                        }
                    }
                    if !p.attribute_mapping.contains_key("google.subject") {
                        return Err(Error::input(format!(
                            "provider {}/{}: attribute_mapping must map google.subject",
                            pool.id, p.id
                        )));
                    }
                    for (k, expr) in &p.attribute_mapping {
                        if k != "google.subject" && k != "google.groups" && !k.starts_with("attribute.") {
                            return Err(Error::input(format!("provider {}: cannot map {k:?}", p.id)));
                        }
                        let expr = cel::parse(expr).map_err(|e| e.context(format!("provider {} mapping {k}", p.id)))?;
                        p.mapping.push(Mapping { target: k.clone(), expr });
                    }
                    if let Some(cond) = &p.attribute_condition {
                        let expr = cel::parse(cond).map_err(|e| e.context(format!("provider {} condition", p.id)))?;
                        p.condition = Some(expr);
                    }
                }
            }
        }
        Ok(c)
    }

    /// The default lifetime of issued tokens, in seconds.
    pub fn token_lifetime(&self) -> i64 {
        seconds(self.timing.token_lifetime)
    }

    /// Tolerated clock skew in seconds.
    pub fn clock_skew(&self) -> i64 {
        seconds(self.timing.clock_skew)
    }

    /// Longest accepted client-assertion lifetime in seconds.
    pub fn max_assertion_lifetime(&self) -> i64 {
        seconds(self.timing.max_assertion_lifetime)
    }
}

/// A configured duration, or the default when it is not set.
fn duration_or(text: &Option<String>, default: Duration) -> Result<Duration> {
    text.as_deref().map(parse_duration).unwrap_or(Ok(default))
}

/// Whole seconds of a duration, for arithmetic on Unix times.
fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Whether `s` is a GUID in the 8-4-4-4-12 form.
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().zip([8, 4, 4, 4, 12]).all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn load_registered(paths: &[PathBuf], base: &Path) -> Result<Vec<RegisteredCert>> {
    let mut out = Vec::new();
    for p in paths {
        let full = if p.is_absolute() { p.clone() } else { base.join(p) };
        let certs = keys::load_certs(&full).map_err(|e| {
            e.hint("certificate paths are relative to the config file; for the example config make the test PKI beside it: scripts/gen-test-pki.sh pki")
        })?;
        let leaf = certs.first().ok_or_else(|| Error::input(format!("{} holds no certificate", full.display())))?;
        out.push(
            RegisteredCert::from_der(full.clone(), leaf.as_ref())
                .ok_or_else(|| Error::input(format!("{} is not valid X.509", full.display())))?,
        );
    }
    Ok(out)
}

impl RegisteredCert {
    /// The facts of a DER certificate; `None` if it is not X.509.
    pub fn from_der(path: PathBuf, der: &[u8]) -> Option<RegisteredCert> {
        let (_, parsed) = x509_parser::parse_x509_certificate(der).ok()?;
        let spki = &parsed.tbs_certificate.subject_pki;
        Some(RegisteredCert {
            path,
            sha1: aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref().to_vec(),
            sha256: aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref().to_vec(),
            public_key: spki.subject_public_key.data.to_vec(),
            rsa: spki.algorithm.algorithm.to_id_string() == "1.2.840.113549.1.1.1",
            not_after: parsed.validity().not_after.timestamp(),
        })
    }
}

/// Decodes a registered thumbprint: hex (SHA-1 as the portal shows it, or SHA-256) or base64url.
pub fn parse_thumbprint(t: &str) -> Option<Vec<u8>> {
    let t = t.trim().replace(':', "");
    if let Some(b) = hex::decode(&t).ok().filter(|b| matches!(b.len(), 20 | 32)) {
        return Some(b);
    }
    let b = crate::core::jwt::base64url_decode(&t)?;
    matches!(b.len(), 20 | 32).then_some(b)
}

/// The example configuration (`--print-example-config`, examples/emulator.json).
pub const EXAMPLE: &str = include_str!("../../examples/emulator.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_without_certificates() {
        let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        for app in v["azure"]["apps"].as_array_mut().unwrap() {
            app["certificates"] = serde_json::json!([]);
        }
        for iss in v["issuers"].as_array_mut().unwrap() {
            for cl in iss["clients"].as_array_mut().unwrap() {
                cl["certificates"] = serde_json::json!([]);
            }
        }
        // The X.509 provider's trust store names files of the test PKI.
        for pool in v["google"]["pools"].as_array_mut().unwrap() {
            pool["providers"].as_array_mut().unwrap().retain(|p| p.get("x509").is_none());
        }
        let c = Config::parse(v.to_string().as_bytes(), Path::new(".")).unwrap();
        let az = c.azure.unwrap();
        assert_eq!(az.tenant, "7a1c9e4b-0d2f-4c3a-9b8e-1f2a3b4c5d6e");
        assert_eq!(c.google.unwrap().project_number, "123456789012");
        assert_eq!(c.token_lifetime.as_deref(), Some("1h"));
        assert_eq!(c.timing.token_lifetime, Duration::from_secs(3600));
        assert_eq!(c.timing.clock_skew, Duration::from_secs(300));
        assert!(c.reject_replayed_assertions);
        let relaxed = Config::parse(br#"{"reject_replayed_assertions": false}"#, Path::new(".")).unwrap();
        assert!(!relaxed.reject_replayed_assertions);
    }

    #[test]
    fn refuses_typos_and_bad_values() {
        assert!(Config::parse(br#"{"azur": {}}"#, Path::new(".")).is_err());
        assert!(Config::parse(br#"{"azure": {"tenant": "contoso"}}"#, Path::new(".")).is_err());
        assert!(Config::parse(br#"{"google": {"project_number": "my-project"}}"#, Path::new(".")).is_err());
        let no_subject = br#"{"google": {"project_number": "1", "pools": [{"id": "p", "providers": [{"id": "r", "issuer": "https://x"}]}]}}"#;
        assert!(Config::parse(no_subject, Path::new(".")).is_err());
        let bad_cel = br#"{"google": {"project_number": "1", "pools": [{"id": "p", "providers": [{"id": "r", "issuer": "https://x", "attribute_mapping": {"google.subject": "assertion.sub"}, "attribute_condition": "assertion.tid =="}]}]}}"#;
        assert!(Config::parse(bad_cel, Path::new(".")).is_err());
        assert!(Config::parse(br#"{"token_lifetime": "soon"}"#, Path::new(".")).is_err());
    }

    #[test]
    fn thumbprints() {
        assert_eq!(parse_thumbprint("A9993E364706816ABA3E25717850C26C9CD0D89D").unwrap().len(), 20);
        assert_eq!(parse_thumbprint("a9:99:3e:36:47:06:81:6a:ba:3e:25:71:78:50:c2:6c:9c:d0:d8:9d").unwrap()[0], 0xa9);
        assert_eq!(parse_thumbprint("qZk-NkcGgWq6PiVxeFDCbJzQ2J0=").unwrap()[0], 0xa9);
        assert!(parse_thumbprint("abc").is_none());
        let bad = br#"{"azure": {"tenant": "7a1c9e4b-0d2f-4c3a-9b8e-1f2a3b4c5d6e", "apps": [{"client_id": "0b6f3d2a-5c4e-4f1a-8e7d-9a0b1c2d3e4f", "object_id": "5e4d3c2b-1a09-4f8e-8d7c-6b5a49382716", "thumbprints": ["xyz"]}]}}"#;
        assert!(Config::parse(bad, Path::new(".")).is_err());
    }

    #[test]
    fn guids() {
        assert!(is_guid("7a1c9e4b-0d2f-4c3a-9b8e-1f2a3b4c5d6e"));
        assert!(!is_guid("7a1c9e4b-0d2f-4c3a-9b8e-1f2a3b4c5d6"));
        assert!(!is_guid("contoso.onmicrosoft.com"));
    }
}
