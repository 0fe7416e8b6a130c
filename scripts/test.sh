#!/usr/bin/env bash
# The project's test command: formatting, lints, and every test (unit + integration).
#
# It sets up what the interoperability tests need itself, without root, under cargo's
# target directory (CARGO_TARGET_DIR or cargo's configuration decide where that is):
#   TARGET/interop/venv   a Python virtual environment with .ci/requirements.txt (pip),
#                         first on PATH for the tests
#   TARGET/interop/node   Google's Node.js library from tests/interop/node (npm ci)
#   TARGET/interop/go     the Go client, built by the tests from Debian's Go packages
# Each is made again only when its requirement files (or the interpreter) change. When pip
# or npm cannot reach their registry it says so and goes on.
#
# A test that cannot run here (a program missing, not root) records itself in
# TARGET/test-skips.txt; the end of the run lists those tests, what they lacked and the one
# command that would make them run, and the last line counts them as skipped, not passed.
# Exit status: cargo's (non-zero when a check or a test failed).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# shellcheck source=scripts/json-string.sh
. scripts/json-string.sh

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

target=$(cargo metadata --format-version 1 --no-deps --locked | json_string target_directory)
[ -n "$target" ] || { echo "test.sh: cargo metadata named no target directory" >&2; exit 1; }
interop=$target/interop
mkdir -p "$interop"
setup=$interop/setup-problems.txt
: >"$setup"
# What the tests read (tests/common): where these live, and where to record a skip.
export WIF_INTEROP_DIR=$interop WIF_TEST_SKIPS=$target/test-skips.txt
: >"$WIF_TEST_SKIPS"

# Something set-up could not do: said now, and again in the report at the end.
problem() {
  echo "test.sh: $*" >&2
  echo "$*" >>"$setup"
}

# The stamp of an environment: the interpreter's version and its requirement files' hash.
stamp() { # stamp VERSION FILE...
  local version=$1
  shift
  printf '%s %s\n' "$version" "$(cat "$@" | sha256sum | cut -d ' ' -f 1)"
}

# ready DIR STAMP: whether DIR was made from these requirements (its .wif-stamp says so).
ready() { [ "$(cat "$1/.wif-stamp" 2>/dev/null)" = "$2" ]; }

python_env() {
  local venv=$interop/venv req=.ci/requirements.txt now
  if ! command -v python3 >/dev/null; then
    problem "Python: no python3 (sudo apt-get install -y python3 python3-venv)"
    return
  fi
  now=$(stamp "$(python3 --version 2>&1)" "$req")
  if ! ready "$venv" "$now"; then
    echo "== Python packages for the interop tests: $req into $venv"
    rm -rf "$venv"
    if ! python3 -m venv "$venv"; then
      problem "Python: python3 -m venv failed, see above (on Debian: sudo apt-get install -y python3-venv)"
      rm -rf "$venv"
      return
    fi
    if ! "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check --timeout 30 --retries 1 -r "$req"; then
      problem "Python: pip could not install $req (is PyPI reachable? pip's error is above); the tests use the system python3"
      rm -rf "$venv"
      return
    fi
    echo "$now" >"$venv/.wif-stamp"
  fi
  PATH=$venv/bin:$PATH
}

node_env() {
  local dir=$interop/node src=tests/interop/node now
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    problem "Node.js: node or npm is missing (sudo apt-get install -y nodejs npm)"
    return
  fi
  now=$(stamp "node $(node --version)" "$src/package.json" "$src/package-lock.json")
  if ! ready "$dir" "$now"; then
    echo "== Node.js packages for the interop tests: npm ci from $src in $dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$src/package.json" "$src/package-lock.json" "$dir/"
    if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error --fetch-retries=1 --fetch-retry-maxtimeout=10000); then
      problem "Node.js: npm ci could not install $src/package-lock.json (is the npm registry reachable? npm's error is above)"
      rm -rf "$dir"
      return
    fi
    echo "$now" >"$dir/.wif-stamp"
  fi
}

python_env
node_env
export PATH

status=0
cargo test --locked | tee "$target/test-output.txt" || status=$?
scripts/test-report.sh "$target/test-output.txt" "$WIF_TEST_SKIPS" "$setup"
if [ "$status" != 0 ]; then
  echo "test.sh: FAILED: cargo test exited with status $status (see above)"
fi
exit "$status"
