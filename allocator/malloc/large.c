/*
 * large.c -- large blocks: sizes above the largest small class and below
 * the huge threshold, served as whole page runs of a segment (4 KiB
 * granularity, so the waste is under one page: < 25% above 16 KiB).
 *
 * The block's descriptor lives in the segment header, never in the block's
 * pages, so a large block nobody touches stays untouched (and unlocked).
 * A run knows whether it reads as zero (fresh or purged), which calloc and
 * realloc use to skip a memset.  Large blocks come from the calling thread's
 * arena and go back to the arena of their segment: a cross-thread free takes
 * that arena's lock, not a global one.
 */
#include <errno.h>

#include "frontend.h"

LOF_HIDDEN void *lof__large_alloc(size_t size, size_t align, bool *zero) {
  lof_heap_t *h = lof__heap_get();
  lof_arena_t *a = h != NULL ? h->arena : &lof__arenas[0];
  size_t np = (size + LOF_PAGE_SIZE - 1) >> LOF_PAGE_SHIFT;
  lof_span_t *s = lof__arena_alloc(a, np, align, LOF_SPAN_LARGE, 0, 0, zero);
  if (s == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  if (h != NULL)
    lof__stat_add(h, (int64_t)np << LOF_PAGE_SHIFT, 1);
  else
    lof__stat_global((int64_t)np << LOF_PAGE_SHIFT, 1);
  return (void *)lof__span_start(s);
}

LOF_HIDDEN void lof__large_free(lof_span_t *s) {
  lof_heap_t *h = lof__heap_tls;
  int64_t bytes = (int64_t)s->npages << LOF_PAGE_SHIFT;
  if (h != &lof__heap_empty)
    lof__stat_add(h, -bytes, -1);
  else
    lof__stat_global(-bytes, -1);
  lof__arena_free(s);
}
