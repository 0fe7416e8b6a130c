//! The identity the metadata server describes, read from the settings, and the checks of
//! text that goes into an answer or a log line.

use crate::core::error::{Error, Result};
use crate::core::settings::{key, OneOrMany, Settings};
use crate::tools::get::args::Cli;

use crate::protocol::sts::DEFAULT_SCOPE;

/// The identity the metadata server describes (from --service-account, --project-id, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The service account's email.
    pub email: String,
    /// The project id, if known.
    pub project_id: Option<String>,
    /// The project number, if known.
    pub project_number: Option<u64>,
    /// The token's scopes.
    pub scopes: Vec<String>,
}

impl Identity {
    /// Reads and checks the metadata settings.
    pub fn from_settings(cli: &Cli, s: &Settings) -> Result<Identity> {
        let email: String = s.require(cli.service_account.clone(), key::GET_SERVICE_ACCOUNT, "--service-account")?;
        let email = email.trim().to_string();
        let (local, domain) = email.split_once('@').unwrap_or(("", ""));
        if local.is_empty() || domain.is_empty() || !plain_value(&email) || email.contains('/') {
            return Err(Error::usage(format!("--service-account {email:?} is not an email address"))
                .hint("give the service account the token belongs to, e.g. app@my-project.iam.gserviceaccount.com"));
        }
        let project_id: Option<String> = s.pick(cli.project_id.clone(), key::GET_PROJECT_ID)?;
        if let Some(p) = &project_id {
            if p.is_empty() || !plain_value(p) {
                return Err(Error::usage(format!("--project-id {p:?} is not a project id")));
            }
        }
        let project_number = match s.pick::<String>(cli.project_number.clone(), key::GET_PROJECT_NUMBER)? {
            Some(n) => Some(n.trim().parse::<u64>().map_err(|_| {
                Error::usage(format!("--project-number {n:?} is not a number"))
                    .hint("the project number is the numeric id, e.g. 123456789012 (gcloud projects describe ID)")
            })?),
            None => None,
        };
        // A flag or config string is comma-separated; a config list is taken as it is.
        let scopes = match s.pick::<OneOrMany>(cli.scopes.clone().map(OneOrMany::One), key::GET_SCOPES)? {
            Some(OneOrMany::One(t)) => t.split([',', ' ']).filter(|x| !x.is_empty()).map(String::from).collect(),
            Some(OneOrMany::Many(l)) => l,
            None => vec![DEFAULT_SCOPE.to_string()],
        };
        if scopes.is_empty() || !scopes.iter().all(|x| plain_value(x)) {
            return Err(Error::usage("--scopes must name at least one scope, comma-separated")
                .hint(format!("e.g. --scopes {DEFAULT_SCOPE}")));
        }
        Ok(Identity { email, project_id, project_number, scopes })
    }
}

/// Printable, no whitespace or control characters: safe in a text answer line.
pub(super) fn plain_value(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// A client's text for an answer or a log line: control characters dropped, at most `max`
/// characters.
pub(super) fn printable(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}
