#!/bin/sh
# process.sh -- test_jemalloc_process under the whole-process library, with
# jemalloc preloaded (the program itself links jemalloc only for mallctl),
# under default options, a user MALLOC_CONF and the strict policy.
# tests run from the tests build directory (make check); also runnable
# from anywhere in an in-tree build.
if [ -d "$PWD/jemalloc" ] && [ -f "$PWD/jemalloc/test_jemalloc_arena" ]; then
  bindir="$PWD/jemalloc"
else
  bindir="$(cd "$(dirname "$0")" && pwd)"
fi
here="$bindir"
lib="$here/../../allocator/.libs/liblofalloc-jemalloc-process.so"
je="$(pkg-config --variable=libdir jemalloc 2>/dev/null || echo /usr/lib/x86_64-linux-gnu)/libjemalloc.so.2"
[ -f "$lib" ] || { echo "FAIL: $lib not built"; exit 1; }
[ -f "$je" ] || { echo "FAIL: $je not found"; exit 1; }
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
