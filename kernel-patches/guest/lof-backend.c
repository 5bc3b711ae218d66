/*
 * lof-backend.c -- print the locking backend liblofalloc chose on this
 * kernel, as lof_stats_get() names it, and check it against an expectation.
 *
 * Usage: lof-backend [EXPECTED]
 * Prints "LOFBACKEND <backend_name> ..." and exits 0 when EXPECTED is absent
 * or equal to the name ("MAP_LOCKONFAULT" on the patched kernel, "mlock2" on
 * the unpatched one), 1 when it differs, 2 when the stats cannot be read.
 *
 * lof_stats_get() initialises the region layer, which probes the kernel and
 * picks the backend.  When the library also exports lof_malloc (the malloc
 * frontend is linked in), one block is allocated and touched first, so the
 * counters printed show a committed, locked heap.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "lofalloc.h"

int main(int argc, char **argv) {
  void *(*lmalloc)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "lof_malloc");
  lof_stats_t st;
  char *p = NULL;

  if (lmalloc) {
    p = lmalloc(100000);
    if (p)
      memset(p, 1, 100000);
  }
  memset(&st, 0, sizeof(st));
  if (lof_stats_get(&st, sizeof(st))) {
    printf("LOFBACKEND error: lof_stats_get failed\n");
    return 2;
  }
  st.backend_name[sizeof(st.backend_name) - 1] = '\0';
  printf("LOFBACKEND %s malloc=%s committed=%llu locked_range=%llu locked_resident=%llu\n",
         st.backend_name, lmalloc ? (p ? "yes" : "failed") : "absent",
         (unsigned long long)st.committed, (unsigned long long)st.locked_range,
         (unsigned long long)st.locked_resident);
  if (argc > 1 && strcmp(argv[1], st.backend_name) != 0) {
    printf("LOFBACKEND expected %s, got %s\n", argv[1], st.backend_name);
    return 1;
  }
  return lmalloc && !p ? 1 : 0;
}
