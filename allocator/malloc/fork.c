/*
 * fork.c -- keeping the heap consistent across fork(2), including a fork()
 * called from a signal handler at any moment.
 *
 * pthread_atfork handlers, registered by a constructor once the heap is
 * initialised (registering may itself malloc).  Before fork every frontend
 * lock is taken, always in this order -- the order every other path nests
 * them in:
 *   0. reserve_lock (reserve.c)
 *   1. pool_lock, segment_lock (segment.c)     2. huge_lock (huge.c)
 *   3. heaps_lock (heap.c)          4. abandoned_lock (heap.c)
 *   5. arena locks, index 0..15     6. the region layer (lof__region_prefork)
 * Each is taken with lof__fork_lock (common/forklock.h), one fork at a time
 * (a fork from another thread waits for this one's parent handler): a mutex
 * the calling thread already holds -- because this fork() runs in a signal
 * handler that interrupted another fork()'s handlers, or interrupted malloc
 * or free holding it -- is not taken again, so the handler does not deadlock
 * on its own thread; the parent then releases only what this fork took.
 * Every lock but the arenas' is held with signals blocked, so only an arena
 * lock can be held by interrupted code (forklock.h); the handlers keep away
 * from such an arena's lists.
 * After fork the region layer goes first (lof__region_postfork_*): in the
 * child it re-locks every committed lock-on-fault range, because memory
 * locks are not inherited (LOFALLOC_FORK_RELOCK=0 skips it).  Then the parent
 * unlocks in reverse order; the child re-initialises the mutexes.
 *
 * The child's calling thread keeps its heap and can allocate at once.  Heaps
 * of the parent's other threads do not exist in the child: their spans stay
 * as they were (a copy of memory the child cannot reach through any live
 * thread) and their blocks, if the child frees them, go to the spans' remote
 * lists.  We do not adopt them: one of those threads may have been halfway
 * through a lock-free fast path when fork() copied its span.
 */
#include "frontend.h"

static void fork_prepare(void) {
  lof__fork_begin();
  lof__reserve_prefork();
  lof__segment_prefork();
  lof__huge_prefork();
  lof__heaps_prefork();
  lof__arenas_prefork();
  lof__region_prefork();
}

static void fork_parent(void) {
  lof__region_postfork_parent();
  lof__arenas_postfork(false);
  lof__heaps_postfork(false);
  lof__huge_postfork(false);
  lof__segment_postfork(false);
  lof__reserve_postfork(false);
  lof__fork_end(false);
}

/* In the child, before the mutexes are re-initialised: when interrupted code
 * held an arena's lock -- the code this fork()'s signal interrupted, or that
 * of a thread waiting to fork (common/forklock.h) -- that arena's lists may
 * be half-updated in the child's copy.  The child's
 * heap moves to an arena nobody was updating (its old blocks stay where they
 * are; the spans it owned keep working through their own free lists). */
static void fork_child_avoid_torn_arenas(void) {
  lof_heap_t *h = lof__heap_tls;
  if (h == &lof__heap_empty || !lof__fork_torn(&h->arena->lock)) return;
  for (unsigned i = 0; i < LOF_MAX_ARENAS; i++)
    if (!lof__fork_torn(&lof__arenas[i].lock)) {
      h->arena = &lof__arenas[i];
      if (i >= lof__narenas) lof__narenas = i + 1;
      return;
    }
}

static void fork_child(void) {
  fork_child_avoid_torn_arenas();
  lof__arena_decay_postfork_child();
  lof__region_postfork_child();
  lof__arenas_postfork(true);
  lof__heaps_postfork(true);
  lof__huge_postfork(true);
  lof__segment_postfork(true);
  lof__reserve_postfork(true);
  lof__fork_end(true);
}

__attribute__((constructor)) static void fork_register(void) {
  lof__malloc_init();
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}
