//! Per-service fault injection (`--fault SERVICE=KIND[:N]`): a service answers as if it were
//! down (`unavailable`: 503 with `Retry-After: 1` in its own error shape), refuses as it
//! would refuse a bad credential (`refused`), or closes the connection without an answer
//! (`reset`), for all its requests or only the first N.

use super::errors;
use crate::core::error::{Error, Result};
use crate::server::Response;
use std::sync::atomic::{AtomicU64, Ordering};

/// A service the emulator plays, as `--fault` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Azure AD: token endpoints, discovery, JWKS, instance discovery, IMDS.
    Azure,
    /// The other OIDC issuers under `/issuers/`.
    Issuer,
    /// Google STS: subject-token exchanges and downscoping.
    Sts,
    /// Google STS: mtls (X.509) exchanges.
    StsX509,
    /// IAM Credentials.
    Iam,
    /// Cloud Storage.
    Storage,
    /// The Kubernetes issuers: TokenRequest, discovery, JWKS.
    Kubernetes,
    /// The GitHub Actions issuers: id-token, discovery, JWKS.
    Github,
}

impl Service {
    const ALL: [Service; 8] = [
        Service::Azure,
        Service::Issuer,
        Service::Sts,
        Service::StsX509,
        Service::Iam,
        Service::Storage,
        Service::Kubernetes,
        Service::Github,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Service::Azure => "azure",
            Service::Issuer => "issuer",
            Service::Sts => "sts",
            Service::StsX509 => "sts-x509",
            Service::Iam => "iam",
            Service::Storage => "storage",
            Service::Kubernetes => "kubernetes",
            Service::Github => "github",
        }
    }
}

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// 503 with `Retry-After: 1`, in the service's error shape.
    Unavailable,
    /// The service's own refusal of the credential.
    Refused,
    /// The connection closed without an answer.
    Reset,
}

impl FaultKind {
    const ALL: [(FaultKind, &'static str); 3] =
        [(FaultKind::Unavailable, "unavailable"), (FaultKind::Refused, "refused"), (FaultKind::Reset, "reset")];
}

/// One `--fault`: the service, what happens, and how many requests are left to fail
/// (`None`: all).
#[derive(Debug)]
pub struct Fault {
    service: Service,
    kind: FaultKind,
    left: Option<AtomicU64>,
}

impl Fault {
    /// Parses `SERVICE=KIND[:N]`.
    pub fn parse(spec: &str) -> Result<Fault> {
        let bad = |why: String| {
            Error::usage(format!("--fault {spec:?}: {why}")).hint(
                "write SERVICE=KIND[:N]: SERVICE azure, issuer, sts, sts-x509, iam, storage, kubernetes or github; KIND unavailable, refused or reset; N the number of requests to fail (default: all)",
            )
        };
        let (service, rest) = spec.split_once('=').ok_or_else(|| bad("no '='".into()))?;
        let (kind, count) = match rest.split_once(':') {
            Some((k, n)) => (k, Some(n)),
            None => (rest, None),
        };
        let service = Service::ALL
            .into_iter()
            .find(|s| s.name() == service.trim())
            .ok_or_else(|| bad(format!("{service:?} is not a service")))?;
        let kind = FaultKind::ALL
            .into_iter()
            .find(|(_, name)| *name == kind.trim())
            .map(|(k, _)| k)
            .ok_or_else(|| bad(format!("{kind:?} is not a kind of fault")))?;
        let left = match count {
            None => None,
            Some(n) => match n.trim().parse::<u64>() {
                Ok(n) if n > 0 => Some(AtomicU64::new(n)),
                _ => return Err(bad(format!("{n:?} is not a positive number of requests"))),
            },
        };
        Ok(Fault { service, kind, left })
    }
}

/// Every `--fault`, in the order given.
#[derive(Debug, Default)]
pub struct Faults(Vec<Fault>);

impl Faults {
    /// Parses the `--fault` values.
    pub fn parse(specs: &[String]) -> Result<Faults> {
        specs.iter().map(|s| Fault::parse(s)).collect::<Result<Vec<_>>>().map(Faults)
    }

    /// The fault a request to `service` meets now, if any (counting it against `:N`).
    pub fn take(&self, service: Service) -> Option<FaultKind> {
        self.0.iter().filter(|f| f.service == service).find_map(|f| match &f.left {
            None => Some(f.kind),
            Some(left) => {
                left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).ok().map(|_| f.kind)
            }
        })
    }
}

/// The answer of `service` failing with `kind`; `now` dates Azure's error bodies.
pub fn answer(service: Service, kind: FaultKind, now: i64) -> Response {
    let mut r = match kind {
        FaultKind::Reset => return super::server::reset(),
        FaultKind::Unavailable => unavailable(service, now).header("Retry-After", "1"),
        FaultKind::Refused => refused(service, now),
    };
    r.reason =
        Some(format!("injected_{}_{}", service.name(), if kind == FaultKind::Refused { "refused" } else { "503" }));
    r
}

fn unavailable(service: Service, now: i64) -> Response {
    const DOWN: &str = "The service is currently unavailable.";
    match service {
        Service::Azure => errors::azure(
            now,
            503,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
        ),
        Service::Issuer | Service::Sts | Service::StsX509 => errors::oauth(503, "temporarily_unavailable", DOWN),
        Service::Iam => errors::google(503, "UNAVAILABLE", DOWN, None),
        Service::Storage => errors::storage(503, "Backend Error", "backendError", "backendError"),
        Service::Kubernetes => {
            errors::kubernetes(503, "ServiceUnavailable", "the server is currently unable to handle the request", None)
        }
        Service::Github => errors::github(503, DOWN, "unavailable"),
    }
}

fn refused(service: Service, now: i64) -> Response {
    match service {
        Service::Azure => errors::azure(now, 401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app."),
        Service::Issuer => errors::oauth(401, "invalid_client", "Client authentication failed."),
        Service::Sts => errors::oauth(400, "invalid_grant", "The given credential is rejected by the attribute condition."),
        Service::StsX509 => errors::oauth(400, "invalid_grant", "The certificate chain could not be verified against the trust store of the workload identity pool provider."),
        Service::Iam => errors::iam_denied("iam.serviceAccounts.getAccessToken"),
        Service::Kubernetes => errors::kubernetes(401, "Unauthorized", "Unauthorized", None),
        Service::Github => errors::github(401, "The request token is not valid for any running job.", "bad_token"),
        Service::Storage => errors::storage(403, "The caller does not have storage.objects.get access to the Google Cloud Storage object. Permission 'storage.objects.get' denied on resource (or it may not exist).", "forbidden", "forbidden"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_count() {
        let f =
            Faults::parse(&["azure=unavailable".into(), "sts-x509=reset:2".into(), "iam=refused:1".into()]).unwrap();
        assert_eq!(f.take(Service::Azure), Some(FaultKind::Unavailable));
        assert_eq!(f.take(Service::Azure), Some(FaultKind::Unavailable));
        assert_eq!(f.take(Service::StsX509), Some(FaultKind::Reset));
        assert_eq!(f.take(Service::StsX509), Some(FaultKind::Reset));
        assert_eq!(f.take(Service::StsX509), None);
        assert_eq!(f.take(Service::Iam), Some(FaultKind::Refused));
        assert_eq!(f.take(Service::Iam), None);
        assert_eq!(f.take(Service::Sts), None);
        for bad in ["azure", "sky=reset", "sts=boom", "iam=refused:0", "iam=refused:x"] {
            assert!(Fault::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_have_each_services_shape() {
        let r = answer(Service::Azure, FaultKind::Unavailable, 0);
        assert_eq!(r.status, 503);
        assert!(r.headers.iter().any(|(k, v)| *k == "Retry-After" && v == "1"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error_codes"][0], 90033);
        let body: serde_json::Value =
            serde_json::from_slice(&answer(Service::Sts, FaultKind::Refused, 0).body).unwrap();
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(answer(Service::Iam, FaultKind::Refused, 0).status, 403);
        assert_eq!(answer(Service::Storage, FaultKind::Refused, 0).status, 403);
        assert_eq!(answer(Service::Azure, FaultKind::Refused, 0).status, 401);
        assert!(super::super::server::is_reset(&answer(Service::Iam, FaultKind::Reset, 0)));
    }
}
