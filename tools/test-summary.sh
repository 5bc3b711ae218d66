#!/bin/sh
# tools/test-summary.sh BUILD_ROOT RESULTS -- print every CMocka runner's
# summary from the test logs under BUILD_ROOT, the steps' results, and one
# closing line "N passed, N failed" (tests counted by the runners, plus one
# per script test).  Exits non-zero if anything failed.
set -u
root=$1 results=$2
passed=0 failed=0
echo
echo "==================== lofalloc test summary ===================="
for log in $(find "$root" -name '*.log' -path '*/tests/*' ! -name test-suite.log | sort); do
  [ -f "${log%.log}.trs" ] || continue
  rel=${log#"$root"/}
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then  # a script test: its .trs says
    if grep -q '^:test-result: PASS' "${log%.log}.trs"; then p=1
    elif grep -q '^:test-result: SKIP' "${log%.log}.trs"; then echo "$rel: SKIP"; continue
    else f=1; fi
  fi
  grep -E '^\[  (PASSED|FAILED)  \]' "$log" | sed "s|^|$rel: |" | head -3
  [ "$p" -gt 0 ] && ! grep -q '^\[  PASSED' "$log" && echo "$rel: $p passed, $f failed"
  passed=$((passed + p)); failed=$((failed + f))
done
k="$root/kernel-check.log"
if [ -f "$k" ]; then
  p=$(sed -n 's/^kernel: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$k" | tail -1)
  f=$(sed -n 's/^kernel: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$k" | tail -1)
  [ -n "$p" ] && { echo "kernel harness: $p passed, $f failed"; passed=$((passed + p)); failed=$((failed + f)); }
fi
echo "--------------------------------------------------------------"
cat "$results"
steps_failed=$(grep -c 'FAILED$' "$results" || true)
echo "--------------------------------------------------------------"
echo "lofalloc: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$steps_failed" -eq 0 ]
