//! Replays the fuzz corpus and every crash the fuzzers found (`fuzz/corpus/TARGET`,
//! `fuzz/regressions/TARGET`) through the fuzz targets' code on every `cargo test`, so a
//! fixed crash stays fixed without a nightly toolchain. See scripts/fuzz.sh.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        for e in entries.flatten() {
            let data = std::fs::read(e.path()).unwrap();
            let r = std::panic::catch_unwind(|| run(&data));
            assert!(r.is_ok(), "fuzz input {} makes the {target} target panic", e.path().display());
            n += 1;
        }
    }
    n
}

/// A fuzz target's body: bytes in, no panic.
type Target = fn(&[u8]);

/// Every cargo-fuzz target and the library function it runs.
const TARGETS: &[(&str, Target)] = &[
    ("document", wif::fuzzing::document),
    ("keys", wif::fuzzing::keys),
    ("jwt", wif::fuzzing::jwt),
    ("http_request", wif::fuzzing::http_request),
    ("emulator_request", wif::fuzzing::emulator_request),
    ("cel", wif::fuzzing::cel),
];

#[test]
fn every_fuzz_target_is_replayed_here() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml")).unwrap();
    let mut declared: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"'))
        .filter(|n| *n != "wif-fuzz")
        .collect();
    let mut replayed: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    declared.sort();
    replayed.sort();
    assert_eq!(declared, replayed);
}

#[test]
fn the_fuzz_corpora_and_regressions_never_panic() {
    for &(target, run) in TARGETS {
        let n = replay(target, run);
        assert!(n >= 3, "the {target} corpus is checked in ({n} inputs)");
    }
}
