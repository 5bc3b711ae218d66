/*
 * lofbench.c -- the allocator workloads of `make bench`.  One workload per
 * invocation: lofbench WORKLOAD [threads].  It calls plain malloc/free, so
 * the allocator under test is whatever LD_PRELOAD puts first; with
 * LOFBENCH_MLOCKALL=1 it first calls mlockall(MCL_CURRENT|MCL_FUTURE|
 * MCL_ONFAULT), the fair "locked" setting for allocators that do not lock
 * their heap themselves.  Prints one line: workload, seconds, peak RSS (KiB),
 * and a checksum that must agree across allocators.
 *
 * Workloads (deterministic seeds):
 *   churn     single thread, small objects (16-512 B) in a ring of 4096 live
 *   server    T threads, sizes 16 B - 64 KiB, half the objects freed by another thread
 *   prodcons  T/2 producer/consumer pairs: every block is freed by the other thread
 *   realloc   buffers grown by realloc in small steps from 16 B to 1 MiB
 *   longlived 200k live objects of mixed sizes (16 B - 8 KiB), random replacement
 *   sparse    64 MiB calloc'ed blocks with 1% of their pages touched, freed
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int nthreads = 4;
static _Atomic uint64_t checksum;

/* ---- churn -------------------------------------------------------------- */
static void churn(void) {
  enum { RING = 4096 };
  static void *ring[RING];
  uint64_t s = 42, sum = 0;
  for (long i = 0; i < 30000000; i++) {
    unsigned k = (unsigned)(i & (RING - 1));
    free(ring[k]);
    size_t n = 16 + (rnd(&s) & 511);
    unsigned char *p = malloc(n);
    p[0] = (unsigned char)i;
    sum += p[0];
    ring[k] = p;
  }
  for (int k = 0; k < RING; k++) free(ring[k]);
  checksum += sum;
}

/* ---- server: random sizes, frees by other threads ------------------------ */
#define QCAP 1024
typedef struct queue {
  pthread_mutex_t lock;
  void *items[QCAP];
  int n;
} queue_t;
static queue_t queues[64];

static void *server_worker(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t s = 1000 + (uint64_t)id, sum = 0;
  enum { LIVE = 2048 };
  void *live[LIVE] = {0};
  for (long i = 0; i < 3000000; i++) {
    unsigned k = (unsigned)(rnd(&s) % LIVE);
    if (live[k] != NULL) {
      if (rnd(&s) & 1) {
        queue_t *q = &queues[(id + 1) % nthreads];
        pthread_mutex_lock(&q->lock);
        if (q->n < QCAP) {
          q->items[q->n++] = live[k];
          live[k] = NULL;
        }
        pthread_mutex_unlock(&q->lock);
      }
      free(live[k]);
    }
    uint64_t r = rnd(&s) % 100;
    size_t n = r < 80 ? 16 + rnd(&s) % 240 : r < 98 ? 256 + rnd(&s) % 4096 : 4096 + rnd(&s) % 61440;
    unsigned char *p = malloc(n);
    p[0] = (unsigned char)n;
    p[n - 1] = 1;
    sum += p[0];
    live[k] = p;
    if ((i & 127) == 0) {
      queue_t *q = &queues[id];
      void *got[QCAP];
      pthread_mutex_lock(&q->lock);
      int m = q->n;
      memcpy(got, q->items, sizeof(void *) * (size_t)m);
      q->n = 0;
      pthread_mutex_unlock(&q->lock);
      for (int j = 0; j < m; j++) free(got[j]);
    }
  }
  for (int k = 0; k < LIVE; k++) free(live[k]);
  checksum += sum;
  return NULL;
}

/* ---- producer / consumer ------------------------------------------------ */
typedef struct ring {
  _Atomic uint64_t head, tail;
  void *slot[4096];
} ring_t;
static ring_t rings[32];
#define PC_ITEMS 4000000

static void *producer(void *arg) {
  ring_t *r = &rings[(intptr_t)arg];
  uint64_t s = 7 + (uint64_t)(intptr_t)arg;
  for (uint64_t i = 0; i < PC_ITEMS; i++) {
    size_t n = 16 + rnd(&s) % 1000;
    unsigned char *p = malloc(n);
    p[0] = (unsigned char)i;
    while (r->head - r->tail >= 4096) sched_yield();
    r->slot[r->head % 4096] = p;
    r->head++;
  }
  return NULL;
}

static void *consumer(void *arg) {
  ring_t *r = &rings[(intptr_t)arg];
  uint64_t sum = 0;
  for (uint64_t i = 0; i < PC_ITEMS; i++) {
    while (r->tail == r->head) sched_yield();
    unsigned char *p = r->slot[r->tail % 4096];
    r->tail++;
    sum += p[0];
    free(p);
  }
  checksum += sum;
  return NULL;
}

/* ---- realloc growth -------------------------------------------------------- */
static void realloc_growth(void) {
  uint64_t s = 3, sum = 0;
  for (int round = 0; round < 300; round++) {
    enum { N = 8 };
    unsigned char *b[N] = {0};
    size_t len[N] = {0};
    for (int step = 0; step < 3000; step++) {
      int k = (int)(rnd(&s) % N);
      size_t nl = len[k] + 16 + rnd(&s) % (len[k] / 8 + 64);
      if (nl > (1u << 20)) nl = 16;
      b[k] = realloc(b[k], nl);
      b[k][nl - 1] = (unsigned char)nl;
      if (len[k] && nl > len[k]) sum += b[k][len[k] - 1];
      len[k] = nl;
    }
    for (int k = 0; k < N; k++) free(b[k]);
  }
  checksum += sum;
}

/* ---- long-lived mixed set --------------------------------------------------- */
static void longlived(void) {
  enum { LIVE = 200000 };
  void **set = calloc(LIVE, sizeof(void *));
  uint64_t s = 11, sum = 0;
  for (long i = 0; i < 6000000; i++) {
    unsigned k = (unsigned)(rnd(&s) % LIVE);
    if (set[k]) sum += *(unsigned char *)set[k];
    free(set[k]);
    uint64_t r = rnd(&s) % 100;
    size_t n = r < 60 ? 16 + rnd(&s) % 112 : r < 95 ? 128 + rnd(&s) % 896 : 1024 + rnd(&s) % 7168;
    unsigned char *p = malloc(n);
    p[0] = (unsigned char)n;
    set[k] = p;
  }
  for (int k = 0; k < LIVE; k++) free(set[k]);
  free(set);
  checksum += sum;
}

/* ---- sparse heap -------------------------------------------------------------- */
static void sparse(void) {
  uint64_t sum = 0;
  for (int round = 0; round < 10; round++) {
    enum { NB = 8 };
    unsigned char *b[NB];
    size_t sz = 64u << 20;
    for (int k = 0; k < NB; k++) {
      b[k] = calloc(1, sz);
      for (size_t off = 0; off < sz; off += 100 * 4096) b[k][off] = 1; /* 1% of pages */
    }
    for (int k = 0; k < NB; k++) {
      sum += b[k][sz / 2];
      free(b[k]);
    }
  }
  checksum += sum;
}

static void run_threads(void *(*fn)(void *), int n) {
  pthread_t t[64];
  for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, fn, (void *)(intptr_t)i);
  for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: lofbench churn|server|prodcons|realloc|longlived|sparse [threads]\n");
    return 2;
  }
  if (argc > 2) nthreads = atoi(argv[2]);
  if (nthreads < 2) nthreads = 2;
  if (nthreads > 32) nthreads = 32;
  const char *lock = getenv("LOFBENCH_MLOCKALL");
  if (lock && *lock == '1' && mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0) {
    perror("mlockall");
    return 1;
  }
  for (int i = 0; i < 64; i++) pthread_mutex_init(&queues[i].lock, NULL);
  const char *w = argv[1];
  double t0 = now();
  if (!strcmp(w, "churn")) churn();
  else if (!strcmp(w, "server")) run_threads(server_worker, nthreads);
  else if (!strcmp(w, "prodcons")) {
    pthread_t t[32];
    int pairs = nthreads / 2;
    for (int i = 0; i < pairs; i++) {
      pthread_create(&t[2 * i], NULL, producer, (void *)(intptr_t)i);
      pthread_create(&t[2 * i + 1], NULL, consumer, (void *)(intptr_t)i);
    }
    for (int i = 0; i < 2 * pairs; i++) pthread_join(t[i], NULL);
  } else if (!strcmp(w, "realloc")) realloc_growth();
  else if (!strcmp(w, "longlived")) longlived();
  else if (!strcmp(w, "sparse")) sparse();
  else {
    fprintf(stderr, "lofbench: unknown workload %s\n", w);
    return 2;
  }
  double t1 = now();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("%s %.3f %ld %llu\n", w, t1 - t0, ru.ru_maxrss, (unsigned long long)checksum);
  return 0;
}
