/*
 * segment.c -- where segments come from, and the registry that says which
 * 4 MiB units hold a frontend header.
 *
 * Segments are cut in address order from 1 GiB reservations (PROT_NONE,
 * uncharged).  A segment is committed (locked on fault, and so charged to
 * RLIMIT_MEMLOCK) as a prefix that follows use: its header and one step at
 * creation, then one step of 64 KiB at a time as the arena hands out pages
 * above it (placement fills low pages first, see arena.c), and it is
 * trimmed back when the free run at its top decays or is purged.  Pages
 * freed below the top are purged (they leave RAM, the range stays
 * committed).  So the charge is what is in use rounded to 64 KiB plus the
 * holes below each segment's top, and a segment is at most two VMAs: its
 * committed prefix and its reserved tail.
 *
 * The registry is one byte per 4 MiB unit of the 47-bit user address space
 * (32 MiB of zero-fill BSS, touched only where the heap lives; each page of
 * it is locked on fault when its first byte is set, so the library's charge
 * for it is a page or two, not 32 MiB).  A byte rather than a bit makes
 * free's test one compare with memory instead of a load, a shift and a bit
 * test (3 instructions fewer on every free).  free() tests
 * the byte before it reads a header, so a pointer that malloc never returned
 * is reported rather than followed.  Bytes are set before a pointer of the
 * unit is handed out and cleared after its last block is gone.
 *
 * Also owned here: the segment header's descriptor slots (one per page, a
 * bitmap of those in use; lof__span_slot_new/free, under the arena's lock),
 * and the pool of pinned segments that lof_reserve made and no arena has yet
 * (reserve.c fills it, lof__segment_new empties it before it reserves).
 * Lock order: pool_lock and segment_lock are never nested (fork.c takes
 * pool_lock first).
 */
#include <errno.h>
#include <string.h>

#include "frontend.h"

LOF_HIDDEN _Alignas(4096) uint8_t lof__registry[LOF_REGISTRY_UNITS];

/* One bit per page of the registry: that page is locked (on fault).  A page
 * covers 16 GiB of address space, so a heap locks one or two of them. */
#define REGISTRY_PAGES (LOF_REGISTRY_UNITS / LOF_PAGE_SIZE)
static _Atomic(uint64_t) registry_locked[(REGISTRY_PAGES + 63) / 64];

LOF_HIDDEN void lof__registry_set(const void *unit, bool on) {
  uintptr_t i = (uintptr_t)unit >> LOF_SEG_SHIFT;
  lof_assert(i < LOF_REGISTRY_UNITS);
  if (on) {
    size_t page = i / LOF_PAGE_SIZE;
    uint64_t pbit = (uint64_t)1 << (page % 64);
    if (!(atomic_fetch_or(&registry_locked[page / 64], pbit) & pbit))
      lof__region_meta_lock((void *)&lof__registry[page * LOF_PAGE_SIZE], LOF_PAGE_SIZE);
  }
  __atomic_store_n(&lof__registry[i], (uint8_t)on, __ATOMIC_RELEASE);
}

/* ---- descriptor slots in the segment header --------------------------- */

LOF_HIDDEN lof_span_t *lof__span_slot_new(lof_segment_t *seg, size_t first) {
  for (size_t w = 0; w < LOF_SEG_PAGES / 64; w++) {
    uint64_t used = seg->slot_used[w];
    if (used == ~(uint64_t)0) continue;
    size_t slot = w * 64 + (size_t)__builtin_ctzll(~used);
    seg->slot_used[w] = used | ((uint64_t)1 << (slot % 64));
    lof_span_t *s = &seg->spans[slot];
    memset(s, 0, sizeof *s);
    s->first = (uint16_t)first;
    return s;
  }
  lof__fatal("segment %p: no free descriptor slot", (void *)seg); /* a slot per page: cannot */
}

LOF_HIDDEN void lof__span_slot_free(lof_segment_t *seg, lof_span_t *s) {
  size_t slot = lof__span_slot(seg, s);
  s->state = LOF_SPAN_UNUSED;
  atomic_store_explicit(&s->owner, 0, memory_order_relaxed);
  seg->slot_used[slot / 64] &= ~((uint64_t)1 << (slot % 64));
}

/* ---- the pool of pinned segments (lof_reserve, reserve.c) --------------- */

/* Pinned, populated segments that belong to no arena yet (->next).  Taken
 * by lof__segment_new before it asks the kernel: no system call. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER; /* guards pool */
static lof_segment_t *pool;

static lof_segment_t *segment_pool_take(lof_arena_t *arena) {
  if (__atomic_load_n(&pool, __ATOMIC_RELAXED) == NULL) return NULL;
  sigset_t held;
  lof__lock_nosignal(&pool_lock, &held);
  lof_segment_t *seg = pool;
  if (seg != NULL) pool = seg->next;
  lof__unlock_nosignal(&pool_lock, &held);
  if (seg != NULL) {
    seg->next = NULL;
    seg->arena = arena;
  }
  return seg;
}

static uint64_t segment_pool_bytes_locked(void) {
  uint64_t bytes = 0;
  for (lof_segment_t *s = pool; s != NULL; s = s->next) bytes += LOF_SEG_SIZE;
  return bytes;
}

LOF_HIDDEN uint64_t lof__segment_pool_bytes(void) {
  sigset_t held;
  lof__lock_nosignal(&pool_lock, &held);
  uint64_t bytes = segment_pool_bytes_locked();
  lof__unlock_nosignal(&pool_lock, &held);
  return bytes;
}

LOF_HIDDEN uint64_t lof__segment_pool_add(lof_segment_t *list) {
  sigset_t held;
  lof__lock_nosignal(&pool_lock, &held);
  while (list != NULL) {
    lof_segment_t *next = list->next;
    list->next = pool;
    pool = list;
    list = next;
  }
  uint64_t bytes = segment_pool_bytes_locked();
  lof__unlock_nosignal(&pool_lock, &held);
  return bytes;
}
/* ---- segments ------------------------------------------------------------ */

/* The reservation segments are currently cut from. */
static pthread_mutex_t segment_lock = PTHREAD_MUTEX_INITIALIZER;
static lof_region_t *segment_region; /* current reservation */
static size_t segment_next;          /* offset of the next segment in it */
static uintptr_t segment_spare;      /* a slot whose first commit was refused, for next time */

#define SEGMENT_FIRST_COMMIT ((LOF_SEG_HDR_PAGES + LOF_COMMIT_STEP_PAGES) << LOF_PAGE_SHIFT)

LOF_HIDDEN lof_segment_t *lof__segment_new(lof_arena_t *arena) {
  lof_region_t *r;
  uintptr_t base;

  /* lof_reserve's pool first: no syscall (arena NULL: a fresh one is asked for) */
  lof_segment_t *pinned = arena != NULL ? segment_pool_take(arena) : NULL;
  if (pinned != NULL) return pinned;
  sigset_t held;
  lof__lock_nosignal(&segment_lock, &held);
  if (segment_spare != 0) {
    base = segment_spare;
    segment_spare = 0;
    r = segment_region;
  } else {
    if (segment_region == NULL || segment_next + LOF_SEG_SIZE > segment_region->size) {
      /* Reserving is a syscall, but a rare one (once per 1 GiB); holding the
       * lock keeps two threads from reserving at once. */
      lof_region_t *nr = lof__region_reserve(LOF_RESERVE_SIZE, LOF_SEG_SIZE);
      if (nr == NULL) {
        lof__unlock_nosignal(&segment_lock, &held);
        errno = ENOMEM;
        return NULL;
      }
      segment_region = nr;
      segment_next = 0;
    }
    r = segment_region;
    base = r->base + segment_next;
    segment_next += LOF_SEG_SIZE;
  }
  lof__unlock_nosignal(&segment_lock, &held);

  if (lof__region_commit(r, (void *)base, SEGMENT_FIRST_COMMIT) != 0) {
    /* Refused (strict): keep the slot for the next attempt. */
    lof__lock_nosignal(&segment_lock, &held);
    if (segment_spare == 0 && r == segment_region) segment_spare = base;
    lof__unlock_nosignal(&segment_lock, &held);
    errno = ENOMEM;
    return NULL;
  }
  lof_segment_t *seg = (lof_segment_t *)base;
  /* Fresh pages read as zero: only the fields that must be non-zero are set. */
  seg->kind = LOF_SEG_NORMAL;
  seg->region = r;
  seg->arena = arena;
  atomic_store_explicit(&seg->committed_pages, (uint16_t)(SEGMENT_FIRST_COMMIT >> LOF_PAGE_SHIFT),
                        memory_order_relaxed);
  lof_span_t *hdr = lof__span_slot_new(seg, 0); /* slot 0 */
  hdr->state = LOF_SPAN_HEADER;
  hdr->npages = (uint16_t)LOF_SEG_HDR_PAGES;
  for (size_t i = 0; i < LOF_SEG_HDR_PAGES; i++) seg->pagemap[i] = 0;
  seg->magic = LOF_SEG_MAGIC;
  lof__registry_set(seg, true);
  return seg;
}

LOF_HIDDEN int lof__segment_commit_to(lof_segment_t *seg, size_t end) {
  size_t have = atomic_load_explicit(&seg->committed_pages, memory_order_relaxed);
  if (end <= have) return 0;
  size_t want = have + LOF_ALIGN_UP(end - have, LOF_COMMIT_STEP_PAGES);
  if (want > LOF_SEG_PAGES) want = LOF_SEG_PAGES;
  if (lof__region_commit(seg->region, (char *)seg + (have << LOF_PAGE_SHIFT),
                         (want - have) << LOF_PAGE_SHIFT) != 0) {
    errno = ENOMEM;
    return -1;
  }
  atomic_store_explicit(&seg->committed_pages, (uint16_t)want, memory_order_relaxed);
  return 0;
}

LOF_HIDDEN size_t lof__segment_trim(lof_segment_t *seg, size_t start) {
  size_t have = atomic_load_explicit(&seg->committed_pages, memory_order_relaxed);
  if (start < LOF_SEG_HDR_PAGES) start = LOF_SEG_HDR_PAGES;
  if (start >= have) return 0;
  size_t len = (have - start) << LOF_PAGE_SHIFT;
  if (lof__region_decommit(seg->region, (char *)seg + (start << LOF_PAGE_SHIFT), len) != 0)
    return 0;
  atomic_store_explicit(&seg->committed_pages, (uint16_t)start, memory_order_relaxed);
  return len;
}

/* fork (malloc/fork.c): pool_lock, then segment_lock (never nested: the
 * order is the one fork.c states). */
LOF_HIDDEN void lof__segment_prefork(void) {
  lof__fork_lock(&pool_lock);
  lof__fork_lock(&segment_lock);
}

LOF_HIDDEN void lof__segment_postfork(bool child) {
  if (child) {
    lof__fork_reset(&segment_lock);
    lof__fork_reset(&pool_lock);
  } else {
    lof__fork_unlock(&segment_lock);
    lof__fork_unlock(&pool_lock);
  }
}
