#!/bin/sh
# tests/databases/unprivileged.sh -- test_jemalloc_api and test_shared again
# as nobody without capabilities, under the inherited soft RLIMIT_MEMLOCK
# (8 MiB by default): the jemalloc API and locked shared memory must hold
# there too (test_shared's sizes fit beside the heap's first locked segment).
. "${top_srcdir:-../..}/tests/databases/common.sh"
need_lib
can_unpriv || skip "needs root and setpriv to drop to nobody"
for t in test_jemalloc_api test_shared; do
  bin="$BUILD/tests/databases/.libs/$t"
  [ -x "$bin" ] || bin="$BUILD/tests/databases/$t"
  [ -x "$bin" ] || { fail "$t not built"; continue; }
  if LD_LIBRARY_PATH="$BUILD/allocator/.libs" $UNPRIV env LD_LIBRARY_PATH="$BUILD/allocator/.libs" \
      timeout 120 "$bin" >"$WORK/$t.out" 2>&1; then
    pass "$t as nobody (RLIMIT_MEMLOCK $(ulimit -l) kB): $(grep -c '^\[       OK' "$WORK/$t.out") cases"
  else
    fail "$t as nobody"; sed 's/^/  | /' "$WORK/$t.out" | tail -20
  fi
done
finish
