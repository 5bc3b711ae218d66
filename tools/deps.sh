#!/bin/sh
# tools/deps.sh -- install the Debian 12 packages lofalloc needs to build,
# test, demonstrate and benchmark.  Idempotent; run as root.
#   tools/deps.sh            build + test packages
#   tools/deps.sh --bench    also the peer allocators and plotting tools
set -eu
PKGS="build-essential g++ autoconf automake libtool pkg-config clang
      libcmocka-dev libjemalloc-dev
      stress-ng strace time libcap2-bin util-linux procps python3 sqlite3
      linux-source-6.12 qemu-system-x86 busybox-static cpio flex bison bc
      libelf-dev libssl-dev xz-utils kmod
      rsync redis-server memcached libmemcached-tools postgresql"
if [ "${1:-}" = "--bench" ]; then
  PKGS="$PKGS libmimalloc-dev libgoogle-perftools-dev rt-tests gnuplot"
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
