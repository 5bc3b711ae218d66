# tests/common/smaps.sh -- the one smaps reader of the shell scripts (sourced;
# the C tests and tools have tests/common/smaps.c, Python tests/common/smaps.py).
#
#   smaps_rollup_kb PID FIELD   one field of /proc/PID/smaps_rollup in kB
#                               ("Locked", "Rss", ...); 0 when unreadable
#   smaps_lolf_locked PID       true when some VMA of PID is lock-on-fault
#                               ("lo" and "lf" in VmFlags) with Locked: > 0
#   status_kb PID FIELD         one field of /proc/PID/status in kB (VmRSS, VmLck)

smaps_rollup_kb() {
  awk -v f="$2:" '$1 == f { print $2; found = 1; exit } END { if (!found) print 0 }' \
    "/proc/$1/smaps_rollup" 2>/dev/null || echo 0
}

smaps_lolf_locked() {
  awk '/^Locked:/ { locked = $2 } /^VmFlags:/ { lo = lf = 0
         for (i = 2; i <= NF; i++) { if ($i == "lo") lo = 1; if ($i == "lf") lf = 1 }
         if (lo && lf && locked > 0) { hit = 1; exit } }
       END { exit !hit }' "/proc/$1/smaps" 2>/dev/null
}

status_kb() {
  awk -v f="$2:" '$1 == f { print $2; found = 1; exit } END { if (!found) print 0 }' \
    "/proc/$1/status" 2>/dev/null || echo 0
}
