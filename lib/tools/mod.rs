//! The tools: each a thin command-line module over the library below it. Tools are peers: none
//! imports another.

pub mod azure;
pub mod get;
pub mod impersonate;
pub mod inspect;
pub mod serve;
pub mod sign;
pub mod sts;

/// Every binary of the package.
pub const ALL_TOOLS: &[&str] =
    &["wif-sign", "wif-azure", "wif-sts", "wif-impersonate", "wif-serve", "wif-get", "wif-inspect", "wif-emulate"];
