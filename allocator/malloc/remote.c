/*
 * remote.c -- frees of small blocks owned by another thread's heap.
 *
 * A block freed by a thread that does not own its span belongs on the
 * span's xfree stack (a lock-free LIFO the owner empties with one exchange,
 * heap.c).  A thread with a heap first keeps such blocks in a cache of its
 * own, one per size class (h->foreign), and its mallocs of the class take
 * them back from there before anything else: a
 * block it has just freed, still in its CPU's cache, with no atomic
 * operation either way.  Such a block never leaves its span's used count,
 * so it can be handed out again as it stands.  When a class's cache reaches
 * its bound it is emptied onto the spans' xfree stacks, one CAS per run of
 * blocks of one span; a thread without a heap (lof__span_remote_free)
 * pushes each block alone.  Nothing here takes a lock or makes a system
 * call.  The cache's two fast steps, the push at free and the pop at
 * malloc (lof__heap_remote_free, lof__heap_remote_take), are inline in
 * frontend.h, on the paths that call them; their bounds are there too.
 */
#include "frontend.h"

/* Push the list head..tail, n blocks of s (cookies set), onto s->xfree. */
static void xfree_push(lof_span_t *s, lof_block_t *head, lof_block_t *tail, unsigned n) {
  uintptr_t old = atomic_load_explicit(&s->xfree, memory_order_relaxed), new;
  do {
    tail->next = lof__xfree_top(old);
    uintptr_t count = (uintptr_t)lof__xfree_count(old) + n;
    new = (uintptr_t)head | count << LOF_XFREE_SHIFT;
  } while (!atomic_compare_exchange_weak_explicit(&s->xfree, &old, new, memory_order_release,
                                                  memory_order_relaxed));
}

LOF_HIDDEN void lof__span_remote_free(lof_span_t *s, lof_block_t *b) {
  b->cookie = lof__block_cookie(s);
  xfree_push(s, b, b, 1);
}

/* ---- the per-class caches ------------------------------------------------ */

/* Empty class cls's cache onto the xfree stacks of its blocks' spans (a
 * free block's cookie names its span): one CAS per run of consecutive
 * blocks of one span.  A thread that frees what another allocated in one
 * go (a consumer, a thread handed a table) meets that thread's spans in
 * the order it carved them, so its runs are long: the blocks per CAS of
 * the per-span batches this replaced, one batch for all classes -> one per
 * class, were pool 1.07 -> 3.19, server 1.07 -> 2.72, prodcons 1.09 ->
 * 7.69 (doc/malloc.md). */
LOF_HIDDEN void lof__heap_remote_evict(lof_heap_t *h, unsigned cls) {
  lof_block_t *b = h->foreign[cls];
  h->foreign[cls] = NULL;
  h->foreign_n[cls] = 0;
  lof_span_t *run = NULL;
  lof_block_t *head = NULL, *tail = NULL;
  unsigned n = 0;
  while (b != NULL) {
    lof_block_t *next = b->next;
    lof_span_t *s = (lof_span_t *)b->cookie;
    if (s != run) {
      if (run != NULL) xfree_push(run, head, tail, n);
      run = s;
      head = b;
      n = 0;
    } else {
      tail->next = b;
    }
    tail = b;
    n++;
    b = next;
  }
  if (run != NULL) xfree_push(run, head, tail, n);
}

LOF_HIDDEN void lof__heap_remote_flush(lof_heap_t *h) {
  for (unsigned c = 0; c < LOF_NCLASSES; c++)
    if (h->foreign[c] != NULL) lof__heap_remote_evict(h, c);
}
