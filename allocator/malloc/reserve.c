/*
 * reserve.c -- lof_reserve(): heap memory locked and populated now, for the
 * process, and never given back; LOFALLOC_RESERVE=SIZE does it at start-up.
 *
 * The reserve is made of pinned segments.  A pinned segment is committed
 * (locked on fault) and populated (every page resident and locked now), and
 * its free runs are never put on the arena's dirty list, so decay,
 * malloc_trim and lof_purge never purge them: a page of the reserve, once
 * populated, never faults again.  lof_reserve(n) first pins every segment the
 * heap already has (so memory a program used before the call does not
 * refault either), then adds fresh pinned segments to a pool until the
 * pinned total is at least n.  An arena that runs out of pages takes a
 * segment from the pool (kept by segment.c: lof__segment_new takes it)
 * before it asks the kernel for one: small and large requests that fit the
 * reserve make no system call.  Huge blocks freed while a reserve exists are
 * kept by huge.c as pinned cache entries, up to the reserve's size.
 *
 * The one hook into segment commit is reserve_segment_new(): it asks for a
 * fresh segment, commits it whole (lof__segment_commit_to) and checks that
 * its lock held; segments the heap already has are committed whole when
 * they are pinned.  A lock that fails is not a reserve: the
 * segment is decommitted again (uncharged), lof_reserve fails with ENOMEM
 * whatever the policy, and the heap is as it was (segments already pinned
 * stay pinned, which takes nothing from anyone).
 *
 * Invariants: a segment's pinned flag goes from 0 to 1 only, under its
 * arena's lock, while none of its runs is on the dirty list (arena.c and
 * check.c test the flag); pool segments belong to no arena until taken.
 */
#include <errno.h>
#include <string.h>

#include "frontend.h"
#include "options.h"
#include "os.h"

static pthread_mutex_t reserve_lock = PTHREAD_MUTEX_INITIALIZER; /* serialises lof_reserve */
static _Atomic(uint64_t) reserve_pinned;   /* bytes of pinned segments (pool and arenas) */
static _Atomic(uint64_t) reserve_populated; /* bytes populated by lof_reserve */

LOF_HIDDEN void lof__reserve_stats(uint64_t *pinned, uint64_t *populated) {
  *pinned = atomic_load_explicit(&reserve_pinned, memory_order_relaxed);
  *populated = atomic_load_explicit(&reserve_populated, memory_order_relaxed);
}

/* Populate a whole segment.  Without MADV_POPULATE_WRITE (Linux < 5.14) a
 * fresh segment nobody else sees yet is touched page by page (its pages read
 * as zero, so writing a zero changes nothing); an arena's segment is not. */
static bool reserve_populate(lof_segment_t *seg, bool fresh) {
  if (lof__os_populate(seg, LOF_SEG_SIZE) == 0) return true;
  if (!fresh) return false;
  for (size_t off = 0; off < LOF_SEG_SIZE; off += LOF_PAGE_SIZE)
    __atomic_store_n((volatile char *)seg + off, 0, __ATOMIC_RELAXED);
  return true;
}

/* Pin every segment of every arena; returns the bytes they hold, and in
 * *populated the bytes of them populated now. */
static uint64_t reserve_pin_existing(uint64_t *populated) {
  uint64_t total = 0;
  for (unsigned i = 0; i < LOF_MAX_ARENAS; i++) {
    lof_arena_t *a = &lof__arenas[i];
    lof__lock_marked(&a->lock);
    lof_segment_t *head = a->segments;
    bool any_new = false;
    for (lof_segment_t *seg = head; seg != NULL; seg = seg->next)
      any_new |= !lof__segment_pinned(seg);
    if (any_new) {
      /* Take the dirty runs of the segments being pinned off the dirty list
       * (and out of the bins) while the flag is still 0, then put them back
       * as the free runs of pinned segments. */
      lof_span_t *moved = NULL;
      for (lof_span_t *s = a->dirty, *next; s != NULL; s = next) {
        next = s->dnext;
        if (lof__segment_pinned(lof__segment_of(s))) continue;
        lof__arena_unlink_locked(a, s);
        s->next = moved;
        moved = s;
      }
      /* A pinned segment is committed whole (its prefix never trims). */
      for (lof_segment_t *seg = head; seg != NULL; seg = seg->next)
        if (!lof__segment_pinned(seg) && lof__segment_commit_to(seg, LOF_SEG_PAGES) == 0)
          atomic_store_explicit(&seg->pinned, 1, memory_order_relaxed);
      uint64_t now = lof__now_ms();
      for (lof_span_t *s = moved, *next; s != NULL; s = next) {
        next = s->next;
        lof__arena_insert_locked(a, s, false, now);
      }
    }
    size_t n = a->nsegments;
    lof__unlock_marked(&a->lock);
    /* Segments are never freed and the list only grows at its head, so the
     * part from head on can be walked without the lock. */
    for (lof_segment_t *seg = head; seg != NULL && n > 0; seg = seg->next, n--) {
      if (reserve_populate(seg, false)) *populated += LOF_SEG_SIZE;
      total += LOF_SEG_SIZE;
    }
  }
  return total;
}

/* The hook into segment commit: a fresh segment whose whole range is locked
 * (and charged), or NULL + ENOMEM.  A commit that the policy let through
 * unlocked (fallback) is undone: an unlocked reserve would promise what it
 * cannot keep. */
static lof_segment_t *reserve_segment_new(void) {
  lof_stats_t before, after;
  lof__region_stats_basic(&before);
  lof_segment_t *seg = lof__segment_new(NULL);
  if (seg == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  if (lof__segment_commit_to(seg, LOF_SEG_PAGES) != 0) { /* the whole segment */
    lof__registry_set(seg, false);
    lof__region_decommit(seg->region, seg, LOF_SEG_SIZE);
    errno = ENOMEM;
    return NULL;
  }
  lof__region_stats_basic(&after);
  bool locked = before.backend == LOF_BACKEND_UNLOCKED || after.lock_failures == before.lock_failures;
  if (!locked) {
    lof__registry_set(seg, false);
    lof__region_decommit(seg->region, seg, LOF_SEG_SIZE);
    errno = ENOMEM;
    return NULL;
  }
  atomic_store_explicit(&seg->pinned, 1, memory_order_relaxed);
  return seg;
}

LOF_HIDDEN int lof__reserve(size_t bytes) {
  if (bytes > ((size_t)1 << 46)) {
    errno = ENOMEM;
    return -1;
  }
  int saved = errno;
  sigset_t held;
  lof__lock_nosignal(&reserve_lock, &held);
  /* What the heap holds now counts: it is pinned below. */
  uint64_t existing = 0;
  for (unsigned i = 0; i < LOF_MAX_ARENAS; i++) existing += lof__arenas[i].nsegments;
  existing *= LOF_SEG_SIZE;
  uint64_t pooled = lof__segment_pool_bytes();
  /* Fresh segments first, so a refusal changes nothing at all. */
  uint64_t have = existing + pooled;
  lof_segment_t *fresh = NULL;
  int rc = 0, err = 0;
  while (have < bytes) {
    lof_segment_t *seg = reserve_segment_new();
    if (seg == NULL) {
      rc = -1;
      err = ENOMEM;
      break;
    }
    seg->next = fresh;
    fresh = seg;
    have += LOF_SEG_SIZE;
  }
  if (rc != 0) {
    /* Give every fresh segment back (decommitted: uncharged, unregistered). */
    while (fresh != NULL) {
      lof_segment_t *next = fresh->next;
      lof__registry_set(fresh, false);
      lof__region_decommit(fresh->region, fresh, LOF_SEG_SIZE);
      fresh = next;
    }
    lof__unlock_nosignal(&reserve_lock, &held);
    lof__message("warning: lof_reserve(%zu): the lock budget refused %zu bytes more; "
                 "nothing reserved (raise ulimit -l / LimitMEMLOCK=, or reserve less)",
                 bytes, (size_t)(bytes - (have < bytes ? have : bytes)));
    errno = err;
    return -1;
  }
  /* Fresh segments are populated before anyone sees them; the pool's
   * older ones were when they were made. */
  for (lof_segment_t *seg = fresh; seg != NULL; seg = seg->next) reserve_populate(seg, true);
  uint64_t populated = 0;
  uint64_t pinned_existing = reserve_pin_existing(&populated);
  pooled = lof__segment_pool_add(fresh);
  atomic_store_explicit(&reserve_pinned, pinned_existing + pooled, memory_order_relaxed);
  atomic_store_explicit(&reserve_populated, populated + pooled, memory_order_relaxed);
  lof__unlock_nosignal(&reserve_lock, &held);
  errno = saved;
  return 0;
}

LOF_HIDDEN void lof__reserve_startup(void) {
  int64_t want = lof__option(LOF_OPT_RESERVE);
  if (want <= 0) return;
  if (lof__reserve((size_t)want) != 0)
    lof__message("warning: LOFALLOC_RESERVE=%lld not honoured: running without a reserve",
                 (long long)want);
}

/* fork (malloc/fork.c): reserve_lock is taken first of all (lof_reserve
 * holds it around everything else it does); the pool's lock is segment.c's,
 * taken next. */
LOF_HIDDEN void lof__reserve_prefork(void) { lof__fork_lock(&reserve_lock); }

LOF_HIDDEN void lof__reserve_postfork(bool child) {
  if (child)
    lof__fork_reset(&reserve_lock);
  else
    lof__fork_unlock(&reserve_lock);
}
