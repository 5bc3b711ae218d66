/*
 * purge.c -- giving freed pages back: decay, malloc_trim and lof_purge.
 *
 * Freed page runs stay resident (and locked) for LOFALLOC_DECAY_MS (1000 ms
 * by default), so a program that frees and reallocates does not pay a purge
 * and a refault (+13% per page when locked) each time.  The decay pass runs
 * inside arena operations, at most twice per decay period per arena: it takes
 * up to 32 runs whose pages have been free for the whole period, marks them
 * PURGING (not allocatable, not coalescable), drops the arena lock, purges
 * them (MADV_DONTNEED_LOCKED via the region layer: the range stays committed
 * and lock-on-fault and refaults as zeros), and reinserts them as zero runs.
 * A run that reaches the top of its segment's committed prefix is trimmed
 * instead (decommitted: it leaves the lock charge too, see segment.c), so
 * the charge follows use.
 * When a purged run is a whole segment, the segment header's descriptor
 * pages are purged with it, so an idle segment keeps one resident page.
 * There is never a system call per free.
 *
 * lof_purge() / malloc_trim() purge everything now: the calling thread's
 * empty spans, empty abandoned spans, and every dirty run of every arena.
 * Other threads' partly used spans stay theirs (we never touch another
 * thread's lists); their free blocks are reclaimed when they allocate or exit.
 */
#include <errno.h>

#include "frontend.h"
#include "options.h"

#define LOF_PURGE_BATCH 32

/* The arena whose runs this thread is purging, its lock dropped (a fork
 * from a signal handler that interrupted the purge must leave them to it). */
static __thread __attribute__((tls_model("initial-exec"))) lof_arena_t *purging_here;

LOF_HIDDEN size_t lof__arena_decay_locked(lof_arena_t *a, uint64_t now, bool force) {
  uint64_t decay = (uint64_t)lof__option(LOF_OPT_DECAY_MS);
  size_t total = 0;
  int saved = errno;

  a->last_decay_ms = now;
  /* Runs whose decommit the kernel refused: they go back dirty, after the
   * rounds (so that a forced purge does not retry them at once), and the
   * next decay retries them: inserted clean they would stay committed and
   * charged until reused (found by the fault sweep, tests/faults). */
  lof_span_t *retry[LOF_PURGE_BATCH];
  unsigned nretry = 0;
  for (int round = 0; round < 1024; round++) {
    lof_span_t *batch[LOF_PURGE_BATCH];
    unsigned nb = 0;
    lof_span_t *s = a->dirty;
    while (s != NULL && nb < LOF_PURGE_BATCH) {
      lof_span_t *next = s->dnext;
      if (force || now - s->freed_ms >= decay) {
        lof__arena_unlink_locked(a, s);
        s->state = LOF_SPAN_PURGING;
        batch[nb++] = s;
      }
      s = next;
    }
    if (nb == 0) break;
    a->purgers++;
    purging_here = a;
    pthread_mutex_unlock(&a->lock);
    bool ok[LOF_PURGE_BATCH], refused[LOF_PURGE_BATCH];
    for (unsigned i = 0; i < nb; i++) {
      lof_segment_t *seg = lof__segment_of(batch[i]);
      size_t first = lof__span_index(seg, batch[i]), end = first + batch[i]->npages;
      size_t top = atomic_load_explicit(&seg->committed_pages, memory_order_relaxed);
      size_t trimmed = end >= top ? lof__segment_trim(seg, first) : 0;
      refused[i] = end >= top && first < top && trimmed == 0;
      if (refused[i]) {
        ok[i] = false;
      } else if (trimmed) {
        /* The run reaches the top of the committed prefix: decommitted,
         * its pages leave RAM and the lock charge. */
        ok[i] = true;
        total += trimmed;
      } else {
        size_t len = ((end < top ? end : top) - first) << LOF_PAGE_SHIFT;
        ok[i] = len == 0 ||
                lof__region_purge(seg->region, (void *)lof__span_start(batch[i]), len) == 0;
        total += ok[i] ? len : 0;
      }
      if (ok[i] && batch[i]->npages == LOF_SEG_USABLE_PAGES) {
        /* The whole segment is free and out of the bins: its descriptor
         * slots but two (the header's in page 0, and this run's) describe
         * nothing, and the header pages holding only them may go too; they
         * refault as zeros = UNUSED.  Page 0 keeps the segment fields, the
         * slot map and the pagemap. */
        size_t keep = ((uintptr_t)batch[i] - (uintptr_t)seg) >> LOF_PAGE_SHIFT;
        for (size_t pg = 1; pg < LOF_SEG_HDR_PAGES; pg++) {
          size_t upto = pg;
          while (upto < LOF_SEG_HDR_PAGES && upto != keep) upto++;
          if (upto > pg && lof__region_purge(seg->region, (char *)seg + (pg << LOF_PAGE_SHIFT),
                                             (upto - pg) << LOF_PAGE_SHIFT) == 0)
            total += (upto - pg) << LOF_PAGE_SHIFT;
          pg = upto; /* skips the page that holds this run's descriptor */
        }
      }
    }
    pthread_mutex_lock(&a->lock);
    a->purgers--;
    purging_here = NULL;
    for (unsigned i = 0; i < nb; i++) {
      batch[i]->zero = ok[i];
      if (refused[i] && nretry < LOF_PURGE_BATCH)
        retry[nretry++] = batch[i];
      else
        lof__arena_insert_locked(a, batch[i], ok[i], now);
    }
    if (!force && nb < LOF_PURGE_BATCH) break;
  }
  for (unsigned i = 0; i < nretry; i++) lof__arena_insert_locked(a, retry[i], false, now);
  errno = saved;
  return total;
}

LOF_EXPORT size_t lof_purge(void) {
  size_t total = 0;
  lof__malloc_init();
  lof_heap_t *h = lof__heap_tls;
  if (h != &lof__heap_empty) lof__heap_collect(h);
  lof__abandoned_collect();
  total += lof__huge_cache_flush(); /* freed huge blocks kept for reuse */
  uint64_t now = lof__now_ms();
  for (unsigned i = 0; i < lof__narenas; i++) {
    lof_arena_t *a = &lof__arenas[i];
    pthread_mutex_lock(&a->lock);
    total += lof__arena_decay_locked(a, now, true);
    pthread_mutex_unlock(&a->lock);
  }
  return total;
}

/* A fork while another thread purged: the child has the runs that thread
 * took out of the bins (PURGING) but not the thread, so nothing would ever
 * put them back -- free pages committed and charged for good.  They return
 * to the bins as dirty runs (their pages may or may not have been dropped),
 * to be reused or to decay again.  The calling thread's own interrupted
 * purge (a fork from a signal handler) finishes by itself. */
LOF_HIDDEN void lof__purge_postfork_child(void) {
  uint64_t now = lof__now_ms();
  for (unsigned k = 0; k < LOF_MAX_ARENAS; k++) {
    lof_arena_t *a = &lof__arenas[k];
    if (a->purgers == 0) continue;
    if (purging_here == a) {
      a->purgers = 1;
      continue;
    }
    /* this thread was interrupted inside the arena's critical section: its
     * lists may be half-updated, so leave them be (the runs stay out) */
    if (lof__fork_interrupted_holder(&a->lock)) continue;
    a->purgers = 0;
    for (lof_segment_t *seg = a->segments; seg != NULL; seg = seg->next)
      for (size_t i = LOF_SEG_HDR_PAGES; i < LOF_SEG_PAGES;) {
        lof_span_t *s = &seg->spans[seg->pagemap[i]];
        size_t n = s->npages ? s->npages : 1;
        if (s->state == LOF_SPAN_PURGING) lof__arena_insert_locked(a, s, false, now);
        i += n;
      }
  }
}
