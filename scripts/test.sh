#!/usr/bin/env bash
# The project's test command: formatting, lints, and every test (unit + integration).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
