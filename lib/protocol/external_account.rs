//! Google's `external_account` credential configuration (gcloud `iam workload-identity-pools
//! create-cred-config`, google-auth `external_account` / `identity_pool`): what it says about
//! the STS exchange, where the subject token is, and how to impersonate afterwards.

use crate::core::error::{Error, Result};
use crate::protocol::{iam, sts};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Google's `external_account` credential configuration (gcloud `iam workload-identity-pools
/// create-cred-config`, google-auth `external_account` / `identity_pool`): the fields wif has a
/// use for. Every other field lands in `other` and is named in one warning (see
/// [`CredentialConfig::check`]).
#[derive(Debug, Deserialize)]
pub struct CredentialConfig {
    /// Must be `external_account`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The workload (or workforce) identity provider.
    pub audience: String,
    /// Subject token type URN.
    #[serde(default)]
    pub subject_token_type: Option<String>,
    /// STS endpoint [default: `https://sts.{universe_domain}/v1/token`].
    #[serde(default)]
    pub token_url: Option<String>,
    /// Where to get the subject token.
    #[serde(default)]
    pub credential_source: Option<CredentialSource>,
    /// IAM Credentials `generateAccessToken` URL for impersonation.
    #[serde(default)]
    pub service_account_impersonation_url: Option<String>,
    /// Impersonation options: the token lifetime.
    #[serde(default)]
    pub service_account_impersonation: Option<ImpersonationConfig>,
    /// Workforce pools: the project billed, sent to STS as `options.userProject`.
    #[serde(default)]
    pub workforce_pool_user_project: Option<String>,
    /// The universe domain [default: googleapis.com].
    #[serde(default)]
    pub universe_domain: Option<String>,
    /// Every other field: not used by wif.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `service_account_impersonation` of a credential configuration.
#[derive(Debug, Deserialize)]
pub struct ImpersonationConfig {
    /// The impersonated access token's lifetime, seconds.
    #[serde(default)]
    pub token_lifetime_seconds: Option<u64>,
    /// Every other field: not used by wif.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `credential_source` of a credential configuration (file or URL).
#[derive(Debug, Deserialize)]
pub struct CredentialSource {
    /// A file holding the token.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// A URL serving the token.
    #[serde(default)]
    pub url: Option<String>,
    /// Headers for the URL.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How to read the content.
    #[serde(default)]
    pub format: Option<SourceFormat>,
    /// The X.509 path: the workload certificate (via a `certificate_config.json`) and its chain.
    #[serde(default)]
    pub certificate: Option<CertificateSource>,
    /// Every other field: executable and AWS sources are refused, the rest unused.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `credential_source.certificate`: where the workload certificate is (google-auth's rules:
/// exactly one of `use_default_certificate_config: true` and `certificate_config_location`).
#[derive(Debug, Deserialize)]
pub struct CertificateSource {
    /// Use the certificate configuration found by `GOOGLE_API_CERTIFICATE_CONFIG`, else gcloud's.
    #[serde(default)]
    pub use_default_certificate_config: Option<bool>,
    /// The `certificate_config.json` to use.
    #[serde(default)]
    pub certificate_config_location: Option<PathBuf>,
    /// A PEM file of the intermediate certificates sent after the leaf.
    #[serde(default)]
    pub trust_chain_path: Option<PathBuf>,
    /// Every other field: not used by wif.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl CertificateSource {
    /// The `certificate_config.json` it names, or `None` for the default one.
    pub fn location(&self) -> Result<Option<&PathBuf>> {
        let location = self.certificate_config_location.as_ref().filter(|p| !p.as_os_str().is_empty());
        match (location, self.use_default_certificate_config.unwrap_or(false)) {
            (Some(_), true) => Err(Error::input(
                "credential_source.certificate has both certificate_config_location and use_default_certificate_config: true",
            )
            .hint("keep one: the file's location, or use_default_certificate_config for GOOGLE_API_CERTIFICATE_CONFIG / gcloud's")),
            (None, false) => Err(Error::input(
                "credential_source.certificate has no certificate_config_location and use_default_certificate_config is not true",
            )
            .hint("name the certificate_config.json, or set use_default_certificate_config to true")),
            (location, _) => Ok(location),
        }
    }
}

/// `credential_source.format`.
#[derive(Debug, Deserialize)]
pub struct SourceFormat {
    /// `text` or `json` [default: text].
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The JSON field holding the token.
    #[serde(default)]
    pub subject_token_field_name: Option<String>,
    /// Every other field: not used by wif.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The universe domain of Google's public cloud.
pub const DEFAULT_UNIVERSE: &str = "googleapis.com";

impl CredentialConfig {
    /// The STS endpoint it names, or the default of its universe.
    pub fn token_url(&self) -> String {
        match (&self.token_url, self.universe()) {
            (Some(u), _) => u.clone(),
            (None, DEFAULT_UNIVERSE) => sts::DEFAULT_TOKEN_URL.to_string(),
            (None, universe) => format!("https://sts.{universe}/v1/token"),
        }
    }

    /// Its universe domain.
    pub fn universe(&self) -> &str {
        self.universe_domain.as_deref().filter(|u| !u.is_empty()).unwrap_or(DEFAULT_UNIVERSE)
    }

    /// The subject token's `format`: the JSON field holding it, or `None` for text.
    pub fn source_field(&self) -> Result<Option<String>> {
        let format = self.credential_source.as_ref().and_then(|c| c.format.as_ref());
        match format.map(|f| (f.kind.as_deref().unwrap_or("text"), f)) {
            None | Some(("text", _)) => Ok(None),
            Some(("json", f)) => f.subject_token_field_name.clone().map(Some).ok_or_else(|| {
                Error::input("credential_source.format is json but names no subject_token_field_name")
                    .hint("add \"subject_token_field_name\": the field of the JSON content that holds the token")
            }),
            Some((other, _)) => Err(Error::input(format!("credential_source.format.type is {other:?}"))
                .hint("the format type is \"text\" (the whole content is the token) or \"json\"")),
        }
    }

    /// Refuses what wif cannot honour, and lists the fields it does not use (set to
    /// something other than null), each by its path in the file.
    pub fn check(&self) -> Result<Vec<String>> {
        if self.kind != "external_account" {
            return Err(Error::input(format!("its type is {:?}, not \"external_account\"", self.kind)));
        }
        let set = |m: &BTreeMap<String, serde_json::Value>, prefix: &str| -> Vec<String> {
            m.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| format!("{prefix}{k}")).collect()
        };
        let mut ignored = set(&self.other, "");
        if let Some(src) = &self.credential_source {
            let refused = [
                ("executable", "executable-sourced credentials (credential_source.executable) are not supported by wif-sts", "run the program yourself, e.g. from the refresh job, write its token to a file and name it in credential_source.file (or give it to wif-azure --from-file)"),
                ("environment_id", "AWS credential sources (credential_source.environment_id) are not supported by wif-sts", "use a token source (file or url)"),
            ];
            for (field, why, hint) in refused {
                if src.other.get(field).is_some_and(|v| !v.is_null()) {
                    return Err(Error::input(why).hint(hint));
                }
            }
            let given: Vec<&str> =
                [("file", src.file.is_some()), ("url", src.url.is_some()), ("certificate", src.certificate.is_some())]
                    .into_iter()
                    .filter_map(|(name, set)| set.then_some(name))
                    .collect();
            match given.as_slice() {
                [] => {
                    return Err(Error::input("credential_source has no file, url or certificate").hint(
                        "name the file holding the subject token (\"file\"), the URL serving it (\"url\"), or the workload certificate (\"certificate\")",
                    ))
                }
                [_] => {}
                [first @ .., last] => {
                    return Err(Error::input(format!("credential_source has both {} and {last}", first.join(", ")))
                        .hint("file, url and certificate exclude each other: keep the one that gives the subject token"))
                }
            }
            if let Some(cert) = &src.certificate {
                cert.location()?;
                if self.subject_token_type.as_deref().is_some_and(|t| t != crate::protocol::x509::MTLS_TOKEN_TYPE) {
                    return Err(Error::input(format!(
                        "credential_source.certificate needs subject_token_type {}",
                        crate::protocol::x509::MTLS_TOKEN_TYPE
                    )));
                }
                ignored.extend(set(&cert.other, "credential_source.certificate."));
            }
            self.source_field()?;
            ignored.extend(set(&src.other, "credential_source."));
            if let Some(f) = &src.format {
                ignored.extend(set(&f.other, "credential_source.format."));
            }
        }
        if let Some(imp) = &self.service_account_impersonation {
            if let Some(secs) = imp.token_lifetime_seconds {
                let what = format!("service_account_impersonation.token_lifetime_seconds {secs}");
                iam::lifetime_in_range(secs, &what).map_err(Error::input)?;
            }
            ignored.extend(set(&imp.other, "service_account_impersonation."));
        }
        if self.workforce_pool_user_project.is_some() && !self.audience.contains("/workforcePools/") {
            return Err(Error::input(
                "workforce_pool_user_project is set but the audience is not a workforce pool provider",
            )
            .hint("remove workforce_pool_user_project: workload identity pools bill their own project"));
        }
        let universe = self.universe();
        if !universe.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
            return Err(Error::input(format!("universe_domain {universe:?} is not a domain name")));
        }
        ignored.sort();
        Ok(ignored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_configuration_universe_and_unused_fields() {
        let parse = |v: serde_json::Value| serde_json::from_value::<CredentialConfig>(v).unwrap();
        let aud = crate::protocol::sts::build_audience("1", "p", "r");
        let c =
            parse(serde_json::json!({"type": "external_account", "audience": aud, "universe_domain": "cloud.example"}));
        assert_eq!(c.token_url(), "https://sts.cloud.example/v1/token");
        assert_eq!(c.check().unwrap(), Vec::<String>::new());
        let c = parse(serde_json::json!({"type": "external_account", "audience": aud, "token_info_url": "x",
            "credential_source": {"file": "/t", "environment_id": null, "regional_cred_verification_url": "y"}}));
        assert_eq!(c.token_url(), sts::DEFAULT_TOKEN_URL);
        assert_eq!(c.check().unwrap(), ["credential_source.regional_cred_verification_url", "token_info_url"]);
        let c = parse(serde_json::json!({"type": "external_account", "audience": aud,
            "service_account_impersonation": {"token_lifetime_seconds": 0}}));
        assert!(c.check().unwrap_err().to_string().contains("1 to 43200"));
    }
}
