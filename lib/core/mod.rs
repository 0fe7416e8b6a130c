//! The core: what every part of wif needs and that knows nothing of any tool or protocol —
//! errors and exit codes, diagnostics, secrets, the JSON document and its sections, files,
//! keys and certificates, time, settings and TLS plumbing.

pub mod clock;
pub mod diag;
pub mod document;
pub mod error;
pub mod files;
pub mod help;
pub mod jwt;
pub mod keys;
pub mod secret;
pub mod settings;
pub mod spread;
pub mod tls;
pub mod token;
pub mod wire;
