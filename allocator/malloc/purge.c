/*
 * purge.c -- lof_purge() (and malloc_trim, alloc.c): give every freed page
 * back now.  The decay that does it over time is the arenas' (arena.c).
 *
 * lof_purge() / malloc_trim() purge everything now: the calling thread's
 * empty spans, empty abandoned spans, and every dirty run of every arena.
 * Other threads' partly used spans stay theirs (we never touch another
 * thread's lists); their free blocks are reclaimed when they allocate or exit.
 * The arenas are purged with their forced decay pass (lof__arena_decay_locked),
 * the huge cache by huge.c.
 */
#include "frontend.h"

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
    lof__lock_marked(&a->lock);
    total += lof__arena_decay_locked(a, now, true);
    lof__unlock_marked(&a->lock);
  }
  return total;
}
