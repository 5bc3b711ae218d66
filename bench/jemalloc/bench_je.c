/*
 * bench_je.c -- the jemalloc frontend against stock jemalloc, in one run.
 *
 * Every workload runs through mallocx/rallocx/dallocx on two arenas of the
 * same jemalloc: "stock" (arenas.create, jemalloc's default hooks) and "lof"
 * (lof_je_arena_create, lock-on-fault).  Each thread uses an explicit tcache
 * per arena (MALLOCX_TCACHE), so both sides take jemalloc's fast paths.
 * Runs alternate stock/lof; the median of the repetitions is reported, with
 * the ratio lof/stock per workload and their geometric mean, and the ratio
 * of the fastest runs (less sensitive to a machine shared with other load).
 *
 *   bench_je [-r reps] [-s scale]      (scale 1 = default sizes)
 *   bench_je -d [-r reps] [-s scale]   the same workloads on the default
 *       path (flags 0 = the thread's automatic arena and tcache, as malloc):
 *       run it with and without liblofalloc-jemalloc-process.so preloaded
 *       to measure the whole-process mode (bench/jemalloc/process_ratio.sh).
 */
#include <jemalloc/jemalloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lofalloc-jemalloc.h"

static double scale = 1.0;

typedef struct heap { unsigned arena; } heap_t;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* The "default" heap: flags 0, i.e. the thread's automatic arena and its
 * implicit tcache -- what malloc does (-d mode). */
#define HEAP_DEFAULT UINT32_MAX

/* Per-thread flags: the heap's arena and this thread's tcache for it. */
static int thread_flags(const heap_t *h, unsigned *tc) {
  *tc = HEAP_DEFAULT;
  if (h->arena == HEAP_DEFAULT) return 0;
  size_t sz = sizeof *tc;
  if (mallctl("tcache.create", tc, &sz, NULL, 0) != 0) abort();
  return MALLOCX_ARENA(h->arena) | MALLOCX_TCACHE(*tc);
}

static void thread_done(unsigned tc) {
  if (tc != HEAP_DEFAULT) mallctl("tcache.destroy", NULL, NULL, &tc, sizeof tc);
}

typedef struct targ { const heap_t *h; int id; void *shared; } targ_t;

static void run_threads(int n, void *(*fn)(void *), const heap_t *h, void *shared) {
  pthread_t t[16];
  targ_t a[16];
  for (int i = 0; i < n; i++) {
    a[i] = (targ_t){h, i, shared};
    pthread_create(&t[i], NULL, fn, &a[i]);
  }
  for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
}

/* 1. small-object churn: a ring of 4096 live objects, 16..512 bytes. */
static void *w_churn_thread(void *p) {
  targ_t *a = p;
  unsigned tc;
  int fl = thread_flags(a->h, &tc);
  enum { RING = 4096 };
  void *ring[RING] = {0};
  uint64_t s = 0x9e3779b97f4a7c15ull + (uint64_t)a->id;
  long n = (long)(4000000 * scale);
  for (long i = 0; i < n; i++) {
    size_t k = rng(&s) % RING;
    if (ring[k]) dallocx(ring[k], fl);
    size_t sz = 16 + rng(&s) % 497;
    ring[k] = mallocx(sz, fl);
    *(volatile char *)ring[k] = 1;
  }
  for (int k = 0; k < RING; k++) if (ring[k]) dallocx(ring[k], fl);
  thread_done(tc);
  return NULL;
}
static void w_churn(const heap_t *h) { run_threads(2, w_churn_thread, h, NULL); }

/* 2. server-like: a producer allocates messages (64..4096 B), a consumer
 * thread frees them (cross-thread frees through an SPSC ring). */
typedef struct spsc { _Atomic size_t head, tail; void *slot[1024]; _Atomic int done; } spsc_t;
static void *w_server_producer(void *p) {
  targ_t *a = p;
  spsc_t *q = a->shared;
  unsigned tc;
  int fl = thread_flags(a->h, &tc);
  uint64_t s = 12345;
  long n = (long)(1000000 * scale);
  for (long i = 0; i < n; i++) {
    size_t sz = 64 + rng(&s) % 4033;
    char *m = mallocx(sz, fl);
    memset(m, (int)i, sz < 256 ? sz : 256);
    size_t hd = atomic_load_explicit(&q->head, memory_order_relaxed);
    while (hd - atomic_load_explicit(&q->tail, memory_order_acquire) >= 1024) sched_yield();
    q->slot[hd % 1024] = m;
    atomic_store_explicit(&q->head, hd + 1, memory_order_release);
  }
  atomic_store(&q->done, 1);
  thread_done(tc);
  return NULL;
}
static void *w_server_consumer(void *p) {
  targ_t *a = p;
  spsc_t *q = a->shared;
  unsigned tc;
  int fl = thread_flags(a->h, &tc);
  for (;;) {
    size_t tl = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (tl == atomic_load_explicit(&q->head, memory_order_acquire)) {
      if (atomic_load(&q->done) && tl == atomic_load(&q->head)) break;
      sched_yield();
      continue;
    }
    dallocx(q->slot[tl % 1024], fl);
    atomic_store_explicit(&q->tail, tl + 1, memory_order_release);
  }
  thread_done(tc);
  return NULL;
}
static void *w_server_thread(void *p) {
  targ_t *a = p;
  return a->id == 0 ? w_server_producer(p) : w_server_consumer(p);
}
static void w_server(const heap_t *h) {
  static spsc_t q;
  memset(&q, 0, sizeof q);
  run_threads(2, w_server_thread, h, &q);
}

/* 3. realloc growth: buffers grown from 16 B to 4 MiB by x1.5. */
static void *w_realloc_thread(void *p) {
  targ_t *a = p;
  unsigned tc;
  int fl = thread_flags(a->h, &tc);
  int rounds = (int)(300 * scale);
  for (int r = 0; r < rounds; r++) {
    size_t sz = 16;
    char *b = mallocx(sz, fl);
    while (sz < 4 * 1024 * 1024) {
      size_t nsz = sz + sz / 2;
      b = rallocx(b, nsz, fl);
      b[nsz - 1] = (char)r;
      sz = nsz;
    }
    dallocx(b, fl);
  }
  thread_done(tc);
  return NULL;
}
static void w_realloc(const heap_t *h) { run_threads(2, w_realloc_thread, h, NULL); }

/* 4. long-lived mixed: 100k live objects, 16 B..64 KiB (mostly small),
 * replaced at random. */
static void *w_mixed_thread(void *p) {
  targ_t *a = p;
  unsigned tc;
  int fl = thread_flags(a->h, &tc);
  enum { LIVE = 50000 };
  void **live = calloc(LIVE, sizeof *live);
  uint64_t s = 777 + (uint64_t)a->id;
  long n = (long)(1500000 * scale);
  for (long i = 0; i < n; i++) {
    size_t k = rng(&s) % LIVE;
    if (live[k]) dallocx(live[k], fl);
    uint64_t r = rng(&s);
    size_t sz = (r % 100 < 90) ? 16 + r % 256 : (r % 100 < 99 ? 256 + r % 8192 : 8192 + r % 65536);
    live[k] = mallocx(sz, fl);
    memset(live[k], 1, sz < 64 ? sz : 64);
  }
  for (int k = 0; k < LIVE; k++) if (live[k]) dallocx(live[k], fl);
  free(live);
  thread_done(tc);
  return NULL;
}
static void w_mixed(const heap_t *h) { run_threads(2, w_mixed_thread, h, NULL); }

/* 5. sparse: 256 MiB blocks with 1% of their pages touched, freed. */
static void *w_sparse_thread(void *p) {
  targ_t *a = p;
  unsigned tc;
  int fl = thread_flags(a->h, &tc);
  int rounds = (int)(20 * scale);
  for (int r = 0; r < rounds; r++) {
    size_t sz = (size_t)256 << 20;
    char *b = mallocx(sz, fl);
    for (size_t off = 0; off < sz; off += 100 * 4096) b[off] = 1;
    dallocx(b, fl);
  }
  thread_done(tc);
  return NULL;
}
static void w_sparse(const heap_t *h) { run_threads(1, w_sparse_thread, h, NULL); }

typedef struct workload { const char *name; void (*fn)(const heap_t *); } workload_t;
static const workload_t workloads[] = {
  {"small-churn", w_churn}, {"server-xthread", w_server}, {"realloc-growth", w_realloc},
  {"long-lived-mixed", w_mixed}, {"sparse-1pct", w_sparse},
};

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int reps = 5, opt, default_mode = 0;
  while ((opt = getopt(argc, argv, "dr:s:")) != -1) {
    if (opt == 'r') reps = atoi(optarg);
    else if (opt == 's') scale = atof(optarg);
    else if (opt == 'd') default_mode = 1;
    else { fprintf(stderr, "usage: %s [-d] [-r reps] [-s scale]\n", argv[0]); return 2; }
  }
  if (reps < 1 || reps > 99) reps = 5;
  int nw = (int)(sizeof workloads / sizeof workloads[0]);
  if (default_mode) {
    heap_t def = {HEAP_DEFAULT};
    for (int w = 0; w < nw; w++) {
      double t[99];
      for (int r = 0; r < reps; r++) {
        double t0 = now();
        workloads[w].fn(&def);
        t[r] = now() - t0;
      }
      qsort(t, (size_t)reps, sizeof(double), cmp_double);
      printf("%-18s %10.1f\n", workloads[w].name, t[reps / 2] * 1e3);
    }
    return 0;
  }
  heap_t stock, lof;
  size_t sz = sizeof stock.arena;
  if (mallctl("arenas.create", &stock.arena, &sz, NULL, 0) != 0 || lof_je_arena_create(&lof.arena) != 0) {
    fprintf(stderr, "bench_je: cannot create arenas\n");
    return 1;
  }
  printf("bench_je: reps %d, scale %.2f, stock arena %u, lof arena %u\n", reps, scale, stock.arena, lof.arena);
  printf("%-18s %10s %10s %9s %9s\n", "workload", "stock ms", "lof ms", "lof/stock", "(min)");
  double logsum = 0, logsum_min = 0;
  for (int w = 0; w < nw; w++) {
    double ts[99], tl[99];
    for (int r = 0; r < reps; r++) {
      const heap_t *order[2] = {(r & 1) ? &lof : &stock, (r & 1) ? &stock : &lof};
      for (int k = 0; k < 2; k++) {
        double t0 = now();
        workloads[w].fn(order[k]);
        double dt = now() - t0;
        if (order[k] == &stock) ts[r] = dt; else tl[r] = dt;
      }
    }
    qsort(ts, (size_t)reps, sizeof(double), cmp_double);
    qsort(tl, (size_t)reps, sizeof(double), cmp_double);
    double ms = ts[reps / 2] * 1e3, ml = tl[reps / 2] * 1e3;
    printf("%-18s %10.1f %10.1f %9.3f %9.3f\n", workloads[w].name, ms, ml, ml / ms, tl[0] / ts[0]);
    logsum += log(ml / ms);
    logsum_min += log(tl[0] / ts[0]);
  }
  printf("%-18s %21s %9.3f %9.3f\n", "geomean", "", exp(logsum / nw), exp(logsum_min / nw));
  lof_stats_t st;
  if (lof_je_stats_get(&st, sizeof st) == 0)
    printf("lof: commit_calls %llu purge_calls %llu regions %llu committed %llu KiB\n",
           (unsigned long long)st.commit_calls, (unsigned long long)st.purge_calls,
           (unsigned long long)st.regions, (unsigned long long)(st.committed >> 10));
  return 0;
}
