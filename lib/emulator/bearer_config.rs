//! The configuration of the bearer issuers: Kubernetes API servers (`kubernetes`, with their
//! service accounts) and GitHub Actions OIDC providers (`github`, with the runs that may ask
//! for a token). Every flaw is named by its JSON path (`kubernetes[0].service_accounts[1].name`).

use crate::core::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The kinds of bearer issuer, as the config and the rotation control name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BearerKind {
    /// A Kubernetes API server's service-account token issuer.
    Kubernetes,
    /// GitHub Actions' OIDC token issuer.
    Github,
}

impl BearerKind {
    /// The name in the config and in `/_emulator/rotate/{kind}/…`.
    pub fn name(self) -> &'static str {
        match self {
            BearerKind::Kubernetes => "kubernetes",
            BearerKind::Github => "github",
        }
    }

    /// The kind a name stands for.
    pub fn parse(name: &str) -> Option<BearerKind> {
        [BearerKind::Kubernetes, BearerKind::Github].into_iter().find(|k| k.name() == name)
    }
}

/// A Kubernetes issuer, served under `/k8s/{name}/`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Path segment of its endpoints.
    pub name: String,
    /// The `iss` of its tokens (the API server's `--service-account-issuer`).
    pub issuer: String,
    /// Its signing key (PEM: RSA or EC P-256), relative to the config file [default: an
    /// RSA-2048 key made at start].
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// The service accounts it issues tokens for.
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccount>,
}

/// A Kubernetes service account.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccount {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its object UID (the tokens' `kubernetes.io.serviceaccount.uid`) [default: derived
    /// from the namespace and name, stable across runs].
    #[serde(default)]
    pub uid: Option<String>,
}

impl ServiceAccount {
    /// Its UID: the configured one, or a UUID-shaped digest of namespace and name.
    pub fn uid(&self) -> String {
        self.uid.clone().unwrap_or_else(|| {
            let digest = aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                format!("{}/{}", self.namespace, self.name).as_bytes(),
            );
            let mut first = [0u8; 16];
            first.copy_from_slice(&digest.as_ref()[..16]);
            crate::core::jwt::uuid_text(first)
        })
    }
}

/// A GitHub Actions OIDC issuer, served under `/github/{name}/`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// Path segment of its endpoints.
    pub name: String,
    /// The `iss` of its tokens (`https://token.actions.githubusercontent.com`).
    pub issuer: String,
    /// Its signing key (PEM: RSA or EC P-256), relative to the config file [default: an
    /// RSA-2048 key made at start].
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// The workflow runs that may ask for a token, each by its request token.
    #[serde(default)]
    pub runs: Vec<GithubRun>,
}

/// A workflow run (a job) that may ask for an OIDC token. Its `Debug` leaves the request
/// token out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubRun {
    /// What `ACTIONS_ID_TOKEN_REQUEST_TOKEN` holds for the job (a test value).
    pub request_token: String,
    /// `OWNER/REPO`.
    pub repository: String,
    /// The git ref, e.g. `refs/heads/main`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The deployment environment of the job, if any (then the tokens' `sub` names it).
    #[serde(default)]
    pub environment: Option<String>,
    /// The workflow's name; its file is `.github/workflows/{workflow}.yml`.
    pub workflow: String,
    /// Who started the run.
    pub actor: String,
    /// The event that started it, e.g. `push`.
    pub event_name: String,
    /// The commit [default: derived from repository and ref].
    #[serde(default)]
    pub sha: Option<String>,
    /// The repository's numeric id [default: derived from its name].
    #[serde(default)]
    pub repository_id: Option<String>,
    /// The run's numeric id [default: derived from the request token].
    #[serde(default)]
    pub run_id: Option<String>,
}

impl std::fmt::Debug for GithubRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubRun")
            .field("repository", &self.repository)
            .field("ref", &self.git_ref)
            .field("environment", &self.environment)
            .field("workflow", &self.workflow)
            .finish_non_exhaustive()
    }
}

/// Checks the bearer issuers and makes their key paths absolute (relative to `base`).
pub fn prepare(kubernetes: &mut [KubernetesConfig], github: &mut [GithubConfig], base: &Path) -> Result<()> {
    let mut names = BTreeSet::new();
    for (i, k) in kubernetes.iter_mut().enumerate() {
        let at = format!("kubernetes[{i}]");
        check_issuer(&at, &k.name, &k.issuer, &mut names)?;
        resolve(&mut k.signing_key, base);
        let mut seen = BTreeSet::new();
        for (j, sa) in k.service_accounts.iter().enumerate() {
            let at = format!("{at}.service_accounts[{j}]");
            check_dns_name(&format!("{at}.namespace"), &sa.namespace, 63)?;
            check_dns_name(&format!("{at}.name"), &sa.name, 253)?;
            if !seen.insert((sa.namespace.as_str(), sa.name.as_str())) {
                return Err(Error::input(format!("{at}: {}/{} is listed twice", sa.namespace, sa.name)));
            }
        }
    }
    let mut names = BTreeSet::new();
    for (i, g) in github.iter_mut().enumerate() {
        let at = format!("github[{i}]");
        check_issuer(&at, &g.name, &g.issuer, &mut names)?;
        resolve(&mut g.signing_key, base);
        let mut tokens = BTreeSet::new();
        for (j, run) in g.runs.iter().enumerate() {
            check_run(&format!("{at}.runs[{j}]"), run, &mut tokens)?;
        }
    }
    Ok(())
}

fn resolve(path: &mut Option<PathBuf>, base: &Path) {
    if let Some(p) = path.as_mut().filter(|p| p.is_relative()) {
        *p = base.join(&*p);
    }
}

/// A name usable as a path segment and unique in its kind, and an http(s) `issuer`.
fn check_issuer<'a>(at: &str, name: &'a str, issuer: &str, names: &mut BTreeSet<&'a str>) -> Result<()> {
    let name_ok = (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && name != "..";
    if !name_ok {
        return Err(Error::input(format!("{at}.name {name:?} must be 1-64 letters, digits, '.', '-' or '_'")));
    }
    if !names.insert(name) {
        return Err(Error::input(format!("{at}.name {name:?} is used by another issuer of the same kind")));
    }
    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) || issuer.len() <= "https://".len() {
        return Err(Error::input(format!("{at}.issuer {issuer:?} is not an http(s) URL")));
    }
    Ok(())
}

/// A Kubernetes object name: lowercase letters, digits, '-' (and '.' in longer names),
/// starting and ending with a letter or digit.
fn check_dns_name(at: &str, name: &str, max: usize) -> Result<()> {
    let dots = max > 63;
    let ok = (1..=max).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::input(format!(
            "{at} {name:?} is not a Kubernetes name (lowercase letters, digits and '-', at most {max} characters)"
        )))
    }
}

fn check_run<'a>(at: &str, run: &'a GithubRun, tokens: &mut BTreeSet<&'a str>) -> Result<()> {
    if run.request_token.is_empty() || run.request_token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::input(format!("{at}.request_token must be non-empty, without spaces")));
    }
    if !tokens.insert(&run.request_token) {
        return Err(Error::input(format!("{at}.request_token is the request token of another run")));
    }
    let repo_ok = run.repository.split_once('/').is_some_and(|(o, r)| {
        let part =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        part(o) && part(r)
    });
    if !repo_ok {
        return Err(Error::input(format!("{at}.repository {:?} is not OWNER/REPO", run.repository)));
    }
    if !run.git_ref.starts_with("refs/") {
        return Err(Error::input(format!("{at}.ref {:?} is not a git ref like refs/heads/main", run.git_ref)));
    }
    let fields =
        [("workflow", Some(&run.workflow)), ("actor", Some(&run.actor)), ("event_name", Some(&run.event_name))];
    let optional = [("environment", run.environment.as_ref()), ("sha", run.sha.as_ref())];
    for (field, value) in fields.into_iter().chain(optional) {
        if value.is_some_and(|v| v.trim().is_empty()) {
            return Err(Error::input(format!("{at}.{field} must not be empty")));
        }
    }
    for (field, value) in [("repository_id", &run.repository_id), ("run_id", &run.run_id)] {
        if value.as_ref().is_some_and(|v| v.is_empty() || !v.chars().all(|c| c.is_ascii_digit())) {
            return Err(Error::input(format!("{at}.{field} must be digits")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(k: serde_json::Value, g: serde_json::Value) -> Result<(Vec<KubernetesConfig>, Vec<GithubConfig>)> {
        let mut k: Vec<KubernetesConfig> = serde_json::from_value(k).unwrap();
        let mut g: Vec<GithubConfig> = serde_json::from_value(g).unwrap();
        prepare(&mut k, &mut g, Path::new("/etc/emu"))?;
        Ok((k, g))
    }

    #[test]
    fn flaws_are_named_by_json_path() {
        use serde_json::json;
        let sa = |ns: &str, n: &str| json!({"namespace": ns, "name": n});
        let k8s = |name: &str, sas: Vec<serde_json::Value>| json!({"name": name, "issuer": "https://k", "service_accounts": sas, "signing_key": "k.pem"});
        let (k, _) = parse(json!([k8s("prod", vec![sa("batch", "report")])]), json!([])).unwrap();
        assert_eq!(k[0].signing_key.as_deref(), Some(Path::new("/etc/emu/k.pem")));
        assert_eq!(k[0].service_accounts[0].uid(), k[0].service_accounts[0].uid());
        let err = |k, g| parse(k, g).unwrap_err().to_string();
        assert!(err(json!([k8s("prod", vec![sa("Batch", "report")])]), json!([]))
            .contains("kubernetes[0].service_accounts[0].namespace"));
        assert!(err(json!([k8s("a", vec![]), k8s("a", vec![])]), json!([])).contains("kubernetes[1].name"));
        assert!(err(json!([k8s("a/b", vec![])]), json!([])).contains("kubernetes[0].name"));
        let run = |token: &str, repo: &str| json!({"request_token": token, "repository": repo, "ref": "refs/heads/main", "workflow": "w", "actor": "a", "event_name": "push"});
        let gh = |runs: Vec<serde_json::Value>| json!([{"name": "actions", "issuer": "ftp://x", "runs": runs}]);
        assert!(err(json!([]), gh(vec![])).contains("github[0].issuer"));
        let gh = |runs: Vec<serde_json::Value>| json!([{"name": "actions", "issuer": "https://t", "runs": runs}]);
        assert!(parse(json!([]), gh(vec![run("t1", "o/r")])).is_ok());
        assert!(
            err(json!([]), gh(vec![run("t1", "o/r"), run("t1", "o/s")])).contains("github[0].runs[1].request_token")
        );
        assert!(err(json!([]), gh(vec![run("t1", "app")])).contains("github[0].runs[0].repository"));
    }
}
