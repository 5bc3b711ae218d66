/*
 * arena.c -- arenas: page-run allocation inside segments, and decay.
 *
 * An arena owns a set of segments and every free run in them.  A run is a
 * span of whole pages; free runs are coalesced with free neighbours at once
 * (boundary tags: pagemap[] is exact at the first and last page of every
 * span) and kept in bins by page count (exact up to 32 pages, then one bin
 * per power of two).  A request of up to 16 pages (every small span but the
 * biggest classes' ones, large blocks to 64 KiB) takes the best fit by bin;
 * a bigger one takes the lowest-addressed run that holds it (address-ordered
 * first fit), so large blocks pack into the low end of the oldest segments
 * and the holes they leave are filled before fresh pages are touched.  A
 * program growing buffers by realloc reaches about glibc's peak RSS this way
 * instead of 1.2x it (bench/lofbench realloc).  A free run remembers whether
 * all its pages read as zero (fresh or purged), which calloc uses to skip
 * memset, and the dirty ones sit on a list that decay (below) walks.
 *
 * Runs are handed out only from a segment's committed prefix: a run that
 * reaches above it first grows the prefix (one commit per 64 KiB step, under
 * the lock: see segment.c); the low-pages-first placement above keeps the
 * prefix short.
 *
 * Decay (lof__arena_decay_locked, also lof_purge's forced pass, purge.c):
 * freed page runs stay resident (and locked) for LOFALLOC_DECAY_MS (1000 ms
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
 * Threads are spread over the arenas round-robin; each arena has one mutex,
 * taken once per span (64 KiB+ of small objects) or per large block, never
 * on the small-object fast path; the only system call made under it is the
 * growth of a committed prefix.
 */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "frontend.h"
#include "options.h"

LOF_HIDDEN _Alignas(4096) lof_arena_t lof__arenas[LOF_MAX_ARENAS];
LOF_HIDDEN unsigned lof__narenas = 1;
LOF_HIDDEN unsigned lof__arenas_max; /* mallopt(M_ARENA_MAX), 0 = no limit */

LOF_HIDDEN void lof__arenas_init(void) {
  /* the raw call, like the OS layer's (the libc wrapper and CPU_COUNT map
   * pages of libc few programs use); it returns the mask's size in bytes */
  unsigned long mask[16] = {0};
  unsigned n = 0;
  long got = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
  for (long i = 0; got > 0 && i < got / (long)sizeof mask[0]; i++)
    n += (unsigned)__builtin_popcountl(mask[i]);
  if (n == 0) n = 1;
  n *= 2;
  if (n > LOF_MAX_ARENAS) n = LOF_MAX_ARENAS;
  for (unsigned i = 0; i < LOF_MAX_ARENAS; i++) {
    pthread_mutex_init(&lof__arenas[i].lock, NULL);
    lof__arenas[i].index = i;
  }
  lof__narenas = n;
  /* The arenas are bookkeeping every allocation reads: locked on fault,
   * with the rest of the library's static data (the option table, the
   * empty heap, the counters; not the registry, which segment.c locks a
   * page at a time as the heap spreads), or alone where the library is
   * linked into the program (whose data is not the library's to lock). */
  if (!lof__region_meta_lock_image(lof__arenas, lof__registry, sizeof lof__registry))
    lof__region_meta_lock(lof__arenas, LOF_ALIGN_UP(sizeof lof__arenas, LOF_PAGE_SIZE));
}

LOF_HIDDEN uint64_t lof__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

LOF_HIDDEN unsigned lof__arena_bin(size_t npages) {
  if (npages <= 32) return (unsigned)npages - 1;
  return 32u + (63u - (unsigned)__builtin_clzll((unsigned long long)npages)) - 5u;
}

/* pagemap at s's first and last page names it (the boundary tags). */
static void arena_set_bounds(lof_segment_t *seg, lof_span_t *s) {
  uint16_t e = lof__pagemap_entry(seg, s);
  seg->pagemap[s->first] = e;
  seg->pagemap[s->first + s->npages - 1] = e;
}

LOF_HIDDEN void lof__arena_unlink_locked(lof_arena_t *a, lof_span_t *s) {
  unsigned b = lof__arena_bin(s->npages);
  if (s->prev) s->prev->next = s->next; else a->bins[b] = s->next;
  if (s->next) s->next->prev = s->prev;
  if (a->bins[b] == NULL) a->binmask &= ~((uint64_t)1 << b);
  if (!s->zero && !lof__segment_pinned(lof__segment_of(s))) { /* pinned runs are never dirty */
    if (s->dprev) s->dprev->dnext = s->dnext; else a->dirty = s->dnext;
    if (s->dnext) s->dnext->dprev = s->dprev;
    a->dirty_pages -= s->npages;
  }
  s->next = s->prev = s->dnext = s->dprev = NULL;
}

static void arena_link(lof_arena_t *a, lof_span_t *s) {
  unsigned b = lof__arena_bin(s->npages);
  s->prev = NULL;
  s->next = a->bins[b];
  if (s->next) s->next->prev = s;
  a->bins[b] = s;
  a->binmask |= (uint64_t)1 << b;
  s->dprev = s->dnext = NULL;
  if (!s->zero && !lof__segment_pinned(lof__segment_of(s))) { /* pinned runs are never dirty */
    s->dnext = a->dirty;
    if (s->dnext) s->dnext->dprev = s;
    a->dirty = s;
    a->dirty_pages += s->npages;
  }
}

LOF_HIDDEN void lof__arena_insert_locked(lof_arena_t *a, lof_span_t *s, bool zero, uint64_t now) {
  lof_segment_t *seg = lof__segment_of(s);
  size_t first = s->first, n = s->npages;
  uint64_t freed = zero ? UINT64_MAX : now;

  /* First of all: s no longer heads a small span (free's fast path trusts
   * a non-zero owner alone), even if it is merged into the run before. */
  atomic_store_explicit(&s->owner, 0, memory_order_relaxed);

  /* Coalesce with the run before (its last page's map entry names it). */
  if (first > LOF_SEG_HDR_PAGES) {
    lof_span_t *p = lof__pagemap_span(seg, first - 1);
    if (p->state == LOF_SPAN_FREE) {
      lof__arena_unlink_locked(a, p);
      zero = zero && p->zero;
      if (!p->zero && p->freed_ms < freed) freed = p->freed_ms;
      n += p->npages;
      lof__span_slot_free(seg, s);
      s = p;
      first = p->first;
    }
  }
  /* ... and with the run after (its first page's map entry names it). */
  if (first + n < LOF_SEG_PAGES) {
    lof_span_t *q = lof__pagemap_span(seg, first + n);
    if (q->state == LOF_SPAN_FREE) {
      lof__arena_unlink_locked(a, q);
      zero = zero && q->zero;
      if (!q->zero && q->freed_ms < freed) freed = q->freed_ms;
      n += q->npages;
      lof__span_slot_free(seg, q);
    }
  }
  s->state = LOF_SPAN_FREE;
  s->npages = (uint16_t)n;
  s->zero = zero;
  s->freed_ms = zero ? 0 : freed;
  s->abandoned = 0;
  arena_set_bounds(seg, s);
  arena_link(a, s);
}

#define LOF_FIT_ADDRESS_MIN 16   /* pages: above this, address-ordered first fit */
#define LOF_FIT_SCAN_MAX 256     /* runs looked at by one address-ordered search */

/* Would n pages carved from the start of free run s grow its segment's
 * committed prefix?  Only a segment's top run can (every page above the
 * prefix lies in it), so at most one run per segment says yes. */
static bool arena_run_grows(const lof_span_t *s, size_t n) {
  const lof_segment_t *seg = lof__segment_of(s);
  return s->first + n > atomic_load_explicit(&seg->committed_pages, memory_order_relaxed);
}

/* Best fit by bin among the runs that hold n pages inside their segment's
 * committed prefix; a run that would grow a prefix only when no other holds
 * n.  Its pages are fresh ones, while the prefix's free pages are mostly
 * resident: taking the top run of one segment while another segment's freed
 * pages sat idle made the heap the union of both (lofbench linked: one
 * thread's arena, two segments resident for 4.8 MB of nodes).  The scan
 * skips at most one run per segment beyond the first bin's. */
static lof_span_t *arena_find_best(lof_arena_t *a, size_t n) {
  lof_span_t *grows = NULL;
  unsigned b = lof__arena_bin(n);
  uint64_t mask = a->binmask & (~(uint64_t)0 << b);
  while (mask != 0) {
    unsigned k = (unsigned)__builtin_ctzll(mask);
    mask &= mask - 1;
    for (lof_span_t *s = a->bins[k]; s != NULL; s = s->next) {
      if (s->npages < n) continue; /* only in bin b, and only above 32 pages */
      if (!arena_run_grows(s, n)) return s;
      if (grows == NULL) grows = s;
    }
  }
  return grows;
}

/* The lowest-addressed free run of at least n pages, among the first
 * LOF_FIT_SCAN_MAX runs of the bins that may hold one, preferring, as the
 * best fit does, runs that hold n inside their segment's committed prefix;
 * an arena with more free runs than that falls back to the best fit. */
static lof_span_t *arena_find_lowest(lof_arena_t *a, size_t n) {
  lof_span_t *lowest = NULL, *grows = NULL;
  unsigned seen = 0;
  uint64_t mask = a->binmask & (~(uint64_t)0 << lof__arena_bin(n));
  while (mask != 0) {
    unsigned b = (unsigned)__builtin_ctzll(mask);
    mask &= mask - 1;
    for (lof_span_t *s = a->bins[b]; s != NULL; s = s->next) {
      if (++seen > LOF_FIT_SCAN_MAX) return lowest != NULL ? lowest : arena_find_best(a, n);
      if (s->npages < n) continue;
      lof_span_t **best = arena_run_grows(s, n) ? &grows : &lowest;
      if (*best == NULL || lof__span_start(s) < lof__span_start(*best)) *best = s;
    }
  }
  return lowest != NULL ? lowest : grows;
}

static lof_span_t *arena_find(lof_arena_t *a, size_t n) {
  return n > LOF_FIT_ADDRESS_MIN ? arena_find_lowest(a, n) : arena_find_best(a, n);
}

/* Cut [off, off+n) pages out of free run s (already unlinked); the pieces
 * before and after go back as free runs with s's zero state. */
static lof_span_t *arena_carve(lof_arena_t *a, lof_span_t *s, size_t off, size_t n) {
  lof_segment_t *seg = lof__segment_of(s);
  size_t first = s->first, total = s->npages;
  bool zero = s->zero;
  uint64_t freed = s->freed_ms;
  lof_span_t *r = s;

  if (off > 0) {
    s->npages = (uint16_t)off;
    s->state = LOF_SPAN_FREE;
    arena_set_bounds(seg, s);
    arena_link(a, s);
    r = lof__span_slot_new(seg, first + off);
  }
  if (off + n < total) {
    lof_span_t *t = lof__span_slot_new(seg, first + off + n);
    t->state = LOF_SPAN_FREE;
    t->npages = (uint16_t)(total - off - n);
    t->zero = zero;
    t->freed_ms = freed;
    arena_set_bounds(seg, t);
    arena_link(a, t);
  }
  r->npages = (uint16_t)n;
  r->zero = zero;
  r->state = LOF_SPAN_LARGE; /* the caller re-labels small spans */
  atomic_store_explicit(&r->owner, 0, memory_order_relaxed);
  r->next = r->prev = NULL;
  arena_set_bounds(seg, r);
  return r;
}

/* A fresh run carved for class cls and owned by `owner`: its geometry.
 * Called by lof__arena_alloc under the arena lock, before the run is
 * labelled SMALL, so neither lof_check (which walks segments under the lock)
 * nor a fork (which copies them with every arena lock held) ever sees a
 * SMALL span with another class's geometry. */
static void arena_init_small(lof_span_t *s, unsigned cls, uint32_t owner) {
  lof_segment_t *seg = lof__segment_of(s);
  size_t first = s->first, np = s->npages;
  uint16_t e = lof__pagemap_entry(seg, s);
  for (size_t i = 1; i + 1 < np; i++) seg->pagemap[first + i] = e;
  s->free = NULL;
  atomic_store_explicit(&s->xfree, 0, memory_order_relaxed);
  lof__span_geometry(s, (unsigned)cls);
  s->used = 0;
  s->capacity = 0;
  s->cls = (uint8_t)cls;
  s->abandoned = 0;
  atomic_store_explicit(&s->owner, owner, memory_order_relaxed);
}

/* The decay clock's other client: huge.c's cache of freed blocks decays on
 * the arenas' operations too, so a program that goes on with small and
 * large blocks only (no huge call) still gets its cached huge blocks back
 * once they decayed.  huge.c sits above the arenas: it hands its expiry in
 * (lof__arena_decay_client) instead of the arenas calling up into it.  One
 * relaxed load per arena operation while nothing is due. */
static _Atomic(lof_decay_fn) decay_client;
static _Atomic(uint64_t) decay_client_due = UINT64_MAX;

LOF_HIDDEN void lof__arena_decay_client(lof_decay_fn fn, uint64_t due_ms) {
  atomic_store_explicit(&decay_client, fn, memory_order_relaxed);
  atomic_store_explicit(&decay_client_due, due_ms, memory_order_release);
}

/* With no lock held (the client unmaps). */
static void arena_decay_client_tick(uint64_t now) {
  if (LOF_LIKELY(now < atomic_load_explicit(&decay_client_due, memory_order_acquire))) return;
  lof_decay_fn fn = atomic_load_explicit(&decay_client, memory_order_relaxed);
  if (fn != NULL) fn(now);
}

static void arena_maybe_decay(lof_arena_t *a, uint64_t now) {
  uint64_t decay = (uint64_t)lof__option(LOF_OPT_DECAY_MS);
  if (a->dirty_pages == 0) return;
  if (decay == 0 || now - a->last_decay_ms >= decay / 2 + 1)
    lof__arena_decay_locked(a, now, false);
}

LOF_HIDDEN lof_span_t *lof__arena_alloc(lof_arena_t *a, size_t npages, size_t align,
                                        uint8_t state, unsigned cls, uint32_t owner,
                                        bool *zero) {
  size_t apages = align > LOF_PAGE_SIZE ? align >> LOF_PAGE_SHIFT : 1;
  size_t want = npages + apages - 1;
  if (want > LOF_SEG_USABLE_PAGES) {
    errno = ENOMEM;
    return NULL;
  }
  lof__lock_marked(&a->lock);
  for (;;) {
    lof_span_t *s = arena_find(a, want);
    if (s != NULL) {
      lof__arena_unlink_locked(a, s);
      uintptr_t start = lof__span_start(s);
      size_t off = (LOF_ALIGN_UP(start, apages << LOF_PAGE_SHIFT) - start) >> LOF_PAGE_SHIFT;
      lof_span_t *r = arena_carve(a, s, off, npages);
      lof_segment_t *seg = lof__segment_of(r);
      if (lof__segment_commit_to(seg, lof__span_index(seg, r) + npages) != 0) {
        /* The lock was refused (strict): the run goes back untouched. */
        lof__arena_insert_locked(a, r, r->zero, lof__now_ms());
        lof__unlock_marked(&a->lock);
        errno = ENOMEM;
        return NULL;
      }
      if (state == LOF_SPAN_SMALL) arena_init_small(r, cls, owner);
      r->state = state;
      *zero = r->zero;
      uint64_t now = lof__now_ms();
      arena_maybe_decay(a, now);
      lof__unlock_marked(&a->lock);
      arena_decay_client_tick(now);
      return r;
    }
    lof__unlock_marked(&a->lock);
    lof_segment_t *seg = lof__segment_new(a);
    if (seg == NULL) return NULL;
    lof__lock_marked(&a->lock);
    seg->next = a->segments;
    a->segments = seg;
    a->nsegments++;
    lof_span_t *f = lof__span_slot_new(seg, LOF_SEG_HDR_PAGES);
    f->npages = (uint16_t)LOF_SEG_USABLE_PAGES;
    lof__arena_insert_locked(a, f, true, 0);
  }
}

LOF_HIDDEN void lof__arena_free(lof_span_t *s) {
  lof_arena_t *a = lof__segment_of(s)->arena;
  lof__lock_marked(&a->lock);
  uint64_t now = lof__now_ms();
  lof__arena_insert_locked(a, s, false, now);
  arena_maybe_decay(a, now);
  lof__unlock_marked(&a->lock);
  arena_decay_client_tick(now);
}

LOF_HIDDEN bool lof__arena_resize(lof_span_t *s, size_t npages) {
  lof_segment_t *seg = lof__segment_of(s);
  lof_arena_t *a = seg->arena;
  size_t first = s->first;
  bool ok = false;
  lof__lock_marked(&a->lock);
  if (npages < s->npages) {
    lof_span_t *t = lof__span_slot_new(seg, first + npages);
    t->npages = (uint16_t)(s->npages - npages);
    t->state = LOF_SPAN_LARGE;
    s->npages = (uint16_t)npages;
    arena_set_bounds(seg, s);
    lof__arena_insert_locked(a, t, false, lof__now_ms());
    ok = true;
  } else if (npages == s->npages) {
    ok = true;
  } else if (first + s->npages < LOF_SEG_PAGES) {
    lof_span_t *q = lof__pagemap_span(seg, first + s->npages);
    size_t need = npages - s->npages;
    if (q->state == LOF_SPAN_FREE && q->npages >= need &&
        lof__segment_commit_to(seg, first + npages) == 0) {
      lof__arena_unlink_locked(a, q);
      lof_span_t *r = arena_carve(a, q, 0, need);
      lof__span_slot_free(seg, r);
      s->npages = (uint16_t)npages;
      arena_set_bounds(seg, s);
      ok = true;
    }
  }
  lof__unlock_marked(&a->lock);
  return ok;
}

/* ---- decay --------------------------------------------------------------- */

#define LOF_PURGE_BATCH 32

/* The arena whose runs this thread is purging, its lock dropped (a fork
 * from a signal handler that interrupted the purge must leave them to it). */
static __thread __attribute__((tls_model("initial-exec"))) lof_arena_t *purging_here;

/* The whole segment is free (run s) and out of the bins: its descriptor
 * slots but two (the header's in page 0, and s's) describe nothing, and the
 * header pages holding only them may go too; they refault as zeros =
 * UNUSED.  Page 0 keeps the segment fields, the slot map and the pagemap.
 * Returns the bytes purged. */
static size_t purge_free_segment_header(lof_segment_t *seg, const lof_span_t *s) {
  size_t total = 0;
  size_t keep = ((uintptr_t)s - (uintptr_t)seg) >> LOF_PAGE_SHIFT;
  for (size_t pg = 1; pg < LOF_SEG_HDR_PAGES; pg++) {
    size_t upto = pg;
    while (upto < LOF_SEG_HDR_PAGES && upto != keep) upto++;
    if (upto > pg && lof__region_purge(seg->region, (char *)seg + (pg << LOF_PAGE_SHIFT),
                                       (upto - pg) << LOF_PAGE_SHIFT) == 0)
      total += (upto - pg) << LOF_PAGE_SHIFT;
    pg = upto; /* skips the page that holds s's descriptor */
  }
  return total;
}

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
    lof__unlock_marked(&a->lock);
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
      if (ok[i] && batch[i]->npages == LOF_SEG_USABLE_PAGES)
        total += purge_free_segment_header(seg, batch[i]);
    }
    lof__lock_marked(&a->lock);
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

/* A fork while another thread purged: the child has the runs that thread
 * took out of the bins (PURGING) but not the thread, so nothing would ever
 * put them back -- free pages committed and charged for good.  They return
 * to the bins as dirty runs (their pages may or may not have been dropped),
 * to be reused or to decay again.  The calling thread's own interrupted
 * purge (a fork from a signal handler) finishes by itself. */
LOF_HIDDEN void lof__arena_decay_postfork_child(void) {
  uint64_t now = lof__now_ms();
  for (unsigned k = 0; k < LOF_MAX_ARENAS; k++) {
    lof_arena_t *a = &lof__arenas[k];
    if (a->purgers == 0) continue;
    if (purging_here == a) {
      a->purgers = 1;
      continue;
    }
    /* interrupted code (this thread's, or a thread's waiting to fork) holds
     * the arena's lock: its lists may be half-updated, so leave them be (the
     * runs stay out) */
    if (lof__fork_torn(&a->lock)) continue;
    a->purgers = 0;
    for (lof_segment_t *seg = a->segments; seg != NULL; seg = seg->next)
      for (size_t i = LOF_SEG_HDR_PAGES; i < LOF_SEG_PAGES;) {
        lof_span_t *s = lof__pagemap_span(seg, i);
        size_t n = s->npages ? s->npages : 1;
        if (s->state == LOF_SPAN_PURGING) lof__arena_insert_locked(a, s, false, now);
        i += n;
      }
  }
}

/* ---- statistics ---------------------------------------------------------- */

LOF_HIDDEN void lof__arenas_small_stats(int64_t *bytes, int64_t *count) {
  int64_t b = 0, n = 0;
  for (unsigned k = 0; k < LOF_MAX_ARENAS; k++) {
    lof_arena_t *a = &lof__arenas[k];
    lof__lock_marked(&a->lock); /* a span turns SMALL and back under it */
    for (lof_segment_t *seg = a->segments; seg != NULL; seg = seg->next)
      for (size_t w = 0; w < LOF_SEG_PAGES / 64; w++)
        for (uint64_t bits = seg->slot_used[w]; bits != 0; bits &= bits - 1) {
          const lof_span_t *s = &seg->spans[w * 64 + (size_t)__builtin_ctzll(bits)];
          if (s->state != LOF_SPAN_SMALL) continue;
          unsigned used = __atomic_load_n(&s->used, __ATOMIC_RELAXED) & (unsigned)~LOF_USED_FULL;
          b += (int64_t)used * s->block_size;
          n += used;
        }
    lof__unlock_marked(&a->lock);
  }
  *bytes = b;
  *count = n;
}

/* ---- fork ---------------------------------------------------------------- */

LOF_HIDDEN void lof__arenas_prefork(void) {
  for (unsigned i = 0; i < LOF_MAX_ARENAS; i++) lof__fork_lock(&lof__arenas[i].lock);
}

LOF_HIDDEN void lof__arenas_postfork(bool child) {
  for (unsigned i = LOF_MAX_ARENAS; i-- > 0;) {
    if (child)
      lof__fork_reset(&lof__arenas[i].lock);
    else
      lof__fork_unlock(&lof__arenas[i].lock);
  }
}
