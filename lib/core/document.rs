//! The JSON document that flows through the pipe: a format version, a `config` object,
//! one section per step, and any other field carried through untouched.

use crate::core::error::{Error, Result};
use crate::core::secret::Secret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The document format version this build reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// Largest document accepted on stdin; a document is a few kilobytes.
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

/// The whole document. Fields this tool does not know stay in place and in order.
#[derive(Clone, PartialEq)]
pub struct Document {
    fields: Map<String, Value>,
}

/// Shows the section names only: the sections hold tokens.
impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document").field("sections", &self.fields.keys().collect::<Vec<_>>()).finish()
    }
}

impl Default for Document {
    fn default() -> Self {
        Self::new()
    }
}

impl Document {
    /// An empty document with the current format version.
    pub fn new() -> Self {
        let mut fields = Map::new();
        fields.insert("version".into(), Value::from(FORMAT_VERSION));
        Document { fields }
    }

    /// Parses a document; empty or blank input is an empty document (cron's `/dev/null`).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::new());
        }
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(Error::input(format!("the document is larger than {MAX_DOCUMENT_BYTES} bytes")));
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            Error::input(format!("the input is not valid JSON ({})", json_error_position(&e)))
                .hint("pipe the output of the previous wif step, a saved document, or nothing at all")
        })?;
        let Value::Object(mut fields) = value else {
            return Err(Error::input("the input is JSON but not an object")
                .hint("a wif document is a JSON object like {\"version\":1}"));
        };
        match fields.get("version") {
            None => {
                fields.insert("version".into(), Value::from(FORMAT_VERSION));
            }
            Some(Value::Number(n)) if n.as_u64().is_some_and(|v| (1..=FORMAT_VERSION).contains(&v)) => {}
            Some(other) => {
                return Err(Error::input(format!(
                    "the document has format version {other}, this tool understands version {FORMAT_VERSION}"
                ))
                .hint("use wif tools of the same release for every step of a pipeline"))
            }
        }
        if let Some(c) = fields.get("config") {
            if !c.is_object() {
                return Err(Error::input("the document's \"config\" is not an object"));
            }
        }
        Ok(Document { fields })
    }

    /// The document as pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.fields).unwrap_or_else(|_| "{}".into());
        s.push('\n');
        s
    }

    /// A section decoded into its type, or `None` if absent.
    pub fn section<T: Section>(&self) -> Result<Option<T>> {
        let name = T::NAME;
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => T::deserialize(v)
                .map(Some)
                .map_err(|e| Error::input(format!("the document's \"{name}\" section is malformed: {}", scrub(&e)))),
        }
    }

    /// A section that must be there, with a hint naming the step that makes it.
    pub fn require<T: Section>(&self) -> Result<T> {
        let (name, made_by) = (T::NAME, T::MADE_BY);
        self.section()?.ok_or_else(|| {
            Error::input(format!("the document has no \"{name}\" section"))
                .hint(format!("run {made_by} before this step, e.g. `{made_by} ... | this-step`, or pipe a saved document that has it"))
        })
    }

    /// Sets (replaces) a section, under its name.
    pub fn set<T: Section>(&mut self, section: &T) -> Result<()> {
        let v =
            serde_json::to_value(section).map_err(|e| Error::new(crate::core::error::Kind::Internal, e.to_string()))?;
        self.fields.insert(T::NAME.to_string(), v);
        Ok(())
    }

    /// The raw value of a top-level field.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    /// The `config` object (empty if absent).
    pub fn config(&self) -> Map<String, Value> {
        match self.fields.get("config") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        }
    }

    /// Replaces the `config` object; an empty one is removed.
    pub fn set_config(&mut self, config: Map<String, Value>) {
        if config.is_empty() {
            self.fields.shift_remove("config");
        } else {
            self.fields.insert("config".into(), Value::Object(config));
        }
    }

    /// All top-level fields, in order.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }
}

/// A section of the document: its type carries its name and the step that makes it, so
/// `doc.section::<StsSection>()` and `doc.set(&section)` need no name beside the type.
pub trait Section: Serialize + DeserializeOwned {
    /// The section's field name in the document, e.g. `"sts"`.
    const NAME: &'static str;
    /// The tool that makes it, named in the hint when a step needs it and it is missing.
    const MADE_BY: &'static str;
}

/// Where a JSON parse failed, without echoing the input (it may hold a secret).
fn json_error_position(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Eof => "it ends early",
        Category::Syntax => "syntax error",
        Category::Data => "unexpected value",
        Category::Io => "read error",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// A serde error message without the offending value (serde quotes values it rejects).
pub(crate) fn scrub(e: &serde_json::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" at line ") {
        Some(i) => &s[..i],
        None => &s,
    };
    // "invalid type: string \"abc\", expected u64" → keep only the shape.
    match (s.find('"'), s.rfind('"')) {
        (Some(a), Some(b)) if a < b && s.starts_with("invalid") => format!("{}…{}", &s[..a], &s[b + 1..]),
        _ => s.to_string(),
    }
}

/// Fields common to every token-bearing section.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TokenFields {
    /// The token itself.
    pub token: Secret,
    /// Its type, e.g. `urn:ietf:params:oauth:token-type:jwt` or `Bearer`.
    pub token_type: String,
    /// Absolute expiry, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// `assertion`: the client-assertion JWT made by wif-sign.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AssertionSection {
    /// Token, type and expiry.
    #[serde(flatten)]
    pub token: TokenFields,
    /// The client (application) id: `iss` and `sub` of the assertion.
    pub client_id: String,
    /// The Azure AD tenant, when the audience is an Azure token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The token endpoint the assertion is for (its `aud`).
    pub token_endpoint: String,
    /// The JWT header as signed.
    pub header: Value,
    /// The JWT claims as signed.
    pub claims: Value,
}

impl Section for AssertionSection {
    const NAME: &'static str = "assertion";
    const MADE_BY: &'static str = "wif-sign";
}

/// The claims of a subject token that decide whether STS accepts it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SubjectClaims {
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience (a string or a list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Value>,
    /// Subject: what `google.subject=assertion.sub` maps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Expiry, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

/// `azure`: the subject token from Azure AD or another OIDC issuer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AzureSection {
    /// Token, type and expiry.
    #[serde(flatten)]
    pub token: TokenFields,
    /// The STS `subject_token_type` that fits this token.
    pub subject_token_type: String,
    /// Where the token came from: `azure-v2`, `azure-v1`, `jwt-bearer`, `client-credentials`, `file`, `url`, `imds`, `github-actions`.
    pub source: String,
    /// The token endpoint, URL or file it came from.
    pub endpoint: String,
    /// The client id used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The scope requested (Azure v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The resource requested (Azure v1, IMDS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The audience requested (generic OIDC issuers, GitHub Actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The token's decoded claims (when it is a JWT), not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<SubjectClaims>,
}

impl Section for AzureSection {
    const NAME: &'static str = "azure";
    const MADE_BY: &'static str = "wif-azure";
}

/// `sts`: the federated access token from Google STS.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StsSection {
    /// Token, type and expiry.
    #[serde(flatten)]
    pub token: TokenFields,
    /// `issued_token_type` from the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
    /// The STS token endpoint.
    pub endpoint: String,
    /// The workload identity provider audience.
    pub audience: String,
    /// The scope requested.
    pub scope: String,
    /// The subject token type sent.
    pub subject_token_type: String,
    /// From a credential configuration: where wif-impersonate should go next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_impersonation_url: Option<String>,
    /// From a credential configuration: how wif-impersonate should impersonate (unless its
    /// own settings say otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_impersonation: Option<ImpersonationOptions>,
    /// From a credential configuration: the universe domain when it is not `googleapis.com`
    /// (wif-impersonate's default endpoint is then `https://iamcredentials.DOMAIN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub universe_domain: Option<String>,
    /// The federation path: `token` (a subject token from an IdP) or `x509` (the workload
    /// certificate over mutual TLS). Absent in documents from before the X.509 path: `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// On the X.509 path: the workload certificate, which wif-impersonate presents too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<WorkloadCertificate>,
}

/// The `sts` section's facts of the workload certificate (X.509 path): what it is, and
/// where its files are so the next step can present it too. Paths and names only, never a
/// key or a password.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkloadCertificate {
    /// SHA-256 of the leaf certificate (DER), lowercase hex.
    pub sha256: String,
    /// The leaf's subject.
    pub subject: String,
    /// The leaf's expiry, RFC 3339 UTC.
    pub not_after: String,
    /// The certificate file (absolute).
    pub cert_file: PathBuf,
    /// The key file (absolute): PEM, or the PKCS#12 file.
    pub key_file: PathBuf,
    /// The file holding the PKCS#12 password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_password_file: Option<PathBuf>,
    /// The environment variable holding the PKCS#12 password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_password_env: Option<String>,
    /// The PEM file of intermediate certificates sent after the leaf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_chain_file: Option<PathBuf>,
}

impl Section for StsSection {
    const NAME: &'static str = "sts";
    const MADE_BY: &'static str = "wif-sts";
}

/// `service_account_impersonation` of a credential configuration, as Google spells it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImpersonationOptions {
    /// The access token's lifetime in seconds (IAM's `lifetime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_lifetime_seconds: Option<u64>,
}

/// `impersonated`: the service-account token from IAM Credentials.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ImpersonatedSection {
    /// Token, type and expiry.
    #[serde(flatten)]
    pub token: TokenFields,
    /// The IAM Credentials URL called.
    pub endpoint: String,
    /// The service account impersonated.
    pub service_account: String,
    /// Scopes (access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Vec<String>>,
    /// Lifetime requested (access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<String>,
    /// Audience (ID tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Delegation chain, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegates: Vec<String>,
}

impl Section for ImpersonatedSection {
    const NAME: &'static str = "impersonated";
    const MADE_BY: &'static str = "wif-impersonate";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_input_is_an_empty_document() {
        for input in ["", "  \n", "\t"] {
            let d = Document::parse(input.as_bytes()).unwrap();
            assert_eq!(d.get("version"), Some(&json!(1)));
        }
    }

    /// A section of the tests' own.
    #[derive(Serialize, Deserialize)]
    struct Probe {
        k: u8,
    }

    impl Section for Probe {
        const NAME: &'static str = "sts";
        const MADE_BY: &'static str = "a test";
    }

    #[test]
    fn unknown_fields_survive_in_order() {
        let input = br#"{"zeta":1,"version":1,"custom":{"a":[1,2]},"alpha":"x"}"#;
        let mut d = Document::parse(input).unwrap();
        d.set(&Probe { k: 1 }).unwrap();
        let out: Value = serde_json::from_str(&d.to_json()).unwrap();
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["zeta", "version", "custom", "alpha", "sts"]);
        assert_eq!(out["custom"], json!({"a": [1, 2]}));
    }

    #[test]
    fn rejects_bad_documents_without_echoing_them() {
        let e = Document::parse(b"{\"token\": \"s3cret").unwrap_err();
        assert_eq!(e.kind(), crate::core::error::Kind::Input);
        assert!(!e.to_string().contains("s3cret"));
        assert!(Document::parse(b"[1]").is_err());
        assert!(Document::parse(b"{\"version\": 99}").is_err());
        assert!(Document::parse(b"{\"config\": 3}").is_err());
    }

    #[test]
    fn missing_section_names_the_step() {
        let d = Document::new();
        let e = d.require::<AzureSection>().unwrap_err();
        assert!(e.to_string().contains("no \"azure\" section"));
        assert!(e.hint_text().unwrap().contains("wif-azure"));
    }

    #[test]
    fn malformed_section_does_not_echo_values() {
        let d = Document::parse(br#"{"sts": {"token": 5, "token_type": "x"}}"#).unwrap();
        assert!(d.section::<StsSection>().is_err());
        let d = Document::parse(br#"{"azure": {"token": "abc", "token_type": 7}}"#).unwrap();
        let e = d.section::<AzureSection>().unwrap_err();
        assert!(!e.to_string().contains("abc"), "{e}");
    }
}
