//! Integration tests: the binaries run as users run them, against servers on loopback.

mod architecture;
mod broker;
mod broker_attacks;
mod common;
mod emulator;
mod failover;
mod fuzz_corpus;
mod get;
mod inspect;
mod manual;
mod metadata;
mod metrics;
mod pipeline;
mod refresh;
mod reliability;
mod scripts;
mod secrets;
mod security;
mod seed;
mod serve;
mod server_abuse;
mod skew;
mod storage;
mod x509;
mod x509_emulator;
mod x509_interop;
