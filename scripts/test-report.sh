#!/usr/bin/env bash
# The end of scripts/test.sh's run: what passed, and which tests did not run, plainly.
#
# usage: scripts/test-report.sh CARGO_TEST_OUTPUT SKIPS [SETUP]
#   CARGO_TEST_OUTPUT  what `cargo test` printed on stdout (its "test result:" lines)
#   SKIPS              the tests' records of what they could not run (WIF_TEST_SKIPS: one
#                      line TEST<TAB>MISSING<TAB>HINT each, tests/common/mod.rs `not_run`)
#   SETUP              one line for each thing scripts/test.sh could not set up (optional)
#
# cargo shows a test that returned early for want of a tool as passed; here it is counted
# as skipped, never as passed. Prints each such test with what it lacked, what test.sh
# could not set up, and one command that would make them run (the Debian packages of
# every hint and set-up problem together, then the test command, as root where a test
# needs root). The last
# line is "tests: N passed, N failed" with ", N skipped" when any test did not run.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '4,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
output=$1 skips=$2 setup=${3:-/dev/null}
[ -f "$skips" ] || skips=/dev/null
[ -f "$setup" ] || setup=/dev/null

read -r passed failed < <(awk '
  /^test result: / {
    for (i = 1; i <= NF; i++) {
      if ($(i + 1) ~ /^passed/) p += $i
      if ($(i + 1) ~ /^failed/) f += $i
    }
  }
  END { print p + 0, f + 0 }' "$output")

# One line per test that did not run (all or part of it): "TEST: MISSING — HINT".
mapfile -t lines < <(awk -F '\t' '
  NF >= 3 && !seen[$1 FS $2]++ {
    if ($1 in text) t = text[$1] "; " $2 " — " $3
    else { order[n++] = $1; t = $2 " — " $3 }
    text[$1] = t
  }
  END { for (i = 0; i < n; i++) print order[i] ": " text[order[i]] }' "$skips")
mapfile -t problems < <(grep -v '^[[:space:]]*$' "$setup" || true)
skipped=${#lines[@]}

if [ "$skipped" -gt 0 ] || [ ${#problems[@]} -gt 0 ]; then
  echo
  echo "== Tests that did not run"
fi
if [ ${#problems[@]} -gt 0 ]; then
  echo "scripts/test.sh could not set up:"
  printf '  %s\n' "${problems[@]}"
fi
if [ "$skipped" -gt 0 ]; then
  echo "$skipped test(s) did not run, in whole or in part (cargo counts them as passed):"
  printf '  %s\n' "${lines[@]}"

  # The hints as one command: every Debian package named, then the test command (as root
  # when a test needs root). Hints that are no command are listed apart.
  packages=() manual=() as_root=0
  while IFS= read -r hint; do
    case $hint in
      "sudo apt-get install -y "*)
        for p in ${hint#sudo apt-get install -y }; do
          case " ${packages[*]} " in *" $p "*) ;; *) packages+=("$p") ;; esac
        done ;;
      "sudo scripts/test.sh"*) as_root=1 ;;
      "scripts/test.sh"*) ;;
      *) case " ${manual[*]} " in *" $hint "*) ;; *) manual+=("$hint") ;; esac ;;
    esac
  done < <(cut -f 3 "$skips"; grep -o 'sudo apt-get install -y [a-z0-9.+ -]*[a-z0-9]' "$setup" || true)
  sudo=sudo
  [ "$(id -u)" != 0 ] || sudo=""
  run="scripts/test.sh"
  [ $as_root = 0 ] || run="sudo scripts/test.sh"
  install=""
  [ ${#packages[@]} = 0 ] || install="${sudo:+$sudo }apt-get install -y ${packages[*]} && "
  echo "To make them run:"
  echo "  $install$run"
  if [ ${#manual[@]} -gt 0 ]; then
    echo "Not installable by that command:"
    printf '  %s\n' "${manual[@]}"
  fi
fi
echo
passed=$((passed > skipped ? passed - skipped : 0))
if [ "$skipped" -gt 0 ]; then
  echo "tests: $passed passed, $failed failed, $skipped skipped"
else
  echo "tests: $passed passed, $failed failed"
fi
