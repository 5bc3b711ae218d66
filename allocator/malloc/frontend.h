/*
 * frontend.h -- internal declarations of the malloc frontend: the layout of a
 * segment, a span, a thread heap and an arena, and the functions the files of
 * allocator/malloc/ share.  Nothing here is exported.
 *
 * The picture (doc/malloc.md has the long version):
 *
 *   region (1 GiB reservation) --> segments (4 MiB, aligned; a committed
 *   prefix that grows in 64 KiB steps as pages are handed out and is trimmed
 *   when its top decays; the header sits in the first pages) --> spans (runs of 4 KiB
 *   pages, described in the segment header) --> blocks (small objects of one
 *   size class carved from a span, or one large block = the whole span).
 *   Huge blocks (>= the huge threshold) have their own lock-on-fault mapping
 *   and a descriptor out of band (huge.c).
 *
 * Invariants:
 *  - Every small or large block lies in a 4 MiB segment whose base holds a
 *    lof_segment_t header, and that unit is set in the registry
 *    (segment.c).  free() masks the pointer, tests the byte, and only then
 *    reads the header.  A pointer in no segment is looked up among the huge
 *    blocks (huge.c, a hash table); one found nowhere is reported, never
 *    followed.
 *  - A descriptor's owner is non-zero only while it heads a SMALL span that
 *    a live heap owns; arena.c zeroes it whenever the descriptor changes
 *    hands, so free's fast path needs no state test.
 *  - A span is described by a descriptor slot of its segment; seg->pagemap[i]
 *    gives the slot of the span holding page i, and the descriptor its first
 *    page.  The map is exact for every page of a small span and for the first
 *    and last page of large and free spans.  Slots are taken lowest first
 *    and given back when spans merge, under the arena's lock.
 *  - A small span belongs to one thread heap (span->owner == heap->id): only
 *    that thread touches free, used and the list links.  Every
 *    other thread frees onto the atomic xfree list.  owner == 0 means
 *    abandoned (its thread exited); such spans are adopted under a lock.
 *  - Large spans and free runs belong to the arena of their segment and are
 *    only touched under that arena's lock.
 *  - A segment's pages below committed_pages are committed, the rest only
 *    reserved: a run is handed out only once its pages are committed, and
 *    every page above committed_pages lies in the segment's last free run.
 *  - Locks and system calls: purge and unmap run with no lock held.  Two
 *    kinds of call are made under a lock, each once per 64 KiB or rarer:
 *    growing a segment's committed prefix (under its arena's lock, so two
 *    threads never commit the same pages) and taking a new reservation or
 *    heap-struct block (under segment_lock / heaps_lock).  No call is made
 *    under two locks, and no lock is taken inside the region layer's call
 *    but the region layer's own, which comes last in the fork order.
 */
#ifndef LOF_FRONTEND_H
#define LOF_FRONTEND_H

#include <pthread.h>
#include <stdatomic.h>

#include "forklock.h"
#include "internal.h"
#include "lofalloc.h"
#include "options.h"
#include "region.h"

/* ---- geometry ----------------------------------------------------------- */
#define LOF_SEG_SHIFT 22
#define LOF_SEG_SIZE ((size_t)1 << LOF_SEG_SHIFT)   /* 4 MiB */
#define LOF_SEG_MASK (LOF_SEG_SIZE - 1)
#define LOF_PAGE_SHIFT 12
#define LOF_SEG_PAGES (LOF_SEG_SIZE >> LOF_PAGE_SHIFT) /* 1024 */
#define LOF_RESERVE_SIZE ((size_t)1 << 30)            /* segments are cut from 1 GiB reservations */

#define LOF_SMALL_MAX ((size_t)16384)   /* largest small size class */
#define LOF_NCLASSES 36                 /* small size classes */
#define LOF_MIN_ALIGN 16                /* every block is 16-aligned */
#define LOF_MAX_ALIGN ((size_t)2 << 20) /* largest alignment of a segment block (2 MiB); above, huge */

/* ---- blocks and spans --------------------------------------------------- */

/* A free small block: the first word links it, the second holds a cookie
 * (the address of its span's descriptor, which no program is ever given) so
 * a second free of the same block is noticed with one compare against a
 * value free already has in a register. */
typedef struct lof_block {
  struct lof_block *next; /* next free block in the same list */
  uintptr_t cookie;       /* lof__block_cookie(its span) while free, else anything */
} lof_block_t;

enum lof_span_state {
  LOF_SPAN_UNUSED = 0, /* descriptor not the first page of any span */
  LOF_SPAN_FREE,       /* a free run in its arena's bins */
  LOF_SPAN_PURGING,    /* a free run taken out of the bins while it is purged */
  LOF_SPAN_SMALL,      /* carved into blocks of one size class */
  LOF_SPAN_LARGE,      /* one large block */
  LOF_SPAN_HEADER      /* the segment's own header pages */
};

/* A span's descriptor: one of the segment's LOF_SEG_PAGES slots (as many as
 * a segment can have spans), handed out lowest first, so a segment of few
 * spans touches only the first page or two of its descriptor table.
 * seg->pagemap[page] names the slot.  64 bytes. */
typedef struct lof_span {
  union {
    struct {                       /* SMALL */
      lof_block_t *free;           /* blocks ready for the owner's malloc (and its frees, LIFO) */
      _Atomic(uintptr_t) xfree;    /* blocks other threads freed (lock-free stack):
                                    * top block and count (lof__xfree_top/count) */
    };
    struct {                       /* FREE: arena bookkeeping */
      struct lof_span *dnext;      /* dirty list (runs not known zero) */
      struct lof_span *dprev;
    };
  };
  _Atomic(uint32_t) owner;         /* SMALL: heap id of the owner, 0 = abandoned */
  uint16_t first;                  /* the span's first page in its segment */
  uint8_t state;                   /* enum lof_span_state (UNUSED: a free slot) */
  uint8_t cls;                     /* SMALL: size class */
  union {
    struct {
      uint16_t block_size;         /* SMALL: bytes per block (<= 16 KiB) */
      uint8_t bshift;              /* SMALL: block_size = odd << bshift */
      uint8_t unused8;
      uint32_t dinv;               /* SMALL: inverse of that odd factor mod 2^32 (lof__block_q) */
    };
    uint64_t freed_ms;             /* FREE: when it became dirty (decay clock) */
  };
  uint16_t used;                   /* SMALL: blocks handed out (owner's view), | LOF_USED_FULL
                                    * while on the owner's full list (lof__span_used); written
                                    * by the owner only, read by the statistics (arena.c) */
  uint16_t reserved;               /* SMALL: blocks that fit in the span */
  uint16_t npages;                 /* pages in the span */
  uint8_t zero;                    /* FREE/LARGE: every page known to read as zero */
  uint8_t abandoned;               /* SMALL: on the abandoned lists (heap.c, under its lock) */
  uint32_t capacity;               /* SMALL: blocks carved so far (bump) */
  uint32_t bkey;                   /* SMALL: (first page's offset in the segment) * dinv mod 2^32 */
  struct lof_span *next;           /* heap class list / arena bin */
  struct lof_span *prev;
} lof_span_t;

_Static_assert(sizeof(lof_span_t) <= 64, "span descriptor must stay 64 bytes");

/* used's top bit: the span is on its owner's full list.  free's fast path
 * then tests one sign: used, decremented, is <= 0 (as int16) exactly when
 * the span became empty or is on the full list (lof__heap_free_event). */
#define LOF_USED_FULL ((uint16_t)0x8000)
static inline unsigned lof__span_used(const lof_span_t *s) {
  return s->used & (unsigned)~LOF_USED_FULL;
}
static inline bool lof__span_on_fulls(const lof_span_t *s) {
  return (s->used & LOF_USED_FULL) != 0;
}
/* used is the only count of a span's blocks in use: the statistics sum it
 * over the small spans (lof__arenas_small_stats) instead of the fast paths
 * keeping a counter of their own.  Only the owner writes it, each store
 * atomic (relaxed), so that the sum's relaxed loads race with nothing;
 * on x86-64 a plain add to memory is such a store. */
static inline void lof__span_used_set(lof_span_t *s, unsigned v) {
  __atomic_store_n(&s->used, (uint16_t)v, __ATOMIC_RELAXED);
}
static inline __attribute__((always_inline)) void lof__span_used_inc(lof_span_t *s) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
  __asm__("addw $1, %0" : "+m"(s->used) : : "cc");
#else
  lof__span_used_set(s, s->used + 1u);
#endif
}
/* The owner's --used; true when the span became empty or is on the full
 * list (lof__heap_free_event's cases). */
static inline __attribute__((always_inline)) bool lof__span_used_dec(lof_span_t *s) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
  /* one subtract and one branch on its flags: gcc reloads and re-tests a
   * 16-bit decrement (5 instructions) */
  __asm__ goto("subw $1, %0\n\tjle %l[event]" : "+m"(s->used) : : "cc" : event);
  return false;
event:
  return true;
#else
  uint16_t u = (uint16_t)(s->used - 1u);
  lof__span_used_set(s, u);
  return (int16_t)u <= 0;
#endif
}

enum lof_segment_kind { LOF_SEG_NORMAL = 1 };
#define LOF_SEG_MAGIC 0x6c6f6673u /* "lofs" */

struct lof_arena;

/* The header at the base of every segment (huge blocks have out-of-band
 * descriptors of their own, huge.c). */
typedef struct lof_segment {
  uint32_t magic;                  /* LOF_SEG_MAGIC while live */
  uint8_t kind;                    /* enum lof_segment_kind */
  _Atomic(uint8_t) pinned;         /* NORMAL: part of lof_reserve's pinned memory: its free
                                    * runs are never dirty-listed, so never purged (reserve.c) */
  _Atomic(uint16_t) committed_pages; /* NORMAL: pages [0, n) committed (and locked); the rest
                                      * reserved.  Grown and trimmed under the arena's lock,
                                      * or by the one thread purging the run at the top */
  lof_region_t *region;            /* the reservation it was cut from */
  struct lof_arena *arena;         /* the arena owning its page runs (NULL in the reserve pool) */
  struct lof_segment *next;        /* arena segment list / reserve pool */
  struct lof_segment *prev;        /* unused */
  uint64_t slot_used[LOF_SEG_PAGES / 64]; /* NORMAL: descriptor slots in use (bit per slot) */
  uint16_t pagemap[LOF_SEG_PAGES]; /* NORMAL: page -> its span's descriptor, as a byte offset
                                    * into spans[] (lof__pagemap_span) */
  lof_span_t spans[LOF_SEG_PAGES]; /* NORMAL: the descriptor slots (slot 0: the header) */
} lof_segment_t;

#define LOF_SEG_HDR_PAGES ((sizeof(lof_segment_t) + LOF_PAGE_SIZE - 1) >> LOF_PAGE_SHIFT)
#define LOF_SEG_USABLE_PAGES (LOF_SEG_PAGES - LOF_SEG_HDR_PAGES)
#define LOF_LARGE_MAX (LOF_SEG_USABLE_PAGES * LOF_PAGE_SIZE)
_Static_assert(LOF_SEG_HDR_PAGES <= 20, "segment header too large");
/* decay (arena.c) drops header pages 1.. of a wholly free segment: its two
 * descriptors (the header's, slot 0, and the free run's, slot 1), the slot
 * map, the pagemap and the fixed fields stay in page 0. */
_Static_assert(offsetof(lof_segment_t, spans) + 2 * sizeof(lof_span_t) <= 4096,
               "page 0 must hold the segment fields, pagemap and the first two descriptors");
_Static_assert(LOF_SMALL_MAX * 16 <= ((size_t)1 << 18), "small spans must stay <= 256 KiB");

static inline lof_segment_t *lof__segment_of(const void *p) {
  return (lof_segment_t *)((uintptr_t)p & ~(uintptr_t)LOF_SEG_MASK);
}
/* The span's first page in its segment. */
static inline size_t lof__span_index(const lof_segment_t *seg, const lof_span_t *s) {
  (void)seg;
  return s->first;
}
/* The slot of its descriptor (its index in spans[] and bit in slot_used). */
static inline uint16_t lof__span_slot(const lof_segment_t *seg, const lof_span_t *s) {
  return (uint16_t)(s - seg->spans);
}
static inline uintptr_t lof__span_start(const lof_span_t *s) {
  return (uintptr_t)lof__segment_of(s) + ((uintptr_t)s->first << LOF_PAGE_SHIFT);
}
/* pagemap[] holds slot * sizeof(lof_span_t), the descriptor's byte offset
 * in spans[] (at most 1023 * 64: 16 bits), so that free forms the
 * descriptor's address with one add, no scaling. */
_Static_assert(sizeof(lof_span_t) == 64 && LOF_SEG_PAGES * 64 <= 65536, "pagemap entries are 16-bit offsets");
static inline uint16_t lof__pagemap_entry(const lof_segment_t *seg, const lof_span_t *s) {
  return (uint16_t)((uintptr_t)s - (uintptr_t)seg->spans);
}
static inline lof_span_t *lof__pagemap_span(lof_segment_t *seg, size_t page) {
  return (lof_span_t *)((uintptr_t)seg->spans + seg->pagemap[page]);
}
static inline lof_span_t *lof__span_of(lof_segment_t *seg, const void *p) {
  return lof__pagemap_span(seg, ((uintptr_t)p - (uintptr_t)seg) >> LOF_PAGE_SHIFT);
}

/* The block index of a small span's block from the pointer's offset in its
 * segment, with one multiply and one rotate: with block_size = d << k (d
 * odd), n = off - span start, q = ror32(n * d^-1 mod 2^32, k) equals n /
 * block_size when block_size divides n, and otherwise is at least 2^(32-k)
 * > every span's block count (n * d^-1 is then either odd in one of its low
 * k bits, or a multiple of 2^k whose quotient, times d, would give back n).
 * So "q < capacity" says at once "the start of a block" and "carved"; and
 * n * d^-1 = off * d^-1 - bkey mod 2^32 needs no subtraction of the span's
 * start (tests/malloc/sizeclass.c checks every class, span start and
 * offset). */
static inline uint32_t lof__block_q(const lof_span_t *s, uint32_t off) {
  uint32_t x = off * s->dinv - s->bkey;
  unsigned k = s->bshift;
  return (x >> k) | (x << ((32 - k) & 31));
}

/* ---- size classes (sizeclass.c) ------------------------------------------ */
LOF_HIDDEN extern const uint32_t lof__class_size[LOF_NCLASSES];
LOF_HIDDEN extern const uint8_t lof__class_lut[LOF_SMALL_MAX / 16 + 1]; /* (size+15)/16 -> class */
LOF_HIDDEN size_t lof__class_span_pages(unsigned cls);
typedef struct lof_class_direct {
  uint8_t first, steps; /* direct[first .. first + steps - 1] are the class's */
} lof_class_direct_t;
LOF_HIDDEN extern const lof_class_direct_t lof__class_direct[LOF_NCLASSES];
/* s's block_size, bshift, dinv, bkey and reserved for class cls, from its
 * first page and npages. */
LOF_HIDDEN void lof__span_geometry(lof_span_t *s, unsigned cls);

/* size in (2^k, 2^(k+1)], k >= 7: class 8 + 4 (k - 7) + ((size - 1) >> (k - 2)) - 4 */
static inline unsigned lof__size_class_pow(size_t size) {
  size_t s = size - 1;
  unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)s);
  return 8u + 4u * (k - 7u) + (unsigned)(s >> (k - 2)) - 4u;
}

/* size <= LOF_SMALL_MAX: one table load (every class is a multiple of 16). */
static inline unsigned lof__size_class(size_t size) {
  return lof__class_lut[(size + 15) >> 4];
}

/* ---- registry and segments (segment.c) ----------------------------------- */
/* One byte per 4 MiB unit of the 47-bit user address space (segment.c).
 * A byte, not a bit, so that free's test is one compare with memory; and
 * each unit its own byte, so that it needs no atomic load: the byte is
 * stored (__atomic_store_n, release) before any pointer into the unit is
 * handed out and cleared after the last one is freed, so a free of a
 * pointer the program was given is ordered after the store that set it,
 * by whatever handed the pointer over. */
#define LOF_REGISTRY_UNITS ((size_t)1 << (47 - LOF_SEG_SHIFT))
LOF_HIDDEN extern uint8_t lof__registry[LOF_REGISTRY_UNITS];
static inline bool lof__registry_test(const void *unit) {
  uintptr_t i = (uintptr_t)unit >> LOF_SEG_SHIFT;
  if (LOF_UNLIKELY(i >= LOF_REGISTRY_UNITS)) return false;
  return lof__registry[i] != 0;
}
LOF_HIDDEN void lof__registry_set(const void *unit, bool on);
/* A segment for arena: one of the pinned pool if any, else a fresh NORMAL
 * one (arena NULL: always fresh), its header and the first LOF_COMMIT_STEP
 * pages committed, initialised, registered.  NULL + ENOMEM (strict policy). */
LOF_HIDDEN lof_segment_t *lof__segment_new(struct lof_arena *arena);
/* The committed prefix grows in steps of this many pages (64 KiB). */
#define LOF_COMMIT_STEP_PAGES 16
/* Commit seg's pages up to page `end` (exclusive), rounded up to a step.
 * Under the arena's lock.  0, or -1 + ENOMEM (the policy said strict). */
LOF_HIDDEN int lof__segment_commit_to(lof_segment_t *seg, size_t end);
/* Decommit seg's pages from `start` (>= the header) to the top of its
 * committed prefix: they leave RAM and the lock charge.  Called by the one
 * thread purging the run that reaches the top.  Returns the bytes given
 * back (0 if the kernel refused: the pages stay committed). */
LOF_HIDDEN size_t lof__segment_trim(lof_segment_t *seg, size_t start);
LOF_HIDDEN void lof__segment_prefork(void);
/* The pool of pinned, populated segments no arena has yet (lof_reserve's):
 * lof__segment_new(arena) takes one before it asks the kernel.  pool_add
 * puts a list (->next) into it; both return the pool's bytes. */
LOF_HIDDEN uint64_t lof__segment_pool_bytes(void);
LOF_HIDDEN uint64_t lof__segment_pool_add(lof_segment_t *list);
/* A free descriptor slot of seg (zeroed, first = first), lowest first; and
 * giving one back.  Under the arena's lock (or on a segment no one sees yet). */
LOF_HIDDEN lof_span_t *lof__span_slot_new(lof_segment_t *seg, size_t first);
LOF_HIDDEN void lof__span_slot_free(lof_segment_t *seg, lof_span_t *s);
/* reserve.c: lof_reserve() once the heap is initialised (alloc.c calls
 * lof__malloc_init first); and LOFALLOC_RESERVE at start-up (called once
 * by lof__malloc_init). */
LOF_HIDDEN int lof__reserve(size_t bytes);
LOF_HIDDEN void lof__reserve_startup(void);
LOF_HIDDEN void lof__reserve_prefork(void);
LOF_HIDDEN void lof__reserve_postfork(bool child);
/* reserve.c: pinned and populated bytes (stats). */
LOF_HIDDEN void lof__reserve_stats(uint64_t *pinned, uint64_t *populated);
static inline bool lof__segment_pinned(const lof_segment_t *seg) {
  return atomic_load_explicit(&seg->pinned, memory_order_relaxed) != 0;
}
LOF_HIDDEN void lof__segment_postfork(bool child);

/* ---- arenas: page runs, decay, purge (arena.c; lof_purge in purge.c) ------- */
#define LOF_NBINS 40
typedef struct lof_arena {
  pthread_mutex_t lock;            /* guards everything below */
  unsigned index;                  /* position in lof__arenas */
  uint64_t binmask;                /* bit b set: bins[b] non-empty */
  lof_span_t *bins[LOF_NBINS];     /* free runs by page count */
  lof_span_t *dirty;               /* free runs not known zero, newest first */
  size_t dirty_pages;              /* pages on the dirty list */
  uint64_t last_decay_ms;          /* last decay pass */
  lof_segment_t *segments;         /* every segment of this arena */
  size_t nsegments;
  unsigned purgers;                /* threads purging runs of it now (its lock dropped) */
} lof_arena_t;

#define LOF_MAX_ARENAS 16
LOF_HIDDEN extern lof_arena_t lof__arenas[LOF_MAX_ARENAS];
LOF_HIDDEN extern unsigned lof__arenas_max; /* mallopt(M_ARENA_MAX) for new heaps, 0 = none (set by alloc.c) */
LOF_HIDDEN extern unsigned lof__perturb;    /* mallopt(M_PERTURB): 0x100 | byte, 0 = off (alloc.c) */
LOF_HIDDEN extern unsigned lof__narenas;

LOF_HIDDEN void lof__arenas_init(void);
/* In the fork child, before the arena locks are reset: runs that other
 * threads of the parent were purging go back to their bins. */
LOF_HIDDEN void lof__arena_decay_postfork_child(void);
/* A run of npages from arena a (locks it), labelled state (SMALL or LARGE)
 * under the lock, since neighbours read it when they coalesce; a SMALL run
 * gets its geometry for class cls and its owner under the lock too
 * (cls and owner are ignored for LARGE).  *zero tells
 * whether it reads as zero.  NULL + ENOMEM when no segment can be committed. */
LOF_HIDDEN lof_span_t *lof__arena_alloc(lof_arena_t *a, size_t npages, size_t align,
                                        uint8_t state, unsigned cls, uint32_t owner,
                                        bool *zero);
/* Give a span back to its arena (locks it); coalesces, may run decay. */
LOF_HIDDEN void lof__arena_free(lof_span_t *s);
/* Try to grow/shrink a large span in place to npages (locks).  true on success. */
LOF_HIDDEN bool lof__arena_resize(lof_span_t *s, size_t npages);
/* Under a's lock: insert a free run (coalescing) and remove one. */
LOF_HIDDEN void lof__arena_insert_locked(lof_arena_t *a, lof_span_t *s, bool zero, uint64_t now);
LOF_HIDDEN uint64_t lof__now_ms(void);
LOF_HIDDEN unsigned lof__arena_bin(size_t npages);
LOF_HIDDEN void lof__arena_unlink_locked(lof_arena_t *a, lof_span_t *s);
/* Decay: purge dirty runs older than the decay time (all when force).
 * Called with a's lock held; drops and retakes it around the syscalls.
 * Returns the bytes purged. */
LOF_HIDDEN size_t lof__arena_decay_locked(lof_arena_t *a, uint64_t now, bool force);
/* Another cache on the arenas' decay clock (huge.c's freed blocks): the
 * next arena operation at or after due_ms (UINT64_MAX: none) calls fn(now)
 * with no lock held.  fn calls it again with its next due time. */
typedef void (*lof_decay_fn)(uint64_t now);
LOF_HIDDEN void lof__arena_decay_client(lof_decay_fn fn, uint64_t due_ms);
/* The small blocks in use in every arena's spans, by their used counts (each
 * arena under its lock): bytes and blocks, before lof_heap_t.remote_small. */
LOF_HIDDEN void lof__arenas_small_stats(int64_t *bytes, int64_t *count);
LOF_HIDDEN void lof__arenas_prefork(void);
LOF_HIDDEN void lof__arenas_postfork(bool child);

/* ---- thread heaps (heap.c) ----------------------------------------------- */
/* Sizes up to LOF_DIRECT_MAX have the span malloc pops from at hand per
 * 16-byte step of size, not per class: lof_malloc's fast path then needs
 * no class lookup (two instructions and a dependent load fewer).  Up to
 * 1024 B a class spans at most 8 steps, so keeping the steps equal to
 * cur[] is cheap (heap.c: heap_cur_set); above it, a class spans up to 64. */
#define LOF_DIRECT_MAX 1024
#define LOF_DIRECT_N (LOF_DIRECT_MAX / 16 + 1) /* index (size + 15) / 16 */
#define LOF_DIRECT_CLASSES 20                  /* classes 0..19 are 16..1024 B */

typedef struct lof_heap {
  lof_span_t *direct[LOF_DIRECT_N]; /* cur[lof__class_lut[i]], for malloc's fast path */
  lof_span_t *cur[LOF_NCLASSES];   /* span malloc pops from, per class (never NULL) */
  lof_span_t *spans[LOF_NCLASSES]; /* owned spans with (maybe) free blocks, cur first */
  lof_span_t *spans_tail[LOF_NCLASSES]; /* ... and the last */
  lof_span_t *fulls[LOF_NCLASSES]; /* owned spans found full, newest first */
  lof_span_t *fulls_tail[LOF_NCLASSES]; /* ... and the oldest */
  lof_span_t *fresh[LOF_NCLASSES]; /* the owned span with uncarved pages, or an emptied one kept whole (on fulls[]), or NULL */
  uint32_t id;                     /* owner id stamped in its spans (never 0) */
  lof_arena_t *arena;              /* where its spans and large blocks come from */
  _Atomic(int64_t) allocated;      /* large/huge: usable bytes malloc'ed minus freed by this thread */
  _Atomic(int64_t) count;          /* large/huge: blocks malloc'ed minus freed by this thread */
  _Atomic(int64_t) remote_small[LOF_NCLASSES]; /* small blocks of each class this thread freed
                                         * into other heaps' spans (-1 each) or collected from
                                         * its own spans' xfree (+1 each): a span's used counts
                                         * a remotely freed block until its owner collects it */
  lof_block_t *foreign[LOF_NCLASSES]; /* per class: blocks this thread freed into other heaps'
                                    * spans and holds back (remote.c), newest first */
  uint16_t foreign_n[LOF_NCLASSES];  /* ... and how many */
  struct lof_heap *next;           /* registry of live heaps / free pool */
  struct lof_heap *prev;
} lof_heap_t;

/* A thread's frees into another heap's spans are held back in a cache per
 * size class (remote.c), which its own mallocs of the class take from
 * first; it is emptied onto the spans' xfree stacks when it reaches
 * LOF_REMOTE_BATCH blocks or LOF_REMOTE_BATCH_BYTES, and (every class) at
 * lof_purge and exit.  So a thread holds back at most 63 blocks of each
 * class and 16 KiB of each class above 256 B. */
#define LOF_REMOTE_BATCH 64
#define LOF_REMOTE_BATCH_BYTES 16384
#define LOF_HEAP_EMPTY_ID UINT32_MAX
LOF_HIDDEN extern lof_heap_t lof__heap_empty;
LOF_HIDDEN extern lof_span_t lof__span_empty;
LOF_HIDDEN extern __thread lof_heap_t *lof__heap_tls __attribute__((tls_model("initial-exec")));
/* lof__heap_tls->id, in a TLS word of its own so that free's fast path
 * tests ownership with one load (heap.c sets both together). */
LOF_HIDDEN extern __thread uint32_t lof__heap_id_tls __attribute__((tls_model("initial-exec")));
/* What a free small block of span s holds in its second word. */
static inline uintptr_t lof__block_cookie(const lof_span_t *s) {
  return (uintptr_t)s;
}
/* --enable-debug: malloc checks that the block it pops still holds its
 * cookie, which a write to a freed block usually destroys (release builds
 * do not test it: it prevents nothing, the write has happened). */
static inline void lof__debug_free_block(const lof_span_t *s, const lof_block_t *b) {
#ifdef LOF_DEBUG
  if (LOF_UNLIKELY(b->cookie != lof__block_cookie(s)))
    lof__fatal("malloc(): free block %p was written after it was freed", (const void *)b);
#else
  (void)s;
  (void)b;
#endif
}
static inline void lof__stat_add(lof_heap_t *h, int64_t bytes, int64_t n) {
  atomic_store_explicit(&h->allocated,
                        atomic_load_explicit(&h->allocated, memory_order_relaxed) + bytes,
                        memory_order_relaxed);
  atomic_store_explicit(&h->count,
                        atomic_load_explicit(&h->count, memory_order_relaxed) + n,
                        memory_order_relaxed);
}
/* The correction of the small spans' used counts for remote frees (see
 * lof_heap_t.remote_small); written only by h's thread, read by
 * lof__heaps_stats (relaxed). */
static inline void lof__stat_remote(lof_heap_t *h, unsigned cls, int64_t n) {
  atomic_store_explicit(&h->remote_small[cls],
                        atomic_load_explicit(&h->remote_small[cls], memory_order_relaxed) + n,
                        memory_order_relaxed);
}
LOF_HIDDEN void lof__stat_global(int64_t bytes, int64_t n);

LOF_HIDDEN void lof__malloc_init(void);
LOF_HIDDEN lof_heap_t *lof__heap_get(void);  /* the calling thread's heap, created on demand */
/* (cls first: lof_malloc has it in the first argument register already) */
LOF_HIDDEN void *lof__heap_alloc_slow(size_t cls, lof_heap_t *h);
LOF_HIDDEN void lof__heap_free_event(lof_heap_t *h, lof_span_t *s); /* used==0 or full after a local free */
/* cross-thread frees (remote.c) */
LOF_HIDDEN void lof__span_remote_free(lof_span_t *s, lof_block_t *b); /* heapless thread: one CAS */
/* A span's xfree word: the stack's top block in the low 48 bits (user
 * addresses), the number of blocks on it in the top 16 (a span holds at
 * most 4096).  So the owner takes the stack and its count in one exchange
 * and walks none of it: every block on it was last written by another
 * thread, a cache miss each, one after another.  (prodcons: the walk was a
 * quarter of all samples, perf.)  Pushes only and one taker: no ABA. */
#define LOF_XFREE_SHIFT 48
static inline lof_block_t *lof__xfree_top(uintptr_t x) {
  return (lof_block_t *)(x & (((uintptr_t)1 << LOF_XFREE_SHIFT) - 1));
}
static inline unsigned lof__xfree_count(uintptr_t x) {
  return (unsigned)(x >> LOF_XFREE_SHIFT);
}
/* Empty h's cache of class cls onto the spans' xfree stacks, one CAS per
 * run of blocks of one span; and every class's (lof_purge, thread exit). */
LOF_HIDDEN void lof__heap_remote_evict(lof_heap_t *h, unsigned cls);
LOF_HIDDEN void lof__heap_remote_flush(lof_heap_t *h);
/* A free by h of block b of s, a small span of another heap: held back in
 * h's cache of remote frees, cookie set, and h's statistics corrected (the
 * owner counts it back only when it collects it).  The cache of a class
 * holds fewer than LOF_REMOTE_BATCH blocks and fewer than
 * LOF_REMOTE_BATCH_BYTES of them (16 KiB blocks are pushed at once): at
 * most 63 blocks of each class and 16 KiB of each class above 256 B per
 * thread, 560 KiB in all.  Its blocks stay counted as used by their spans'
 * owners, so those spans can be neither released nor reused while they
 * wait.  (n * size against the bytes: no division on the free path.) */
static inline void lof__heap_remote_free(lof_heap_t *h, lof_span_t *s, lof_block_t *b) {
  unsigned cls = s->cls;
  lof__stat_remote(h, cls, -1);
  b->cookie = lof__block_cookie(s);
  b->next = h->foreign[cls];
  h->foreign[cls] = b;
  uint32_t n = ++h->foreign_n[cls];
  if (LOF_UNLIKELY(n >= LOF_REMOTE_BATCH || n * s->block_size >= LOF_REMOTE_BATCH_BYTES))
    lof__heap_remote_evict(h, cls);
}
/* malloc's slow path: the block of class cls that h freed last into
 * another heap's span, from h's cache of remote frees (which must hold
 * one).  Inline, as malloc's pop is.  Only the statistics' correction made
 * at its free is undone: the owner never counted it back. */
static inline void *lof__heap_remote_take(lof_heap_t *h, unsigned cls) {
  lof_block_t *b = h->foreign[cls];
  lof__debug_free_block((const lof_span_t *)b->cookie, b);
  h->foreign[cls] = b->next;
  h->foreign_n[cls]--;
  b->cookie = 0;
  lof__stat_remote(h, cls, 1);
  return b;
}
/* b of s, s abandoned (owner 0): h adopts s and frees b as its owner.
 * false when s is not (or no longer) on the abandoned lists. */
LOF_HIDDEN bool lof__heap_reclaim(lof_heap_t *h, lof_span_t *s, lof_block_t *b);
LOF_HIDDEN size_t lof__heap_collect(lof_heap_t *h);                 /* release empty spans */
LOF_HIDDEN size_t lof__abandoned_collect(void);
LOF_HIDDEN void lof__heaps_stats(int64_t *allocated, int64_t *count);

/* The frontend's fields of *st: allocated bytes and blocks, pinned bytes
 * (stats.c; the region layer fills the rest). */
LOF_HIDDEN void lof__malloc_stats(lof_stats_t *st);
LOF_HIDDEN void lof__heaps_prefork(void);
LOF_HIDDEN void lof__heaps_postfork(bool child);

/* ---- large and huge blocks (large.c, huge.c) ----------------------------- */
LOF_HIDDEN void *lof__large_alloc(size_t size, size_t align, bool *zero);
LOF_HIDDEN void lof__large_free(lof_span_t *s);
/* clear: the caller zeroes the block unless *zero comes back true (calloc);
 * a reused block then has its pages dropped instead of written. */
LOF_HIDDEN void *lof__huge_alloc(size_t size, size_t align, bool clear, bool *zero);
LOF_HIDDEN int lof__huge_free(void *p);
LOF_HIDDEN void *lof__huge_realloc(void *p, size_t size, size_t *old_size);
LOF_HIDDEN size_t lof__huge_usable(const void *p);
LOF_HIDDEN size_t lof__huge_threshold(void);
LOF_HIDDEN void lof__huge_set_threshold(size_t t);  /* mallopt(M_MMAP_THRESHOLD); 0 = the option */
LOF_HIDDEN void lof__huge_set_keep_all(bool on);    /* mallopt(M_MMAP_MAX, 0): never unmap */
struct mallinfo2;
LOF_HIDDEN void lof__mstats_mallinfo2(struct mallinfo2 *mi); /* mstats.c */
LOF_HIDDEN void lof__huge_cache_stats(uint64_t *count, uint64_t *bytes); /* unpinned cached blocks */
LOF_HIDDEN size_t lof__huge_cache_flush(void);      /* lof_purge: release the unpinned cache */
LOF_HIDDEN void lof__huge_stats(uint64_t *count, uint64_t *bytes);
LOF_HIDDEN void lof__huge_prefork(void);
LOF_HIDDEN void lof__huge_postfork(bool child);
LOF_HIDDEN int lof__huge_check(void);

/* ---- misuse (alloc.c) ---------------------------------------------------- */
LOF_HIDDEN LOF_COLD __attribute__((noreturn)) void lof__invalid_free(const void *p, const char *what);
LOF_HIDDEN void lof__double_free_check(lof_heap_t *h, lof_span_t *s, lof_block_t *b);

/* ---- the malloc frontend's options (options.c) -------------------------- */

LOF_HIDDEN extern lof_option_t lof__opt_decay_ms, lof__opt_huge_threshold, lof__opt_reserve,
    lof__opt_lock_shared;

#define LOF_OPT_DECAY_MS (&lof__opt_decay_ms)               /* LOFALLOC_DECAY_MS: free pages are purged after this long (1000; -1 = never) */
#define LOF_OPT_HUGE_THRESHOLD (&lof__opt_huge_threshold)   /* LOFALLOC_HUGE_THRESHOLD: size at which a block gets its own mapping (4M) */
#define LOF_OPT_RESERVE (&lof__opt_reserve)                 /* LOFALLOC_RESERVE: size locked and populated at start-up, never given back (0) */
#define LOF_OPT_LOCK_SHARED (&lof__opt_lock_shared)         /* LOFALLOC_LOCK_SHARED: bool, lock shared mappings the program creates (shared.c) */

#endif /* LOF_FRONTEND_H */
