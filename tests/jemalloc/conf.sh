#!/bin/sh
# conf.sh -- test_jemalloc_hooks and test_jemalloc_arena again under a
# user-given MALLOC_CONF (retain off, immediate decay, few arenas) and under
# both commit modes of the hooks (LOFALLOC_JE_COMMIT).  Prints PASS/FAIL per setting.
# tests run from the tests build directory (make check); also runnable
# from anywhere in an in-tree build.
. "$(dirname "$0")/common.sh"
cd "$here" || exit 1
status=0
run() {
  desc="$1"; shift
  for t in ./test_jemalloc_hooks ./test_jemalloc_arena; do
    if timeout 300 env "$@" "$t" >"conf.$$.log" 2>&1; then
      echo "PASS: $t [$desc]"
    else
      echo "FAIL: $t [$desc]"; cat "conf.$$.log"; status=1
    fi
  done
  rm -f "conf.$$.log"
}
run "MALLOC_CONF=retain:false" MALLOC_CONF=retain:false
run "MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0,narenas:2" MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0,narenas:2
run "MALLOC_CONF=muzzy_decay_ms:1000 (purge_lazy asked)" MALLOC_CONF=dirty_decay_ms:100,muzzy_decay_ms:1000
run "LOFALLOC_JE_COMMIT=lazy" LOFALLOC_JE_COMMIT=lazy
run "LOFALLOC_JE_COMMIT=lazy MALLOC_CONF=retain:false" LOFALLOC_JE_COMMIT=lazy MALLOC_CONF=retain:false
run "LOFALLOC_JE_COMMIT=eager" LOFALLOC_JE_COMMIT=eager
exit $status
