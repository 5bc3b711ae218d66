# tests/jemalloc/common.sh -- shared by the jemalloc scripts (sourced): the
# directory of the test programs ($here: the tests build directory's
# jemalloc/ under make check, else this script's own in an in-tree build),
# and need_libs, which finds the whole-process library ($lib) and jemalloc
# ($je) or fails.
if [ -d "$PWD/jemalloc" ] && [ -f "$PWD/jemalloc/test_jemalloc_arena" ]; then
  here="$PWD/jemalloc"
else
  here="$(cd "$(dirname "$0")" && pwd)"
fi
libdir="$here/../../allocator/.libs"

need_libs() {
  lib="$libdir/liblofalloc-jemalloc-process.so"
  je="$(pkg-config --variable=libdir jemalloc 2>/dev/null || echo /usr/lib/x86_64-linux-gnu)/libjemalloc.so.2"
  [ -f "$lib" ] || { echo "FAIL: $lib not built"; exit 1; }
  [ -f "$je" ] || { echo "FAIL: $je not found"; exit 1; }
}
