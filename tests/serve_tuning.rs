//! wif-serve's start-up tuning of glibc's allocator (bin/wif-serve.rs): it executes itself
//! once more with `GLIBC_TUNABLES`, keeps its name, and leaves an operator's own setting alone.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use crate::common::pki_file;
use crate::common::server::*;
use std::io::BufRead;
use std::process::{Command, Stdio};

const TOKEN: &str = "ya29.c.tuning-test-token-7Hq";

/// The environment the process `pid` was last executed with, as /proc shows it.
fn environ(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0).filter(|v| !v.is_empty()).map(|v| String::from_utf8_lossy(v).into_owned()).collect()
}

fn name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim().to_string()
}

#[test]
fn wif_serve_runs_with_its_allocator_tuned_under_its_own_name() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let srv = Server::start(&tok, &[]);
    let env = environ(srv.pid());
    let tunables =
        env.iter().find_map(|e| e.strip_prefix("GLIBC_TUNABLES=")).expect("not executed again with GLIBC_TUNABLES");
    // glibc parses the variable where it lies, ending it at the first ':' (the rest,
    // glibc.malloc.tcache_count=0, is parsed all the same: scripts/bench/analysis.md measures it).
    assert!(tunables.starts_with("glibc.malloc.arena_max="), "{tunables}");
    assert!(env.iter().any(|e| e == "WIF_SERVE_TUNED=1"), "{env:?}");
    // Executed by its own file's path, not /proc/self/exe: pgrep and killall still find it.
    assert_eq!(name(srv.pid()), "wif-serve");
    srv.finish_checking_secrecy(&[TOKEN]);
}

#[test]
fn an_operators_own_tunables_win_and_nothing_is_executed_again() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("wif-serve"))
        .args(server_args(&pki_file("ca-chain.crt"), &tok))
        .env("GLIBC_TUNABLES", "glibc.malloc.check=0")
        .env_remove("WIF_SERVE_TUNED")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("\"listening\""), "{first}");
    let env = environ(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert!(env.iter().any(|e| e == "GLIBC_TUNABLES=glibc.malloc.check=0"), "{env:?}");
    assert!(!env.iter().any(|e| e.starts_with("WIF_SERVE_TUNED=")), "executed again: {env:?}");
}
