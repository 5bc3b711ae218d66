#!/bin/sh
# tests/preload/gcc.sh -- gcc under LD_PRELOAD compiles and links a C file
# (the driver, cc1, as, collect2 and ld all run with lofalloc, and each of
# them must have written a probe line); the program it built must print the
# right answer.
. "${top_srcdir:-../..}/tests/preload/common.sh"
need_lib
need_prog gcc
cat >"$WORK/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
int main(void) {
  int v[1000];
  for (int i = 0; i < 1000; i++) v[i] = (i * 7919) % 1009;
  qsort(v, 1000, sizeof v[0], cmp);
  long s = 0;
  for (int i = 0; i < 1000; i++) s += (long)v[i] * i;
  printf("%ld %d %d\n", s, v[0], v[999]);
  return 0;
}
C
expected=$(gcc -O2 -o "$WORK/ref" "$WORK/prog.c" && "$WORK/ref")
if run_preloaded gcc gcc -O2 -Wall -o "$WORK/prog" "$WORK/prog.c"; then
  got=$("$WORK/prog")
  if [ "$got" = "$expected" ]; then pass "gcc: built program prints '$got'"; else fail "gcc: built program prints '$got', expected '$expected'"; fi
  check_probes gcc 5
  # one line from each of the five programs (Debian names them with the
  # target triplet: x86_64-linux-gnu-gcc-12, x86_64-linux-gnu-as, ...-ld.bfd)
  check_exes gcc '([a-z0-9_]+-)*gcc(-[0-9]+)?' 'cc1' '([a-z0-9_]+-)*as' 'collect2' '([a-z0-9_]+-)*ld(\.bfd|\.gold)?'
fi
finish
