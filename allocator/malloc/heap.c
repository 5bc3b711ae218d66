/*
 * heap.c -- thread heaps: the small-object slow path, thread exit and the
 * abandoned spans it leaves.  (A free by another thread is remote.c's until
 * it lands on a span's xfree stack; lof_check's walk of a heap is check.c's.)
 *
 * Each thread gets a heap on its first malloc (the initial-exec TLS pointer
 * starts at lof__heap_empty, whose every class points at an empty span, so
 * the fast path needs no "initialised?" test).  A heap owns small spans per
 * size class: `cur` is the span malloc pops from; `spans` lists the owned
 * spans that may have free blocks; `fulls` those found without any.  Only the
 * owner touches a span's free list and used count, so neither malloc nor a
 * same-thread free takes a lock or an atomic.  The owner's free pushes on
 * the same list malloc pops (LIFO), so a block freed and allocated again
 * soon is still in cache.
 *
 * Other threads free onto the span's xfree stack (remote.c).  The owner takes
 * the whole stack with one exchange when its current span runs dry.  When
 * cur is dry, the slow path uses blocks already carved before it carves
 * fresh pages: cur's remote frees, the other spans on `spans`, then the
 * LOF_FULL_PROBE oldest spans of `fulls` (the ones most likely emptied by
 * other threads: a consumer frees in the order a producer allocated), those
 * still full rotated to the front so the cost stays O(1) per span and no full
 * span is forgotten.  Only then does it carve a page of `fresh` (the one span
 * of the class with uncarved pages), and only when that has none does it
 * adopt an abandoned span or ask the arena.  A span that empties while its
 * class still has other spans becomes `fresh` again (kept, not released), so
 * a class that swings around a span boundary keeps its own pages.
 *
 * When a thread exits (pthread key destructor) its empty spans go back to the
 * arena and the others are abandoned: owner = 0 and onto a global per-class
 * list under a mutex.  A thread that needs a span of that class adopts one
 * before it asks the arena; lof_purge() releases abandoned spans that became
 * empty.  Heap structs come from a lock-on-fault metadata region and are
 * recycled; nothing here calls malloc.
 *
 * Also here: the frontend's one-time initialisation (lof__malloc_init: the
 * region layer, the arenas, the heap key, then LOFALLOC_RESERVE),
 * because the first thread heap is where it is first needed.  It calls only
 * down (region, arena, reserve); entry points above call it.
 */
#include <errno.h>
#include <string.h>

#include "frontend.h"
#include "options.h"

LOF_HIDDEN lof_span_t lof__span_empty = { .state = LOF_SPAN_SMALL };
LOF_HIDDEN lof_heap_t lof__heap_empty = {
  .direct = { [0 ... LOF_DIRECT_N - 1] = &lof__span_empty },
  .cur = { [0 ... LOF_NCLASSES - 1] = &lof__span_empty },
  .id = LOF_HEAP_EMPTY_ID,
};
LOF_HIDDEN __thread lof_heap_t *lof__heap_tls
    __attribute__((tls_model("initial-exec"))) = &lof__heap_empty;
LOF_HIDDEN __thread uint32_t lof__heap_id_tls
    __attribute__((tls_model("initial-exec"))) = LOF_HEAP_EMPTY_ID;

static _Atomic(int) malloc_ready;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t heap_key;

_Static_assert(LOF_DIRECT_N == LOF_DIRECT_MAX / 16 + 1 && LOF_DIRECT_MAX <= LOF_SMALL_MAX,
               "direct[] covers the lut's first entries");

/* The span malloc pops class cls from: cur[cls], and the direct[] steps of
 * the class (lof__class_direct: none above LOF_DIRECT_MAX). */
static inline __attribute__((always_inline)) void heap_cur_set(lof_heap_t *h, size_t cls,
                                                               lof_span_t *s) {
  h->cur[cls] = s;
  lof_class_direct_t dc = lof__class_direct[cls];
  lof_span_t **d = h->direct + dc.first;
  /* 0, 1, 2, 4 or 8 steps (sizeclass.c), one table entry: unrolled, since
   * a span switch sets them and churn makes 179k switches in 30M mallocs */
  switch (dc.steps) {
  case 8:
    d[7] = s, d[6] = s, d[5] = s, d[4] = s; /* fall through */
  case 4:
    d[3] = s, d[2] = s; /* fall through */
  case 2:
    d[1] = s; /* fall through */
  case 1:
    d[0] = s;
    break;
  default:
    break;
  }
}

/* Heaps: live ones on a list (for stats), dead ones on a free pool. */
static pthread_mutex_t heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static lof_heap_t *heaps_live;
static lof_heap_t *heaps_pool;
static lof_region_t *heaps_region;
static size_t heaps_used;       /* bytes of heaps_region handed out */
static size_t heaps_committed;  /* bytes of heaps_region committed */
static uint32_t heaps_next_id = 1;
static _Atomic(int64_t) stats_allocated, stats_count; /* exited heaps, heapless threads */

/* Abandoned spans, per class. */
static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;
static lof_span_t *abandoned[LOF_NCLASSES];
static _Atomic(size_t) abandoned_n[LOF_NCLASSES];

#define LOF_HEAPS_RESERVE ((size_t)64 << 20)
#define LOF_HEAPS_COMMIT ((size_t)64 << 10)

static void heap_thread_exit(void *arg);

LOF_HIDDEN void lof__stat_global(int64_t bytes, int64_t n) {
  atomic_fetch_add_explicit(&stats_allocated, bytes, memory_order_relaxed);
  atomic_fetch_add_explicit(&stats_count, n, memory_order_relaxed);
}

LOF_HIDDEN void lof__malloc_init(void) {
  if (LOF_LIKELY(atomic_load_explicit(&malloc_ready, memory_order_acquire))) return;
  bool reserve = false;
  pthread_mutex_lock(&init_lock);
  if (!atomic_load_explicit(&malloc_ready, memory_order_relaxed)) {
    lof__region_init();
    lof__arenas_init();
    pthread_key_create(&heap_key, heap_thread_exit);
    atomic_store_explicit(&malloc_ready, 1, memory_order_release);
    reserve = true;
  }
  pthread_mutex_unlock(&init_lock);
  if (reserve) lof__reserve_startup(); /* LOFALLOC_RESERVE, once the heap works */
}

/* ---- heap structs ------------------------------------------------------- */

static lof_heap_t *heap_new(void) {
  lof_heap_t *h = NULL;
  sigset_t held;
  lof__lock_nosignal(&heaps_lock, &held);
  if (heaps_pool != NULL) {
    h = heaps_pool;
    heaps_pool = h->next;
  } else {
    size_t sz = LOF_ALIGN_UP(sizeof(lof_heap_t), 64);
    if (heaps_region == NULL) heaps_region = lof__region_reserve(LOF_HEAPS_RESERVE, LOF_PAGE_SIZE);
    if (heaps_region != NULL && heaps_used + sz <= heaps_region->size) {
      if (heaps_used + sz > heaps_committed) {
        /* A commit per 64 KiB of heap structs (about 50 threads). */
        if (lof__region_commit(heaps_region, (void *)(heaps_region->base + heaps_committed),
                               LOF_HEAPS_COMMIT) == 0)
          heaps_committed += LOF_HEAPS_COMMIT;
      }
      if (heaps_used + sz <= heaps_committed) {
        h = (lof_heap_t *)(heaps_region->base + heaps_used);
        heaps_used += sz;
      }
    }
  }
  if (h != NULL) {
    memset(h, 0, sizeof(*h));
    for (unsigned c = 0; c < LOF_NCLASSES; c++) heap_cur_set(h, c, &lof__span_empty);
    h->id = heaps_next_id++;
    if (heaps_next_id == LOF_HEAP_EMPTY_ID) heaps_next_id = 1;
    unsigned na = lof__narenas, lim = __atomic_load_n(&lof__arenas_max, __ATOMIC_RELAXED);
    h->arena = &lof__arenas[h->id % (lim != 0 && lim < na ? lim : na)];
    h->next = heaps_live;
    if (heaps_live) heaps_live->prev = h;
    heaps_live = h;
  }
  lof__unlock_nosignal(&heaps_lock, &held);
  return h;
}

LOF_HIDDEN lof_heap_t *lof__heap_get(void) {
  lof_heap_t *h = lof__heap_tls;
  if (LOF_LIKELY(h != &lof__heap_empty)) return h;
  lof__malloc_init();
  h = heap_new();
  if (h == NULL) return NULL;
  /* Set the TLS pointer first: pthread_setspecific may calloc (keys >= 32),
   * and that calloc must find this heap rather than make another. */
  lof__heap_tls = h;
  lof__heap_id_tls = h->id;
  pthread_setspecific(heap_key, h);
  return h;
}

/* ---- span lists (owner only) -------------------------------------------- */

static void list_push(lof_span_t **head, lof_span_t *s) {
  s->prev = NULL;
  s->next = *head;
  if (*head) (*head)->prev = s;
  *head = s;
}

static void list_remove(lof_span_t **head, lof_span_t *s) {
  if (s->prev) s->prev->next = s->next; else *head = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
}

/* s on its owner's fulls[] or not: used's top bit (LOF_USED_FULL), which
 * free's fast path tests in the sign of its decrement. */
static inline __attribute__((always_inline)) void span_set_full(lof_span_t *s, bool full) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
  /* one or/and to memory, which is an atomic store to the statistics'
   * loads as lof__span_used_inc's add is (gcc: load, op, store) */
  if (full)
    __asm__("orw %1, %0" : "+m"(s->used) : "i"(LOF_USED_FULL) : "cc");
  else
    __asm__("andw %1, %0" : "+m"(s->used) : "i"((uint16_t)~LOF_USED_FULL) : "cc");
#else
  lof__span_used_set(s, full ? s->used | LOF_USED_FULL : s->used & ~LOF_USED_FULL);
#endif
}

/* Take the xfree stack: its blocks go to the free list, used drops, and the
 * statistics' correction for them (remote_small) goes back up, on h (the
 * owner) or, for a span no heap owns (h NULL), on the global counters. */
static bool span_collect(lof_heap_t *h, lof_span_t *s) {
  if (atomic_load_explicit(&s->xfree, memory_order_relaxed) == 0) return false;
  uintptr_t x = atomic_exchange_explicit(&s->xfree, 0, memory_order_acquire);
  if (x == 0) return false;
  lof_block_t *b = lof__xfree_top(x);
  unsigned n = lof__xfree_count(x);
  if (s->free != NULL) { /* rare (a kept span, reclaim, exit): append behind the stack */
    lof_block_t *last = b;
    while (last->next) last = last->next;
    last->next = s->free;
  }
  s->free = b;
  lof__span_used_set(s, s->used - n);
  if (h != NULL)
    lof__stat_remote(h, s->cls, n);
  else
    lof__stat_global((int64_t)n * s->block_size, n);
  return true;
}

/* Make s->free non-empty from blocks already carved (the free list, else
 * the remote stack).  false: every carved block is in use. */
static bool span_has_free(lof_heap_t *h, lof_span_t *s) {
  return s->free != NULL || span_collect(h, s);
}

/* Carve up to one page worth of fresh blocks onto the (empty) free list,
 * each with its span's cookie like any free block, so that a free of a
 * carved block that was never handed out is a double free, not a second
 * copy of the block on the list.  false: the span has no uncarved pages
 * left. */
static bool span_bump(lof_span_t *s) {
  if (s->capacity >= s->reserved) return false;
  size_t bs = s->block_size;
  size_t k = LOF_PAGE_SIZE / bs;
  if (k == 0) k = 1;
  if (k > (size_t)(s->reserved - s->capacity)) k = s->reserved - s->capacity;
  uintptr_t p = lof__span_start(s) + (size_t)s->capacity * bs;
  lof_block_t *first = (lof_block_t *)p;
  for (size_t i = 0; i + 1 < k; i++, p += bs) {
    ((lof_block_t *)p)->next = (lof_block_t *)(p + bs);
    ((lof_block_t *)p)->cookie = lof__block_cookie(s);
  }
  ((lof_block_t *)p)->next = NULL;
  ((lof_block_t *)p)->cookie = lof__block_cookie(s);
  s->capacity = (uint32_t)(s->capacity + k);
  s->free = first;
  return true;
}

static void span_release(lof_span_t *s) {
  lof__arena_free(s);
}

static lof_span_t *span_fresh(lof_heap_t *h, unsigned cls) {
  bool zero;
  return lof__arena_alloc(h->arena, lof__class_span_pages(cls), 0, LOF_SPAN_SMALL, cls, h->id,
                          &zero);
}

static lof_span_t *span_adopt(lof_heap_t *h, unsigned cls) {
  if (atomic_load_explicit(&abandoned_n[cls], memory_order_relaxed) == 0) return NULL;
  sigset_t held;
  lof__lock_nosignal(&abandoned_lock, &held);
  lof_span_t *s = abandoned[cls];
  if (s != NULL) {
    list_remove(&abandoned[cls], s);
    atomic_fetch_sub_explicit(&abandoned_n[cls], 1, memory_order_relaxed);
    s->abandoned = 0;
    atomic_store_explicit(&s->owner, h->id, memory_order_relaxed);
  }
  lof__unlock_nosignal(&abandoned_lock, &held);
  return s;
}

static inline void *span_pop(lof_span_t *s) {
  lof_block_t *b = s->free;
  lof__debug_free_block(s, b);
  s->free = b->next;
  b->cookie = 0;
  lof__span_used_inc(s);
  return b;
}

#define LOF_FULL_PROBE 8

/* A heap's per-class lists keep a tail too: spans[] (cur at its head) so
 * that un-fulled spans can queue at its end, fulls[] so that the probe in
 * the slow path can take its oldest. */
static void tailed_push(lof_span_t **head, lof_span_t **tail, lof_span_t *s) {
  list_push(head, s);
  if (s->next == NULL) *tail = s;
}

static void tailed_append(lof_span_t **head, lof_span_t **tail, lof_span_t *s) {
  if (*tail == NULL) {
    tailed_push(head, tail, s);
    return;
  }
  s->prev = *tail;
  s->next = NULL;
  (*tail)->next = s;
  *tail = s;
}

static void tailed_remove(lof_span_t **head, lof_span_t **tail, lof_span_t *s) {
  if (*tail == s) *tail = s->prev;
  list_remove(head, s);
}

static void fulls_push(lof_heap_t *h, lof_span_t *s) {
  tailed_push(&h->fulls[s->cls], &h->fulls_tail[s->cls], s);
}
static void fulls_remove(lof_heap_t *h, lof_span_t *s) {
  tailed_remove(&h->fulls[s->cls], &h->fulls_tail[s->cls], s);
}
static void spans_push(lof_heap_t *h, lof_span_t *s) {
  tailed_push(&h->spans[s->cls], &h->spans_tail[s->cls], s);
}
static void spans_append(lof_heap_t *h, lof_span_t *s) {
  tailed_append(&h->spans[s->cls], &h->spans_tail[s->cls], s);
}
static void spans_remove(lof_heap_t *h, lof_span_t *s) {
  tailed_remove(&h->spans[s->cls], &h->spans_tail[s->cls], s);
}

static void span_to_full(lof_heap_t *h, lof_span_t *s) {
  spans_remove(h, s);
  fulls_push(h, s);
  span_set_full(s, true);
}

/* A full span got a block back: to the END of spans[] (FIFO), so that by
 * the time malloc reaches it more of its blocks have come back and one span
 * switch buys several mallocs (random frees un-full spans one block at a
 * time; LIFO would switch span at nearly every malloc). */
static inline __attribute__((always_inline)) void span_from_full(lof_heap_t *h, lof_span_t *s) {
  unsigned cls = s->cls;
  lof_span_t *older = s->next, *newer = s->prev, *last = h->spans_tail[cls];
  /* fulls_remove, spans_append, with the tests each makes once (churn:
   * 187k of these in 30M frees) */
  if (newer != NULL) newer->next = older; else h->fulls[cls] = older;
  if (older != NULL) older->prev = newer; else h->fulls_tail[cls] = newer;
  span_set_full(s, false);
  s->next = NULL;
  s->prev = last;
  if (last != NULL) last->next = s; else h->spans[cls] = s;
  h->spans_tail[cls] = s;
}

/* The slow path, in the order that keeps a class's footprint at its live
 * peak: blocks already carved -- first those this thread freed into other
 * heaps' spans and still holds (remote.c), then anywhere in the heap's
 * spans of the class (cur's remote frees, then the other spans, then the
 * oldest full spans' remote frees) -- before fresh pages.  Fresh pages come from the one span of
 * the class with uncarved pages, h->fresh[cls], a page at a time, and a new
 * span only when it has none left.  Carving cur's fresh page while another
 * span held free blocks would, in time, touch every page of every span a
 * class ever had. */
static LOF_NOINLINE void *heap_alloc_refill(size_t cls, lof_heap_t *h) {
  if (h == &lof__heap_empty) {
    h = lof__heap_get();
    if (h == NULL) {
      errno = ENOMEM;
      return NULL;
    }
  }
  lof_span_t *s = h->cur[cls];
  if (s != &lof__span_empty) {
    if (span_has_free(h, s)) return span_pop(s);
    span_to_full(h, s);
    /* cur always names a span on spans[] (or the empty one) */
    heap_cur_set(h, cls, &lof__span_empty);
  }
  /* Another owned span with free blocks. */
  while ((s = h->spans[cls]) != NULL) {
    if (span_has_free(h, s)) goto use;
    span_to_full(h, s);
  }
  /* The oldest full spans may have been freed into by other threads: up to
   * LOF_FULL_PROBE of them, from the tail.  Those with remote frees go to
   * spans[]; the rest move to the head of fulls[] as one run, so that the
   * next probe looks at others, without a list operation per span looked
   * at (a single thread's probe finds nothing: churn made 70k of them). */
  lof_span_t *f = h->fulls_tail[cls];
  for (int k = 0; k < LOF_FULL_PROBE && f != NULL; k++) {
    lof_span_t *older = f->prev;
    if (atomic_load_explicit(&f->xfree, memory_order_relaxed) != 0) {
      fulls_remove(h, f);
      if (span_collect(h, f)) {
        span_set_full(f, false);
        spans_push(h, f);
      } else {
        fulls_push(h, f);
      }
    }
    f = older;
  }
  if (f != NULL && f->next != NULL) { /* the run after f, looked at: to the head */
    lof_span_t *run = f->next, *run_tail = h->fulls_tail[cls];
    f->next = NULL;
    h->fulls_tail[cls] = f;
    run->prev = NULL;
    run_tail->next = h->fulls[cls];
    h->fulls[cls]->prev = run_tail;
    h->fulls[cls] = run;
  }
  if ((s = h->spans[cls]) != NULL) goto use; /* the probe pushes only spans with blocks */
  /* No carved block is free: fresh pages.  spans[] is empty here, so the
   * fresh span (if any) is on fulls[]. */
  s = h->fresh[cls];
  if (s == NULL) {
    s = span_adopt(h, cls);
    if (s == NULL) s = span_fresh(h, cls);
    if (s == NULL) {
      heap_cur_set(h, cls, &lof__span_empty);
      errno = ENOMEM;
      return NULL;
    }
    spans_push(h, s);
    if (s->capacity < s->reserved) h->fresh[cls] = s; /* new, or adopted with pages to carve */
    if (span_has_free(h, s)) goto use;                     /* adopted with free blocks */
  } else {
    fulls_remove(h, s);
    span_set_full(s, false);
    spans_push(h, s);
    if (span_has_free(h, s)) { /* a kept span's blocks, or remote frees that came while it waited */
      if (s->capacity >= s->reserved) h->fresh[cls] = NULL; /* kept whole: nothing to carve */
      goto use;
    }
  }
  if (!span_bump(s)) {
    h->fresh[cls] = NULL;
    span_to_full(h, s); /* an adopted span still full: try again */
    return heap_alloc_refill(cls, h);
  }
  h->fresh[cls] = s->capacity < s->reserved ? s : NULL;
use:
  heap_cur_set(h, cls, s);
  return span_pop(s);
}

/* malloc's slow path.  Its common case (churn: 178k of 187k calls) is a
 * span switch: cur has no free block, local or remote, and the next span
 * on spans[] has some.  That is done here, with the list operations
 * written for it (cur heads spans[], and goes to the head of fulls[]), in
 * about a third of the instructions the general path takes (callgrind,
 * doc/malloc.md); everything else is heap_alloc_refill's.  (Sending cur
 * to the end of spans[] instead, so that its frees would meet no full
 * mark, was tried: malloc then reached spans that no block had come back
 * to, and churn took 6M instructions more in all.) */
LOF_HIDDEN void *lof__heap_alloc_slow(size_t cls, lof_heap_t *h) {
  /* Called only when cur has no free block (malloc's pop failed on it).
   * The empty span has neither remote frees nor a next span. */
  lof_span_t *s = h->cur[cls], *n;
  /* First the block of the class this thread freed last into another
   * heap's span (remote.c), without heap_alloc_refill's frame: pool takes
   * 98% of its slow-path blocks here (63 -> 27 instructions per slow-path
   * call, callgrind). */
  if (h->foreign[cls] != NULL) return lof__heap_remote_take(h, (unsigned)cls);
  if (LOF_UNLIKELY(atomic_load_explicit(&s->xfree, memory_order_relaxed) != 0 ||
                   (n = s->next) == NULL || n->free == NULL))
    return heap_alloc_refill(cls, h);
  h->spans[cls] = n; /* s heads spans[] and n follows it: the tail stays */
  n->prev = NULL;
  lof_span_t *f = h->fulls[cls];
  s->next = f; /* s->prev is NULL: it was a head */
  if (f != NULL) f->prev = s; else h->fulls_tail[cls] = s;
  h->fulls[cls] = s;
  span_set_full(s, true);
  heap_cur_set(h, cls, n);
  return span_pop(n);
}

/* An empty span of a class still in use (h owns other spans of it) is kept
 * as the class's fresh span, with its carved blocks on its free list, rather
 * than released: a class whose count hovers at a span boundary would otherwise
 * hand the span to the arena and take another at each swing (churn: 3600
 * times in 30M mallocs), and the arena may give the class other pages, or
 * give these resident pages to a class that never carves them.  At most one
 * such span per class; lof_purge and malloc_trim release it. */
static void span_park_or_release(lof_heap_t *h, lof_span_t *s) {
  unsigned cls = s->cls;
  spans_remove(h, s);
  bool class_in_use = h->spans[cls] != NULL || h->fulls[cls] != NULL;
  if (class_in_use && (h->fresh[cls] == NULL || h->fresh[cls] == s)) {
    /* Kept carved: its pages are resident and its free list whole, so the
     * slow path takes it in one step.  (Uncarving it, capacity 0, made the
     * slow path carve it again a page at a time: churn re-carved 8.8k pages
     * for 3.6k parks, 2.2M instructions in 30M mallocs.) */
    h->fresh[cls] = s;
    fulls_push(h, s); /* the fresh span waits on fulls[] (see the slow path) */
    span_set_full(s, true);
    return;
  }
  if (h->fresh[cls] == s) h->fresh[cls] = NULL;
  span_release(s);
}

LOF_HIDDEN void lof__heap_free_event(lof_heap_t *h, lof_span_t *s) {
  unsigned used = s->used; /* one load: only the owner, h, writes it */
  if (used & LOF_USED_FULL) {
    span_from_full(h, s);
    used &= ~(unsigned)LOF_USED_FULL;
  }
  if (used == 0 && s != h->cur[s->cls]) span_park_or_release(h, s);
}

/* Reclaim on free: the first free into an abandoned span adopts it, so a
 * thread that inherits another's blocks (a table handed to a new thread)
 * frees the rest as their owner, and the span's free blocks serve its
 * mallocs instead of waiting on the abandoned list. */
LOF_HIDDEN bool lof__heap_reclaim(lof_heap_t *h, lof_span_t *s, lof_block_t *b) {
  unsigned cls = s->cls;
  if (atomic_load_explicit(&abandoned_n[cls], memory_order_relaxed) == 0) return false;
  sigset_t held;
  lof__lock_nosignal(&abandoned_lock, &held);
  /* b is live, so s cannot be released meanwhile; owner 0 and the mark say
   * it is on the list (heap_abandon_list zeroes the owner before
   * abandon_spans locks) */
  bool ok = atomic_load_explicit(&s->owner, memory_order_relaxed) == 0 && s->abandoned;
  if (ok) {
    list_remove(&abandoned[cls], s);
    atomic_fetch_sub_explicit(&abandoned_n[cls], 1, memory_order_relaxed);
    s->abandoned = 0;
    atomic_store_explicit(&s->owner, h->id, memory_order_relaxed);
  }
  lof__unlock_nosignal(&abandoned_lock, &held);
  if (!ok) return false;
  span_collect(h, s);
  b->cookie = lof__block_cookie(s);
  b->next = s->free;
  s->free = b;
  lof__span_used_set(s, s->used - 1u);
  spans_append(h, s);
  if (h->fresh[cls] == NULL && s->capacity < s->reserved) h->fresh[cls] = s;
  if (lof__span_used(s) == 0) span_park_or_release(h, s);
  return true;
}

/* Release every empty span of h (collecting remote frees first). */
LOF_HIDDEN size_t lof__heap_collect(lof_heap_t *h) {
  size_t released = 0;
  lof__heap_remote_flush(h);
  for (unsigned c = 0; c < LOF_NCLASSES; c++) {
    lof_span_t *next;
    for (lof_span_t *f = h->fulls[c]; f != NULL; f = next) {
      next = f->next;
      if (span_collect(h, f) || lof__span_used(f) == 0) span_from_full(h, f); /* used 0: the parked span */
    }
    for (lof_span_t *s = h->spans[c]; s != NULL; s = next) {
      next = s->next;
      span_collect(h, s);
      if (lof__span_used(s) == 0) {
        if (h->cur[c] == s) heap_cur_set(h, c, &lof__span_empty);
        if (h->fresh[c] == s) h->fresh[c] = NULL;
        spans_remove(h, s);
        span_release(s);
        released++;
      }
    }
  }
  return released;
}

/* Release empty abandoned spans: unlinked under abandoned_lock, given back
 * to their arenas after it (an arena's free may decay: no system call under
 * this lock). */
LOF_HIDDEN size_t lof__abandoned_collect(void) {
  size_t released = 0;
  lof_span_t *out = NULL;
  sigset_t held;
  lof__lock_nosignal(&abandoned_lock, &held);
  for (unsigned c = 0; c < LOF_NCLASSES; c++) {
    lof_span_t *next;
    for (lof_span_t *s = abandoned[c]; s != NULL; s = next) {
      next = s->next;
      span_collect(NULL, s);
      if (lof__span_used(s) == 0) {
        list_remove(&abandoned[c], s);
        atomic_fetch_sub_explicit(&abandoned_n[c], 1, memory_order_relaxed);
        s->abandoned = 0; /* off the list: no reclaim finds it */
        s->next = out;
        out = s;
      }
    }
  }
  lof__unlock_nosignal(&abandoned_lock, &held);
  for (lof_span_t *s = out, *next; s != NULL; s = next, released++) {
    next = s->next;
    span_release(s);
  }
  return released;
}

/* Empty one of an exiting heap's span lists: spans with no live block are
 * released, the rest are disowned and collected on *keep, for
 * abandon_spans to put on the abandoned lists under one lock. */
static void heap_abandon_list(lof_heap_t *h, lof_span_t **head, lof_span_t **keep) {
  lof_span_t *s;
  while ((s = *head) != NULL) {
    list_remove(head, s);
    span_set_full(s, false);
    span_collect(h, s);
    if (lof__span_used(s) == 0) {
      span_release(s);
      continue;
    }
    atomic_store_explicit(&s->owner, 0, memory_order_release);
    list_push(keep, s);
  }
}

/* One locked section for a whole heap's spans (a thread exit), since the
 * lock blocks signals and so costs two system calls. */
static void abandon_spans(lof_span_t *keep) {
  if (keep == NULL) return;
  sigset_t held;
  lof__lock_nosignal(&abandoned_lock, &held);
  lof_span_t *s;
  while ((s = keep) != NULL) {
    list_remove(&keep, s);
    list_push(&abandoned[s->cls], s);
    s->abandoned = 1;
    atomic_fetch_add_explicit(&abandoned_n[s->cls], 1, memory_order_relaxed);
  }
  lof__unlock_nosignal(&abandoned_lock, &held);
}

static void heap_thread_exit(void *arg) {
  lof_heap_t *h = arg;
  if (h == NULL || h == &lof__heap_empty) return;
  lof__heap_remote_flush(h);
  lof__heap_tls = &lof__heap_empty; /* later mallocs of this thread make a new heap */
  lof__heap_id_tls = LOF_HEAP_EMPTY_ID;
  lof_span_t *keep = NULL;
  for (unsigned c = 0; c < LOF_NCLASSES; c++) {
    heap_abandon_list(h, &h->spans[c], &keep);
    heap_abandon_list(h, &h->fulls[c], &keep);
    h->spans_tail[c] = NULL;
    h->fulls_tail[c] = NULL;
    h->fresh[c] = NULL;
    heap_cur_set(h, c, &lof__span_empty);
  }
  abandon_spans(keep);
  int64_t a = atomic_load_explicit(&h->allocated, memory_order_relaxed);
  int64_t n = atomic_load_explicit(&h->count, memory_order_relaxed);
  for (unsigned c = 0; c < LOF_NCLASSES; c++) {
    int64_t k = atomic_load_explicit(&h->remote_small[c], memory_order_relaxed);
    a += k * (int64_t)lof__class_size[c];
    n += k;
  }
  lof__stat_global(a, n);
  sigset_t held;
  lof__lock_nosignal(&heaps_lock, &held);
  if (h->prev) h->prev->next = h->next; else heaps_live = h->next;
  if (h->next) h->next->prev = h->prev;
  h->prev = NULL;
  h->next = heaps_pool;
  heaps_pool = h;
  lof__unlock_nosignal(&heaps_lock, &held);
}

/* Small blocks are counted by their spans' used counts (the fast paths
 * keep no counter), corrected by each heap's remote_small; large and huge
 * blocks by the heaps' own counters. */
LOF_HIDDEN void lof__heaps_stats(int64_t *allocated, int64_t *count) {
  int64_t a, n;
  lof__arenas_small_stats(&a, &n);
  a += atomic_load_explicit(&stats_allocated, memory_order_relaxed);
  n += atomic_load_explicit(&stats_count, memory_order_relaxed);
  sigset_t held;
  lof__lock_nosignal(&heaps_lock, &held);
  for (lof_heap_t *h = heaps_live; h != NULL; h = h->next) {
    a += atomic_load_explicit(&h->allocated, memory_order_relaxed);
    n += atomic_load_explicit(&h->count, memory_order_relaxed);
    for (unsigned c = 0; c < LOF_NCLASSES; c++) {
      int64_t k = atomic_load_explicit(&h->remote_small[c], memory_order_relaxed);
      a += k * (int64_t)lof__class_size[c];
      n += k;
    }
  }
  lof__unlock_nosignal(&heaps_lock, &held);
  *allocated = a;
  *count = n;
}

/* fork order: heaps_lock, then abandoned_lock (then the arenas). */
LOF_HIDDEN void lof__heaps_prefork(void) {
  lof__fork_lock(&heaps_lock);
  lof__fork_lock(&abandoned_lock);
}

LOF_HIDDEN void lof__heaps_postfork(bool child) {
  if (child) {
    lof__fork_reset(&abandoned_lock);
    lof__fork_reset(&heaps_lock);
  } else {
    lof__fork_unlock(&abandoned_lock);
    lof__fork_unlock(&heaps_lock);
  }
}
