//! Clients of the protocols wif speaks — OAuth 2.0 answers, Azure AD / OIDC issuers, Google STS
//! and IAM Credentials — with no command line in them, usable by another Rust program.

pub mod assertion;
pub mod azure;
pub mod boundary;
pub mod external_account;
pub mod hints;
pub mod iam;
pub mod oauth;
pub mod sts;
pub mod subject;
pub mod x509;
