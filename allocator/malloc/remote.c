/*
 * remote.c -- frees of small blocks owned by another thread's heap.
 *
 * A block freed by a thread that does not own its span goes onto the span's
 * xfree stack (a lock-free LIFO the owner empties with one exchange, heap.c).
 * A thread with a heap holds such blocks back in a per-class batch, one span
 * at a time, and pushes the whole batch with one CAS; a thread without one
 * (lof__span_remote_free) pushes each block alone.  Nothing here takes a lock
 * or makes a system call.
 */
#include "frontend.h"

LOF_HIDDEN void lof__span_remote_free(lof_span_t *s, lof_block_t *b) {
  b->cookie = lof__block_cookie(s);
  uintptr_t head = atomic_load_explicit(&s->xfree, memory_order_relaxed);
  do {
    b->next = (lof_block_t *)head;
  } while (!atomic_compare_exchange_weak_explicit(&s->xfree, &head, (uintptr_t)b,
                                                  memory_order_release, memory_order_relaxed));
}

/* ---- remote frees, batched ---------------------------------------------- */

/* Push batch q onto its span's xfree (one CAS) and empty it. */
static void remote_push(lof_heap_t *h, lof_remote_batch_t *q, unsigned cls) {
  lof_span_t *s = q->span;
  uintptr_t head = atomic_load_explicit(&s->xfree, memory_order_relaxed);
  do {
    q->tail->next = (lof_block_t *)head;
  } while (!atomic_compare_exchange_weak_explicit(&s->xfree, &head, (uintptr_t)q->head,
                                                  memory_order_release, memory_order_relaxed));
  q->span = NULL;
  q->head = q->tail = NULL;
  h->remote_pending &= ~((uint64_t)1 << cls);
}

LOF_HIDDEN void lof__heap_remote_flush(lof_heap_t *h) {
  for (uint64_t m = h->remote_pending; m != 0; m &= m - 1) {
    unsigned cls = (unsigned)__builtin_ctzll(m);
    remote_push(h, &h->remote[cls], cls);
  }
}

/* The blocks held back stay counted as used by the span's owner, so the
 * span can be neither released nor reused while they wait (the bounds are
 * at LOF_REMOTE_BATCH).  A batch per class because a thread that frees
 * what another allocated in one go (a consumer, a thread handed a table)
 * meets that thread's spans in the order it carved them, one span per
 * class at a time, but with the classes interleaved: a single batch would
 * be pushed at nearly every free (lofbench pool: 1.07 blocks per CAS with
 * one batch, 3.2 with one per class; prodcons 1.09 and 7.7).  One CAS per
 * batch instead of one per block, on the descriptor line the owner writes
 * at every malloc. */
LOF_HIDDEN void lof__heap_remote_free(lof_heap_t *h, lof_span_t *s, lof_block_t *b) {
  b->cookie = lof__block_cookie(s);
  unsigned cls = s->cls;
  lof_remote_batch_t *q = &h->remote[cls];
  if (LOF_UNLIKELY(q->span != s)) { /* a new batch: b will be its tail */
    if (q->span != NULL) remote_push(h, q, cls);
    q->span = s;
    q->head = NULL;
    q->tail = b;
    /* LOF_REMOTE_BATCH blocks, or as many as reach LOF_REMOTE_BATCH_BYTES
     * (1 from 4 KiB up: pushed at once) */
    uint32_t by_bytes = (LOF_REMOTE_BATCH_BYTES + s->block_size - 1) / s->block_size;
    q->room = by_bytes < LOF_REMOTE_BATCH ? by_bytes : LOF_REMOTE_BATCH;
    h->remote_pending |= (uint64_t)1 << cls;
  }
  b->next = q->head;
  q->head = b;
  if (--q->room == 0) remote_push(h, q, cls);
}
