#!/bin/sh
# tools/test-summary.sh BUILD_ROOT RESULTS STAMP -- the closing summary of
# tools/quickstart.sh test, built from automake's own per-case records:
# every .trs under BUILD_ROOT written after STAMP (so only this run's; the
# stale ones of an earlier run in a reused tree are left out), the kernel
# harness's counts from BUILD_ROOT/kernel-check.log if this run wrote it,
# and the steps in RESULTS ("NAME: ok" / "NAME: FAILED").
#
# A .trs holds one ":test-result:" per TAP case of a CMocka program plus an
# ERROR when the program's exit status was not 0 (it died after its last
# case, a sanitizer report), or the one result of a script.  PASS and XFAIL
# count as passed, FAIL, XPASS and ERROR as failed, SKIP as skipped.
# The closing line "lofalloc: N passed, N failed" counts as failed the
# failed cases plus the failed steps: a run with a failed step never says
# "0 failed".  Exit status 0 only if nothing failed.
set -u
root=${1:?usage: test-summary.sh BUILD_ROOT RESULTS STAMP}
results=${2:?usage: test-summary.sh BUILD_ROOT RESULTS STAMP}
stamp=${3:?usage: test-summary.sh BUILD_ROOT RESULTS STAMP}
[ -f "$stamp" ] || { echo "test-summary: no stamp $stamp" >&2; exit 2; }
[ -f "$results" ] || { echo "test-summary: no results $results" >&2; exit 2; }

echo
echo "==================== lofalloc test summary ===================="
# "tree passed failed skipped" per test program into $counts; the failed
# and skipped programs, by name, on the terminal
notes=$(mktemp) || exit 2
trap 'rm -f "$notes"' EXIT
counts=$(find "$root" -name '*.trs' -newer "$stamp" | LC_ALL=C sort |
  while read -r trs; do
    rel=${trs#"$root"/}
    rel=${rel%.trs}
    awk -v rel="$rel" -v logf="$rel.log" -v notes="$notes" '
      /^:test-result: (PASS|XFAIL)/ { p++ }
      /^:test-result: (FAIL|XPASS|ERROR)/ { f++; why = why " " $2 }
      /^:test-result: SKIP/ { s++ }
      END {
        if (p + f + s == 0) { f = 1; why = " no result" }
        split(rel, part, "/")
        if (f) printf "  FAILED  %s: %d passed, %d failed (%s ), see %s\n", rel, p, f, why, logf >> notes
        else if (s && !p) printf "  SKIPPED %s\n", rel >> notes
        printf "%s %d %d %d\n", part[1], p, f, s
      }' "$trs"
  done)
cat "$notes"
echo "$counts" | awk 'NF == 4 {
    n[$1]++; p[$1] += $2; f[$1] += $3; s[$1] += $4
    if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 }
  }
  END { for (i = 1; i <= k; i++) { t = order[i]
    printf "%-12s %3d programs: %4d passed, %d failed, %d skipped\n", t, n[t], p[t], f[t], s[t] } }'
passed=$(echo "$counts" | awk 'NF == 4 { s += $2 } END { print s + 0 }')
failed=$(echo "$counts" | awk 'NF == 4 { s += $3 } END { print s + 0 }')
skipped=$(echo "$counts" | awk 'NF == 4 { s += $4 } END { print s + 0 }')
[ -n "$(echo "$counts" | awk 'NF == 4')" ] || echo "  (no test results written by this run under $root)"

k=$root/kernel-check.log
if [ -f "$k" ] && [ "$k" -nt "$stamp" ]; then
  line=$(grep -E '^kernel: [0-9]+ passed, [0-9]+ failed' "$k" | tail -1)
  if [ -n "$line" ]; then
    kp=$(echo "$line" | sed 's/^kernel: \([0-9]*\) passed.*/\1/')
    kf=$(echo "$line" | sed 's/^kernel: [0-9]* passed, \([0-9]*\) failed.*/\1/')
    ks=$(echo "$line" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
    echo "kernel harness:  $kp passed, $kf failed, ${ks:-0} skipped (_build/kernel-check.log)"
    passed=$((passed + kp)); failed=$((failed + kf)); skipped=$((skipped + ${ks:-0}))
  else
    echo "kernel harness:  no result line (_build/kernel-check.log)"
  fi
fi
echo "--------------------------------------------------------------"
cat "$results"
steps=$(grep -c ': \(ok\|FAILED\)$' "$results" || true)
steps_failed=$(grep -c ': FAILED$' "$results" || true)
echo "--------------------------------------------------------------"
total_failed=$((failed + steps_failed))
echo "lofalloc: $passed passed, $total_failed failed" \
  "($failed test cases, $steps_failed of $steps steps), $skipped skipped"
[ "$total_failed" -eq 0 ] && [ "$passed" -gt 0 ]
