/*
 * stats.c -- liblofalloc's statistics entry points: lof_stats_get and
 * lof_stats_print, and the LOFALLOC_STATS report at exit (stderr or a
 * file).  The region layer fills the memory counters, the heaps and the
 * reserve add the frontend's (allocated bytes and blocks, pinned bytes).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "frontend.h"
#include "stats_print.h"

void lof__malloc_stats(lof_stats_t *st) {
  int64_t bytes, blocks;
  lof__heaps_stats(&bytes, &blocks);
  st->allocated = bytes > 0 ? (uint64_t)bytes : 0;
  st->allocations = blocks > 0 ? (uint64_t)blocks : 0;
  lof__reserve_stats(&st->pinned, &st->pinned_populated);
}

static void stats_fill(lof_stats_t *st) {
  lof__region_stats(st);
  lof__malloc_stats(st);
}

LOF_EXPORT int lof_stats_get(lof_stats_t *out, size_t out_size) {
  if (out == NULL || out_size < 2 * sizeof(uint32_t)) {
    errno = EINVAL;
    return -1;
  }
  lof_stats_t st;
  stats_fill(&st);
  size_t n = out_size < sizeof st ? out_size : sizeof st;
  st.size = (uint32_t)n;
  memcpy(out, &st, n);
  return 0;
}

LOF_EXPORT void lof_stats_print(int fd) {
  lof_stats_t st;
  stats_fill(&st);
  lof__stats_print(fd, &st);
}

__attribute__((destructor)) static void stats_at_exit(void) {
  int fd = lof__stats_output_open();
  if (fd < 0) return;
  lof_stats_print(fd);
  lof__stats_output_close(fd);
}
