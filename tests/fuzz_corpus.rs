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

#[test]
fn the_fuzz_corpora_and_regressions_never_panic() {
    for (target, run) in
        [("document", wif::fuzzing::document as fn(&[u8])), ("keys", wif::fuzzing::keys), ("jwt", wif::fuzzing::jwt)]
    {
        let n = replay(target, run);
        assert!(n >= 3, "the {target} corpus is checked in ({n} inputs)");
    }
}
