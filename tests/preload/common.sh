# tests/preload/common.sh -- shared by the LD_PRELOAD tests (sourced).
# Each test runs a real program with LD_PRELOAD="liblofalloc.so liblofcheck.so",
# compares its output with the expected one, and reads the probe lines
# (lofcheck.c) every process of the program appended to $LOFCHECK_OUT: each
# must say OK (small, large, huge and start-up blocks in `lo lf` VMAs; the
# library's counters say every committed heap byte is lock-on-fault, or
# served unlocked only under RLIMIT_MEMLOCK; the heap's smaps Locked: above
# zero; lof_check() == 0).  Prints PASS/FAIL/SKIP lines; exit status 0
# pass, 1 fail, 77 skip (automake's code).
set -u
: "${top_builddir:=../..}"
LOF_LIB=$(cd "$top_builddir" && pwd)/allocator/.libs/liblofalloc.so
LOF_CHECK=$(cd "$top_builddir" && pwd)/tests/.libs/liblofcheck.so
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lofpreload.XXXXXX")
LOFCHECK_OUT=$WORK/probe.txt
export LOFCHECK_OUT
trap 'rm -rf "$WORK"' EXIT
failures=0

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
skip() { echo "SKIP: $*"; exit 77; }

need_lib() {
  [ -f "$LOF_LIB" ] || { echo "FAIL: $LOF_LIB not built"; exit 1; }
  [ -f "$LOF_CHECK" ] || { echo "FAIL: $LOF_CHECK not built"; exit 1; }
  # a --disable-override (or sanitizer) build does not replace malloc
  nm -D --defined-only "$LOF_LIB" | grep -qw malloc ||
    skip "liblofalloc.so does not export malloc (built without override)"
}

need_prog() {
  command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed (tools/deps.sh installs it)"
}

# run_preloaded NAME CMD...: run CMD under lofalloc, stdout to $WORK/NAME.out
run_preloaded() {
  name=$1
  shift
  : >"$LOFCHECK_OUT"
  LD_PRELOAD="$LOF_LIB $LOF_CHECK" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
  rc=$?
  if [ $rc -ne 0 ]; then
    fail "$name: exit status $rc"
    sed 's/^/  | /' "$WORK/$name.err" | tail -20
  fi
  return $rc
}

# check_probes NAME MIN: at least MIN probe lines, all OK
check_probes() {
  name=$1
  min=$2
  n=$(grep -c . "$LOFCHECK_OUT" || true)
  bad=$(grep -vc '^OK ' "$LOFCHECK_OUT" || true)
  # the first lines and every bad one (wrapper scripts may add many processes)
  head -n 8 "$LOFCHECK_OUT" | sed 's/^/  probe: /'
  grep -v '^OK ' "$LOFCHECK_OUT" | sed 's/^/  probe: /'
  if [ "$n" -lt "$min" ]; then
    fail "$name: $n process(es) reported, expected at least $min"
  elif [ "$bad" -ne 0 ]; then
    fail "$name: $bad process(es) with a probe block not in a 'lo lf' VMA, heap memory not locked, or lof_check failing"
  else
    pass "$name: $n process(es): probe blocks in 'lo lf' VMAs, committed heap lock-on-fault (by the library's count), heap Locked: > 0, lof_check clean"
  fi
}

# check_exes NAME PATTERN...: for each grep -E PATTERN, a probe line came
# from a process whose executable's name matches it (exe=NAME is anchored).
check_exes() {
  name=$1
  shift
  for pat in "$@"; do
    if grep -Eq "^[A-Z]+ pid=[0-9]+ exe=($pat) " "$LOFCHECK_OUT"; then
      pass "$name: a probe line from '$pat'"
    else
      fail "$name: no probe line from a process named '$pat' (got: $(sed -n 's/.* exe=\([^ ]*\) .*/\1/p' "$LOFCHECK_OUT" | sort -u | tr '\n' ' '))"
    fi
  done
}

finish() {
  [ "$failures" -eq 0 ] && exit 0
  exit 1
}
