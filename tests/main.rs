//! Integration tests: the binaries run as users run them, against servers on loopback.

mod common;
mod get;
mod inspect;
mod manual;
mod pipeline;
