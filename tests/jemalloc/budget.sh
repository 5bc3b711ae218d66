#!/bin/sh
# budget.sh -- the whole-process library under the default 8 MiB
# RLIMIT_MEMLOCK, as an unprivileged user (nobody, via setpriv, when run as
# root; as is otherwise):
#  - budget heap: 7 MiB of blocks, at least 5 MiB of them locked and
#    6 MiB locked resident in all, and locked again in a fork child;
#  - budget churn under strace: after a refusal the library does not
#    ask the kernel again for each slab it commits: the failing mlock2 calls
#    (strace) are at most 1 in 50 of the refusals lof stats count
#    (lock_failures); when every refusal was a failing mlock2, as before the
#    refusal was remembered, this fails.
# tests run from the tests build directory (make check); also runnable
# from anywhere in an in-tree build.
. "$(dirname "$0")/common.sh"
need_libs
if [ "$(id -u)" = 0 ]; then
  command -v setpriv >/dev/null || { echo "SKIP: setpriv not found"; exit 77; }
  as_user="setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --bounding-set=-all"
else
  as_user=""
fi
limit="$($as_user sh -c 'ulimit -l')"
if [ "$limit" != 8192 ]; then echo "SKIP: RLIMIT_MEMLOCK is $limit KiB, not the default 8192"; exit 77; fi
tmp="$(mktemp -d)"
[ -n "$as_user" ] && chown nobody "$tmp"
trap 'rm -rf "$tmp"' EXIT INT TERM
status=0
if timeout 60 $as_user env LOFALLOC_POLICY=fallback LD_PRELOAD="$je $lib" "$here/budget" heap >"$tmp/heap.log" 2>&1; then
  echo "PASS: 8 MiB limit, heap locked and re-locked after fork"; cat "$tmp/heap.log"
else
  echo "FAIL: 8 MiB limit, heap"; cat "$tmp/heap.log"; status=1
fi
if command -v strace >/dev/null; then
  timeout 120 $as_user strace -f -qq -o "$tmp/strace.out" -e trace=mlock2 \
    env LOFALLOC_POLICY=fallback LD_PRELOAD="$je $lib" "$here/budget" churn >"$tmp/churn.log" 2>&1
  rc=$?
  calls="$(grep -c 'mlock2(' "$tmp/strace.out")"
  failed="$(grep 'mlock2(' "$tmp/strace.out" | grep -c '= -1')"
  refusals="$(sed -n 's/.*lock_failures \([0-9]*\).*/\1/p' "$tmp/churn.log" | tail -1)"
  if [ $rc -eq 0 ] && [ -n "$refusals" ] && [ "$refusals" -gt 0 ] && [ $((failed * 50)) -le "$refusals" ]; then
    echo "PASS: 8 MiB limit, churn: $refusals refusals, $calls mlock2 calls, $failed of them refused"
    cat "$tmp/churn.log"
  else
    echo "FAIL: 8 MiB limit, churn (rc $rc): $refusals refusals, $calls mlock2 calls, $failed of them refused (at most 1 in 50 expected)"
    cat "$tmp/churn.log"; status=1
  fi
else
  echo "SKIP: strace not found (churn)"
fi
exit $status
