#!/bin/sh
# tools/quickstart.sh -- the README's two commands.
#
#   tools/quickstart.sh demo   install what is needed, build, run the demonstration
#   tools/quickstart.sh test   install what is needed, build, run the whole test suite
#
# Runs as root on Debian 12 (installs packages with apt-get).  Builds in
# _build/ inside the checkout.  The test mode runs, in order: the gcc build
# with make check (CMocka unit and integration tests, LD_PRELOAD tests of real
# programs), a warning-clean clang build with its unit tests, ASan, TSan and
# UBSan builds with their tests, the kernel harness (make check-kernel: both
# kernels built, cached and booted under QEMU), a short stress-ng soak on
# liblofalloc, 60 s of libFuzzer (make fuzz), and make distcheck.
# Before any build: tools/deps.sh installs tools/deps.list's packages and
# tools/preflight checks every command in it (a missing one is named with
# its package); in test mode tools/check-tools.sh checks the summary and the
# preflight on fixtures.  It ends with tools/test-summary.sh: automake's
# counts of this run's tests and one line "N passed, N failed", where a
# failed step counts as failed.
set -eu
mode=${1:-}
case "$mode" in demo|test) ;; *) echo "usage: $0 demo|test" >&2; exit 2 ;; esac

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)

"$top/tools/deps.sh"
if [ "$mode" = demo ]; then "$top/tools/preflight" build; else "$top/tools/preflight" build test kernel; fi

# tap-driver.sh is new in build-aux: a checkout configured before needs it
[ -x configure ] && [ -f build-aux/tap-driver.sh ] || autoreconf -fi >/dev/null

configure_in() { # dir, configure args...
  dir="$top/$1"; shift
  mkdir -p "$dir"
  [ -f "$dir/Makefile" ] || (cd "$dir" && "$top/configure" -q "$@" >/dev/null)
}

configure_in _build/gcc --enable-werror
make -C _build/gcc -j"$jobs" >/dev/null

if [ "$mode" = demo ]; then
  exec "$top/tools/demo.sh" "$top/_build/gcc"
fi

results=_build/results.txt
: > "$results"
# the summary counts only test results written after this stamp
stamp=_build/run.stamp
touch "$stamp"
failed_steps=""
step() { # name, command...
  name=$1; shift
  echo "==> $name"
  if "$@"; then echo "$name: ok" >> "$results"; else
    echo "$name: FAILED" >> "$results"; failed_steps="$failed_steps $name"; fi
}

step "tooling self-check" "$top/tools/check-tools.sh"
step "gcc make check" make -C _build/gcc -j"$jobs" check
configure_in _build/clang CC=clang --enable-werror
step "clang build + make check" env LOFTEST_SKIP_SERVERS=1 make -C _build/clang -j"$jobs" check
configure_in _build/asan --enable-asan --enable-werror
step "asan make check" make -C _build/asan -j"$jobs" check
configure_in _build/tsan --enable-tsan --enable-werror CC=clang
# jemalloc's fork handler holds more locks than TSan's deadlock detector
# can track (it CHECK-fails and hangs): data races are still detected.
# Thread leaks are not reported: the fault sweep's fork children and its
# failure exits leave the parent's threads unjoined on purpose.
step "tsan make check" env TSAN_OPTIONS="detect_deadlocks=0 report_thread_leaks=0" make -C _build/tsan -j"$jobs" check
# UBSan: every undefined behaviour aborts the test (-fno-sanitize-recover).
# Built with --enable-debug too (cheap: -O1), so CI runs the debug-only
# diagnostics and their tests (tests/malloc/misuse.c: write after free).
configure_in _build/ubsan --enable-ubsan --enable-debug --enable-werror
step "ubsan make check" env LOFTEST_SKIP_SERVERS=1 UBSAN_OPTIONS=print_stacktrace=1 make -C _build/ubsan -j"$jobs" check
kernel_harness() { # full log in _build/kernel-check.log; its results shown here
  make -C _build/gcc check-kernel > _build/kernel-check.log 2>&1; rc=$?
  sed -n '/^---- kernel check results/,$p' _build/kernel-check.log
  [ "$rc" -eq 0 ] || tail -30 _build/kernel-check.log
  return "$rc"
}
step "kernel harness" kernel_harness
step "stress-ng soak" "$top/tests/soak/stress-ng-soak.sh" "$top/_build/gcc"
# libFuzzer (clang's, from deps.list) on the malloc API for 60 s, in its own
# clang + ASan build (tests/fuzz/fuzz.sh); execs and coverage are printed
step "fuzz (60 s)" make -C _build/gcc fuzz FUZZ_TIME=60
# distcheck checks the packaging (dist contents, VPATH build, install and
# uninstall with DESTDIR); the full suite already ran above, so its inner
# make check runs the unit tests only.
step "make distcheck" make -C _build/gcc -j"$jobs" distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror \
  TESTS="region/test_region_options region/test_region_core malloc/test_malloc_stats_api malloc/test_malloc_api"

"$top/tools/test-summary.sh" "$top/_build" "$results" "$stamp"
