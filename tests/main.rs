//! Integration tests: the binaries run as users run them, against servers on loopback.

mod common;
mod manual;
mod pipeline;
mod serve;
