# shellcheck shell=bash
# json_string KEY: the string value of "KEY" in each line of JSON on stdin that has one,
# decoded (the escapes a path can carry: \" \\ \/), one a line. For cargo's one-line JSON
# (build messages, `cargo metadata`), where a fresh machine may have no JSON tool; a value
# with another escape fails (status 1) rather than be misread.
# Sourced by scripts/demo.sh and scripts/test.sh.
json_string() {
  local value decoded
  sed -n "s/.*\"$1\":\"\\(\\([^\"\\\\]\\|\\\\.\\)*\\)\".*/\\1/p" |
    while IFS= read -r value; do
      decoded=""
      while [[ $value == *\\* ]]; do
        decoded+=${value%%\\*}
        value=${value#*\\}
        case ${value:0:1} in
          \\ | \" | /) decoded+=${value:0:1} value=${value:1} ;;
          *)
            printf '%s: cannot decode the JSON string of "%s" (an escape other than \\" \\\\ \\/)\n' "${0##*/}" "$1" >&2
            exit 1 ;;
        esac
      done
      printf '%s\n' "$decoded$value"
    done
}
