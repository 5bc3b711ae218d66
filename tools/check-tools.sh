#!/bin/sh
# tools/check-tools.sh -- regression checks of the test tooling itself, on
# fixtures, in a few seconds; tools/quickstart.sh test runs it before the
# builds.  Owns the fixtures of:
#   - tools/test-summary.sh: a fake build tree whose CMocka program prints
#     every case ok (and CMocka's "[  PASSED  ]") and then dies with TSan's
#     exit status 66, run through automake's real tap-driver.sh; a failing
#     and a skipping script through the real test-driver; stale .trs from an
#     "earlier run"; a failed step.  The summary must count the dying
#     program as failed, ignore the stale files, and never print "0 failed"
#     when a step failed.
#   - tools/preflight: rsync hidden from PATH must be named, with its package.
#   - the kernel harness's result reader (kernel-patches/harness/fixtures/).
# Prints one line per check and exits non-zero if any fails.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lofcheck-tools.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
bad=0
ok() { echo "check-tools: PASS $*"; }
no() { echo "check-tools: FAIL $*"; bad=$((bad + 1)); }

aux=$top/build-aux
[ -f "$aux/tap-driver.sh" ] || aux=/usr/share/automake-1.16
for d in tap-driver.sh test-driver; do
  [ -f "$aux/$d" ] || { no "no $d in $top/build-aux or $aux (run autoreconf -fi)"; exit 1; }
done

# ---- test-summary.sh --------------------------------------------------
root=$tmp/_build
mkdir -p "$root/gcc/tests/malloc" "$root/gcc/tests/preload" "$root/tsan/tests/malloc"
# stale results of an earlier run, older than this run's stamp
printf ':test-result: PASS\n:test-result: PASS\n:test-result: PASS\n' >"$root/gcc/tests/malloc/old.trs"
printf ':test-result: FAIL\n' >"$root/tsan/tests/malloc/old-failed.trs"
touch -d '1 hour ago' "$root/gcc/tests/malloc/old.trs" "$root/tsan/tests/malloc/old-failed.trs"
stamp=$tmp/run.stamp
touch -d '1 minute ago' "$stamp"

# tap_run DIR NAME SCRIPT-BODY: a fake CMocka program through tap-driver.sh
tap_run() {
  printf '#!/bin/sh\n%s\n' "$3" >"$1/$2"
  chmod +x "$1/$2"
  (cd "$1" && env AM_TAP_AWK=awk sh "$aux/tap-driver.sh" --test-name "$2" \
    --log-file "$2.log" --trs-file "$2.trs" --color-tests no --enable-hard-errors yes \
    --expect-failure no -- "./$2" >/dev/null 2>&1)
}
sh_run() { # DIR NAME EXIT-STATUS: a fake script test through test-driver
  printf '#!/bin/sh\necho "script %s"\nexit %s\n' "$2" "$3" >"$1/$2.sh"
  chmod +x "$1/$2.sh"
  (cd "$1" && sh "$aux/test-driver" --test-name "$2.sh" --log-file "$2.log" \
    --trs-file "$2.trs" --color-tests no --enable-hard-errors yes \
    --expect-failure no -- "./$2.sh" >/dev/null 2>&1)
}
# what CMocka 1.1 prints with CMOCKA_MESSAGE_OUTPUT=TAP, then a race report
tap_run "$root/tsan/tests/malloc" test_dies 'echo "1..3"
echo "ok 1 - test_alloc"; echo "ok 2 - test_free"; echo "ok 3 - test_threads"
echo "[  PASSED  ] 3 test(s)."
echo "ThreadSanitizer: reported 1 warnings" >&2
exit 66'
tap_run "$root/gcc/tests/malloc" test_good 'echo "1..2"
echo "ok 1 - test_one"; echo "ok 2 - test_two"'
sh_run "$root/gcc/tests/preload" fails 1
sh_run "$root/gcc/tests/preload" skips 77
printf 'gcc make check: ok\nkernel harness: FAILED\n' >"$tmp/results.txt"

out=$(sh "$top/tools/test-summary.sh" "$root" "$tmp/results.txt" "$stamp" 2>&1)
rc=$?
last=$(echo "$out" | tail -1)
want="lofalloc: 5 passed, 3 failed (2 test cases, 1 of 2 steps), 1 skipped"
if [ "$last" = "$want" ] && [ "$rc" -ne 0 ]; then
  ok "summary: PASSED-then-exit-66 program, failing script and failed step counted as failed, stale .trs ignored"
else
  no "summary: closing line '$last' (exit $rc), want '$want' and a non-zero exit"
  echo "$out" | sed 's/^/  | /'
fi
echo "$out" | grep -q 'FAILED  tsan/tests/malloc/test_dies: 3 passed, 1 failed' &&
  ok "summary: the dying program is named as failed" ||
  no "summary: the dying program is not named as failed"

# only a failed step, every test passing: still not "0 failed"
rm -rf "$root/tsan" "$root/gcc/tests/preload"
printf 'kernel harness: FAILED\n' >"$tmp/results.txt"
out=$(sh "$top/tools/test-summary.sh" "$root" "$tmp/results.txt" "$stamp" 2>&1)
rc=$?
last=$(echo "$out" | tail -1)
case "$last" in
*" 0 failed"*) no "summary: a failed step printed '$last'" ;;
*" 1 failed"*) [ "$rc" -ne 0 ] && ok "summary: a failed step alone gives '$last'" ||
  no "summary: a failed step alone exits 0" ;;
*) no "summary: unexpected closing line '$last'" ;;
esac

# ---- preflight ----------------------------------------------------------
bin=$tmp/bin
mkdir "$bin"
for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
  for f in "$d"/*; do
    n=${f##*/}
    [ "$n" = rsync ] || [ -e "$bin/$n" ] || ln -s "$f" "$bin/$n" 2>/dev/null
  done
done
out=$(PATH=$bin sh "$top/tools/preflight" build kernel 2>&1)
rc=$?
if [ "$rc" -eq 1 ] && echo "$out" | grep -q '^preflight: missing command rsync (Debian package rsync'; then
  ok "preflight: rsync hidden from PATH is named with its package (exit 1)"
else
  no "preflight: rsync hidden from PATH gave exit $rc: $out"
fi

# ---- the kernel harness's result reader ---------------------------------
if [ -x "$top/kernel-patches/harness/check-fixtures.sh" ]; then
  sh "$top/kernel-patches/harness/check-fixtures.sh" || bad=$((bad + 1))
fi

[ "$bad" -eq 0 ] && echo "check-tools: all checks passed" ||
  echo "check-tools: $bad check(s) failed"
[ "$bad" -eq 0 ]
