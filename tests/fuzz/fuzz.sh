#!/bin/sh
# tests/fuzz/fuzz.sh SRCDIR BUILDDIR [SECONDS] -- build and run the libFuzzer
# harness (tests/fuzz/fuzz_malloc.c) for SECONDS (default 60): make fuzz
# FUZZ_TIME=secs.
#
# It configures its own build in BUILDDIR/fuzz-build: clang, ASan, and
# -fsanitize=fuzzer-no-link so that libFuzzer's coverage counts the
# allocator's own code (configure turns the malloc override off under a
# sanitizer; the harness calls the lof_* names).  The harness is linked with
# -fsanitize=fuzzer,address against that build's static liblofalloc.  It
# starts from the corpus in the repository (tests/fuzz/corpus, small) and
# writes what it finds to BUILDDIR/fuzz-build/corpus.  libFuzzer's final
# stats (-print_final_stats) and its last "cov:" line are printed; a crash
# leaves crash-* in BUILDDIR/fuzz-build and fails.
set -eu
src=$(cd "${1:?usage: fuzz.sh SRCDIR BUILDDIR [SECONDS]}" && pwd)
build=$(cd "${2:?usage: fuzz.sh SRCDIR BUILDDIR [SECONDS]}" && pwd)
secs=${3:-60}
fb="$build/fuzz-build"
command -v clang >/dev/null || { echo "fuzz: clang not installed"; exit 1; }
mkdir -p "$fb"
if [ ! -f "$fb/Makefile" ]; then
  (cd "$fb" && "$src/configure" -q CC=clang CFLAGS="-g -O1 -fsanitize=fuzzer-no-link" \
    --enable-asan --disable-shared >/dev/null)
fi
make -C "$fb/allocator" -j2 liblofalloc.la >/dev/null
clang -g -O1 -fsanitize=fuzzer,address -I"$src/allocator/include" \
  -o "$fb/fuzz_malloc" "$src/tests/fuzz/fuzz_malloc.c" "$fb/allocator/.libs/liblofalloc.a" -pthread
mkdir -p "$fb/corpus"
cd "$fb"
set +e
ASAN_OPTIONS=detect_leaks=0 ./fuzz_malloc -max_total_time="$secs" -print_final_stats=1 \
  -max_len=4096 -timeout=20 -rss_limit_mb=4096 corpus "$src/tests/fuzz/corpus" > fuzz.log 2>&1
rc=$?
set -e
grep -E '^#[0-9]+.*(DONE|cov:)' fuzz.log | tail -1
grep -E '^stat::' fuzz.log
if [ "$rc" -ne 0 ]; then
  tail -40 fuzz.log
  echo "FAIL: fuzz_malloc exited $rc (see $fb/fuzz.log and crash-* there)"
  exit 1
fi
echo "PASS: fuzz_malloc ran ${secs}s without a finding"
