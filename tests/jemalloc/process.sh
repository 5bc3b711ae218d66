#!/bin/sh
# process.sh -- test_jemalloc_process under the whole-process library, with
# jemalloc preloaded (the program itself links jemalloc only for mallctl),
# under default options, a user MALLOC_CONF and the strict policy.
# tests run from the tests build directory (make check); also runnable
# from anywhere in an in-tree build.
. "$(dirname "$0")/common.sh"
need_libs
status=0
run() {
  desc="$1"; shift
  if timeout 300 env "$@" LD_PRELOAD="$je $lib" "$here/test_jemalloc_process" >"$here/process.$$.log" 2>&1; then
    echo "PASS: whole-process [$desc]"; grep -E "^  " "$here/process.$$.log"
  else
    echo "FAIL: whole-process [$desc]"; cat "$here/process.$$.log"; status=1
  fi
  rm -f "$here/process.$$.log"
}
run "defaults"
run "MALLOC_CONF=retain:false,narenas:3" MALLOC_CONF=retain:false,narenas:3
run "LOFALLOC_POLICY=strict" LOFALLOC_POLICY=strict
run "LOFALLOC_JE_COMMIT=lazy" LOFALLOC_JE_COMMIT=lazy
exit $status
