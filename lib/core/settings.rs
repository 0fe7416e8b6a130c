//! Settings with one precedence everywhere: flags, then `WIF_*` environment variables
//! (both handled by clap), then the document's `config` object, then `--config FILE`.
//!
//! The config object is flat: each key is the environment variable's name without `WIF_`,
//! in lower case (`WIF_STS_AUDIENCE` → `sts_audience`). Every step merges its `--config`
//! file under the document's `config` and passes the result on, so
//! `wif-sign --config wif.json | wif-azure | wif-sts | …` configures the whole pipeline.

use crate::core::document::Document;
use crate::core::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A config key and the environment variable that gives the same setting: the config object's
/// key is the variable's name without `WIF_`, in lower case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// The key in the config object and `--config` file, e.g. `client_id`.
    pub name: &'static str,
    /// The environment variable clap reads for the flag, e.g. `WIF_CLIENT_ID`.
    pub env: &'static str,
}

/// The one table of config keys: a constant in [`key`] for each, [`KEYS`] and [`KNOWN_KEYS`].
macro_rules! config_keys {
    ($($konst:ident = $name:literal, $env:literal;)*) => {
        /// Every config key wif knows, one constant each (`key::CLIENT_ID`), with its
        /// environment variable: for `Settings::pick` and clap's `env =`.
        pub mod key {
            use super::Key;
            $(
                #[doc = concat!("`", $name, "`, or `", $env, "`.")]
                pub const $konst: Key = Key { name: $name, env: $env };
            )*
        }

        /// Every config key wif knows, in the table's order.
        pub const KEYS: &[Key] = &[$(key::$konst),*];

        /// Config keys that any wif tool understands; others draw a warning (likely typos).
        pub const KNOWN_KEYS: &[&str] = &[$($name),*];
    };
}

config_keys! {
    CLIENT_ID = "client_id", "WIF_CLIENT_ID";
    TENANT_ID = "tenant_id", "WIF_TENANT_ID";
    KEY = "key", "WIF_KEY";
    CERT = "cert", "WIF_CERT";
    KEY_PASSWORD_FILE = "key_password_file", "WIF_KEY_PASSWORD_FILE";
    KEY_PASSWORD_ENV = "key_password_env", "WIF_KEY_PASSWORD_ENV";
    AUTHORITY = "authority", "WIF_AUTHORITY";
    ASSERTION_AUDIENCE = "assertion_audience", "WIF_ASSERTION_AUDIENCE";
    ASSERTION_LIFETIME = "assertion_lifetime", "WIF_ASSERTION_LIFETIME";
    ASSERTION_ALG = "assertion_alg", "WIF_ASSERTION_ALG";
    X5C = "x5c", "WIF_X5C";
    THUMBPRINT = "thumbprint", "WIF_THUMBPRINT";
    AZURE_TOKEN_URL = "azure_token_url", "WIF_AZURE_TOKEN_URL";
    AZURE_SCOPE = "azure_scope", "WIF_AZURE_SCOPE";
    AZURE_RESOURCE = "azure_resource", "WIF_AZURE_RESOURCE";
    AZURE_AUDIENCE = "azure_audience", "WIF_AZURE_AUDIENCE";
    AZURE_GRANT = "azure_grant", "WIF_AZURE_GRANT";
    IMDS_ENDPOINT = "imds_endpoint", "WIF_IMDS_ENDPOINT";
    CLIENT_SECRET_FILE = "client_secret_file", "WIF_CLIENT_SECRET_FILE";
    CLIENT_SECRET_ENV = "client_secret_env", "WIF_CLIENT_SECRET_ENV";
    STS_AUDIENCE = "sts_audience", "WIF_STS_AUDIENCE";
    STS_TOKEN_URL = "sts_token_url", "WIF_STS_TOKEN_URL";
    STS_SCOPE = "sts_scope", "WIF_STS_SCOPE";
    PROJECT_NUMBER = "project_number", "WIF_PROJECT_NUMBER";
    POOL = "pool", "WIF_POOL";
    PROVIDER = "provider", "WIF_PROVIDER";
    SUBJECT_TOKEN_TYPE = "subject_token_type", "WIF_SUBJECT_TOKEN_TYPE";
    STS_OPTIONS = "sts_options", "WIF_STS_OPTIONS";
    CREDENTIAL_CONFIG = "credential_config", "WIF_CREDENTIAL_CONFIG";
    X509 = "x509", "WIF_X509";
    X509_CERT = "x509_cert", "WIF_X509_CERT";
    X509_KEY = "x509_key", "WIF_X509_KEY";
    X509_KEY_PASSWORD_FILE = "x509_key_password_file", "WIF_X509_KEY_PASSWORD_FILE";
    X509_KEY_PASSWORD_ENV = "x509_key_password_env", "WIF_X509_KEY_PASSWORD_ENV";
    TRUST_CHAIN = "trust_chain", "WIF_TRUST_CHAIN";
    CERTIFICATE_CONFIG = "certificate_config", "WIF_CERTIFICATE_CONFIG";
    SERVICE_ACCOUNT = "service_account", "WIF_SERVICE_ACCOUNT";
    IAM_ENDPOINT = "iam_endpoint", "WIF_IAM_ENDPOINT";
    IMPERSONATE_LIFETIME = "impersonate_lifetime", "WIF_IMPERSONATE_LIFETIME";
    IMPERSONATE_SCOPE = "impersonate_scope", "WIF_IMPERSONATE_SCOPE";
    DELEGATES = "delegates", "WIF_DELEGATES";
    ID_TOKEN_AUDIENCE = "id_token_audience", "WIF_ID_TOKEN_AUDIENCE";
    INCLUDE_EMAIL = "include_email", "WIF_INCLUDE_EMAIL";
    ID_TOKEN = "id_token", "WIF_ID_TOKEN";
    CA_FILE = "ca_file", "WIF_CA_FILE";
    TIMEOUT = "timeout", "WIF_TIMEOUT";
    RETRIES = "retries", "WIF_RETRIES";
    LISTEN = "listen", "WIF_LISTEN";
    SERVE_CERT = "serve_cert", "WIF_SERVE_CERT";
    SERVE_KEY = "serve_key", "WIF_SERVE_KEY";
    CLIENT_CA = "client_ca", "WIF_CLIENT_CA";
    TOKEN_FILE = "token_file", "WIF_TOKEN_FILE";
    CRL = "crl", "WIF_CRL";
    ALLOW = "allow", "WIF_ALLOW";
    HANDSHAKE_TIMEOUT = "handshake_timeout", "WIF_HANDSHAKE_TIMEOUT";
    IDLE_TIMEOUT = "idle_timeout", "WIF_IDLE_TIMEOUT";
    MAX_CONNECTIONS = "max_connections", "WIF_MAX_CONNECTIONS";
    MAX_CONNECTIONS_PER_CLIENT = "max_connections_per_client", "WIF_MAX_CONNECTIONS_PER_CLIENT";
    MAX_CONNECTIONS_PER_ADDRESS = "max_connections_per_address", "WIF_MAX_CONNECTIONS_PER_ADDRESS";
    MAX_CONNECTION_AGE = "max_connection_age", "WIF_MAX_CONNECTION_AGE";
    HEADER_TIMEOUT = "header_timeout", "WIF_HEADER_TIMEOUT";
    SHUTDOWN_TIMEOUT = "shutdown_timeout", "WIF_SHUTDOWN_TIMEOUT";
    SERVE_METRICS_LISTEN = "serve_metrics_listen", "WIF_SERVE_METRICS_LISTEN";
    SERVE_ASSUME_TTL = "serve_assume_ttl", "WIF_SERVE_ASSUME_TTL";
    SERVE_POLICY = "serve_policy", "WIF_SERVE_POLICY";
    SERVE_STS_ENDPOINT = "serve_sts_endpoint", "WIF_SERVE_STS_ENDPOINT";
    SERVE_STS_CA_FILE = "serve_sts_ca_file", "WIF_SERVE_STS_CA_FILE";
    SERVE_STS_TIMEOUT = "serve_sts_timeout", "WIF_SERVE_STS_TIMEOUT";
    SERVE_LEDGER = "serve_ledger", "WIF_SERVE_LEDGER";
    SERVE_BEARER_ISSUERS = "serve_bearer_issuers", "WIF_SERVE_BEARER_ISSUERS";
    MAX_HANDSHAKE_QUEUE = "max_handshake_queue", "WIF_MAX_HANDSHAKE_QUEUE";
    GET_URL = "get_url", "WIF_GET_URL";
    GET_CERT = "get_cert", "WIF_GET_CERT";
    GET_KEY = "get_key", "WIF_GET_KEY";
    GET_KEY_PASSWORD_FILE = "get_key_password_file", "WIF_GET_KEY_PASSWORD_FILE";
    GET_KEY_PASSWORD_ENV = "get_key_password_env", "WIF_GET_KEY_PASSWORD_ENV";
    GET_BEARER_FILE = "get_bearer_file", "WIF_GET_BEARER_FILE";
    GET_CA = "get_ca", "WIF_GET_CA";
    GET_OUT = "get_out", "WIF_GET_OUT";
    GET_MIN_TTL = "get_min_ttl", "WIF_GET_MIN_TTL";
    GET_SPREAD = "get_spread", "WIF_GET_SPREAD";
    GET_SPLAY = "get_splay", "WIF_GET_SPLAY";
    GET_ASSUME_TTL = "get_assume_ttl", "WIF_GET_ASSUME_TTL";
    GET_FORMAT = "get_format", "WIF_GET_FORMAT";
    GET_SUBJECT_TOKEN_TYPE = "get_subject_token_type", "WIF_GET_SUBJECT_TOKEN_TYPE";
    GET_EXPORT_NAME = "get_export_name", "WIF_GET_EXPORT_NAME";
    GET_MAX_TIME = "get_max_time", "WIF_GET_MAX_TIME";
    GET_METADATA_SERVER = "get_metadata_server", "WIF_GET_METADATA_SERVER";
    GET_SERVICE_ACCOUNT = "get_service_account", "WIF_GET_SERVICE_ACCOUNT";
    GET_PROJECT_ID = "get_project_id", "WIF_GET_PROJECT_ID";
    GET_PROJECT_NUMBER = "get_project_number", "WIF_GET_PROJECT_NUMBER";
    GET_SCOPES = "get_scopes", "WIF_GET_SCOPES";
}

/// Keys that would put a secret into a config file or a document.
const FORBIDDEN_KEYS: &[(&str, &str)] = &[
    ("client_secret", "client_secret_file or the environment variable named by client_secret_env"),
    ("key_password", "key_password_file or the environment variable named by key_password_env"),
    ("password", "key_password_file or key_password_env"),
];

/// The merged config in force for one step.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    config: Map<String, Value>,
}

impl Settings {
    /// Reads `--config FILE` (if any), merges it under the document's `config` (the document
    /// wins), and warns once about keys no wif tool knows. The document is left as it was:
    /// [`Settings::pass_on`] hands the merged config to the next step.
    pub fn load(doc: &Document, file: Option<&Path>) -> Result<Settings> {
        let mut config = match file {
            Some(path) => read_config_file(path).map_err(|e| {
                let origin = crate::core::settings::given_as("config").unwrap_or_else(|| "--config".into());
                e.file_setting(&origin, "a JSON object of wif settings (see wif(7))")
            })?,
            None => Map::new(),
        };
        for (k, v) in doc.config() {
            config.insert(k, v);
        }
        for (key, instead) in FORBIDDEN_KEYS {
            if config.contains_key(*key) {
                return Err(Error::input(format!(
                    "the config holds \"{key}\"; secrets do not belong in config files or documents"
                ))
                .hint(format!("use {instead}")));
            }
        }
        for key in config.keys() {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                crate::core::diag::warn(format!("config key \"{key}\" is not a wif setting and is ignored"));
            }
        }
        Ok(Settings { config })
    }

    /// Writes the merged config into the document's `config`, so that the next step of the
    /// pipe gets the settings this one was given (`wif-sign --config wif.json | wif-azure | …`).
    pub fn pass_on(&self, doc: &mut Document) {
        doc.set_config(self.config.clone());
    }

    /// A duration setting (`90s`, `10m`, `1h30m`, or seconds): the flag's, else the config's.
    /// A value that is not a duration is an error in `context` (e.g. `reading --min-ttl`), if given.
    pub fn duration(&self, flag: Option<String>, key: Key, context: Option<&str>) -> Result<Option<Duration>> {
        let Some(text) = self.pick::<String>(flag, key)? else { return Ok(None) };
        let parsed = crate::core::clock::parse_duration(&text);
        Ok(Some(match context {
            Some(doing) => parsed.map_err(|e| e.context(doing.to_string()))?,
            None => parsed?,
        }))
    }

    /// Like [`Settings::duration`], `default` when unset, and zero refused as a usage error
    /// naming `name` (`--timeout must be more than 0 s`).
    pub fn duration_over_zero(
        &self,
        flag: Option<String>,
        key: Key,
        name: &str,
        context: Option<&str>,
        default: Duration,
    ) -> Result<Duration> {
        let d = self.duration(flag, key, context)?.unwrap_or(default);
        if d.is_zero() {
            return Err(Error::usage(format!("{name} must be more than 0 s")));
        }
        Ok(d)
    }

    /// Settings from a plain object (tests, embedded use).
    pub fn from_map(config: Map<String, Value>) -> Settings {
        Settings { config }
    }

    /// A config list: one string or an array of them (empty when unset).
    pub fn list(&self, key: Key) -> Result<Vec<String>> {
        Ok(self.pick::<OneOrMany>(None, key)?.map(OneOrMany::into_vec).unwrap_or_default())
    }

    /// The flag's value if given (or set by its environment variable), else the config's.
    pub fn pick<T: DeserializeOwned>(&self, flag: Option<T>, key: Key) -> Result<Option<T>> {
        if flag.is_some() {
            return Ok(flag);
        }
        let Some(v) = self.config.get(key.name) else { return Ok(None) };
        if v.is_null() {
            return Ok(None);
        }
        if let Ok(t) = T::deserialize(v) {
            return Ok(Some(t));
        }
        // Numbers and booleans stand for strings where a string is expected (project numbers).
        if let Value::Number(_) | Value::Bool(_) = v {
            if let Ok(t) = T::deserialize(Value::String(v.to_string())) {
                return Ok(Some(t));
            }
        }
        Err(Error::input(format!("config key \"{}\" has the wrong type ({})", key.name, type_name(v))))
    }

    /// Like `pick`, but a missing value is a usage error naming all three ways to give it.
    pub fn require<T: DeserializeOwned>(&self, flag: Option<T>, key: Key, flag_name: &str) -> Result<T> {
        self.pick(flag, key)?.ok_or_else(|| {
            Error::usage(format!("{flag_name} is required"))
                .hint(format!("give {flag_name}, set {}, or put \"{}\" in the config", key.env, key.name))
        })
    }

    /// A file setting: the flag's path if given, else the config's, with where it came from.
    pub fn pick_file(&self, flag: Option<PathBuf>, arg: &str, key: Key) -> Result<Option<FileSetting>> {
        let by_flag = flag.is_some();
        Ok(self.pick(flag, key)?.map(|path| FileSetting { path, origin: self.origin(by_flag, arg, key) }))
    }

    /// Like `pick_file`, but a missing value is a usage error (see `require`).
    pub fn require_file(&self, flag: Option<PathBuf>, arg: &str, key: Key, flag_name: &str) -> Result<FileSetting> {
        let by_flag = flag.is_some();
        let path = self.require(flag, key, flag_name)?;
        Ok(FileSetting { path, origin: self.origin(by_flag, arg, key) })
    }

    /// Where a setting in force was given, to name it in messages: the flag (`--key`) or its
    /// environment variable (`WIF_KEY`) when clap had it (`by_flag`, argument id `arg`), else
    /// the config key (`config key "key"`).
    pub fn origin(&self, by_flag: bool, arg: &str, key: Key) -> String {
        if by_flag {
            crate::core::settings::given_as(arg).unwrap_or_else(|| format!("--{}", arg.replace('_', "-")))
        } else {
            format!("config key \"{}\"", key.name)
        }
    }

    /// The value, or a default.
    pub fn pick_or<T: DeserializeOwned>(&self, flag: Option<T>, key: Key, default: T) -> Result<T> {
        Ok(self.pick(flag, key)?.unwrap_or(default))
    }
}

/// A file named by a setting, and where the setting was given (`--key`, `WIF_KEY`, `config
/// key "key"`), so that an error about the file can say what to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSetting {
    /// The path.
    pub path: PathBuf,
    /// Where it was given.
    pub origin: String,
}

impl FileSetting {
    /// An error about this file, naming the setting and, when the file does not exist, what
    /// it should name (see `Error::file_setting`).
    pub fn explain<'a>(&'a self, expected: &'a str) -> impl FnOnce(Error) -> Error + 'a {
        move |e| e.file_setting(&self.origin, expected)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Reads a config file: a JSON object, or a whole wif document whose `config` is used.
pub fn read_config_file(path: &Path) -> Result<Map<String, Value>> {
    let ctx = || format!("reading the config file {}", path.display());
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e).context(ctx()))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::input(format!("not valid JSON (line {} column {})", e.line(), e.column())).context(ctx())
    })?;
    match value {
        Value::Object(mut m) => match m.remove("config") {
            Some(Value::Object(inner)) if m.contains_key("version") => Ok(inner),
            Some(other) => {
                m.insert("config".into(), other);
                Ok(m)
            }
            None => Ok(m),
        },
        _ => Err(Error::input("a config file must hold a JSON object").context(ctx())),
    }
}

/// A config value that may be one string or a list of them.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One string.
    One(String),
    /// A list of strings.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings, one or many.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The arguments clap was given, by id, as the user wrote them: `--key` or `WIF_KEY`.
static GIVEN: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// Remembers how each argument was given (see [`given_as`]); the command-line parser calls it once.
pub fn remember_given(given: Vec<(String, String)>) {
    let _ = GIVEN.set(given);
}

/// How the argument `id` was given, if [`parse`] saw it: `--key`, or `WIF_KEY` when it came
/// from the environment.
pub fn given_as(id: &str) -> Option<String> {
    GIVEN.get()?.iter().find(|(i, _)| i == id).map(|(_, shown)| shown.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc_with_config(c: Value) -> Document {
        let mut d = Document::new();
        d.set_config(c.as_object().unwrap().clone());
        d
    }

    #[test]
    fn precedence_flag_then_document_then_file() {
        let dir = std::env::temp_dir().join(format!("wif-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("wif.json");
        std::fs::write(&file, r#"{"client_id":"from-file","tenant_id":"file-tenant","sts_audience":"file-aud"}"#)
            .unwrap();
        let mut doc = doc_with_config(json!({"client_id": "from-doc"}));
        let s = Settings::load(&doc, Some(&file)).unwrap();
        s.pass_on(&mut doc);
        assert_eq!(s.pick(Some("flag".to_string()), key::CLIENT_ID).unwrap().unwrap(), "flag");
        assert_eq!(s.pick::<String>(None, key::CLIENT_ID).unwrap().unwrap(), "from-doc");
        assert_eq!(s.pick::<String>(None, key::TENANT_ID).unwrap().unwrap(), "file-tenant");
        assert_eq!(s.pick::<String>(None, key::POOL).unwrap(), None);
        // The merged config travels on in the document.
        assert_eq!(doc.config()["sts_audience"], json!("file-aud"));
        assert_eq!(doc.config()["client_id"], json!("from-doc"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn numbers_stand_for_strings_and_wrong_types_are_named() {
        let s = Settings::from_map(json!({"project_number": 123, "retries": "x"}).as_object().unwrap().clone());
        assert_eq!(s.pick::<String>(None, key::PROJECT_NUMBER).unwrap().unwrap(), "123");
        let e = s.pick::<u32>(None, key::RETRIES).unwrap_err();
        assert!(e.to_string().contains("wrong type (a string)"));
    }

    #[test]
    fn missing_required_setting_names_flag_env_and_key() {
        let s = Settings::default();
        let e = s.require::<String>(None, key::CLIENT_ID, "--client-id").unwrap_err();
        assert_eq!(e.kind(), crate::core::error::Kind::Usage);
        let hint = e.hint_text().unwrap();
        assert!(hint.contains("WIF_CLIENT_ID") && hint.contains("\"client_id\""));
    }

    #[test]
    fn durations_from_flag_or_config_with_default_and_no_zero() {
        let s = Settings::from_map(
            json!({"timeout": "2m", "get_max_time": "0s", "idle_timeout": "soon"}).as_object().unwrap().clone(),
        );
        assert_eq!(s.duration(None, key::TIMEOUT, None).unwrap(), Some(Duration::from_secs(120)));
        assert_eq!(s.duration(Some("5s".into()), key::TIMEOUT, None).unwrap(), Some(Duration::from_secs(5)));
        assert_eq!(s.duration(None, key::GET_MIN_TTL, None).unwrap(), None);
        let d = s.duration_over_zero(None, key::RETRIES, "--x", None, Duration::from_secs(30)).unwrap();
        assert_eq!(d, Duration::from_secs(30));
        let e = s.duration_over_zero(None, key::GET_MAX_TIME, "--max-time", None, Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.to_string(), "--max-time must be more than 0 s");
        let e = s.duration(None, key::IDLE_TIMEOUT, Some("reading --idle-timeout")).unwrap_err();
        assert!(e.to_string().starts_with("reading --idle-timeout: "), "{e}");
    }

    #[test]
    fn one_table_names_each_key_and_its_environment_variable() {
        let mut seen = std::collections::HashSet::new();
        for k in KEYS {
            assert_eq!(k.env, format!("WIF_{}", k.name.to_ascii_uppercase()), "{k:?}");
            assert!(seen.insert(k.name), "{} twice", k.name);
        }
        assert_eq!(KNOWN_KEYS.len(), KEYS.len());
        assert!(KEYS.iter().zip(KNOWN_KEYS).all(|(k, n)| k.name == *n));
        let s = Settings::from_map(json!({"client_id": "app"}).as_object().unwrap().clone());
        assert_eq!(s.pick::<String>(None, key::CLIENT_ID).unwrap(), s.pick::<String>(None, key::CLIENT_ID).unwrap());
        let hint =
            |k| Settings::default().require::<String>(None, k, "--x").unwrap_err().hint_text().unwrap().to_string();
        assert_eq!(hint(key::STS_AUDIENCE), "give --x, set WIF_STS_AUDIENCE, or put \"sts_audience\" in the config");
    }

    #[test]
    fn secrets_in_config_are_refused() {
        let doc = doc_with_config(json!({"client_secret": "abc"}));
        let e = Settings::load(&doc, None).unwrap_err();
        assert!(!e.to_string().contains("abc"));
    }
}
