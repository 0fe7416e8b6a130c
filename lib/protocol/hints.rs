//! Hints for failures whose cause is known: Azure AD's AADSTS codes, Google STS errors, IAM
//! permission errors, certificate problems, and a clock skew behind a time refusal (measured
//! from the answer's `Date`). Each names the likely cause and what to try.

use crate::core::clock::{self, Skew};
use crate::http::Response;
use crate::protocol::assertion::CLOCK_SKEW_MARGIN;

/// A hint for an Azure AD error code (the number after `AADSTS`).
pub fn aadsts(code: u64) -> Option<&'static str> {
    Some(match code {
        700016 => "the application (client id) is not registered in this tenant: check --client-id and --tenant-id, and that the app was not deleted",
        7000215 => "the client secret is wrong or expired: make a new secret under Certificates & secrets and update the secret file",
        7000222 => "the client secret has expired: make a new one under Certificates & secrets",
        700024 => "the client assertion is outside its valid time range: check this machine's clock (timedatectl) and --lifetime",
        700027 => "the assertion's signature or certificate thumbprint is not registered for the app: upload the certificate (wif-inspect --cert CERT shows its thumbprint) under Certificates & secrets",
        700023 => "the assertion's audience is wrong: it must be the exact token endpoint (check --authority and --tenant-id)",
        70011 => "the scope is invalid: for client credentials use RESOURCE/.default, e.g. api://APP_ID/.default",
        500011 => "the resource (scope or --resource) is not found in the tenant: check the Application ID URI and that its service principal exists in this tenant",
        50196 => "Azure AD detected a request loop: the same request was sent too often; refresh less frequently",
        90002 | 900023 => "the tenant id is not valid or does not exist: check --tenant-id",
        700025 => "this is a public client; client assertions need a confidential app registration",
        7000218 => "the request body must contain client_assertion or client_secret",
        _ => return None,
    })
}

/// The clock skew an answer's `Date` shows, measured as it arrives.
pub fn answer_skew(resp: &Response) -> Option<Skew> {
    Skew::measure(resp.header("date")?, clock::now_unix())
}

/// Whether a skew explains a time refusal: more than the assertion's back-dating, which
/// absorbs anything smaller.
pub fn skew_matters(skew: Skew) -> bool {
    skew.secs().abs() > CLOCK_SKEW_MARGIN
}

/// The largest skew wif-azure signs again for (a day): a `Date` further off is more likely a
/// broken or hostile server than a machine's clock, and an assertion signed at it would be
/// useless anywhere else.
pub const MAX_RESIGN_SKEW: i64 = 24 * 3600;

/// Whether a skew is small enough to sign again at the server's time ([`MAX_RESIGN_SKEW`]).
pub fn skew_plausible(skew: Skew) -> bool {
    skew.secs().unsigned_abs() <= MAX_RESIGN_SKEW.unsigned_abs()
}

/// The hint when the answer's `Date` is further off than [`MAX_RESIGN_SKEW`]: nothing was
/// signed again.
pub fn assertion_skew_implausible(skew: Skew, server: &str) -> String {
    format!(
        "{}, by the Date of its answer: more than a day ({MAX_RESIGN_SKEW} s), so the assertion was not signed again at that time; check this machine's clock (timedatectl) and that {server} is the token endpoint you meant",
        skew.describe(server)
    )
}

/// The hint when the assertion was refused for a skewed clock and cannot be signed again:
/// it carries no `signer` recipe (it was not made by wif-sign).
pub fn assertion_skew_no_signer(skew: Skew, server: &str) -> String {
    format!(
        "{}, more than the {CLOCK_SKEW_MARGIN} s the assertion is back-dated by: fix the clock (chrony/ntp; timedatectl shows it); the assertion has no signer recipe (assertion.signer, which wif-sign writes), so it could not be signed again at the server's time",
        skew.describe(server)
    )
}

/// The hint when the assertion, signed again at the server's time, was refused again.
pub fn assertion_skew_persists(skew: Skew, server: &str) -> String {
    format!(
        "{}; the assertion signed again at the server's time was refused too: fix the clock (chrony/ntp), then check the assertion's lifetime (--lifetime) and the certificate's validity",
        skew.describe(server)
    )
}

/// The hint for an STS refusal of the subject token as expired or not yet valid when the
/// answer's `Date` shows this machine's clock off (a subject token that seemed fresh here).
pub fn sts_time_skew(error: &str, description: &str, skew: Option<Skew>, server: &str) -> Option<String> {
    let skew = skew.filter(|s| skew_matters(*s))?;
    matches!(StsRefusal::of(error, description)?, StsRefusal::Expired | StsRefusal::NotYetValid).then(|| {
        format!(
            "{}: the subject token is judged by STS's clock, not this one's (it is the identity provider's; there is nothing to sign again): fix the clock (chrony/ntp) and run the pipeline again from wif-azure",
            skew.describe(server)
        )
    })
}

/// Why Google STS refused an exchange. STS answers with OAuth error codes, but one code
/// (`invalid_grant`, `invalid_request`) covers several causes that only its description tells
/// apart: the codes that name one cause (`invalid_target`, `invalid_scope`) decide alone, the
/// description tells the others apart, and `invalid_request` with no known description is a
/// malformed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StsRefusal {
    /// The pool or provider does not exist, is disabled or deleted.
    NoProvider,
    /// The scope is not one STS grants.
    BadScope,
    /// The audience is not a provider's resource name.
    AudienceFormat,
    /// The token's `aud` is not an allowed audience of the provider.
    AudienceNotAllowed,
    /// The token's `iss` is not the provider's issuer.
    IssuerMismatch,
    /// The provider's attribute condition refused the token.
    ConditionFailed,
    /// The token has expired.
    Expired,
    /// The token is not valid yet: its `iat`/`nbf` is in STS's future.
    NotYetValid,
    /// The token's signature did not verify with the issuer's keys.
    Signature,
    /// Some field of the request is missing or malformed.
    Malformed,
    /// X.509: no client certificate reached STS in the TLS handshake.
    NoClientCertificate,
    /// X.509: the subject token's leaf is not the certificate of the handshake.
    CertificateMismatch,
    /// X.509: the chain does not lead to an anchor of the provider's trust store.
    CertificateUntrusted,
    /// X.509: a certificate of the chain has expired or is not valid yet.
    CertificateTime,
    /// X.509: a key type or size outside Google's limits.
    CertificateKey,
    /// X.509: the chain is longer than Google allows.
    ChainTooLong,
    /// The subject token type does not fit the provider (mTLS to an OIDC provider, or a JWT
    /// to an X.509 provider).
    ProviderKind,
}

impl StsRefusal {
    /// The refusal an STS error code (and its description) names, if it is a known one.
    pub fn of(error: &str, description: &str) -> Option<StsRefusal> {
        let d = description.to_ascii_lowercase();
        let has = |word: &str| d.contains(word);
        if let Some(x509) = StsRefusal::of_certificate(&d) {
            return Some(x509);
        }
        Some(if error == "invalid_target" || has("pool") && (has("disabled") || has("not found") || has("deleted")) {
            StsRefusal::NoProvider
        } else if error == "invalid_scope" {
            StsRefusal::BadScope
        } else if has("audience") && (has("format") || has("invalid value")) {
            StsRefusal::AudienceFormat
        } else if has("audience") {
            StsRefusal::AudienceNotAllowed
        } else if has("issuer") || has("iss ") {
            StsRefusal::IssuerMismatch
        } else if has("attribute condition") || has("condition") {
            StsRefusal::ConditionFailed
        } else if has("in the future") || has("not yet valid") {
            StsRefusal::NotYetValid
        } else if has("expired") || has("stale") || has("exp") && has("time") {
            StsRefusal::Expired
        } else if has("signature") || has("jwk") || has("key") {
            StsRefusal::Signature
        } else if error == "invalid_request" {
            StsRefusal::Malformed
        } else {
            return None;
        })
    }

    /// The X.509 refusals, told apart by the (lowercase) description.
    fn of_certificate(d: &str) -> Option<StsRefusal> {
        let has = |word: &str| d.contains(word);
        if has("only supported for x.509") || has("not supported for x.509") {
            return Some(StsRefusal::ProviderKind);
        }
        if !has("certificate") {
            return None;
        }
        Some(if has("handshake") && (has("no client certificate") || has("not presented") || has("without")) {
            StsRefusal::NoClientCertificate
        } else if has("does not match") {
            StsRefusal::CertificateMismatch
        } else if has("too long") || has("depth") {
            StsRefusal::ChainTooLong
        } else if has("trust store") || has("trust anchor") || has("could not be verified") {
            StsRefusal::CertificateUntrusted
        } else if has("expired") || has("not yet valid") || has("validity") {
            StsRefusal::CertificateTime
        } else if has("key") && (has("supported") || has("bits")) {
            StsRefusal::CertificateKey
        } else {
            return None;
        })
    }

    /// What to check.
    pub fn hint(self) -> &'static str {
        match self {
            StsRefusal::NoClientCertificate => "STS saw no client certificate: the X.509 path must reach the mTLS endpoint (https://sts.mtls.googleapis.com/v1/token) directly; a proxy that ends TLS drops the certificate",
            StsRefusal::CertificateMismatch => "the certificate list sent is not led by the certificate of the TLS handshake: give the same certificate to --cert that the key belongs to, with only intermediates in --trust-chain",
            StsRefusal::CertificateUntrusted => "the chain does not lead to an anchor of the provider's trust store: give the intermediate CAs with --trust-chain, or add the issuing CA to the trust store (gcloud iam workload-identity-pools providers update-x509 … --trust-store-config-path=trust_store.yaml)",
            StsRefusal::CertificateTime => "a certificate of the chain has expired or is not valid yet by STS's clock: renew it from your CA (wif-inspect --cert shows its dates), and check this machine's clock",
            StsRefusal::CertificateKey => "Google accepts RSA keys of 2048 to 4096 bits and ECDSA P-256 or P-384 keys in the chain: reissue the certificate with such a key",
            StsRefusal::ChainTooLong => "Google accepts at most 5 certificates from the leaf to a trust anchor: shorten the chain, or put an intermediate CA in the trust store as an anchor",
            StsRefusal::ProviderKind => "the audience names a provider of the other kind: the X.509 path (--x509) needs a provider made with create-x509, a subject token needs an OIDC or SAML provider",
            StsRefusal::NoProvider => "the workload identity pool or provider does not exist, is disabled or deleted: check --audience (gcloud iam workload-identity-pools providers describe …)",
            StsRefusal::BadScope => "the scope is not valid for STS: use https://www.googleapis.com/auth/cloud-platform",
            StsRefusal::AudienceFormat => "the audience must look like //iam.googleapis.com/projects/PROJECT_NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER (a project number, not the project id)",
            StsRefusal::AudienceNotAllowed => "the subject token's `aud` is not an allowed audience of the provider: compare `wif-inspect` of the Azure token with the provider's allowed audiences (by default the provider's full resource name)",
            StsRefusal::IssuerMismatch => "the subject token's `iss` does not match the provider's issuer URI: v1 Azure tokens use https://sts.windows.net/TENANT/, v2 tokens https://login.microsoftonline.com/TENANT/v2.0",
            StsRefusal::ConditionFailed => "the provider's attribute condition rejected the mapped attributes: check the condition against the token's claims (wif-inspect), or on the X.509 path against the certificate (openssl x509 -noout -subject -issuer -ext subjectAltName)",
            StsRefusal::Expired => "the subject token has expired: run the pipeline from the start (wif-azure) and check this machine's clock",
            StsRefusal::NotYetValid => "the subject token is not valid yet by STS's clock: the identity provider's clock (or this machine's, for a token made here) is ahead; check the clocks",
            StsRefusal::Signature => "STS could not verify the token's signature with the issuer's published keys: check the provider's issuer URI (and any uploaded JWKS)",
            StsRefusal::Malformed => "a required field is missing or malformed: check --audience, --subject-token-type and the subject token",
        }
    }
}

/// A hint for a Google STS OAuth error, from its code and description (see [`StsRefusal`]).
pub fn sts(error: &str, description: &str) -> Option<String> {
    StsRefusal::of(error, description).map(|r| r.hint().to_string())
}

/// Why IAM Credentials refused, from its canonical status code (`PERMISSION_DENIED`, …), or
/// the HTTP status when the answer names none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IamRefusal {
    /// The caller may not impersonate the service account (or it does not exist).
    PermissionDenied,
    /// The bearer token was not accepted.
    Unauthenticated,
    /// The service account does not exist.
    NotFound,
    /// The lifetime asked for was refused (`INVALID_ARGUMENT` about the lifetime).
    LifetimeRefused,
    /// Another field of the request was refused.
    InvalidArgument,
}

impl IamRefusal {
    /// The refusal a Google API error names: by its `status`, else by the HTTP status; an
    /// `INVALID_ARGUMENT` is about the lifetime when its `message` says so (IAM has no finer
    /// code for it).
    pub fn of(status: Option<&str>, message: &str, http_status: u16) -> Option<IamRefusal> {
        Some(match (status, http_status) {
            (Some("PERMISSION_DENIED"), _) | (None, 403) => IamRefusal::PermissionDenied,
            (Some("UNAUTHENTICATED"), _) | (None, 401) => IamRefusal::Unauthenticated,
            (Some("NOT_FOUND"), _) => IamRefusal::NotFound,
            (Some("INVALID_ARGUMENT"), _) if message.to_ascii_lowercase().contains("lifetime") => {
                IamRefusal::LifetimeRefused
            }
            (Some("INVALID_ARGUMENT"), _) => IamRefusal::InvalidArgument,
            _ => return None,
        })
    }
}

/// A hint for an IAM refusal when impersonating `service_account`; `principal` is the
/// federated principal when known.
pub fn iam(refusal: IamRefusal, service_account: &str, principal: Option<&str>) -> Option<String> {
    Some(match refusal {
        IamRefusal::PermissionDenied => iam_permission_denied(service_account, principal),
        IamRefusal::Unauthenticated => "IAM did not accept the federated token: it may have expired or be for another scope; run the pipeline again".to_string(),
        IamRefusal::NotFound => format!("the service account {service_account} does not exist (check the email and project)"),
        // Without the org-policy exception IAM refuses any lifetime over an hour.
        IamRefusal::LifetimeRefused => "lifetimes over 3600s need the org policy constraints/iam.allowServiceAccountCredentialLifetimeExtension for this service account".to_string(),
        IamRefusal::InvalidArgument => return None,
    })
}

/// The principal string IAM sees for a federated subject, from the STS audience and the
/// subject token's `sub` (only for workload identity pools).
pub fn principal_for(audience: &str, sub: &str) -> Option<String> {
    let rest = audience.strip_prefix("//iam.googleapis.com/")?;
    let pool_part = rest.split("/providers/").next()?;
    if !pool_part.contains("/workloadIdentityPools/") {
        return None;
    }
    Some(format!("principal://iam.googleapis.com/{pool_part}/subject/{sub}"))
}

/// A hint for IAM `PERMISSION_DENIED` on impersonation.
fn iam_permission_denied(service_account: &str, principal: Option<&str>) -> String {
    let who = principal.unwrap_or("principal://iam.googleapis.com/projects/PROJECT_NUMBER/locations/global/workloadIdentityPools/POOL/subject/SUBJECT");
    format!(
        "the federated principal may not impersonate {service_account}: grant it roles/iam.workloadIdentityUser: gcloud iam service-accounts add-iam-policy-binding {service_account} --role=roles/iam.workloadIdentityUser --member=\"{who}\" (and check the service account exists)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_have_hints() {
        for c in [700016, 7000215, 700024, 700027, 70011, 500011, 50196] {
            assert!(aadsts(c).is_some(), "{c}");
        }
        assert!(aadsts(1).is_none());
    }

    #[test]
    fn sts_hints_by_description() {
        assert!(sts("invalid_grant", "The audience in ID Token [x] does not match the expected audience.")
            .unwrap()
            .contains("allowed audience"));
        assert!(sts("invalid_grant", "The issuer in ID Token does not match").unwrap().contains("iss"));
        assert!(sts("invalid_grant", "The given credential is rejected by the attribute condition.")
            .unwrap()
            .contains("condition"));
        assert!(sts("invalid_grant", "ID Token issued at 1 has expired").unwrap().contains("expired"));
        assert!(sts("invalid_request", "Invalid value for \"audience\". This value should be the full resource name")
            .unwrap()
            .contains("PROJECT_NUMBER"));
        assert!(sts("invalid_target", "The target service indicated by the \"audience\" parameters is invalid.")
            .unwrap()
            .contains("does not exist"));
    }

    #[test]
    fn x509_refusals_by_description() {
        let of = |d: &str| StsRefusal::of("invalid_grant", d);
        let cases = [
            ("No client certificate was presented in the TLS handshake.", StsRefusal::NoClientCertificate),
            ("The leaf certificate of the subject_token does not match the client certificate presented in the mTLS handshake.", StsRefusal::CertificateMismatch),
            ("The certificate chain could not be verified against the trust store of the workload identity pool provider.", StsRefusal::CertificateUntrusted),
            ("The certificate CN=x (subject_token[0]) has expired: its validity ended at 2020-02-01T00:00:00Z.", StsRefusal::CertificateTime),
            ("The certificate CN=x has an RSA 1024-bit key; only RSA keys of 2048 to 4096 bits are supported.", StsRefusal::CertificateKey),
            ("The certificate chain is too long: at most 5 certificates may lead to a trust anchor.", StsRefusal::ChainTooLong),
            ("urn:ietf:params:oauth:token-type:mtls is only supported for X.509 providers", StsRefusal::ProviderKind),
        ];
        for (description, refusal) in cases {
            assert_eq!(of(description), Some(refusal), "{description}");
        }
        // A subject token's expiry is not a certificate's.
        assert_eq!(of("ID Token issued at 1 has expired"), Some(StsRefusal::Expired));
        assert!(StsRefusal::CertificateUntrusted.hint().contains("--trust-chain"));
    }

    #[test]
    fn skew_hints_only_for_time_refusals_beyond_the_back_dating() {
        let behind = Skew::measure("Thu, 01 Jan 2026 00:10:00 GMT", 1_767_225_600);
        let slight = Skew::measure("Thu, 01 Jan 2026 00:00:20 GMT", 1_767_225_600);
        let expired = "ID Token issued at 1 has expired";
        let hint = sts_time_skew("invalid_grant", expired, behind, "sts.example").unwrap();
        assert!(hint.starts_with("this machine's clock is 600 s behind sts.example's"), "{hint}");
        let future = "The ID Token's iat is in the future; check the clocks.";
        assert_eq!(StsRefusal::of("invalid_grant", future), Some(StsRefusal::NotYetValid));
        assert!(sts_time_skew("invalid_grant", future, behind, "s").is_some());
        assert_eq!(sts_time_skew("invalid_grant", expired, slight, "s"), None);
        assert_eq!(sts_time_skew("invalid_grant", expired, None, "s"), None);
        assert_eq!(sts_time_skew("invalid_grant", "The audience does not match", behind, "s"), None);
        assert!(assertion_skew_no_signer(behind.unwrap(), "login").contains("600 s behind login's"));
        assert!(skew_plausible(behind.unwrap()));
        let far = Skew::measure("Fri, 31 Dec 9999 23:59:59 GMT", 1_767_225_600).unwrap();
        let past = Skew::measure("Mon, 01 Jan 0001 00:00:00 GMT", 1_767_225_600).unwrap();
        assert!(!skew_plausible(far) && !skew_plausible(past));
        assert!(assertion_skew_implausible(far, "login").contains("not signed again"));
    }

    #[test]
    fn iam_refusals_by_status_code() {
        assert_eq!(IamRefusal::of(Some("PERMISSION_DENIED"), "", 400), Some(IamRefusal::PermissionDenied));
        assert_eq!(IamRefusal::of(None, "", 403), Some(IamRefusal::PermissionDenied));
        assert_eq!(IamRefusal::of(None, "", 401), Some(IamRefusal::Unauthenticated));
        assert_eq!(IamRefusal::of(Some("FAILED_PRECONDITION"), "", 403), None);
        let lifetime = "The lifetime requested exceeds the maximum allowed.";
        assert_eq!(IamRefusal::of(Some("INVALID_ARGUMENT"), lifetime, 400), Some(IamRefusal::LifetimeRefused));
        assert_eq!(IamRefusal::of(Some("INVALID_ARGUMENT"), "Invalid scope", 400), Some(IamRefusal::InvalidArgument));
        let sa = "sa@p.iam.gserviceaccount.com";
        assert!(iam(IamRefusal::PermissionDenied, sa, None).unwrap().contains("roles/iam.workloadIdentityUser"));
        assert!(iam(IamRefusal::LifetimeRefused, sa, None).unwrap().contains("org policy"));
        assert_eq!(iam(IamRefusal::InvalidArgument, sa, None), None);
    }

    #[test]
    fn principal_from_audience_and_sub() {
        let aud = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/azure";
        assert_eq!(
            principal_for(aud, "abc").unwrap(),
            "principal://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/subject/abc"
        );
        assert!(principal_for("nonsense", "abc").is_none());
    }
}
