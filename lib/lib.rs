//! wif: short-lived Google Cloud credentials through Workload Identity Federation, made by a
//! pipeline of small tools and published over mutual TLS. See `wif(7)` and docs/ARCHITECTURE.md.
//!
//! The modules are layers; imports point down only:
//! - [`tools`]: the command-line tools, peers that never import one another, and the
//!   [`emulator`] beside them;
//! - [`cli`]: what the tools share on the command line (document in, document out, exit codes);
//! - [`protocol`]: clients of Azure AD / OIDC issuers, STS and IAM Credentials (no clap);
//! - [`http`] (the one HTTP client) and [`server`] (the one HTTP server core);
//! - [`core`]: knows nothing of any tool.

#![forbid(unsafe_code)]

pub mod cli;
pub mod core;
pub mod emulator;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod protocol;
pub mod server;
pub mod tools;
