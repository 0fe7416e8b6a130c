//! wif: short-lived Google Cloud credentials through Workload Identity Federation, made by a
//! pipeline of small tools and published over mutual TLS. See `wif(7)`.

#![forbid(unsafe_code)]

pub mod azure;
pub mod cli;
pub mod clock;
pub mod document;
pub mod emulator;
pub mod error;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod get;
pub mod hints;
pub mod http;
pub mod iam;
pub mod inspect;
pub mod jwt;
pub mod keys;
pub mod manual;
pub mod metadata;
pub mod oauth;
pub mod secret;
pub mod serve;
pub mod settings;
pub mod sign;
pub mod sts;
pub mod tls;
