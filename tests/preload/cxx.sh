#!/bin/sh
# tests/preload/cxx.sh -- a C++ STL program (stl_workload.cc) under
# LD_PRELOAD: its checksum must match the run without lofalloc, and the
# objects it made with operator new must sit in `lo lf` VMAs (new/delete
# reach lofalloc's malloc).
. "${top_srcdir:-../..}/tests/preload/common.sh"
need_lib
prog=$(cd "$top_builddir" && pwd)/tests/preload/stl_workload
[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
expected=$("$prog" | grep '^checksum')
if run_preloaded cxx "$prog"; then
  got=$(grep '^checksum' "$WORK/cxx.out")
  if [ "$got" = "$expected" ]; then pass "c++: $got matches the glibc run"; else fail "c++: '$got', expected '$expected'"; fi
  sed 's/^/  c++: /' "$WORK/cxx.out"
  for what in new-small vector-data aligned-new; do
    line=$(grep "^$what " "$WORK/cxx.out")
    if echo "$line" | grep -qw lo && echo "$line" | grep -qw lf; then
      pass "c++: $what in a lo lf VMA"
    else
      fail "c++: $what not in a lo lf VMA: $line"
    fi
  done
  case "$(grep '^aligned-new ' "$WORK/cxx.out")" in
    *" 0") pass "c++: alignas(64) new is 64-aligned" ;;
    *) fail "c++: alignas(64) new misaligned" ;;
  esac
  check_probes c++ 1
fi
finish
