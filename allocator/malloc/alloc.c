/*
 * alloc.c -- the malloc family: lof_malloc, lof_free and the rest of the
 * public lof_* API, plus the glibc extras (malloc_trim, mallopt, mallinfo2)
 * under lof_ names.  override.h, included at the end, makes the standard
 * names aliases of these functions when the library replaces malloc.
 *
 * Dispatch by size: <= 16 KiB small (thread heap, no lock, no atomic on the
 * fast path), below the huge threshold large (page run), else huge (own
 * mapping).  Dispatch on free is by address: a pointer in a registered
 * segment is small or large (the page's span says which), any other is
 * looked up among the huge blocks.
 *
 * Misuse detected always (cheap): a pointer outside the heap, inside a block
 * rather than at its start, a second free of a large or huge block, and a
 * second free of a small block by its owning thread (the cookie in the freed
 * block's second word makes the list walk that confirms it rare).  Each is
 * reported with the pointer and aborts.
 */
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <unistd.h>

#include "frontend.h"
#include "options.h"

/* ---- misuse --------------------------------------------------------------- */

LOF_HIDDEN void lof__invalid_free(const void *p, const char *what) {
  lof__fatal("free(): %s %p", what, p);
}

static bool block_in_list(const lof_block_t *l, const lof_block_t *b) {
  for (size_t n = 0; l != NULL && n < 65536; l = l->next, n++)
    if (l == b) return true;
  return false;
}

LOF_HIDDEN void lof__double_free_check(lof_heap_t *h, lof_span_t *s, lof_block_t *b) {
  (void)h;
  /* Only the owner walks these lists; xfree may be walked from a snapshot
   * because only the owner ever pops it. */
  if (block_in_list(s->free, b) ||
      block_in_list(lof__xfree_top(atomic_load_explicit(&s->xfree, memory_order_acquire)), b))
    lof__fatal("free(): double free of %p", (void *)b);
}

/* ---- allocation ------------------------------------------------------------ */

/* clear: the caller (calloc) will zero what does not read as zero. */
static LOF_NOINLINE void *alloc_big(size_t size, size_t align, bool clear, bool *zero) {
  if (size >= lof__huge_threshold()) return lof__huge_alloc(size, align, clear, zero);
  void *p = lof__large_alloc(size, align, zero);
  if (p == NULL && errno == ENOMEM && size + align > LOF_LARGE_MAX)
    return lof__huge_alloc(size, align, clear, zero);
  return p;
}

/* The next free block of span s, or NULL: malloc's pop, shared by its two
 * fast paths. */
static inline __attribute__((always_inline)) lof_block_t *span_pop_fast(lof_span_t *s) {
  lof_block_t *b = s->free;
  if (LOF_LIKELY(b != NULL)) {
    lof__debug_free_block(s, b);
    s->free = b->next;
    b->cookie = 0;
    lof__span_used_inc(s);
  }
  return b;
}

static inline void *alloc_small(size_t size) {
  lof_heap_t *h = lof__heap_tls;
  size_t c = lof__size_class(size); /* size_t: no zero-extending copy to index with */
  lof_block_t *b = span_pop_fast(h->cur[c]);
  if (LOF_LIKELY(b != NULL)) return b;
  return lof__heap_alloc_slow(c, h);
}

/* alloc_small for size <= LOF_DIRECT_MAX: the span straight from the size,
 * without the class lookup (which only a miss needs). */
static inline void *alloc_direct(size_t size) {
  lof_heap_t *h = lof__heap_tls;
  size_t i = (size + 15) >> 4;
  lof_block_t *b = span_pop_fast(h->direct[i]);
  if (LOF_LIKELY(b != NULL)) return b;
  return lof__heap_alloc_slow(lof__class_lut[i], h);
}

static LOF_NOINLINE void *malloc_big(size_t size) {
  bool zero;
  return alloc_big(size, 0, false, &zero);
}

LOF_HIDDEN unsigned lof__perturb;      /* mallopt(M_PERTURB): 0x100 | byte, or 0 */

/* The fast paths' bounds, which M_PERTURB sets to 0 so that both fast paths
 * fail their first compare and reach the code that perturbs, instead of
 * testing lof__perturb on every call (3 instructions each): malloc's fast
 * paths take sizes below lof__direct_end (LOF_DIRECT_MAX + 1, else 0) and
 * then below lof__small_end (LOF_SMALL_MAX + 1, else 0), free's
 * takes pointers whose registry index is below lof__registry_end
 * (LOF_REGISTRY_UNITS, else 0).  The fast paths read them plainly (as they
 * read lof__perturb before), so that the compare takes its operand from
 * memory; mallopt stores them atomically, and a call racing with it may
 * still take the fast path once, as it could before. */
static size_t lof__direct_end = LOF_DIRECT_MAX + 1;
static size_t lof__small_end = LOF_SMALL_MAX + 1;
static uintptr_t lof__registry_end = LOF_REGISTRY_UNITS;

static void perturb_set(unsigned pb) {
  __atomic_store_n(&lof__perturb, pb, __ATOMIC_RELAXED);
  __atomic_store_n(&lof__direct_end, pb ? 0 : LOF_DIRECT_MAX + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&lof__small_end, pb ? 0 : LOF_SMALL_MAX + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&lof__registry_end, pb ? 0 : LOF_REGISTRY_UNITS, __ATOMIC_RELAXED);
}

/* lof_malloc of a size its fast path did not take: large or huge, or any
 * size while M_PERTURB is set. */
static LOF_NOINLINE void *malloc_other(size_t size) {
  unsigned pb = __atomic_load_n(&lof__perturb, __ATOMIC_RELAXED);
  void *p = size <= LOF_SMALL_MAX ? alloc_small(size) : malloc_big(size);
  if (p != NULL && pb) memset(p, (int)(~pb & 0xff), size);
  return p;
}

LOF_EXPORT void *lof_malloc(size_t size) {
  if (LOF_LIKELY(size < lof__direct_end)) return alloc_direct(size);
  if (LOF_LIKELY(size < lof__small_end)) return alloc_small(size);
  return malloc_other(size); /* a tail call: the fast path needs no frame */
}

/* ---- free ---------------------------------------------------------------- */

/* The index of the block of small span s at byte offset boff into the span,
 * or an abort when p is not the start of a block (the plain way: this is
 * the path of reports, and it re-derives what lof__block_q said). */
static uint32_t block_index_or_die(const void *p, const lof_span_t *s, uint32_t boff) {
  uint32_t idx = boff / s->block_size;
  if (idx * s->block_size != boff || idx >= s->reserved)
    lof__invalid_free(p, "invalid pointer (not the start of a block)");
  return idx;
}

/* Another thread's small block, known to start a block.  Every free block
 * carries its cookie (set by any free, cleared when malloc hands the block
 * out), so finding it here means the block is already free.  This thread may
 * not walk the owner's lists to confirm; a live block holding exactly its
 * span descriptor's address (which no program is given) is not a risk
 * worth a walk. */
static void free_remote(lof_span_t *s, lof_block_t *b) {
  if (b->cookie == lof__block_cookie(s)) lof__invalid_free(b, "double free");
  /* A thread that only frees (a consumer) gets a heap too, so its stats
   * counters are its own rather than a contended global. */
  lof_heap_t *h = lof__heap_tls;
  if (h == &lof__heap_empty) h = lof__heap_get();
  if (h == NULL) {
    lof__stat_global(-(int64_t)s->block_size, -1);
    lof__span_remote_free(s, b);
    return;
  }
  /* A span whose thread exited: this thread takes it over (reclaim on
   * free), so the rest of its blocks are freed by their owner. */
  if (atomic_load_explicit(&s->owner, memory_order_relaxed) == 0 && lof__heap_reclaim(h, s, b))
    return;
  lof__heap_remote_free(h, s, b);
}

/* Everything but the owner's plain small free: misuse reports, the double
 * free confirmation, cross-thread frees, large and huge blocks.  Takes only
 * the pointer so the fast path in lof_free keeps no registers alive. */
static LOF_NOINLINE void free_slow(void *p) {
  if (p == NULL) return; /* lof_free sends NULL here: unit 0 is never registered */
  lof_segment_t *seg = lof__segment_of(p);
  if (!lof__registry_test(seg)) {
    if (lof__huge_free(p) != 0) lof__invalid_free(p, "invalid pointer");
    return;
  }
  uintptr_t off = (uintptr_t)p - (uintptr_t)seg;
  lof_span_t *s = lof__pagemap_span(seg, off >> LOF_PAGE_SHIFT);
  size_t first = s->first;
  if (s->state == LOF_SPAN_LARGE && off == first << LOF_PAGE_SHIFT) {
    lof__large_free(s);
    return;
  }
  if (s->state != LOF_SPAN_SMALL) {
    if (s->state == LOF_SPAN_FREE || s->state == LOF_SPAN_PURGING)
      lof__invalid_free(p, "double free or invalid pointer");
    lof__invalid_free(p, "invalid pointer");
  }
  uint32_t idx = block_index_or_die(p, s, (uint32_t)(off - (first << LOF_PAGE_SHIFT)));
  lof_block_t *b = p;
  lof_heap_t *h = lof__heap_tls;
  if (atomic_load_explicit(&s->owner, memory_order_relaxed) != h->id) {
    free_remote(s, b);
    return;
  }
  /* capacity is the owner's: only it may read it */
  if (idx >= s->capacity) lof__invalid_free(p, "invalid pointer (never allocated)");
  if (b->cookie == lof__block_cookie(s)) lof__double_free_check(h, s, b);
  b->cookie = lof__block_cookie(s);
  b->next = s->free;
  s->free = b;
  if (lof__span_used_dec(s)) lof__heap_free_event(h, s);
}

/* lof_free of a block in a registered segment whose span this thread does
 * not own as a small span.  A non-zero owner means a small span of another
 * live heap (arena.c clears it whenever a descriptor stops heading one): the
 * cross-thread free, done here without repeating lof_free's lookups.  Large
 * blocks and misuse go to free_slow. */
static LOF_NOINLINE void free_not_own(void *p, lof_span_t *s, uint32_t off) {
  /* reserved, unlike capacity, is not the owner's: it is fixed while the
   * span is small; a q below it is the start of a block.  An abandoned span
   * (owner 0), a thread without a heap yet and misuse take free_slow, which
   * ends in free_remote; the common case is free_remote's last two steps,
   * inline (pool, callgrind: 64 -> 44 instructions per remote free). */
  lof_heap_t *h = lof__heap_tls;
  if (LOF_UNLIKELY(atomic_load_explicit(&s->owner, memory_order_relaxed) == 0 ||
                   lof__block_q(s, off) >= s->reserved || h == &lof__heap_empty)) {
    free_slow(p);
    return;
  }
  lof_block_t *b = p;
  if (LOF_UNLIKELY(b->cookie == lof__block_cookie(s))) lof__invalid_free(b, "double free");
  lof__heap_remote_free(h, s, b);
}

/* M_PERTURB: a freed block is filled with the byte, past the two words a
 * free small block keeps (its link and double-free cookie). */
static LOF_NOINLINE void free_perturb(void *p) {
  unsigned pb = __atomic_load_n(&lof__perturb, __ATOMIC_RELAXED);
  if (p == NULL || !pb) return;
  size_t n = lof_malloc_usable_size(p);
  if (n > sizeof(lof_block_t)) memset((char *)p + sizeof(lof_block_t), (int)(pb & 0xff), n - sizeof(lof_block_t));
}

/* The free of p; registry_end is LOF_REGISTRY_UNITS, or lof__registry_end
 * on the fast path (0 while M_PERTURB is set: every pointer fails it). */
static inline __attribute__((always_inline)) void free_block(void *p, uintptr_t registry_end);

/* lof_free of a pointer that failed the fast path's registry test: misuse,
 * NULL, huge blocks, and every pointer while M_PERTURB is set. */
static LOF_NOINLINE void free_other(void *p) {
  if (LOF_UNLIKELY(__atomic_load_n(&lof__perturb, __ATOMIC_RELAXED))) {
    free_perturb(p);
    free_block(p, LOF_REGISTRY_UNITS);
    return;
  }
  free_slow(p);
}

LOF_EXPORT void lof_free(void *p) {
  free_block(p, lof__registry_end);
}

static inline __attribute__((always_inline)) void free_block(void *p, uintptr_t registry_end) {
  lof_segment_t *seg = lof__segment_of(p);
  /* The registry test (lof__registry_test, with its bound from the caller).
   * NULL takes this branch too: a segment is 4 MiB-aligned and never sits
   * at address 0, so the registry byte of unit 0 is never set. */
  uintptr_t unit = (uintptr_t)p >> LOF_SEG_SHIFT;
  if (LOF_UNLIKELY(unit >= registry_end ||
                   lof__registry[unit] == 0)) {
    free_other(p);
    return;
  }
  uint32_t off = (uint32_t)((uintptr_t)p - (uintptr_t)seg);
  lof_span_t *s = lof__pagemap_span(seg, off >> LOF_PAGE_SHIFT);
  /* Only a SMALL span has a non-zero owner (arena.c clears it whenever a
   * descriptor stops heading a small span), so one compare tells "a small
   * block of this thread's". */
  if (LOF_UNLIKELY(atomic_load_explicit(&s->owner, memory_order_relaxed) != lof__heap_id_tls)) {
    free_not_own(p, s, off);
    return;
  }
  /* The owner's free: the start of a block that was carved (one multiply,
   * one rotate, one compare: lof__block_q) and not already free (the cookie
   * is the descriptor's address, which is in a register).  free_slow
   * re-derives the verdict the plain way and reports it. */
  lof_block_t *b = p;
  uintptr_t cookie = lof__block_cookie(s);
  if (LOF_UNLIKELY(lof__block_q(s, off) >= s->capacity || b->cookie == cookie)) {
    free_slow(p);
    return;
  }
  b->cookie = cookie;
  b->next = s->free; /* LIFO: the next malloc of this class reuses the block still in cache */
  s->free = b;
  if (LOF_UNLIKELY(lof__span_used_dec(s))) lof__heap_free_event(lof__heap_tls, s); /* empty, or full */
}

/* ---- sizes --------------------------------------------------------------- */

LOF_EXPORT size_t lof_malloc_usable_size(const void *p) {
  if (p == NULL) return 0;
  lof_segment_t *seg = lof__segment_of(p);
  if (!lof__registry_test(seg)) {
    size_t n = lof__huge_usable(p);
    if (n == 0) lof__fatal("malloc_usable_size(): invalid pointer %p", p);
    return n;
  }
  lof_span_t *s = lof__span_of(seg, p);
  if (s->state == LOF_SPAN_SMALL) return s->block_size;
  if (s->state == LOF_SPAN_LARGE) return ((size_t)s->npages << LOF_PAGE_SHIFT) - ((uintptr_t)p - lof__span_start(s));
  lof__fatal("malloc_usable_size(): invalid pointer %p", p);
}

LOF_EXPORT void *lof_calloc(size_t n, size_t size) {
  size_t total;
  if (LOF_UNLIKELY(__builtin_mul_overflow(n, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  if (LOF_LIKELY(total <= LOF_SMALL_MAX)) {
    void *p = alloc_small(total);
    if (p != NULL) memset(p, 0, total);
    return p;
  }
  bool zero = false;
  void *p = alloc_big(total, 0, true, &zero);
  if (p != NULL && !zero) memset(p, 0, total); /* fresh or purged pages are never written */
  return p;
}

LOF_EXPORT void *lof_realloc(void *p, size_t size) {
  if (p == NULL) return lof_malloc(size);
  if (size == 0) { /* glibc's behaviour: free and return NULL */
    lof_free(p);
    return NULL;
  }
  lof_segment_t *seg = lof__segment_of(p);
  size_t old;
  if (!lof__registry_test(seg)) {
    old = lof__huge_usable(p);
    if (old == 0) lof__fatal("realloc(): invalid pointer %p", p);
    if (size >= lof__huge_threshold() / 2 || size > LOF_LARGE_MAX) {
      void *q = lof__huge_realloc(p, size, &old);
      if (q == (void *)-1) lof__fatal("realloc(): invalid pointer %p", p);
      if (q != NULL || size > old) return q;
      return p; /* shrinking failed: the block is still large enough */
    }
  } else {
    lof_span_t *s = lof__span_of(seg, p);
    if (s->state == LOF_SPAN_SMALL) {
      old = s->block_size;
      if (size <= old && (size >= old / 2 || old <= 128)) return p;
    } else if (s->state == LOF_SPAN_LARGE && (uintptr_t)p == lof__span_start(s)) {
      old = (size_t)s->npages << LOF_PAGE_SHIFT;
      if (size > LOF_SMALL_MAX && size < lof__huge_threshold()) {
        size_t np = (size + LOF_PAGE_SIZE - 1) >> LOF_PAGE_SHIFT;
        if (np <= s->npages && np >= s->npages / 2) return p;
        size_t oldnp = s->npages;
        if (lof__arena_resize(s, np)) {
          lof_heap_t *h = lof__heap_tls;
          int64_t d = ((int64_t)np - (int64_t)oldnp) * (int64_t)LOF_PAGE_SIZE; /* < 0 when shrinking: no shift */
          if (h != &lof__heap_empty) lof__stat_add(h, d, 0); else lof__stat_global(d, 0);
          return p;
        }
      }
    } else {
      lof__fatal("realloc(): invalid pointer %p", p);
    }
  }
  void *q = lof_malloc(size);
  if (q == NULL) return NULL;
  memcpy(q, p, size < old ? size : old);
  lof_free(p);
  return q;
}

LOF_EXPORT void *lof_reallocarray(void *p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return lof_realloc(p, total);
}

/* ---- aligned allocation --------------------------------------------------- */

static void *alloc_aligned(size_t align, size_t size) {
  if (align <= LOF_MIN_ALIGN) return lof_malloc(size);
  /* size 0 is a minimal block, as malloc(0): a large span of 0 pages broke
   * the segment's tiling (memalign(64 KiB, 0), found by tests/fuzz) */
  if (size == 0) size = 1;
  if (size > SIZE_MAX - align) {
    errno = ENOMEM;
    return NULL;
  }
  bool zero;
  /* above what a segment aligns to: a huge block mapped at that alignment */
  if (align > LOF_MAX_ALIGN) return lof__huge_alloc(size, align, false, &zero);
  size_t sz = size > align ? size : align;
  if (sz <= LOF_PAGE_SIZE) {
    /* power-of-two classes up to 4 KiB are aligned to their size */
    size_t pow2 = (size_t)1 << (64 - __builtin_clzll((unsigned long long)sz - 1));
    return alloc_small(pow2);
  }
  if (size >= lof__huge_threshold()) return lof__huge_alloc(size, align, false, &zero);
  void *p = lof__large_alloc(size, align, &zero);
  if (p == NULL && errno == ENOMEM) p = lof__huge_alloc(size, align, false, &zero);
  return p;
}

LOF_EXPORT int lof_posix_memalign(void **out, size_t align, size_t size) {
  if (!LOF_IS_POW2(align) || align % sizeof(void *) != 0) return EINVAL;
  int saved = errno;
  void *p = alloc_aligned(align, size);
  if (p == NULL) {
    int e = errno;
    errno = saved;
    return e ? e : ENOMEM;
  }
  *out = p;
  return 0;
}

LOF_EXPORT void *lof_aligned_alloc(size_t align, size_t size) {
  if (!LOF_IS_POW2(align)) {
    errno = EINVAL;
    return NULL;
  }
  return alloc_aligned(align, size);
}

LOF_EXPORT void *lof_memalign(size_t align, size_t size) {
  if (!LOF_IS_POW2(align)) { /* glibc rounds a bad alignment up */
    if (align > ((size_t)1 << 62)) {
      errno = EINVAL;
      return NULL;
    }
    align = align <= 1 ? 1 : (size_t)1 << (64 - __builtin_clzll((unsigned long long)align - 1));
  }
  return alloc_aligned(align, size);
}

LOF_EXPORT void *lof_valloc(size_t size) { return alloc_aligned(LOF_PAGE_SIZE, size); }

LOF_EXPORT void *lof_pvalloc(size_t size) {
  if (size > SIZE_MAX - LOF_PAGE_SIZE) {
    errno = ENOMEM;
    return NULL;
  }
  return alloc_aligned(LOF_PAGE_SIZE, size == 0 ? LOF_PAGE_SIZE : LOF_ALIGN_UP(size, LOF_PAGE_SIZE));
}

/* ---- glibc extras ---------------------------------------------------------- */

/* lof_reserve: the entry point; the reserve itself is reserve.c's. */
LOF_EXPORT int lof_reserve(size_t bytes) {
  lof__malloc_init();
  return lof__reserve(bytes);
}

LOF_EXPORT int lof_malloc_trim(size_t pad);
LOF_EXPORT int lof_malloc_trim(size_t pad) {
  (void)pad;
  return lof_purge() > 0;
}

/* mallopt: glibc's parameters, mapped to lofalloc's concepts where it has
 * them (doc/malloc.md, "mallopt").  Returns 1 for every parameter glibc
 * accepts and a value glibc would accept, 0 otherwise (unknown parameter or
 * a value glibc refuses). */
LOF_EXPORT int lof_mallopt(int param, int value);
LOF_EXPORT int lof_mallopt(int param, int value) {
  static int64_t decay_configured = INT64_MIN; /* LOFALLOC_DECAY_MS before the first change */
  lof__malloc_init();
  switch (param) {
  case M_TRIM_THRESHOLD: /* < 0: never give free pages back; else the configured decay */
    if (decay_configured == INT64_MIN) decay_configured = lof__option(LOF_OPT_DECAY_MS);
    lof__option_set(LOF_OPT_DECAY_MS, value < 0 ? -1 : decay_configured);
    return 1;
  case M_MMAP_THRESHOLD: /* the huge threshold, clamped to what a segment can hold */
    if (value < 0 || (size_t)value > ((size_t)32 << 20)) return 0;
    lof__huge_set_threshold(value == 0 ? LOF_SMALL_MAX + 1 : (size_t)value);
    return 1;
  case M_MMAP_MAX: /* 0: no mapping per block: segments, and freed huge blocks kept */
    lof__huge_set_keep_all(value == 0);
    return 1;
  case M_ARENA_MAX: /* threads created from now on share at most this many arenas */
    if (value <= 0) return 0;
    __atomic_store_n(&lof__arenas_max, (unsigned)value, __ATOMIC_RELAXED);
    return 1;
  case M_PERTURB: /* malloc fills with ~byte, free with byte */
    perturb_set(value & 0xff ? 0x100 | (value & 0xff) : 0);
    return 1;
  case M_MXFAST: /* no fastbins: thread heaps are always on */
    return value >= 0 && value <= 80 * (int)sizeof(size_t) / 4;
  case M_ARENA_TEST:
    return value > 0;
  case M_TOP_PAD:      /* the heap grows by whole segments anyway */
  case M_CHECK_ACTION: /* misuse is always reported and aborts */
    return 1;
  default:
    return 0;
  }
}

LOF_EXPORT struct mallinfo2 lof_mallinfo2(void);
LOF_EXPORT struct mallinfo2 lof_mallinfo2(void) { /* here: override.h aliases it */
  struct mallinfo2 mi;
  lof__mstats_mallinfo2(&mi);
  return mi;
}

LOF_EXPORT void lof_malloc_stats(void);
LOF_EXPORT void lof_malloc_stats(void) { lof_stats_print(STDERR_FILENO); }

#include "override.h"
