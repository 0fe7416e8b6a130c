#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 60 s each), growing the corpus in
# fuzz/corpus/TARGET. A crash is saved by libFuzzer under fuzz/artifacts/TARGET/; copy it to
# fuzz/regressions/TARGET/ once fixed, so `cargo test` replays it forever
# (tests/fuzz_corpus.rs). Needs a nightly toolchain and cargo-fuzz (installed if missing).
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^wif-fuzz$')
fi
rustup toolchain list | grep -q '^nightly' || { echo "fuzz.sh: a nightly toolchain is needed (rustup toolchain install nightly)" >&2; exit 2; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
failed=()
for t in "${targets[@]}"; do
  echo "== fuzzing $t for ${secs}s" >&2
  # -rss_limit_mb keeps a parser that allocates without bound from passing unnoticed.
  if ! cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=1024 -max_len=65536 \
      2> >(grep -E '^(#[0-9]+ +DONE|==|SUMMARY|Done)' >&2); then
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in: ${failed[*]} (see fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz.sh: no crash in ${targets[*]} (${secs}s each)" >&2
