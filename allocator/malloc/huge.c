/*
 * huge.c -- huge blocks: at or above the huge threshold
 * (LOFALLOC_HUGE_THRESHOLD, 4 MiB by default, and always above what a
 * segment can hold), each block is its own lock-on-fault mapping from
 * lof__region_map, and the block is the whole mapping.
 *
 * Metadata is out of band: a block's descriptor (lof_huge_t) lives in a
 * descriptor pool of its own (a lock-on-fault reservation committed 64 KiB
 * at a time), never in or next to the block, so the block's pages are only
 * ever the user's: an underflow cannot reach allocator state, and a program
 * may remap its own pages.  Huge blocks are not in the segment registry:
 * free() of a pointer whose 4 MiB unit is not a segment looks it up here, in
 * a hash table keyed by the block address (under huge_lock).  A pointer
 * found nowhere is reported by the caller.  Any power-of-two alignment is
 * served (the region is mapped at that alignment; nothing is wasted before
 * the block).
 *
 * A block of 4 MiB or more is mapped with room after it (HUGE_ROOM: three
 * times its size), so that realloc and the cache grow it in place.
 * realloc resizes the mapping without a copy (lof__region_remap: into the
 * room, back into it, or past it with a moving mremap), and when that fails
 * -- no room to grow, or the growth does not fit the lock budget -- falls
 * back to a new block, a copy and a free, so a realloc never fails where
 * malloc of the new size would succeed.
 *
 * Freed blocks go to a cache instead of being unmapped at once: a later huge
 * request that it holds, at most four times its size, with the right
 * alignment reuses one without a system call; a page-aligned request
 * that no entry fits takes the largest smaller entry whose room holds the
 * growth and grows it in place, else the entry nearest in size: a larger
 * one whole up to eight times the request (its slack bounded as below) and
 * shrunk beyond, a smaller one grown past its room (moved).  No copy, and
 * no refault of the pages it keeps.  Cache entries decay like
 * free pages (LOFALLOC_DECAY_MS; never with -1/never or mallopt
 * M_TRIM_THRESHOLD -1): they expire at the next huge call, or at the next
 * arena operation (a span or large block taken or given back) after they
 * decayed, on the arenas' decay clock (lof__arena_decay_client); and
 * lof_purge()/malloc_trim() empty the cache.  While
 * a reserve exists (lof_reserve) freed blocks are kept as pinned entries,
 * populated and never decayed, up to the reserve's size; after
 * mallopt(M_MMAP_MAX, 0) every freed block is kept pinned.
 *
 * A reused block keeps the pages its earlier users made resident; two rules
 * keep that from growing RSS past what the program touches (a stress-ng
 * malloc run, which touches nothing, reached 13.6 GB resident in 43 min
 * before them, glibc 130 MB).  calloc of a reused block drops its pages
 * (they fault back in as zero pages) instead of writing zeros over them.
 * And the slack of a block handed out whole for a smaller request -- the
 * pages past the request -- stays resident only while the cache and every
 * live block's slack together hold at most HUGE_CACHE_MAX_BYTES; past that
 * the block is shrunk to the request (into its room), so neither its pages nor its
 * lock charge outlive the bound.  Pinned (reserve) blocks are never
 * touched by either rule: their reuse makes no system call.
 */
#include <errno.h>
#include <string.h>

#include "frontend.h"
#include "options.h"
#include "os.h"

/* A huge block: live (in the hash table), cached, or a free descriptor. */
typedef struct lof_huge {
  uintptr_t block;         /* first byte of the block = r->base */
  size_t size;             /* usable bytes = r->size */
  lof_region_t *region;    /* its mapping */
  uint64_t freed_ms;       /* cached: when it was freed (decay clock) */
  size_t slack;            /* live: resident bytes past the request, in slack_bytes */
  bool pinned;             /* cached: kept for good (reserve, M_MMAP_MAX=0) */
  struct lof_huge *next;   /* hash chain / cache list / free descriptors */
  struct lof_huge *prev;   /* hash chain / cache list */
} lof_huge_t;

#define HUGE_BUCKETS 1024
#define HUGE_META_RESERVE ((size_t)16 << 20) /* room for 256 Ki descriptors */
#define HUGE_META_COMMIT ((size_t)64 << 10)
#define HUGE_CACHE_MAX_ENTRIES 64            /* unpinned entries */
#define HUGE_CACHE_MAX_BYTES ((uint64_t)256 << 20)
/* A cached block is handed out whole for a request of at least a quarter of
 * its size: its resident pages are reused without a fault, and it is
 * charged already.  bigchurn (5-25 MiB, four live): with a slack of a
 * quarter (exact reuse or mremap to size) 68k minor faults and 88 MB peak;
 * with 4x, 25k faults and 102 MB (tcmalloc 27k, 109 MB; glibc 103k, 110 MB). */
#define HUGE_SLACK_MAX 3 /* usable - request <= 3 x request */
/* ... and, when no cached block fits that way and none can grow into the
 * request in place, the nearest larger one is handed out whole down to an
 * eighth of its size rather than shrunk (see cache_take_locked); further
 * than that it is shrunk, so a block's slack never exceeds seven times
 * what the program asked for. */
#define HUGE_WHOLE_SLACK_MAX 7
/* Address space reserved past a block for it to grow into in place
 * (lof__region_map): three times the block, for blocks of 4 MiB (the
 * default threshold) and more, so that a cached block serves requests from
 * a quarter (HUGE_SLACK_MAX) to four times its size where it is; none
 * below, where a lowered threshold makes many small huge blocks.  Room
 * costs neither memory nor lock charge (PROT_NONE), one VMA, only address
 * space: where that is short (RLIMIT_AS) a block is mapped without room
 * (huge_map); a move keeps the ratio (lof__region_remap).  A block that grows past it is moved by
 * mremap, and on a VM that shadows page tables a move (or a drop) of tens
 * of MiB of resident pages makes every resident page of the process fault
 * again (doc/malloc.md).  lofbench bigchurn: with no room 12 moves; with
 * as much again 1 move, user time 0.81 -> 0.60 s; with three times, and a
 * far larger entry handed out whole rather than shrunk, no move and no
 * drop, 0.97x tcmalloc's wall time (farm-bench medians). */
#define HUGE_ROOM_MIN ((size_t)4 << 20)
#define HUGE_ROOM(len) ((len) >= HUGE_ROOM_MIN ? 3 * (len) : 0)

static pthread_mutex_t huge_lock = PTHREAD_MUTEX_INITIALIZER; /* guards everything below */
static lof_huge_t *huge_buckets[HUGE_BUCKETS];
static uint64_t huge_count, huge_bytes;       /* live blocks */
static lof_huge_t *cache_head;                /* cached blocks, newest first */
static uint64_t cache_count, cache_bytes;     /* unpinned cached blocks */
static uint64_t cache_pinned_bytes;           /* pinned cached blocks */
static uint64_t slack_bytes;                  /* live blocks' kept slack (lof_huge_t.slack) */
static lof_huge_t *desc_free;                 /* recycled descriptors */
static lof_region_t *desc_region;
static size_t desc_used, desc_committed;

static size_t huge_threshold_set;             /* mallopt(M_MMAP_THRESHOLD), 0 = the option */
static _Atomic(bool) huge_keep_all;           /* mallopt(M_MMAP_MAX, 0) */

static size_t huge_threshold_cached;          /* 0 = not computed yet */

LOF_HIDDEN size_t lof__huge_threshold(void) {
  size_t t = __atomic_load_n(&huge_threshold_cached, __ATOMIC_RELAXED);
  if (LOF_UNLIKELY(t == 0)) {
    int64_t v = lof__option(LOF_OPT_HUGE_THRESHOLD);
    size_t set = __atomic_load_n(&huge_threshold_set, __ATOMIC_RELAXED);
    if (set != 0) v = (int64_t)set;
    t = v <= 0 ? LOF_LARGE_MAX + 1 : (size_t)v;
    if (t > LOF_LARGE_MAX + 1) t = LOF_LARGE_MAX + 1;
    if (t <= LOF_SMALL_MAX) t = LOF_SMALL_MAX + 1;
    __atomic_store_n(&huge_threshold_cached, t, __ATOMIC_RELAXED);
  }
  return t;
}

/* mallopt(M_MMAP_THRESHOLD): a new threshold (0 = back to the option). */
LOF_HIDDEN void lof__huge_set_threshold(size_t t) {
  __atomic_store_n(&huge_threshold_set, t, __ATOMIC_RELAXED);
  __atomic_store_n(&huge_threshold_cached, 0, __ATOMIC_RELAXED);
}

LOF_HIDDEN void lof__huge_set_keep_all(bool on) {
  atomic_store_explicit(&huge_keep_all, on, memory_order_relaxed);
  lof__huge_set_threshold(on ? LOF_LARGE_MAX + 1 : 0); /* everything that fits a segment goes there */
}

static size_t huge_hash(uintptr_t block) {
  uintptr_t x = block >> LOF_PAGE_SHIFT;
  return (size_t)((x * 0x9e3779b97f4a7c15ull) >> 54) % HUGE_BUCKETS;
}

/* ---- descriptors ----------------------------------------------------------- */

static lof_huge_t *desc_alloc_locked(void) {
  lof_huge_t *d = desc_free;
  if (d != NULL) {
    desc_free = d->next;
    return d;
  }
  size_t sz = sizeof(lof_huge_t);
  if (desc_region == NULL) desc_region = lof__region_reserve(HUGE_META_RESERVE, LOF_PAGE_SIZE);
  if (desc_region == NULL || desc_used + sz > desc_region->size) return NULL;
  if (desc_used + sz > desc_committed) {
    if (lof__region_commit(desc_region, (void *)(desc_region->base + desc_committed),
                           HUGE_META_COMMIT) != 0)
      return NULL;
    desc_committed += HUGE_META_COMMIT;
  }
  d = (lof_huge_t *)(desc_region->base + desc_used);
  desc_used += sz;
  return d;
}

static void desc_free_locked(lof_huge_t *d) {
  memset(d, 0, sizeof *d);
  d->next = desc_free;
  desc_free = d;
}

/* ---- the live table -------------------------------------------------------- */

static void live_link_locked(lof_huge_t *d) {
  lof_huge_t **head = &huge_buckets[huge_hash(d->block)];
  d->prev = NULL;
  d->next = *head;
  if (*head) (*head)->prev = d;
  *head = d;
  huge_count++;
  huge_bytes += d->size;
}

static void live_unlink_locked(lof_huge_t *d) {
  lof_huge_t **head = &huge_buckets[huge_hash(d->block)];
  if (d->prev) d->prev->next = d->next; else *head = d->next;
  if (d->next) d->next->prev = d->prev;
  d->next = d->prev = NULL;
  huge_count--;
  huge_bytes -= d->size;
  slack_bytes -= d->slack;
  d->slack = 0;
}

static lof_huge_t *live_find_locked(const void *p) {
  for (lof_huge_t *d = huge_buckets[huge_hash((uintptr_t)p)]; d != NULL; d = d->next)
    if (d->block == (uintptr_t)p) return d;
  return NULL;
}

/* The live block starting at p, unlinked (the caller owns it now), or NULL. */
static lof_huge_t *huge_take(const void *p) {
  sigset_t held;
  lof__lock_nosignal(&huge_lock, &held);
  lof_huge_t *d = live_find_locked(p);
  if (d != NULL) live_unlink_locked(d);
  lof__unlock_nosignal(&huge_lock, &held);
  return d;
}

LOF_HIDDEN size_t lof__huge_usable(const void *p) {
  sigset_t held;
  lof__lock_nosignal(&huge_lock, &held);
  lof_huge_t *d = live_find_locked(p);
  size_t n = d != NULL ? d->size : 0;
  lof__unlock_nosignal(&huge_lock, &held);
  return n;
}

static void huge_stat(int64_t bytes, int64_t n) {
  lof_heap_t *h = lof__heap_tls;
  if (h != &lof__heap_empty)
    lof__stat_add(h, bytes, n);
  else
    lof__stat_global(bytes, n);
}

/* ---- the cache ------------------------------------------------------------- */

static void cache_unlink_locked(lof_huge_t *d) {
  if (d->prev) d->prev->next = d->next; else cache_head = d->next;
  if (d->next) d->next->prev = d->prev;
  d->next = d->prev = NULL;
  if (d->pinned) {
    cache_pinned_bytes -= d->size;
  } else {
    cache_count--;
    cache_bytes -= d->size;
  }
}

/* The best cached block for size bytes at align, unlinked, or NULL: the
 * smallest that holds it; an unpinned one at most HUGE_SLACK_MAX x larger.  When
 * none fits and the request needs only page alignment, an unpinned block is
 * taken: the largest one smaller than the request whose room holds the
 * growth (*resize: it grows in place, no copy, no move, its resident pages
 * stay resident and locked), else the one nearest in size -- if larger,
 * whole up to HUGE_WHOLE_SLACK_MAX (reuse_fit keeps its slack resident
 * within the bound, else shrinks it) and shrunk beyond (*resize), if
 * smaller, grown past its room (*resize: moved).  That
 * keeps a churn of blocks of varying sizes off fresh mappings and their
 * faults.  (Shrinking the larger one instead dropped 20 MiB of resident
 * pages in bigchurn, and on this VM a drop that size makes every resident
 * page of the process fault again: the next three blocks' memsets took
 * 114 ms, where resident blocks take under 1 ms each.) */
static lof_huge_t *cache_take_locked(size_t size, size_t align, bool *resize) {
  lof_huge_t *best = NULL, *near = NULL, *grow = NULL;
  size_t near_gap = SIZE_MAX;
  *resize = false;
  for (lof_huge_t *d = cache_head; d != NULL; d = d->next) {
    if (!d->pinned) {
      size_t gap = d->size > size ? d->size - size : size - d->size;
      if (gap < near_gap) {
        near = d;
        near_gap = gap;
      }
      if (d->size < size && size - d->size <= d->region->room && (grow == NULL || d->size > grow->size))
        grow = d;
    }
    if (d->size < size || (d->block & (align - 1)) != 0) continue;
    if (!d->pinned && d->size - size > size * HUGE_SLACK_MAX) continue;
    if (best == NULL || d->size < best->size) best = d;
  }
  if (best == NULL && near != NULL && align <= LOF_PAGE_SIZE) {
    best = grow != NULL ? grow : near;
    /* a larger one goes whole (reuse_fit bounds the slack of all of them) */
    *resize = best->size < size || best->size - size > size * HUGE_WHOLE_SLACK_MAX;
  }
  if (best != NULL) cache_unlink_locked(best);
  return best;
}

static void huge_cache_decay(uint64_t now);

/* Unlink the unpinned entries that decayed (all of them when force), and
 * the oldest beyond the cache's bounds; returns them as a list to release
 * without the lock.  Then tells the arenas' decay clock when the oldest of
 * the rest decays, so the cache expires even when no huge call comes. */
static lof_huge_t *cache_expire_locked(uint64_t now, bool force) {
  int64_t decay = lof__option(LOF_OPT_DECAY_MS);
  lof_huge_t *out = NULL;
  uint64_t oldest = UINT64_MAX;
  for (lof_huge_t *d = cache_head, *next; d != NULL; d = next) {
    next = d->next;
    if (d->pinned) continue;
    bool expired = force || (decay >= 0 && now - d->freed_ms >= (uint64_t)decay) ||
                   cache_count > HUGE_CACHE_MAX_ENTRIES || cache_bytes > HUGE_CACHE_MAX_BYTES;
    if (!expired) {
      if (d->freed_ms < oldest) oldest = d->freed_ms;
      continue;
    }
    cache_unlink_locked(d);
    d->next = out;
    out = d;
  }
  lof__arena_decay_client(huge_cache_decay,
                          decay < 0 || oldest == UINT64_MAX ? UINT64_MAX : oldest + (uint64_t)decay);
  return out;
}

static void huge_release_list(lof_huge_t *list) {
  while (list != NULL) {
    lof_huge_t *next = list->next;
    lof__region_release(list->region);
    sigset_t held;
    lof__lock_nosignal(&huge_lock, &held);
    desc_free_locked(list);
    lof__unlock_nosignal(&huge_lock, &held);
    list = next;
  }
}

/* The arenas' decay clock (lof__arena_decay_client): release what decayed. */
static void huge_cache_decay(uint64_t now) {
  sigset_t held;
  lof__lock_nosignal(&huge_lock, &held);
  lof_huge_t *out = cache_expire_locked(now, false);
  lof__unlock_nosignal(&huge_lock, &held);
  huge_release_list(out);
}

/* lof_purge / malloc_trim: release every unpinned cached block now. */
LOF_HIDDEN size_t lof__huge_cache_flush(void) {
  sigset_t held;
  lof__lock_nosignal(&huge_lock, &held);
  uint64_t before = cache_bytes;
  lof_huge_t *out = cache_expire_locked(0, true);
  lof__unlock_nosignal(&huge_lock, &held);
  huge_release_list(out);
  return (size_t)before;
}

/* ---- allocation ------------------------------------------------------------ */

/* An unpinned cached block d taken for len bytes (len <= d->size), not yet
 * live.  Its slack (the bytes past len) stays, resident and counted in
 * slack_bytes, while the bound allows; past it the block is shrunk to len
 * in place (into its room: the slack's pages and its lock charge go; if refused,
 * the slack's pages are dropped instead).  For calloc (clear) the first len
 * bytes are dropped, so they read as zero (*zero) without being written; a
 * refused drop leaves them as they were and calloc writes its zeros. */
static void reuse_fit(lof_huge_t *d, size_t len, bool clear, bool *zero) {
  size_t slack = d->size - len;
  if (slack != 0) {
    sigset_t held;
    lof__lock_nosignal(&huge_lock, &held);
    bool keep = cache_bytes + slack_bytes + slack <= HUGE_CACHE_MAX_BYTES;
    if (keep) {
      d->slack = slack;
      slack_bytes += slack;
    }
    lof__unlock_nosignal(&huge_lock, &held);
    if (!keep && lof__region_remap(d->region, len) == 0)
      d->size = d->region->size; /* a shrink never moves the block */
    else if (!keep)
      lof__region_purge(d->region, (void *)(d->block + len), slack);
  }
  if (clear && lof__region_purge(d->region, (void *)d->block, len) == 0) *zero = true;
}

/* A new mapping for a block of len bytes, with its room; without it when
 * the room is what does not fit (RLIMIT_AS, a crowded address space): the
 * room is an optimisation, never a reason for a malloc to fail. */
static lof_region_t *huge_map(size_t len, size_t align) {
  lof_region_t *r = lof__region_map(len, HUGE_ROOM(len), align);
  if (r == NULL && HUGE_ROOM(len) != 0) r = lof__region_map(len, 0, align);
  return r;
}

LOF_HIDDEN void *lof__huge_alloc(size_t size, size_t align, bool clear, bool *zero) {
  lof__malloc_init();
  if (align < LOF_PAGE_SIZE) align = LOF_PAGE_SIZE;
  if (size > ((size_t)1 << 47) || !LOF_IS_POW2(align) || align > ((size_t)1 << 46)) {
    errno = ENOMEM;
    return NULL;
  }
  size_t len = LOF_ALIGN_UP(size == 0 ? 1 : size, LOF_PAGE_SIZE);
  uint64_t now = lof__now_ms();
  bool resize;
  sigset_t held;
  lof__lock_nosignal(&huge_lock, &held);
  lof_huge_t *expired = cache_expire_locked(now, false); /* first: never reuse a decayed one */
  lof_huge_t *d = cache_take_locked(len, align, &resize);
  lof__unlock_nosignal(&huge_lock, &held);
  huge_release_list(expired);
  if (d != NULL && resize) {
    /* No lock held: resized to the request.  Refused (no room to grow, or
     * not within the lock budget): the block goes, and so does its charge,
     * before a fresh mapping is tried. */
    if (lof__region_remap(d->region, len) == 0) {
      d->block = d->region->base;
      d->size = d->region->size;
    } else {
      lof__region_release(d->region);
      lof__lock_nosignal(&huge_lock, &held);
      desc_free_locked(d);
      lof__unlock_nosignal(&huge_lock, &held);
      d = NULL;
    }
  }
  if (d != NULL) {
    *zero = false;
    if (!d->pinned) reuse_fit(d, len, clear, zero);
    lof__lock_nosignal(&huge_lock, &held);
    d->pinned = false;
    live_link_locked(d);
    lof__unlock_nosignal(&huge_lock, &held);
    huge_stat((int64_t)d->size, 1);
    return (void *)d->block;
  }

  lof_region_t *r = huge_map(len, align);
  if (r == NULL && lof__huge_cache_flush() != 0) {
    /* the cached blocks hold lock charge: give it back and try again */
    r = huge_map(len, align);
  }
  if (r == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  lof__lock_nosignal(&huge_lock, &held);
  d = desc_alloc_locked();
  if (d != NULL) {
    d->block = r->base;
    d->size = r->size;
    d->region = r;
    live_link_locked(d);
  }
  lof__unlock_nosignal(&huge_lock, &held);
  if (d == NULL) {
    lof__region_release(r);
    errno = ENOMEM;
    return NULL;
  }
  huge_stat((int64_t)d->size, 1);
  *zero = true;
  return (void *)d->block;
}

/* Keep a freed block: pinned while the reserve (or M_MMAP_MAX=0) wants it. */
static bool huge_cache_put(lof_huge_t *d, uint64_t now) {
  uint64_t reserve, populated;
  lof__reserve_stats(&reserve, &populated);
  bool keep_all = atomic_load_explicit(&huge_keep_all, memory_order_relaxed);
  sigset_t held;
  lof__lock_nosignal(&huge_lock, &held);
  bool pin = keep_all || cache_pinned_bytes + d->size <= reserve;
  bool keep = pin || lof__option(LOF_OPT_DECAY_MS) != 0;
  if (keep) {
    d->pinned = pin;
    d->freed_ms = now;
    d->prev = NULL;
    d->next = cache_head;
    if (cache_head) cache_head->prev = d;
    cache_head = d;
    if (pin) {
      cache_pinned_bytes += d->size;
    } else {
      cache_count++;
      cache_bytes += d->size;
    }
  }
  lof_huge_t *expired = cache_expire_locked(now, false);
  lof__unlock_nosignal(&huge_lock, &held);
  huge_release_list(expired);
  /* A pinned block is made wholly resident now, so its reuse never faults. */
  if (keep && pin && reserve != 0) lof__os_populate((void *)d->block, d->size);
  return keep;
}

/* free: 0 if p is a huge block (now cached or released), -1 if it is not. */
LOF_HIDDEN int lof__huge_free(void *p) {
  lof_huge_t *d = huge_take(p);
  if (d == NULL) return -1;
  int saved = errno;
  huge_stat(-(int64_t)d->size, -1);
  if (!huge_cache_put(d, lof__now_ms())) {
    lof__region_release(d->region);
    sigset_t held;
    lof__lock_nosignal(&huge_lock, &held);
    desc_free_locked(d);
    lof__unlock_nosignal(&huge_lock, &held);
  }
  errno = saved;
  return 0;
}

/* realloc: the new address (maybe p), NULL + ENOMEM (p unchanged), or
 * (void *)-1 when p is not a huge block. */
LOF_HIDDEN void *lof__huge_realloc(void *p, size_t size, size_t *old_size) {
  lof_huge_t *d = huge_take(p);
  if (d == NULL) return (void *)-1;
  size_t old = d->size;
  *old_size = old;
  lof_region_t *r = d->region;
  void *q = NULL;
  if (size <= ((size_t)1 << 47) && lof__region_remap(r, LOF_ALIGN_UP(size, LOF_PAGE_SIZE)) == 0) {
    d->block = r->base; /* it may have moved */
    d->size = r->size;
    q = (void *)d->block;
    huge_stat((int64_t)d->size - (int64_t)old, 0);
  }
  sigset_t held;
  lof__lock_nosignal(&huge_lock, &held);
  live_link_locked(d);
  lof__unlock_nosignal(&huge_lock, &held);
  if (q != NULL || size <= old) return q;
  /* It could not be grown (no address space, or not within the lock budget): a
   * new block, as malloc would give it, then copy and free. */
  bool zero;
  q = lof__huge_alloc(size, LOF_PAGE_SIZE, false, &zero);
  if (q == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  memcpy(q, p, old);
  lof__huge_free(p);
  return q;
}

LOF_HIDDEN void lof__huge_stats(uint64_t *count, uint64_t *bytes) {
  sigset_t held;
  lof__lock_nosignal(&huge_lock, &held);
  *count = huge_count;
  *bytes = huge_bytes;
  lof__unlock_nosignal(&huge_lock, &held);
}

LOF_HIDDEN void lof__huge_cache_stats(uint64_t *count, uint64_t *bytes) {
  sigset_t held;
  lof__lock_nosignal(&huge_lock, &held);
  *count = cache_count;
  *bytes = cache_bytes;
  lof__unlock_nosignal(&huge_lock, &held);
}

static bool huge_desc_ok(const lof_huge_t *d) {
  return d->region != NULL && d->block == d->region->base && d->size == d->region->size &&
         d->size > 0 && !lof__registry_test(lof__segment_of((void *)d->block));
}

LOF_HIDDEN int lof__huge_check(void) {
  int rc = 0;
  uint64_t n = 0, cn = 0, cb = 0, pb = 0;
  sigset_t held;
  lof__lock_nosignal(&huge_lock, &held);
  for (size_t b = 0; b < HUGE_BUCKETS && rc == 0; b++)
    for (lof_huge_t *d = huge_buckets[b]; d != NULL; d = d->next, n++)
      if (!huge_desc_ok(d) || huge_hash(d->block) != b) {
        lof__message("check: huge block descriptor %p (block %p) is corrupt", (void *)d,
                     (void *)d->block);
        rc = -1;
        break;
      }
  for (lof_huge_t *d = cache_head; d != NULL && rc == 0; d = d->next) {
    if (!huge_desc_ok(d)) {
      lof__message("check: cached huge block %p is corrupt", (void *)d->block);
      rc = -1;
    }
    if (d->pinned) pb += d->size; else { cn++; cb += d->size; }
  }
  if (rc == 0 && (n != huge_count || cn != cache_count || cb != cache_bytes || pb != cache_pinned_bytes)) {
    lof__message("check: huge blocks: %llu live listed (counter %llu), cache %llu/%llu bytes "
                 "(counters %llu/%llu)", (unsigned long long)n, (unsigned long long)huge_count,
                 (unsigned long long)cb, (unsigned long long)pb, (unsigned long long)cache_bytes,
                 (unsigned long long)cache_pinned_bytes);
    rc = -1;
  }
  lof__unlock_nosignal(&huge_lock, &held);
  return rc;
}

LOF_HIDDEN void lof__huge_prefork(void) { lof__fork_lock(&huge_lock); }
LOF_HIDDEN void lof__huge_postfork(bool child) {
  if (child)
    lof__fork_reset(&huge_lock);
  else
    lof__fork_unlock(&huge_lock);
}
