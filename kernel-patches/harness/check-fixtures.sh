#!/bin/sh
# check-fixtures.sh -- the kernel harness's judging, checked without a boot:
# guest/run-test.sh's run() on real commands, and read-results.sh on a good
# serial log of the patched guest and on mutations of it that must fail (a
# skip where a pass is expected, a kselftest whose "# Totals" is missing or
# disagrees, lof-bench's flag method unsupported, a missing result).  Run by
# tools/check-tools.sh; a few seconds.  One "PASS|FAIL <check>" line each.
set -u
h=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lofkfix.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
bad=0
ok() { echo "check-fixtures: PASS $*"; }
no() { echo "check-fixtures: FAIL $*"; bad=$((bad + 1)); }

# ---- guest/run-test.sh: exit 77 is a skip only for a may-skip test -------
out=$(. "$h/../guest/run-test.sh"; run alloc/t 0 must-pass 5 sh -c 'exit 77')
[ "$(echo "$out" | tail -1)" = "LOFTEST FAIL alloc/t rc=77 want=0" ] &&
  ok "run-test: exit 77 of a must-pass test is a FAIL" ||
  no "run-test: exit 77 of a must-pass test gave '$out'"
out=$(. "$h/../guest/run-test.sh"; run opt/t 0 may-skip 5 sh -c 'exit 77')
[ "$(echo "$out" | tail -1)" = "LOFTEST SKIP opt/t rc=77" ] &&
  ok "run-test: exit 77 of a may-skip test is a SKIP" ||
  no "run-test: exit 77 of a may-skip test gave '$out'"
out=$(. "$h/../guest/run-test.sh"; run ksft 4 must-pass 5 sh -c 'exit 4')
[ "$(echo "$out" | tail -1)" = "LOFTEST PASS ksft" ] &&
  ok "run-test: the expected status (KSFT_SKIP=4 on the unpatched kernel) is a PASS" ||
  no "run-test: expected status 4 gave '$out'"

# ---- read-results.sh ------------------------------------------------------
good=$tmp/good.txt
cat >"$good" <<'EOF'
LOFGUEST kernel=patched uname=6.12.0 clocksource=tsc
LOFTEST START map_lockonfault
TAP version 13
1..3
ok 1 vmflags: lo lf, nothing resident
ok 2 locked: three touched pages locked
ok 3 # SKIP memfd: Function not implemented
# Totals: pass:2 fail:0 xfail:0 xpass:0 skip:1 error:0
LOFTEST PASS map_lockonfault
LOFTEST START mlock2-tests
TAP version 13
1..2
ok 1 test_mlock_lock: Locked
ok 2 test_mlock_onfault: VMA marked for lock on fault
# Totals: pass:2 fail:0 xfail:0 xpass:0 skip:0 error:0
LOFTEST PASS mlock2-tests
LOFTEST START backend-is-MAP_LOCKONFAULT
LOFBACKEND backend=map_lockonfault
LOFTEST PASS backend-is-MAP_LOCKONFAULT
LOFTEST START alloc/malloc-test_malloc_api
LOFTEST PASS alloc/malloc-test_malloc_api
LOFTEST START lof-bench
LOFBENCH kind=commit size=65536 method=flag syscalls=1 iters=100 median_ns=2000 p10_ns=1900
LOFBENCH kind=commit size=65536 method=mlock2 syscalls=2 iters=100 median_ns=3000 p10_ns=2900
LOFTEST PASS lof-bench
LOFTEST DONE
EOF
expected="map_lockonfault mlock2-tests lof-bench backend-is-MAP_LOCKONFAULT alloc/malloc-test_malloc_api"
ksft="map_lockonfault mlock2-tests"
judge() { sh "$h/read-results.sh" patched "$1" "$expected" "$ksft"; }

out=$(judge "$good")
[ "$(echo "$out" | tail -1)" = "counts 7 0 1" ] &&
  echo "$out" | grep -q '^patched: SKIP map_lockonfault sub-test: ok 3 # SKIP memfd' &&
  ok "results: the good log passes; its kselftest sub-test skip counts as a skip, not a pass (7 passed, 1 skipped)" ||
  { no "results: the good log gave"; echo "$out" | sed 's/^/  | /'; }

# mutate NAME WHY SED-SCRIPT: the mutated log must fail with WHY in its reason
mutate() {
  sed "$3" "$good" >"$tmp/$1.txt"
  out=$(judge "$tmp/$1.txt")
  f=$(echo "$out" | sed -n 's/^counts [0-9]* \([0-9]*\) [0-9]*$/\1/p')
  if [ "${f:-0}" -gt 0 ] && echo "$out" | grep '^patched: FAIL' | grep -q "$2"; then
    ok "results: $1 fails ($(echo "$out" | grep '^patched: FAIL' | head -1))"
  else
    no "results: $1 was not caught"
    echo "$out" | sed 's/^/  | /'
  fi
}
mutate skip-where-pass-expected "where a pass is expected" \
  's/^LOFTEST PASS alloc\/malloc-test_malloc_api$/LOFTEST SKIP alloc\/malloc-test_malloc_api/'
mutate ksft-no-totals 'no "# Totals" line' \
  '/^# Totals: pass:2 fail:0 xfail:0 xpass:0 skip:0 error:0$/d'
mutate ksft-totals-disagree "but the results say" \
  's/^ok 2 test_mlock_onfault/not ok 2 test_mlock_onfault/'
mutate ksft-plan-short "plan 1..3 but 2 results" \
  's/^1\.\.2$/1..3/'
mutate ksft-failed-subtest "kselftest: # Totals: pass:1 fail:1" \
  's/^ok 2 test_mlock_onfault/not ok 2 test_mlock_onfault/; s/^# Totals: pass:2 fail:0 xfail:0 xpass:0 skip:0/# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:0/'
mutate bench-flag-unsupported "flag method reports unsupported" \
  's/^LOFBENCH kind=commit size=65536 method=flag .*/LOFBENCH kind=commit size=65536 method=flag unsupported/'
mutate result-missing "no result" \
  '/^LOFTEST PASS backend-is-MAP_LOCKONFAULT$/d'
mutate guest-unfinished "did not finish" \
  '/^LOFTEST DONE$/d'
mutate dmesg-warning "dmesg-clean" \
  's/^LOFTEST DONE$/LOFDMESG WARNING: CPU: 1 PID: 42 at mm\/mlock.c:1 x\nLOFTEST FAIL dmesg-clean 1-lines\nLOFTEST DONE/'

# the unpatched kernel: the flag is expected to be unsupported there
sed 's/^LOFBENCH kind=commit size=65536 method=flag .*/LOFBENCH kind=commit size=65536 method=flag unsupported/' \
  "$good" >"$tmp/unpatched.txt"
out=$(sh "$h/read-results.sh" unpatched "$tmp/unpatched.txt" "$expected" "$ksft")
[ "$(echo "$out" | tail -1)" = "counts 7 0 1" ] &&
  ok "results: flag unsupported on the unpatched kernel is not a failure" ||
  { no "results: unpatched flag-unsupported gave"; echo "$out" | sed 's/^/  | /'; }

[ "$bad" -eq 0 ]
