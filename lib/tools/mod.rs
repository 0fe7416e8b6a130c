//! The tools: each a thin command-line module over the library below it. Tools are peers: none
//! imports another.

pub mod azure;
pub mod get;
pub mod impersonate;
pub mod inspect;
pub mod serve;
pub mod sign;
pub mod sts;
