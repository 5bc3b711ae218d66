/*
 * lof-backend.c -- print the locking backend liblofalloc chose on this
 * kernel, as lof_stats_get() names it, and check it against an expectation.
 *
 * Usage: lof-backend [EXPECTED]
 * Prints "LOFBACKEND <backend_name>" and exits 0 when EXPECTED is absent or
 * equal to the name ("MAP_LOCKONFAULT" on the patched kernel, "mlock2" on
 * the unpatched one), 1 when it differs, 2 when the stats cannot be read.
 */
#include <stdio.h>
#include <string.h>

#include "lofalloc.h"

int main(int argc, char **argv) {
  lof_stats_t st;
  char *p;

  /* the first allocation initialises the heap, and with it the backend */
  p = lof_malloc(100000);
  if (!p) {
    printf("LOFBACKEND error: lof_malloc failed\n");
    return 2;
  }
  p[0] = 1;
  memset(&st, 0, sizeof(st));
  if (lof_stats_get(&st, sizeof(st))) {
    printf("LOFBACKEND error: lof_stats_get failed\n");
    return 2;
  }
  st.backend_name[sizeof(st.backend_name) - 1] = '\0';
  printf("LOFBACKEND %s committed=%llu locked_range=%llu locked_resident=%llu\n",
         st.backend_name, (unsigned long long)st.committed,
         (unsigned long long)st.locked_range, (unsigned long long)st.locked_resident);
  lof_free(p);
  if (argc > 1 && strcmp(argv[1], st.backend_name) != 0) {
    printf("LOFBACKEND expected %s, got %s\n", argv[1], st.backend_name);
    return 1;
  }
  return 0;
}
