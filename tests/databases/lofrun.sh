#!/bin/sh
# tests/databases/lofrun.sh -- lofrun sets LD_PRELOAD and the options,
# refuses bad input with status 2 and one line, and --stats=FILE with %p
# gives every process (a parent and its fork children) its own report.
. "${top_srcdir:-../..}/tests/databases/common.sh"
need_lib
# the interpreter itself, not a wrapper (pyenv shims spawn processes)
PY=/usr/bin/python3
[ -x "$PY" ] || skip "/usr/bin/python3 is not installed"

out=$($LOFRUN_CMD --policy=strict --max-locked=64M --verbose --lock-shared -- \
  sh -c 'echo "$LD_PRELOAD|$LOFALLOC_POLICY|$LOFALLOC_MAX_LOCKED|$LOFALLOC_VERBOSE|$LOFALLOC_LOCK_SHARED"' 2>/dev/null)
case "$out" in
  "$LOF_LIB|strict|67108864|1|1") pass "lofrun: environment set ($out)" ;;
  *) fail "lofrun: environment '$out'" ;;
esac
out=$(LD_PRELOAD=/lib/x86_64-linux-gnu/libc.so.6 $LOFRUN_CMD -- sh -c 'echo "$LD_PRELOAD"')
[ "$out" = "$LOF_LIB:/lib/x86_64-linux-gnu/libc.so.6" ] && pass "lofrun: goes in front of LD_PRELOAD" ||
  fail "lofrun: LD_PRELOAD '$out'"

# bad input: status 2, one line naming the problem, the program not run
for args in "--policy=lenient" "--max-locked=12Q" "--reserve=x" "--leave=1Q" "--lib=/nonexistent.so" \
            "--lib=/etc/hostname" "--stats=" "--bogus" "--jemalloc --lock-shared"; do
  err=$("$LOFRUN" $args -- touch "$WORK/ran" 2>&1 >/dev/null); rc=$?
  if [ $rc -eq 2 ] && [ ! -e "$WORK/ran" ] && [ -n "$err" ]; then
    pass "lofrun $args: refused ($(echo "$err" | tail -1))"
  else
    fail "lofrun $args: rc $rc, '$err'"; rm -f "$WORK/ran"
  fi
done
"$LOFRUN" 2>/dev/null; [ $? -eq 2 ] && pass "lofrun without a command: status 2" || fail "lofrun without a command"

# --leave leaves part of the memlock limit: budget = limit - leave
lim=$(ulimit -l)
if [ "$lim" != unlimited ]; then
  out=$($LOFRUN_CMD --leave=1M -- sh -c 'echo "$LOFALLOC_MAX_LOCKED"')
  [ "$out" = $((lim * 1024 - 1048576)) ] && pass "lofrun --leave=1M: budget $out" ||
    fail "lofrun --leave=1M: LOFALLOC_MAX_LOCKED '$out' (limit ${lim} kB)"
fi
# --reserve pins heap at start-up: the library reports it pinned
out=$($LOFRUN_CMD --reserve=4M --stats=/dev/stderr -- "$PY" -c 'pass' 2>&1)
pinned=$(echo "$out" | sed -n 's/^lofalloc: pinned  *\([0-9][0-9]*\) bytes.*/\1/p' | head -1)
if [ -n "$pinned" ] && [ "$pinned" -ge 4194304 ]; then
  pass "lofrun --reserve=4M: $pinned bytes pinned"
else
  fail "lofrun --reserve=4M: stats say pinned '$pinned'"; echo "$out" | sed 's/^/  | /' | head -20
fi

# --stats=FILE with %p: a parent and two fork children each write a report
$LOFRUN_CMD --stats="$STATS_DIR/s.%p" -- "$PY" -c '
import os, sys
b = [bytes(1000) for _ in range(1000)]
pid = os.fork()
if pid == 0:
    pid2 = os.fork()
    if pid2:
        os.waitpid(pid2, 0)
    sys.exit(0)
os.waitpid(pid, 0)
' 2>"$WORK/stats.err"
n=$(ls "$STATS_DIR" | grep -c '^s\.[0-9]')
bad=$(for f in "$STATS_DIR"/s.*; do grep -q "lofalloc: allocated" "$f" || echo "$f"; done)
if [ "$n" -eq 3 ] && [ -z "$bad" ] && [ ! -s "$WORK/stats.err" ]; then
  pass "lofrun --stats=FILE.%p: 3 processes, 3 reports, nothing on stderr"
else
  fail "lofrun --stats: $n reports (want 3), bad: $bad"; sed 's/^/  | /' "$WORK/stats.err" | head
fi
# LOFALLOC_STATS=1 still goes to stderr; an unwritable file warns and falls back to stderr
err=$(LOFALLOC_STATS=1 LD_PRELOAD="$LOF_LIB" /bin/true 2>&1)
echo "$err" | grep -q "lofalloc: locked_range" && pass "LOFALLOC_STATS=1: report on stderr" ||
  fail "LOFALLOC_STATS=1: '$err'"
err=$(LOFALLOC_STATS=/nonexistent/dir/s.%p LD_PRELOAD="$LOF_LIB" /bin/true 2>&1)
if echo "$err" | grep -q "cannot open" && echo "$err" | grep -q "lofalloc: locked_range"; then
  pass "LOFALLOC_STATS=unwritable: one warning, report on stderr"
else
  fail "LOFALLOC_STATS=unwritable: '$err'"
fi
finish
