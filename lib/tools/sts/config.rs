//! Google's `external_account` credential configurations: the one wif-sts reads
//! (--credential-config) and the one it prints (--print-credential-config) for client
//! libraries that do the exchange themselves.

use super::args::Cli;
use crate::core::clock;
use crate::core::error::{Context, Error, Result};
use crate::core::settings::{key, FileSetting, Settings};
use crate::http;
use crate::protocol::external_account::CredentialConfig;
use crate::protocol::iam;
use crate::protocol::sts::{self, DEFAULT_TOKEN_URL, JWT_TOKEN_TYPE};

/// A gcloud / google-auth `external_account` configuration for the same provider, so client
/// libraries can do the STS exchange (and impersonation) themselves from a token file or URL.
pub fn credential_config(cli: &Cli, s: &Settings, audience: String) -> Result<serde_json::Value> {
    use serde_json::json;
    let token_url = s.pick_or(cli.token_url.clone(), key::STS_TOKEN_URL, DEFAULT_TOKEN_URL.to_string())?;
    let subject_token_type = match s.pick::<String>(cli.subject_token_type.clone(), key::SUBJECT_TOKEN_TYPE)? {
        Some(t) => sts::expand_token_type(&t)?,
        None => JWT_TOKEN_TYPE.to_string(),
    };
    let format = match &cli.credential_field {
        Some(f) => json!({"type": "json", "subject_token_field_name": f}),
        None => json!({"type": "text"}),
    };
    let source = match (&cli.credential_file, &cli.credential_url) {
        (Some(f), _) => {
            // A client library reads the file from its own working directory.
            let f = crate::core::files::absolute(f).map_err(|e| e.context("--credential-file"))?;
            json!({"file": f, "format": format})
        }
        (None, Some(u)) => {
            http::check_url(u)?;
            json!({"url": u, "format": format})
        }
        (None, None) => {
            return Err(Error::usage("--credential-file or --credential-url is required with --print-credential-config")
                .hint("e.g. keep the Azure token fresh with `wif-sign … | wif-azure --token-out /var/lib/wif/azure.jwt` and give that file"))
        }
    };
    finish_config(cli, s, &audience, &subject_token_type, &token_url, source, iam::DEFAULT_ENDPOINT)
}

/// The credential configuration around its `credential_source`, with the impersonation URL
/// (on `default_iam`, unless --iam-endpoint) and lifetime when a service account is given.
pub fn finish_config(
    cli: &Cli,
    s: &Settings,
    audience: &str,
    subject_token_type: &str,
    token_url: &str,
    source: serde_json::Value,
    default_iam: &str,
) -> Result<serde_json::Value> {
    use serde_json::json;
    let mut config = json!({
        "universe_domain": "googleapis.com",
        "type": "external_account",
        "audience": audience,
        "subject_token_type": subject_token_type,
        "token_url": token_url,
        "credential_source": source,
    });
    http::check_url(token_url).map_err(|e| e.context("checking the STS token URL"))?;
    if let Some(sa) = s.pick::<String>(cli.service_account.clone(), key::SERVICE_ACCOUNT)? {
        // The endpoint the pipeline's wif-impersonate uses, so that the file works against
        // wif-emulate or a private endpoint too.
        let base: String = s.pick_or(cli.iam_endpoint.clone(), key::IAM_ENDPOINT, default_iam.to_string())?;
        http::check_url(&base).map_err(|e| e.context("checking the IAM Credentials endpoint"))?;
        config["service_account_impersonation_url"] =
            json!(iam::method_url(&base, &sa, iam::Method::GenerateAccessToken));
        if let Some(l) = s.pick::<String>(cli.impersonation_lifetime.clone(), key::IMPERSONATE_LIFETIME)? {
            let what = format!("--impersonation-lifetime {l}");
            let secs = iam::lifetime_in_range(clock::parse_duration(&l)?.as_secs(), &what).map_err(Error::usage)?;
            config["service_account_impersonation"] = json!({ "token_lifetime_seconds": secs });
        }
    }
    Ok(config)
}

/// Reads a credential configuration file, refuses what wif cannot honour, and warns once
/// about the fields it does not use.
pub fn read_credential_config(file: &FileSetting) -> Result<CredentialConfig> {
    let path = &file.path;
    let doing = format!("reading the credential configuration {}", path.display());
    let bytes = std::fs::read(path)
        .map_err(|e| Error::io(path, &e))
        .context(doing.clone())
        .map_err(file.explain("a gcloud / google-auth external_account credential configuration (JSON)"))?;
    let c: CredentialConfig = serde_json::from_slice(&bytes)
        .map_err(|e| {
            Error::input(format!("not an external_account configuration ({})", crate::core::document::scrub(&e)))
        })
        .context(doing.clone())?;
    let ignored = c.check().context(doing)?;
    if !ignored.is_empty() {
        crate::core::diag::warn(format!(
            "the credential configuration's {} {} not used by wif and ignored",
            ignored.join(", "),
            if ignored.len() == 1 { "is" } else { "are" }
        ));
    }
    Ok(c)
}
