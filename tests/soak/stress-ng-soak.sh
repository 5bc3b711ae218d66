#!/bin/sh
# tests/soak/stress-ng-soak.sh BUILD_DIR [SECONDS] -- a short soak: heap-heavy
# stress-ng stressors (malloc, tsearch, hsearch, qsort, str) preloaded with
# liblofalloc, checking (1) stress-ng's own verification passes and every
# worker exits cleanly, (2) while it runs, every worker's heap is locked on
# fault ("lo lf" VMAs with Locked: > 0 in smaps).  Prints PASS/FAIL lines;
# exits non-zero on failure.
set -u
build=${1:?usage: stress-ng-soak.sh BUILD_DIR [SECONDS]}
secs=${2:-45}
lib="$build/allocator/.libs/liblofalloc.so"
command -v stress-ng >/dev/null || { echo "FAIL: stress-ng not installed"; exit 1; }
[ -f "$lib" ] || { echo "FAIL: $lib not built"; exit 1; }
if ! nm -D --defined-only "$lib" | grep -qw malloc; then
  echo "FAIL: $lib does not export malloc (built with --disable-override?)"; exit 1
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
LD_PRELOAD="$lib" LOFALLOC_STATS=1 stress-ng --malloc 2 --malloc-bytes 64M --malloc-thresh 65536 \
  --tsearch 1 --hsearch 1 --qsort 1 --str 1 --verify --timeout "${secs}s" --metrics-brief \
  > "$tmp/out" 2>&1 &
pid=$!
. "$(cd "$(dirname "$0")" && pwd)/../common/smaps.sh"
sleep $((secs / 2))
descendants() { for c in $(pgrep -P "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done; }
lf=0 workers=0
for c in $(descendants "$pid"); do
  workers=$((workers + 1))
  # lock-on-fault VMAs with something locked in them
  smaps_lolf_locked "$c" && lf=$((lf + 1))
done
wait "$pid"; rc=$?
tail -5 "$tmp/out"
if [ "$rc" -ne 0 ]; then echo "FAIL: stress-ng exited $rc"; fail=1; fi
if grep -q 'passed:' "$tmp/out" && grep -qE 'failed: [1-9]' "$tmp/out"; then echo "FAIL: stress-ng reports failures"; fail=1; fi
if [ "$workers" -eq 0 ] || [ "$lf" -ne "$workers" ]; then
  echo "FAIL: $lf of $workers stress-ng processes had a locked-on-fault heap"; fail=1
else
  echo "PASS: $lf of $workers stress-ng processes had lock-on-fault heap VMAs"
fi
grep -q 'lofalloc: backend' "$tmp/out" && grep 'lofalloc: \(backend\|locked_resident\|lock_failures\)' "$tmp/out" | head -3
[ "$fail" -eq 0 ] && echo "PASS: stress-ng soak (${secs}s)"
exit "$fail"
