#!/bin/sh
# tools/deps.sh -- install the Debian 12 packages lofalloc needs to build,
# test, demonstrate and benchmark: the packages of tools/deps.list (the same
# list tools/preflight checks).  Idempotent; run as root.
#   tools/deps.sh            sets build, test, kernel
#   tools/deps.sh --bench    also the optional set: peer allocators, plotting
#                            tools, debootstrap (tools/fresh-check.sh)
#   tools/deps.sh --list [--bench]   print the packages, install nothing
set -eu
list=${LOFALLOC_DEPS_LIST:-$(dirname "$0")/deps.list}
sets="build test kernel" only_list=no
for a in "$@"; do
  case "$a" in
  --bench) sets="$sets bench" ;;
  --list) only_list=yes ;;
  *) echo "usage: $0 [--bench] [--list]" >&2; exit 2 ;;
  esac
done
PKGS=$(awk -v sets=" $sets " '/^[[:space:]]*(#|$)/ { next }
  index(sets, " " $1 " ") && !seen[$2]++ { print $2 }' "$list")
[ -n "$PKGS" ] || { echo "deps: no packages read from $list" >&2; exit 1; }
if [ "$only_list" = yes ]; then
  echo "$PKGS"
  exit 0
fi
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "deps: installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
fi
