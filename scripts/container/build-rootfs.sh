#!/usr/bin/env bash
# build-rootfs.sh: the build steps of the container image, runnable without a container
# engine. Builds every wif binary and installs the image's file tree under ROOT:
#
#   ROOT/usr/local/bin/wif-*             the eight tools (stripped), wif-refresh, and the
#                                        container helper wif-refresh-loop
#   ROOT/etc/wif/                        mount point for wif.json and keys (empty)
#   ROOT/var/lib/wif/                    the token directory (empty, mode 0700)
#
# The Dockerfile runs it in its build stage and copies ROOT into the final image;
# scripts/check-deploy.sh runs it into a staging directory and checks the result.
#
# usage: scripts/container/build-rootfs.sh [--profile release|debug] [--no-build] ROOT
#   --profile P   cargo profile to build and take the binaries from (default release)
#   --no-build    take the binaries already built for that profile (CI reuses the
#                 test suite's debug build instead of spending minutes on a release one)
# Honours CARGO_TARGET_DIR. ROOT must not exist or be empty.
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
profile=release build=1 root=
while (($#)); do
  case $1 in
    --profile)
      (($# >= 2)) || usage
      profile=$2
      shift
      ;;
    --no-build) build=0 ;;
    -h | --help) usage 0 ;;
    -*) echo "build-rootfs.sh: unknown option $1" >&2 && usage ;;
    *)
      [[ -z $root ]] || usage
      root=$1
      ;;
  esac
  shift
done
[[ -n $root ]] || usage
case $profile in
  release | debug) ;;
  *) echo "build-rootfs.sh: --profile is release or debug, not '$profile'" >&2 && exit 2 ;;
esac
if [[ -e $root && -n $(ls -A "$root") ]]; then
  echo "build-rootfs.sh: $root is not empty" >&2
  exit 2
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}

# The [[bin]] names in Cargo.toml: the image holds every tool the package builds.
mapfile -t bins < <(awk '
  /^\[/ { in_bin = ($0 == "[[bin]]") }
  in_bin && /^name[[:space:]]*=/ { gsub(/^name[[:space:]]*=[[:space:]]*"|"[[:space:]]*$/, ""); print }
' Cargo.toml)
((${#bins[@]} > 0)) || { echo "build-rootfs.sh: no [[bin]] in Cargo.toml" >&2 && exit 1; }

if [[ $build == 1 ]]; then
  profile_flag=()
  [[ $profile == release ]] && profile_flag=(--release)
  cargo build --locked --bins ${profile_flag[@]+"${profile_flag[@]}"}
fi

umask 022
install -d -m 0755 "$root" "$root/usr" "$root/usr/local" "$root/usr/local/bin" "$root/etc" "$root/etc/wif" "$root/var" "$root/var/lib"
install -d -m 0700 "$root/var/lib/wif"
for bin in "${bins[@]}"; do
  src=$target_dir/$profile/$bin
  [[ -x $src ]] || { echo "build-rootfs.sh: $src is missing; build it or drop --no-build" >&2 && exit 1; }
  # Stripped: symbols make up most of a binary's size and an image has no use for them.
  install -m 0755 -s "$src" "$root/usr/local/bin/$bin"
done
install -m 0755 scripts/wif-refresh scripts/container/wif-refresh-loop "$root/usr/local/bin/"
printf 'build-rootfs.sh: installed %d files into %s (%s build)\n' $((${#bins[@]} + 2)) "$root" "$profile" >&2
