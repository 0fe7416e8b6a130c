//! Integration tests: the binaries run as users run them, against servers on loopback.

mod common;
mod emulator;
mod manual;
mod pipeline;
