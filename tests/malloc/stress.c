/*
 * stress.c -- deterministic multi-threaded stress of the lof_* API:
 * LOF_STRESS_THREADS threads (default 8) allocate sizes from 1 B to 1 MiB
 * (mostly small), fill each block with a pattern derived from its address
 * and size, and pass a share of their blocks to other threads through
 * mailboxes, so about a third of all frees are cross-thread.  Every block is
 * verified before it is freed and realloc'ed blocks are checked to keep
 * their contents.  The seed is fixed (LOF_STRESS_SEED overrides), rounds
 * shrink under sanitizers.  Ends with lof_check() and the live-allocation
 * count back where it started.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lofalloc.h"
#include "sanitizer.h"

#ifdef UNDER_SANITIZER /* gcc's and clang's sanitizer builds alike */
#define STRESS_ROUNDS 20000
#else
#define STRESS_ROUNDS 200000
#endif
#define SLOTS 512
#define MAILBOX 64

typedef struct item {
  unsigned char *p;
  size_t n;
} item_t;

typedef struct mailbox {
  pthread_mutex_t lock;
  item_t items[MAILBOX];
  int count;
} mailbox_t;

static int nthreads = 8;
static uint64_t seed = 0x10fa110c;
static mailbox_t boxes[64];

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static size_t pick_size(uint64_t *s) {
  uint64_t r = rnd(s) % 1000;
  if (r < 700) return 1 + rnd(s) % 256;           /* 70%: tiny */
  if (r < 950) return 1 + rnd(s) % 16384;         /* 25%: small */
  if (r < 995) return 16385 + rnd(s) % 250000;    /* large */
  return 1 + rnd(s) % (1u << 20);                 /* up to 1 MiB */
}

static unsigned char pat(const void *p, size_t n, size_t i) {
  return (unsigned char)(((uintptr_t)p >> 4) + n + i * 13);
}

static void fill(item_t *it) {
  size_t n = it->n < 256 ? it->n : 256; /* head and tail, enough to catch overlap */
  for (size_t i = 0; i < n; i++) it->p[i] = pat(it->p, it->n, i);
  for (size_t i = it->n > 256 ? it->n - 64 : it->n; i < it->n; i++) it->p[i] = pat(it->p, it->n, i);
}

static int check(const item_t *it, const unsigned char *orig) {
  size_t n = it->n < 256 ? it->n : 256;
  for (size_t i = 0; i < n; i++)
    if (it->p[i] != pat(orig, it->n, i)) return -1;
  for (size_t i = it->n > 256 ? it->n - 64 : it->n; i < it->n; i++)
    if (it->p[i] != pat(orig, it->n, i)) return -1;
  return 0;
}

static _Atomic int failures;

static void release(item_t *it) {
  if (it->p == NULL) return;
  if (check(it, it->p) != 0) failures++;
  lof_free(it->p);
  it->p = NULL;
}

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t s = seed * (uint64_t)(id + 1) | 1;
  item_t slot[SLOTS];
  memset(slot, 0, sizeof(slot));
  for (long r = 0; r < STRESS_ROUNDS; r++) {
    int k = (int)(rnd(&s) % SLOTS);
    item_t *it = &slot[k];
    uint64_t op = rnd(&s) % 100;
    if (it->p != NULL && op < 30) {
      /* hand it to another thread */
      mailbox_t *b = &boxes[(id + 1 + rnd(&s) % (nthreads - 1)) % nthreads];
      pthread_mutex_lock(&b->lock);
      if (b->count < MAILBOX) {
        b->items[b->count++] = *it;
        it->p = NULL;
      }
      pthread_mutex_unlock(&b->lock);
    } else if (it->p != NULL && op < 40) {
      /* realloc keeps the head */
      size_t nn = pick_size(&s);
      unsigned char *old = it->p;
      size_t keep = nn < it->n ? nn : it->n;
      if (keep > 256) keep = 256;
      unsigned char head[256];
      memcpy(head, old, keep);
      unsigned char *q = lof_realloc(old, nn);
      if (q == NULL || memcmp(q, head, keep) != 0) failures++;
      it->p = q;
      it->n = nn;
      fill(it);
    } else {
      release(it);
      it->n = pick_size(&s);
      it->p = (op & 1) ? lof_malloc(it->n) : lof_calloc(1, it->n);
      if (it->p == NULL) failures++;
      else if (!(op & 1) && (it->p[0] != 0 || it->p[it->n - 1] != 0)) failures++;
      else fill(it);
    }
    /* drain my mailbox now and then: cross-thread frees */
    if ((r & 63) == 0) {
      mailbox_t *b = &boxes[id];
      pthread_mutex_lock(&b->lock);
      item_t got[MAILBOX];
      int n = b->count;
      memcpy(got, b->items, sizeof(item_t) * (size_t)n);
      b->count = 0;
      pthread_mutex_unlock(&b->lock);
      for (int i = 0; i < n; i++) release(&got[i]);
    }
  }
  for (int k = 0; k < SLOTS; k++) release(&slot[k]);
  return NULL;
}

static void *idle(void *arg) { return arg; }

static void test_stress(void **state) {
  (void)state;
  const char *e = getenv("LOF_STRESS_THREADS");
  if (e) nthreads = atoi(e);
  if (nthreads < 2) nthreads = 2;
  if (nthreads > 64) nthreads = 64;
  e = getenv("LOF_STRESS_SEED");
  if (e) seed = strtoull(e, NULL, 0);
  /* glibc mallocs a DTV for each new thread stack and keeps it while the
   * stack sits in its cache of stacks of exited threads.  Warm that cache
   * first with as many threads as the workers, all alive at once: the
   * workers then reuse those stacks and their DTVs, and every block they and
   * glibc allocate from here on must be freed by the end. */
  pthread_t t[64];
  for (int i = 0; i < nthreads; i++) assert_int_equal(pthread_create(&t[i], NULL, idle, NULL), 0);
  for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
  lof_stats_t before, after;
  assert_int_equal(lof_stats_get(&before, sizeof(before)), 0);
  for (int i = 0; i < nthreads; i++) pthread_mutex_init(&boxes[i].lock, NULL);
  for (int i = 0; i < nthreads; i++)
    assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i), 0);
  for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < nthreads; i++)
    for (int k = 0; k < boxes[i].count; k++) release(&boxes[i].items[k]);
  assert_int_equal(failures, 0);
  assert_int_equal(lof_check(), 0);
  assert_int_equal(lof_stats_get(&after, sizeof(after)), 0);
  printf("# allocations %llu -> %llu, bytes allocated %llu -> %llu\n",
         (unsigned long long)before.allocations, (unsigned long long)after.allocations,
         (unsigned long long)before.allocated, (unsigned long long)after.allocated);
  assert_int_equal(after.allocations, before.allocations); /* nothing leaked */
  assert_int_equal(after.allocated, before.allocated);
  lof_purge();
  assert_int_equal(lof_check(), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_stress)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
