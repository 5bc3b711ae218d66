#!/bin/sh
# tests/preload/stress-ng.sh -- stress-ng --malloc under LD_PRELOAD: two
# workers hammer malloc/calloc/realloc/free (stress-ng checks the contents
# with --verify); it must complete successfully.
. "${top_srcdir:-../..}/tests/preload/common.sh"
need_lib
need_prog stress-ng
if run_preloaded stress-ng stress-ng --malloc 2 --malloc-ops 200000 --verify -t 20 --metrics-brief; then
  # -w: stress-ng's failure line says "unsuccessful run completed"
  if grep -qw "successful run completed" "$WORK/stress-ng.out" "$WORK/stress-ng.err" &&
     ! grep -q "unsuccessful run" "$WORK/stress-ng.out" "$WORK/stress-ng.err"; then
    pass "stress-ng --malloc: successful run completed"
  else
    fail "stress-ng --malloc: no 'successful run completed'"
    tail -5 "$WORK/stress-ng.err"
  fi
  check_probes stress-ng 1
fi
finish
