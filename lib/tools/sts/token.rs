//! The subject-token path of wif-sts: the token an identity provider issued (the document's
//! `azure` section, or a credential configuration's file or URL) exchanged at STS.

use super::args::{audience, Cli, TOOL};
use crate::core::clock;
use crate::core::document::{
    AzureSection, Document, ImpersonationOptions, StsSection, TokenFields, WorkloadCertificate,
};
use crate::core::error::{Error, Result};
use crate::core::secret::Secret;
use crate::core::settings::{key, Settings};
use crate::http;
use crate::protocol::external_account::{CredentialConfig, DEFAULT_UNIVERSE};
use crate::protocol::sts::{self, ExchangeRequest, Exchanged, DEFAULT_SCOPE, DEFAULT_TOKEN_URL, JWT_TOKEN_TYPE};
use crate::protocol::subject::{self, UrlSource};

/// Exchanges the subject token and adds the `sts` section.
pub fn run(cli: &Cli, doc: &mut Document, s: &Settings, cred: Option<CredentialConfig>) -> Result<()> {
    let audience = audience(cli, s, cred.as_ref())?;
    let token_url: String = match s.pick(cli.token_url.clone(), key::STS_TOKEN_URL)? {
        Some(u) => u,
        None => cred.as_ref().map(CredentialConfig::token_url).unwrap_or_else(|| DEFAULT_TOKEN_URL.to_string()),
    };
    let scope = s.pick_or(cli.scope.clone(), key::STS_SCOPE, DEFAULT_SCOPE.to_string())?;
    let options = sts_options(s.pick(cli.options.clone(), key::STS_OPTIONS)?, cred.as_ref())?;

    let client = cli.net.client(TOOL, s)?;
    let (subject, from_doc_type) = subject_token(doc, cred.as_ref(), &client)?;
    let subject_token_type = match s.pick::<String>(cli.subject_token_type.clone(), key::SUBJECT_TOKEN_TYPE)? {
        Some(t) => sts::expand_token_type(&t)?,
        None => cred
            .as_ref()
            .and_then(|c| c.subject_token_type.clone())
            .or(from_doc_type)
            .unwrap_or_else(|| JWT_TOKEN_TYPE.into()),
    };

    let request = ExchangeRequest {
        url: &token_url,
        audience: &audience,
        scope: &scope,
        subject_token: &subject,
        subject_token_type: &subject_token_type,
        options: options.as_deref(),
    };
    let exchanged = sts::exchange(&client, &request)?;
    record(cli, doc, exchanged, &request, cred.as_ref(), "token", None)
}

/// Publishes an exchange: the federated token to `--token-out`, and the `sts` section
/// (what was sent, the credential configuration's hints for wif-impersonate, the `path`
/// and, on the X.509 path, the workload certificate) to the document.
pub fn record(
    cli: &Cli,
    doc: &mut Document,
    exchanged: Exchanged,
    sent: &ExchangeRequest<'_>,
    cred: Option<&CredentialConfig>,
    path: &str,
    certificate: Option<WorkloadCertificate>,
) -> Result<()> {
    let section = StsSection {
        token: TokenFields {
            token: exchanged.token,
            token_type: exchanged.token_type,
            expires_at: Some(exchanged.expires_at.to_string()),
        },
        issued_token_type: exchanged.issued_token_type,
        endpoint: sent.url.to_string(),
        audience: sent.audience.to_string(),
        scope: sent.scope.to_string(),
        subject_token_type: sent.subject_token_type.to_string(),
        service_account_impersonation_url: cred.and_then(|c| c.service_account_impersonation_url.clone()),
        service_account_impersonation: impersonation_options(cred),
        universe_domain: cred.map(|c| c.universe().to_string()).filter(|u| u != DEFAULT_UNIVERSE),
        path: Some(path.into()),
        certificate,
    };
    cli.token_out.write(TOOL, &section.token)?;
    doc.set(&section)
}

/// The subject token: the document's `azure` section, else the credential source.
fn subject_token(
    doc: &Document,
    cred: Option<&CredentialConfig>,
    client: &http::Client,
) -> Result<(Secret, Option<String>)> {
    if let Some(az) = doc.section::<AzureSection>()? {
        // The section's expiry first: from a token endpoint's lifetime (expires_in) wif-azure
        // reckoned it by this machine's clock, so a clock that is off does not make a fresh
        // token look expired here; the token's `exp` (the issuer's clock) when there is none.
        let expiry = az.token.expires_at.as_deref().and_then(|t| clock::parse_rfc3339(t).ok());
        if let Some(exp) = expiry.or(az.claims.as_ref().and_then(|c| c.exp)) {
            if exp <= clock::now_unix() {
                return Err(Error::input(format!("the subject token expired at {}", clock::rfc3339(exp)))
                    .hint("run the pipeline again from wif-azure; STS refuses expired tokens (if this machine's clock is off, fix it: timedatectl)"));
            }
        }
        return Ok((az.token.token, Some(az.subject_token_type)));
    }
    let (Some(cred), Some(src)) = (cred, cred.and_then(|c| c.credential_source.as_ref())) else {
        return Err(Error::input("the document has no \"azure\" section")
            .hint("run wif-azure before wif-sts (… | wif-azure | wif-sts), or give --credential-config with a credential_source"));
    };
    let field = cred.source_field()?;
    let token = if let Some(path) = &src.file {
        subject::read_file(path, field.as_deref(), |e| e)?
    } else if let Some(url) = &src.url {
        let headers = src.headers.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        subject::fetch(client, UrlSource { url, headers, field: field.as_deref() })?
    } else {
        return Err(Error::input("credential_source has neither file nor url"));
    };
    if token.is_empty() {
        return Err(Error::input("the subject token from the credential source is empty"));
    }
    Ok((token, None))
}

/// The STS `options`: `--options` (a JSON object), plus a workforce pool's user project from
/// the credential configuration as `userProject` unless `--options` names one.
pub fn sts_options(given: Option<String>, cred: Option<&CredentialConfig>) -> Result<Option<String>> {
    let mut options = match &given {
        Some(o) => match serde_json::from_str::<serde_json::Value>(o) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return Err(Error::usage("--options must be a JSON object, e.g. '{\"userProject\":\"my-project\"}'")),
        },
        None => serde_json::Map::new(),
    };
    let Some(project) = cred.and_then(|c| c.workforce_pool_user_project.as_deref()) else { return Ok(given) };
    if options.contains_key("userProject") {
        return Ok(given);
    }
    options.insert("userProject".into(), project.into());
    Ok(Some(serde_json::Value::Object(options).to_string()))
}

/// A credential configuration's impersonation lifetime, for wif-impersonate.
pub fn impersonation_options(cred: Option<&CredentialConfig>) -> Option<ImpersonationOptions> {
    cred.and_then(|c| c.service_account_impersonation.as_ref()?.token_lifetime_seconds)
        .map(|secs| ImpersonationOptions { token_lifetime_seconds: Some(secs) })
}
