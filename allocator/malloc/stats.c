/*
 * api.c -- liblofalloc's exported statistics entry points (lof_stats_get,
 * lof_stats_print) and the LOFALLOC_STATS report at exit (stderr or a file).  The region
 * layer fills the memory counters; the malloc frontend, when linked in,
 * adds its own through lof__malloc_stats().
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "options.h"
#include "region.h"

/* Defined by the malloc frontend (allocator/malloc); weak so the region
 * layer alone links. */
LOF_HIDDEN void lof__malloc_stats(lof_stats_t *st) __attribute__((weak));

static void api_stats_fill(lof_stats_t *st) {
  lof__region_stats(st);
  if (lof__malloc_stats) lof__malloc_stats(st);
}

LOF_EXPORT int lof_stats_get(lof_stats_t *out, size_t out_size) {
  if (out == NULL || out_size < 2 * sizeof(uint32_t)) {
    errno = EINVAL;
    return -1;
  }
  lof_stats_t st;
  api_stats_fill(&st);
  size_t n = out_size < sizeof st ? out_size : sizeof st;
  st.size = (uint32_t)n;
  memcpy(out, &st, n);
  return 0;
}

LOF_EXPORT void lof_stats_print(int fd) {
  lof_stats_t st;
  api_stats_fill(&st);
  lof__stats_print(fd, &st);
}

__attribute__((destructor)) static void api_stats_at_exit(void) {
  int fd = lof__stats_output_open();
  if (fd < 0) return;
  lof_stats_print(fd);
  lof__stats_output_close(fd);
}
