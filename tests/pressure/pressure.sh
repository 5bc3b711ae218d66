#!/bin/sh
# tests/pressure/pressure.sh -- memory pressure, on the real kernel: a swap
# file and a memory cgroup (v1 memory.limit_in_bytes, or v2 memory.max) hold
# three victims with their heap written -- 128 MiB on glibc, 128 MiB on
# liblofalloc (strict), and 3 MiB on liblofalloc as nobody under the default
# RLIMIT_MEMLOCK -- while a hog pushes the cgroup into swap.  Then each
# victim counts its heap pages in swap (pagemap bit 62) and its major faults
# re-reading them.  Asserted: glibc > 0 and > 0 (the pressure was real),
# lofalloc 0 and 0, contents intact.  liblofalloc's own data in swap is
# reported; asserted 0 with LOF_PRESSURE_EXPECT_LIB_LOCKED=1 (issue #11 locks
# the library's bookkeeping).  Root only; SKIP (77) when no swap or no
# memory cgroup can be made.  Everything is removed on exit.
set -u
if [ "${LOFTEST_SKIP_SERVERS:-0}" = 1 ]; then
  echo "SKIP: LOFTEST_SKIP_SERVERS=1 (the pressure test runs in the gcc build)"
  exit 77
fi
: "${top_builddir:=../..}"
BUILD=$(cd "$top_builddir" && pwd)
LOF_LIB=$BUILD/allocator/.libs/liblofalloc.so
VICTIM=$BUILD/tests/pressure/victim
[ -x "$BUILD/tests/pressure/.libs/victim" ] && VICTIM=$BUILD/tests/pressure/.libs/victim
HEAP_MIB=128 HOG_MIB=${LOF_PRESSURE_HOG_MIB:-768} LIMIT_MIB=${LOF_PRESSURE_LIMIT_MIB:-320} SWAP_MIB=1024
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
skip() { echo "SKIP: $*"; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "needs root (swapon, cgroups)"
[ -f "$LOF_LIB" ] && nm -D --defined-only "$LOF_LIB" | grep -qw malloc ||
  skip "liblofalloc.so not built with malloc override"
[ -x "$VICTIM" ] || { echo "FAIL: $VICTIM not built"; exit 1; }
for p in fallocate mkswap swapon swapoff setpriv; do
  command -v $p >/dev/null 2>&1 || skip "$p not installed"
done

WORK=$(mktemp -d /var/tmp/lofpressure.XXXXXX)
chmod 0777 "$WORK"
SWAPFILE="" CG="" PIDS=""
cleanup() {
  for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
  sleep 0.2
  if [ -n "$CG" ] && [ -d "$CG" ]; then
    for p in $(cat "$CG/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    sleep 0.2; rmdir "$CG" 2>/dev/null
  fi
  [ -n "$SWAPFILE" ] && { swapoff "$SWAPFILE" 2>/dev/null; rm -f "$SWAPFILE"; }
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# ---- swap ----
SWAPFILE=$WORK/swapfile
if ! { fallocate -l ${SWAP_MIB}M "$SWAPFILE" && chmod 600 "$SWAPFILE" &&
       mkswap "$SWAPFILE" >/dev/null 2>&1 && swapon "$SWAPFILE" 2>"$WORK/swapon.err"; }; then
  rm -f "$SWAPFILE"; SWAPFILE=""
  skip "cannot make a swap file here: $(cat "$WORK/swapon.err" 2>/dev/null)"
fi

# ---- a memory cgroup: v2 memory.max where the controller is there, else v1 ----
if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
  CG=/sys/fs/cgroup/lofpressure.$$
  mkdir "$CG" && echo $((LIMIT_MIB << 20)) >"$CG/memory.max" && echo max >"$CG/memory.swap.max" ||
    skip "cannot make a v2 memory cgroup"
  cgver=v2
elif [ -d /sys/fs/cgroup/memory ]; then
  CG=/sys/fs/cgroup/memory/lofpressure.$$
  mkdir "$CG" && echo $((LIMIT_MIB << 20)) >"$CG/memory.limit_in_bytes" ||
    skip "cannot make a v1 memory cgroup"
  [ -f "$CG/memory.swappiness" ] && echo 100 >"$CG/memory.swappiness"
  cgver=v1
else
  skip "no memory cgroup controller (neither v2 nor v1)"
fi
echo "  swap file ${SWAP_MIB} MiB, cgroup $cgver $CG limited to ${LIMIT_MIB} MiB"

# in_cg CMD...: run CMD inside the cgroup (the shell joins it, then execs)
in_cg() { sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }

in_cg "$VICTIM" heap $HEAP_MIB 1024 "$WORK" >"$WORK/glibc.out" 2>"$WORK/glibc.err" &
PIDS="$PIDS $!"; g=$!
in_cg env LD_PRELOAD="$LOF_LIB" LOFALLOC_POLICY=strict "$VICTIM" heap $HEAP_MIB 1024 "$WORK" \
  >"$WORK/lof.out" 2>"$WORK/lof.err" &
PIDS="$PIDS $!"; l=$!
in_cg setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --bounding-set=-all \
  env LD_PRELOAD="$LOF_LIB" LOFALLOC_POLICY=strict "$VICTIM" heap 3 64 "$WORK" \
  >"$WORK/unpriv.out" 2>"$WORK/unpriv.err" &
PIDS="$PIDS $!"; u=$!
n=0
while [ "$(ls "$WORK" | grep -c '^ready\.')" -lt 3 ]; do
  n=$((n + 1)); sleep 0.2
  if [ $n -gt 300 ]; then fail "victims not ready after 60 s"; cat "$WORK"/*.err; exit 1; fi
done
timeout 120 sh -c 'echo $$ >"$0/cgroup.procs" && exec "$1" hog "$2"' "$CG" "$VICTIM" $HOG_MIB ||
  echo "  hog ended with status $? (the cgroup may kill it: that is pressure too)"
[ -f "$CG/memory.memsw.usage_in_bytes" ] && echo "  cgroup after the hog: usage $(cat "$CG/memory.usage_in_bytes") memsw $(cat "$CG/memory.memsw.usage_in_bytes")"
touch "$WORK/go"
for v in $g $l $u; do wait "$v"; done
PIDS=""

# result NAME: the victim's line into variables
result() {
  line=$(cat "$WORK/$1.out")
  echo "  $1: $line"
  [ -n "$line" ] || { sed 's/^/  | /' "$WORK/$1.err"; return 1; }
  eval "$(echo "$line" | sed 's/\([a-z_]*\)=/\1=/g')"
}
if result glibc; then
  [ "$swapped" -gt 0 ] && [ "$majflt" -gt 0 ] && [ "$bad" -eq 0 ] &&
    pass "glibc heap under pressure: $swapped of $pages pages in swap, $majflt major faults to re-read (the pressure is real)" ||
    fail "glibc heap: swapped $swapped majflt $majflt bad $bad: no pressure, the test proves nothing"
else fail "glibc victim gave no result"; fi
for v in lof unpriv; do
  if result $v; then
    if [ "$swapped" -eq 0 ] && [ "$majflt" -eq 0 ] && [ "$bad" -eq 0 ] && [ "$resident" -eq "$pages" ]; then
      pass "lofalloc heap [$v]: 0 of $pages pages in swap, 0 major faults, all resident"
    else
      fail "lofalloc heap [$v]: swapped $swapped majflt $majflt resident $resident/$pages bad $bad"
    fi
    if [ "${LOF_PRESSURE_EXPECT_LIB_LOCKED:-1}" = 1 ]; then
      [ "$lib_swapped" -eq 0 ] && pass "liblofalloc's own data [$v]: 0 of $lib_pages pages in swap" ||
        fail "liblofalloc's own data [$v]: $lib_swapped of $lib_pages pages in swap"
    else
      echo "  liblofalloc's own data [$v]: $lib_swapped of $lib_pages pages in swap (asserted with LOF_PRESSURE_EXPECT_LIB_LOCKED=1)"
    fi
  else fail "lofalloc victim [$v] gave no result"; fi
done
[ "$failures" -eq 0 ] && exit 0
exit 1
