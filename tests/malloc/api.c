/*
 * api.c -- the malloc family's edges, through the lof_* names (so the test
 * also runs in sanitizer builds, where lofalloc does not replace malloc).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lofalloc.h"

static void test_malloc_zero_and_free_null(void **state) {
  (void)state;
  void *p = lof_malloc(0);
  assert_non_null(p);
  assert_true(lof_malloc_usable_size(p) >= 1);
  lof_free(p);
  lof_free(NULL);
  assert_int_equal(lof_malloc_usable_size(NULL), 0);
}

static void test_calloc_overflow(void **state) {
  (void)state;
  errno = 0;
  assert_null(lof_calloc(SIZE_MAX / 2, 3));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(lof_calloc((size_t)1 << 33, (size_t)1 << 33));
  assert_int_equal(errno, ENOMEM);
}

static void test_reallocarray_overflow(void **state) {
  (void)state;
  void *p = lof_malloc(16);
  errno = 0;
  assert_null(lof_reallocarray(p, SIZE_MAX / 4, 8));
  assert_int_equal(errno, ENOMEM);
  /* p is still valid after a failed reallocarray */
  memset(p, 1, 16);
  p = lof_reallocarray(p, 10, 100);
  assert_non_null(p);
  assert_true(lof_malloc_usable_size(p) >= 1000);
  lof_free(p);
}

static void test_malloc_huge_fails(void **state) {
  (void)state;
  errno = 0;
  assert_null(lof_malloc(SIZE_MAX - 4096));
  assert_int_equal(errno, ENOMEM);
}

static void test_posix_memalign_bad(void **state) {
  (void)state;
  void *p = (void *)0x1;
  assert_int_equal(lof_posix_memalign(&p, 3, 64), EINVAL);
  assert_int_equal(lof_posix_memalign(&p, 4, 64), EINVAL); /* not a multiple of sizeof(void *) */
  assert_int_equal(lof_posix_memalign(&p, 0, 64), EINVAL);
  assert_int_equal(lof_posix_memalign(&p, 24, 64), EINVAL);
  assert_ptr_equal(p, (void *)0x1); /* untouched on failure */
  errno = 0;
  assert_null(lof_aligned_alloc(48, 96));
  assert_int_equal(errno, EINVAL);
}

static void test_aligned_every_pow2(void **state) {
  (void)state;
  for (size_t a = 1; a <= ((size_t)1 << 20); a <<= 1) {
    size_t sizes[] = {1, a / 2 + 1, a, a + 1, 3 * a + 7, 100000};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
      size_t n = sizes[k];
      void *p = lof_aligned_alloc(a, n);
      assert_non_null(p);
      assert_int_equal((uintptr_t)p % a, 0);
      assert_true(lof_malloc_usable_size(p) >= n);
      memset(p, 0xa5, n);
      void *q = NULL;
      if (a >= sizeof(void *)) {
        assert_int_equal(lof_posix_memalign(&q, a, n), 0);
        assert_int_equal((uintptr_t)q % a, 0);
        memset(q, 0x5a, n);
      }
      void *m = lof_memalign(a, n);
      assert_non_null(m);
      assert_int_equal((uintptr_t)m % a, 0);
      lof_free(p);
      lof_free(q);
      lof_free(m);
    }
  }
  void *v = lof_valloc(10);
  assert_non_null(v); /* NULL is page-aligned too */
  assert_int_equal((uintptr_t)v % 4096, 0);
  assert_true(lof_malloc_usable_size(v) >= 10);
  void *pv = lof_pvalloc(5000);
  assert_non_null(pv);
  assert_int_equal((uintptr_t)pv % 4096, 0);
  assert_true(lof_malloc_usable_size(pv) >= 8192);
  lof_free(v);
  lof_free(pv);
  assert_int_equal(lof_check(), 0);
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 31);
}
static void verify(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(seed + i * 31)) fail_msg("byte %zu of %zu differs", i, n);
}

static void test_realloc_keeps_contents(void **state) {
  (void)state;
  /* grow through small, large and huge sizes, then shrink back */
  size_t sizes[] = {1, 24, 100, 1000, 5000, 16384, 20000, 100000, 1 << 20, 5u << 20,
                    9u << 20, 3u << 20, 200000, 3000, 17, 1};
  size_t n = sizeof(sizes) / sizeof(sizes[0]);
  unsigned char *p = lof_malloc(sizes[0]);
  fill(p, sizes[0], 7);
  for (size_t i = 1; i < n; i++) {
    size_t keep = sizes[i - 1] < sizes[i] ? sizes[i - 1] : sizes[i];
    p = lof_realloc(p, sizes[i]);
    assert_non_null(p);
    assert_true(lof_malloc_usable_size(p) >= sizes[i]);
    verify(p, keep, 7);
    fill(p, sizes[i], 7);
  }
  lof_free(p);
  assert_null(lof_realloc(lof_malloc(10), 0) /* frees, like glibc */);
  p = lof_realloc(NULL, 50);
  assert_non_null(p);
  lof_free(p);
  assert_int_equal(lof_check(), 0);
}

/* Large requests above 16 pages take the lowest-addressed free run that
 * holds them (address-ordered first fit): here the 64-page hole before the
 * 32-page one, where best fit would take the 32-page hole. */
static void test_large_lowest_address_first(void **state) {
  (void)state;
  unsigned char *low = lof_malloc(256 << 10), *sep1 = lof_malloc(20 << 10);
  unsigned char *high = lof_malloc(128 << 10), *sep2 = lof_malloc(20 << 10);
  assert_non_null(low);
  assert_non_null(sep1);
  assert_non_null(high);
  assert_non_null(sep2);
  assert_true(low < high); /* a fresh arena hands out increasing addresses */
  lof_free(low);
  lof_free(high);
  unsigned char *p = lof_malloc(100 << 10);
  assert_ptr_equal(p, low);
  lof_free(p);
  lof_free(sep1);
  lof_free(sep2);
  assert_int_equal(lof_check(), 0);
}

/* Run fn in a fresh thread (its heap holds only the spans fn makes) and
 * expect it to return (void *)1; other values name the failed step. */
static void assert_fresh_thread_returns_1(void *(*fn)(void *)) {
  pthread_t t;
  void *ok = NULL;
  assert_int_equal(pthread_create(&t, NULL, fn, NULL), 0);
  assert_int_equal(pthread_join(t, &ok), 0);
  assert_ptr_equal(ok, (void *)1);
}

/* Blocks in a span of size's class: a span is max(64 KiB, 16 blocks),
 * rounded up to pages (sizeclass.c).  0 when a probe malloc fails. */
static size_t blocks_per_span(size_t size) {
  void *probe = lof_malloc(size);
  if (probe == NULL) return 0;
  size_t bs = lof_malloc_usable_size(probe);
  lof_free(probe);
  size_t span = 16 * bs > 65536 ? 16 * bs : 65536;
  return ((span + 4095) & ~(size_t)4095) / bs;
}

/* Spans that get a block back after being full are used oldest first: a
 * block freed into a full span earlier is handed out before one freed into
 * another full span later (LIFO would switch span at nearly every malloc of
 * a program that frees at random).  Done in a fresh thread, whose heap holds
 * only the spans made here. */
enum { FIFO_SIZE = 3500, FIFO_MAX = 64 };
static void *fifo_thread(void *arg) {
  void *b[3 * FIFO_MAX] = {0};
  (void)arg;
  size_t per = blocks_per_span(FIFO_SIZE), n = 3 * per;
  if (per == 0 || per > FIFO_MAX) return NULL;
  for (size_t i = 0; i < n; i++)
    if ((b[i] = lof_malloc(FIFO_SIZE)) == NULL) return NULL;
  /* three full spans; free a block of the first, then one of the second */
  void *first = b[3], *second = b[per + 3];
  lof_free(first);
  lof_free(second);
  void *again = lof_malloc(FIFO_SIZE);
  for (size_t i = 0; i < n; i++)
    if (b[i] != first && b[i] != second) lof_free(b[i]);
  lof_free(again);
  return again == first ? (void *)1 : (void *)2;
}

static void test_unfulled_spans_oldest_first(void **state) {
  (void)state;
  assert_fresh_thread_returns_1(fifo_thread);
}

/* Full spans that get blocks back only from other threads (their xfree)
 * are found by the slow path's probe, which looks at the 8 oldest full
 * spans (heap.c, LOF_FULL_PROBE) and moves those it looked at to the other
 * end of the list, so that the next probe looks at the next ones.  Here 12
 * spans are full and another thread frees a block of the 10th oldest: the
 * first slow malloc probes the 8 oldest and carves a fresh page, the next
 * one must reach the 10th.  3000 bytes is the 3072 class: one block a
 * page, so each malloc after the first span switch takes the slow path. */
enum { PROBE_SIZE = 3000, PROBE_SPANS = 12, PROBE_MAX = 32 };
static void *probe_blocks[PROBE_SPANS * PROBE_MAX];
static void *probe_freer(void *arg) {
  lof_free(arg); /* held in this thread's remote batch, pushed at its exit */
  return NULL;
}
static void *probe_thread(void *arg) {
  (void)arg;
  size_t per = blocks_per_span(PROBE_SIZE), n = PROBE_SPANS * per;
  if (per == 0 || per > PROBE_MAX) return NULL;
  for (size_t i = 0; i < n; i++)
    if ((probe_blocks[i] = lof_malloc(PROBE_SIZE)) == NULL) return NULL;
  void *freed = probe_blocks[9 * per + 3];
  pthread_t t;
  if (pthread_create(&t, NULL, probe_freer, freed) != 0) return NULL;
  pthread_join(t, NULL);
  void *got[3];
  int found = 0;
  for (int i = 0; i < 3; i++) {
    got[i] = lof_malloc(PROBE_SIZE);
    if (got[i] == freed) found = 1;
  }
  for (size_t i = 0; i < n; i++)
    if (probe_blocks[i] != freed) lof_free(probe_blocks[i]);
  for (int i = 0; i < 3; i++) lof_free(got[i]);
  if (lof_check() != 0) return (void *)3;
  return found ? (void *)1 : (void *)2;
}

static void test_full_probe_moves_on(void **state) {
  (void)state;
  assert_fresh_thread_returns_1(probe_thread);
}

/* The slow path hands out a block already carved anywhere in the heap's
 * spans of the class before it carves a fresh page: here a hole freed in a
 * full span comes before the current span's next uncarved page.  (Carving
 * first would, in time, touch every page of every span a class ever had.)
 * 1000 bytes is the 1024 class: 64 blocks a span, 4 a page. */
static void *holes_thread(void *arg) {
  enum { N = 64 + 4 };
  void *b[N] = {0};
  (void)arg;
  for (int i = 0; i < N; i++)
    if ((b[i] = lof_malloc(1000)) == NULL) return NULL;
  /* b[0..63] fill span A; b[64..67] are the first carved page of span B */
  void *hole = b[10];
  lof_free(hole);
  void *next = lof_malloc(1000);
  for (int i = 0; i < N; i++)
    if (b[i] != hole) lof_free(b[i]);
  lof_free(next);
  if (lof_check() != 0) return (void *)3;
  return next == hole ? (void *)1 : (void *)2;
}

static void test_holes_before_fresh_pages(void **state) {
  (void)state;
  assert_fresh_thread_returns_1(holes_thread);
}

/* A span that empties while its class is still in use (the heap owns other
 * spans of it) stays with the heap as the class's fresh span instead of
 * going back to the arena, its blocks still carved.  A free run lower in
 * the arena (L) shows which happened: a span the arena handed out anew
 * would start at L (address-ordered fit); the kept one hands out the block
 * of A freed last (its free list is LIFO).  16384 bytes: 16 blocks a 256 KiB
 * span. */
static void *park_thread(void *arg) {
  enum { PER = 16 };
  void *a[PER], *b[PER];
  (void)arg;
  void *low = lof_malloc(256 << 10);
  if (low == NULL) return NULL;
  for (int i = 0; i < PER; i++)
    if ((a[i] = lof_malloc(16384)) == NULL) return NULL;
  for (int i = 0; i < PER; i++)
    if ((b[i] = lof_malloc(16384)) == NULL) return NULL;
  lof_free(low);
  for (int i = 0; i < PER; i++) lof_free(a[i]); /* span A empties; B is current */
  void *again = lof_malloc(16384);
  for (int i = 0; i < PER; i++) lof_free(b[i]);
  lof_free(again);
  if (lof_check() != 0) return (void *)4;
  if (again == low) return (void *)2;
  return again == a[PER - 1] ? (void *)1 : (void *)3;
}

static void test_emptied_span_kept_for_its_class(void **state) {
  (void)state;
  assert_fresh_thread_returns_1(park_thread);
}

/* malloc finds the span of a size up to 1024 B through a table per
 * 16-byte step of size, kept equal to the class's current span wherever
 * that changes (heap.c: heap_cur_set); lof_check compares the two.  Each
 * size gets its class's block (sizeclass.c: steps of 16 to 128, then four
 * per power of two), before and after lof_purge has released every span
 * (and so reset every class's current span), and after a span switch. */
static size_t expected_class(size_t n) {
  if (n <= 128) return n == 0 ? 16 : (n + 15) & ~(size_t)15;
  size_t pow = 128;
  while (pow * 2 < n) pow *= 2;
  size_t step = pow / 4;
  return (n + step - 1) / step * step;
}

enum { DIRECT_TOP = 1100 };
static void *direct_thread(void *arg) {
  static void *b[DIRECT_TOP + 1];
  (void)arg;
  for (int round = 0; round < 2; round++) {
    for (size_t n = 0; n <= DIRECT_TOP; n++) {
      if ((b[n] = lof_malloc(n)) == NULL) return NULL;
      if (lof_malloc_usable_size(b[n]) != expected_class(n)) return (void *)2;
      memset(b[n], 0x5a, n);
    }
    if (lof_check() != 0) return (void *)3;
    for (size_t n = 0; n <= DIRECT_TOP; n++) lof_free(b[n]);
    lof_purge(); /* every span empty: released, every class's current span reset */
    if (lof_check() != 0) return (void *)4;
  }
  /* 20000 blocks of 129 B switch the 160 B class's span (409 blocks a
   * span) many times; 160 B, the other step of that class, then takes the
   * next block of the span 129 B took last. */
  enum { N = 20000 };
  void **v = lof_malloc(N * sizeof *v);
  if (v == NULL) return NULL;
  for (int i = 0; i < N; i++)
    if ((v[i] = lof_malloc(129)) == NULL) return NULL;
  void *other = lof_malloc(160);
  bool next = (char *)other == (char *)v[N - 1] + 160;
  lof_free(other);
  for (int i = 0; i < N; i++) lof_free(v[i]);
  lof_free(v);
  if (lof_check() != 0) return (void *)5;
  return next ? (void *)1 : (void *)6;
}

static void test_direct_table_every_size(void **state) {
  (void)state;
  assert_fresh_thread_returns_1(direct_thread);
}

static void test_usable_size_every_size(void **state) {
  (void)state;
  for (size_t n = 0; n <= 70000; n += (n < 2048 ? 1 : 97)) {
    unsigned char *p = lof_malloc(n);
    assert_non_null(p);
    size_t u = lof_malloc_usable_size(p);
    assert_true(u >= n);
    /* the documented worst-case waste: 15 bytes up to 128, 25% above */
    if (n > 128) assert_true(u - n <= n / 4 + 4096);
    assert_int_equal((uintptr_t)p % 16, 0);
    memset(p, 0xee, u);
    lof_free(p);
  }
}

static void test_calloc_zeroes_reused_memory(void **state) {
  (void)state;
  size_t sizes[] = {16, 200, 3000, 16384, 40000, 300000, 6u << 20};
  for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
    for (int round = 0; round < 3; round++) {
      unsigned char *p = lof_calloc(1, sizes[k]);
      assert_non_null(p);
      for (size_t i = 0; i < sizes[k]; i += 61)
        if (p[i] != 0) fail_msg("calloc(%zu) byte %zu not zero (round %d)", sizes[k], i, round);
      memset(p, 0xff, sizes[k]); /* dirty it for the next round */
      lof_free(p);
    }
  }
}

static void test_stats_follow(void **state) {
  (void)state;
  lof_stats_t a, b;
  assert_int_equal(lof_stats_get(&a, sizeof(a)), 0);
  void *p[10];
  for (int i = 0; i < 10; i++) p[i] = lof_malloc(100000);
  assert_int_equal(lof_stats_get(&b, sizeof(b)), 0);
  assert_true(b.allocations >= a.allocations + 10);
  assert_true(b.allocated >= a.allocated + 10 * 100000);
  for (int i = 0; i < 10; i++) lof_free(p[i]);
  assert_int_equal(lof_stats_get(&b, sizeof(b)), 0);
  assert_int_equal(b.allocations, a.allocations);
  assert_int_equal(b.allocated, a.allocated);
}


/* ---- cross-thread frees --------------------------------------------------- */
enum { XN = 600 };
static void *xblocks[XN];

static size_t count_reused(void *const *now, void *const *before, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++)
      if (now[i] == before[j]) {
        k++;
        break;
      }
  return k;
}

static void *alloc_xblocks(void *arg) {
  for (int i = 0; i < XN; i++) xblocks[i] = lof_malloc((size_t)(uintptr_t)arg);
  return NULL;
}

/* A thread allocates and exits (its spans are abandoned); this thread frees
 * the blocks (the first free into each span adopts it: reclaim on free) and
 * allocates again: it gets those blocks back, the heap checks clean and the
 * stats are exact. */
static void *reclaim_thread(void *arg) {
  (void)arg;
  lof_stats_t a, b;
  if (lof_stats_get(&a, sizeof(a)) != 0) return (void *)2;
  pthread_t t;
  if (pthread_create(&t, NULL, alloc_xblocks, (void *)(uintptr_t)48) != 0) return (void *)3;
  pthread_join(t, NULL);
  void *old[XN], *now[XN];
  memcpy(old, xblocks, sizeof old);
  /* the last block stays live, so the adopted span stays this thread's
   * (an empty one would go back to the arena of its segment, which need
   * not be this thread's) */
  for (int i = 0; i < XN - 1; i++) lof_free(old[i]);
  if (lof_check() != 0) return (void *)4;
  /* the block kept live, and what libc's thread start and exit may keep
   * (where lofalloc is malloc, glibc allocates through it) */
  if (lof_stats_get(&b, sizeof(b)) != 0 || b.allocations < a.allocations + 1 ||
      b.allocations > a.allocations + 5)
    return (void *)5;
  for (int i = 0; i < XN - 1; i++) now[i] = lof_malloc(48);
  size_t k = count_reused(now, old, XN - 1);
  for (int i = 0; i < XN - 1; i++) lof_free(now[i]);
  lof_free(old[XN - 1]);
  if (lof_check() != 0) return (void *)6;
  return k >= XN / 2 ? (void *)1 : (void *)7;
}

static void test_reclaim_on_free(void **state) {
  (void)state;
  assert_fresh_thread_returns_1(reclaim_thread);
}

/* Blocks freed by another thread are held back in that thread's batch (at
 * most LOF_REMOTE_BATCH = 64) and reach the owner when the batch flushes:
 * at the latest when the freeing thread exits.  While held, the stats count
 * them freed and the heap checks clean; after, the owner reuses them all. */
static void *free_xblocks(void *arg) {
  (void)arg;
  for (int i = 0; i < XN; i++) lof_free(xblocks[i]);
  return lof_check() == 0 ? (void *)1 : NULL;
}

static void *batch_thread(void *arg) {
  (void)arg;
  lof_stats_t a, b;
  if (lof_stats_get(&a, sizeof(a)) != 0) return (void *)2;
  alloc_xblocks((void *)(uintptr_t)64);
  void *old[XN], *now[1];
  memcpy(old, xblocks, sizeof old);
  pthread_t t;
  void *ok = NULL;
  if (pthread_create(&t, NULL, free_xblocks, NULL) != 0) return (void *)3;
  pthread_join(t, &ok);
  if (ok != (void *)1) return (void *)4;
  if (lof_stats_get(&b, sizeof(b)) != 0 || b.allocations != a.allocations) return (void *)5;
  if (lof_check() != 0) return (void *)6;
  /* the span had a page's worth (64 blocks) carved and never handed out */
  static void *now2[XN + 64];
  for (int i = 0; i < XN + 64; i++) now2[i] = lof_malloc(64);
  size_t k = 0;
  for (int i = 0; i < XN; i++)
    for (int j = 0; j < XN + 64; j++)
      if (old[i] == now2[j]) {
        k++;
        break;
      }
  for (int i = 0; i < XN + 64; i++) lof_free(now2[i]);
  if (lof_check() != 0) return (void *)7;
  (void)now;
  return k == XN ? (void *)1 : (void *)8;
}

static void test_remote_batch_flushed_at_exit(void **state) {
  (void)state;
  assert_fresh_thread_returns_1(batch_thread);
}

/* A thread that frees another thread's blocks of two classes, interleaved,
 * holds them back in a batch per class: while it lives and neither batch
 * is full, none of them reaches the owner, whose mallocs carve fresh
 * blocks instead (one batch for all classes would push at every switch of
 * class, and the owner's slow path would collect them).  When the freeing
 * thread exits, its batches are pushed and the owner gets them all back. */
enum { PN = 24 }; /* below LOF_REMOTE_BATCH blocks and, at 96 B, its 16 KiB */
static void *pblocks[2][PN];
static pthread_mutex_t pmutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pcond = PTHREAD_COND_INITIALIZER;
static int pstage; /* 1: frees done; 2: the freeing thread may exit */

static void stage_set(int v) {
  pthread_mutex_lock(&pmutex);
  pstage = v;
  pthread_cond_broadcast(&pcond);
  pthread_mutex_unlock(&pmutex);
}

static void stage_wait(int v) {
  pthread_mutex_lock(&pmutex);
  while (pstage != v) pthread_cond_wait(&pcond, &pmutex);
  pthread_mutex_unlock(&pmutex);
}

static void *free_interleaved(void *arg) {
  (void)arg;
  for (int i = 0; i < PN; i++) {
    lof_free(pblocks[0][i]);
    lof_free(pblocks[1][i]);
  }
  stage_set(1);
  stage_wait(2);
  return NULL;
}

static size_t count_returned(void *const *got, size_t n, unsigned cls) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    for (int j = 0; j < PN; j++)
      if (got[i] == pblocks[cls][j]) k++;
  return k;
}

static void *batch_per_class_thread(void *arg) {
  (void)arg;
  enum { M = 256, L = 2 * M + 64 };
  static void *got[2 * M], *late_got[2 * L];
  for (int i = 0; i < PN; i++) {
    pblocks[0][i] = lof_malloc(80);
    pblocks[1][i] = lof_malloc(96);
  }
  pstage = 0;
  pthread_t t;
  if (pthread_create(&t, NULL, free_interleaved, NULL) != 0) return (void *)2;
  stage_wait(1);
  /* held back: M mallocs of each class get none of them */
  for (int i = 0; i < M; i++) {
    got[i] = lof_malloc(80);
    got[M + i] = lof_malloc(96);
  }
  size_t early = count_returned(got, M, 0) + count_returned(got + M, M, 1);
  for (int i = 0; i < 2 * M; i++) lof_free(got[i]);
  stage_set(2);
  pthread_join(t, NULL);
  if (lof_check() != 0) return (void *)3;
  /* pushed at the thread's exit: the owner gets every one back, after the
   * M it freed itself and the rest of the page it carved */
  for (int i = 0; i < L; i++) {
    late_got[i] = lof_malloc(80);
    late_got[L + i] = lof_malloc(96);
  }
  size_t late = count_returned(late_got, L, 0) + count_returned(late_got + L, L, 1);
  for (int i = 0; i < 2 * L; i++) lof_free(late_got[i]);
  if (lof_check() != 0) return (void *)4;
  if (early != 0) return (void *)5;
  return late == 2 * PN ? (void *)1 : (void *)6;
}

static void test_remote_batch_per_class(void **state) {
  (void)state;
  assert_fresh_thread_returns_1(batch_per_class_thread);
}

/* A batch is pushed as soon as it holds LOF_REMOTE_BATCH (64) blocks or
 * reaches LOF_REMOTE_BATCH_BYTES (16 KiB): 16 blocks of 1 KiB, a single one
 * of 16 KiB.  One block fewer stays held back until the freeing thread
 * exits.  Each case in a fresh owner thread, whose mallocs of the class
 * then run through its span and collect whatever was pushed (the stages
 * as in test_remote_batch_per_class). */
typedef struct bound_case { size_t size; int n; bool pushed; } bound_case_t;
static void *bblocks[64];
static int bn;

static void *free_bblocks(void *arg) {
  (void)arg;
  for (int i = 0; i < bn; i++) lof_free(bblocks[i]);
  stage_set(1);
  stage_wait(2);
  return NULL;
}

static void *bound_thread(void *arg) {
  const bound_case_t *c = arg;
  enum { M = 1024 };
  static void *got[M];
  int m = c->size >= 4096 ? 64 : M;
  bn = c->n;
  for (int i = 0; i < bn; i++)
    if ((bblocks[i] = lof_malloc(c->size)) == NULL) return NULL;
  pstage = 0;
  pthread_t t;
  if (pthread_create(&t, NULL, free_bblocks, NULL) != 0) return (void *)2;
  stage_wait(1);
  int back = 0;
  for (int i = 0; i < m; i++) {
    got[i] = lof_malloc(c->size);
    for (int j = 0; j < bn; j++)
      if (got[i] == bblocks[j]) back++;
  }
  for (int i = 0; i < m; i++) lof_free(got[i]);
  stage_set(2);
  pthread_join(t, NULL);
  if (lof_check() != 0) return (void *)3;
  return back == (c->pushed ? bn : 0) ? (void *)1 : (void *)4;
}

static void test_remote_batch_bounds(void **state) {
  (void)state;
  static const bound_case_t cases[] = {
    {64, 63, false}, {64, 64, true}, {1024, 15, false}, {1024, 16, true}, {16384, 1, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pthread_t t;
    void *ok = NULL;
    assert_int_equal(pthread_create(&t, NULL, bound_thread, (void *)&cases[i]), 0);
    assert_int_equal(pthread_join(t, &ok), 0);
    if (ok != (void *)1)
      fail_msg("%zu B x %d: expected %s, step %p", cases[i].size, cases[i].n,
               cases[i].pushed ? "pushed" : "held back", ok);
  }
}

/* A thread's mallocs take back, newest first, the blocks it freed into
 * another heap's spans and still holds (its cache of remote frees), before
 * any block of its own: a fresh thread frees 20 blocks of 64 B that its
 * parent allocated, then its 20 mallocs of 64 B are those blocks in the
 * reverse order.  They never left their span's count, so the stats and the
 * heap check agree throughout; freed again, they go back to the parent's
 * span when the thread exits. */
enum { RN = 20 }; /* held: below the cache's 64 blocks of 64 B */
static void *rblocks[RN];

static void *reuse_remote_thread(void *arg) {
  (void)arg;
  lof_stats_t a, b;
  if (lof_stats_get(&a, sizeof(a)) != 0) return (void *)2;
  for (int i = 0; i < RN; i++) lof_free(rblocks[i]);
  if (lof_check() != 0) return (void *)3;
  void *got[RN];
  for (int i = 0; i < RN; i++) got[i] = lof_malloc(64);
  int same = 0;
  for (int i = 0; i < RN; i++) same += got[i] == rblocks[RN - 1 - i];
  if (lof_stats_get(&b, sizeof(b)) != 0 || b.allocations != a.allocations) return (void *)4;
  if (lof_check() != 0) return (void *)5;
  for (int i = 0; i < RN; i++) lof_free(got[i]);
  return same == RN ? (void *)1 : (void *)6;
}

static void *reuse_remote_owner(void *arg) {
  (void)arg;
  for (int i = 0; i < RN; i++)
    if ((rblocks[i] = lof_malloc(64)) == NULL) return (void *)7;
  pthread_t t;
  void *ok = NULL;
  if (pthread_create(&t, NULL, reuse_remote_thread, NULL) != 0) return (void *)8;
  pthread_join(t, &ok);
  if (ok != (void *)1) return ok;
  /* the freeing thread exited: its cache went back to these spans */
  void *now[RN + 64];
  int back = 0;
  for (int i = 0; i < RN + 64; i++) {
    now[i] = lof_malloc(64);
    for (int j = 0; j < RN; j++) back += now[i] == rblocks[j];
  }
  for (int i = 0; i < RN + 64; i++) lof_free(now[i]);
  if (lof_check() != 0) return (void *)9;
  return back == RN ? (void *)1 : (void *)10;
}

static void test_remote_frees_reused_by_the_freeing_thread(void **state) {
  (void)state;
  assert_fresh_thread_returns_1(reuse_remote_owner);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_large_lowest_address_first), /* first: wants a fresh arena */
    cmocka_unit_test(test_malloc_zero_and_free_null),
    cmocka_unit_test(test_unfulled_spans_oldest_first),
    cmocka_unit_test(test_holes_before_fresh_pages),
    cmocka_unit_test(test_emptied_span_kept_for_its_class),
    cmocka_unit_test(test_calloc_overflow),
    cmocka_unit_test(test_reallocarray_overflow),
    cmocka_unit_test(test_malloc_huge_fails),
    cmocka_unit_test(test_posix_memalign_bad),
    cmocka_unit_test(test_aligned_every_pow2),
    cmocka_unit_test(test_realloc_keeps_contents),
    cmocka_unit_test(test_usable_size_every_size),
    cmocka_unit_test(test_direct_table_every_size),
    cmocka_unit_test(test_calloc_zeroes_reused_memory),
    cmocka_unit_test(test_stats_follow),
    cmocka_unit_test(test_reclaim_on_free),
    cmocka_unit_test(test_full_probe_moves_on),
    cmocka_unit_test(test_remote_batch_flushed_at_exit),
    cmocka_unit_test(test_remote_batch_per_class),
    cmocka_unit_test(test_remote_batch_bounds),
    cmocka_unit_test(test_remote_frees_reused_by_the_freeing_thread),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
