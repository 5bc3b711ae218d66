/*
 * lofbench.c -- the allocator workloads of `make bench`.  One workload per
 * invocation: lofbench WORKLOAD [threads].  It calls plain malloc/free, so
 * the allocator under test is whatever LD_PRELOAD puts first; with
 * LOFBENCH_MLOCKALL=1 it first calls mlockall(MCL_CURRENT|MCL_FUTURE|
 * MCL_ONFAULT), the fair "locked" setting for allocators that do not lock
 * their heap themselves.  Prints one line: workload, seconds, peak RSS (KiB,
 * this process's own: peak_rss_kib), and a checksum that must agree across
 * allocators.
 *
 * Workloads (deterministic seeds):
 *   churn     single thread, small objects (16-512 B) in a ring of 4096 live
 *   server    T threads, sizes 16 B - 64 KiB, half the objects freed by another thread
 *   prodcons  T/2 producer/consumer pairs: every block is freed by the other thread
 *   realloc   buffers grown by realloc in small steps from 16 B to 1 MiB
 *   longlived 200k live objects of mixed sizes (16 B - 8 KiB), random replacement
 *   sparse    64 MiB calloc'ed blocks with 1% of their pages touched, freed
 * The patterns of issue #14 (programs lofalloc was not tuned for):
 *   handoff   T threads each keep a table of live blocks (10-1000 B), free a
 *             random one and allocate another; every so often a thread hands
 *             its table to a new thread, which frees what the old one allocated
 *   handoff5k the same with sizes 5-5000 B
 *   prod64    one producer allocates 64 B blocks, T-1 consumers free them
 *   pool      T threads free and refill slices of a shared pool of mixed
 *             small objects, in bursts of ~2000 under the slice's lock
 *   linked    T threads build linked lists and trees of small nodes and drop
 *             them in another order than they were built
 *   bignum    single thread, arbitrary-precision arithmetic: short-lived
 *             limb arrays of growing sizes
 *   bigchurn  single thread, blocks of 5-25 MiB, each written and freed,
 *             four live at a time
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
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

/* This process's peak RSS in KiB: VmHWM, the high-water mark of its own
 * address space.  Not getrusage's ru_maxrss: Linux carries that across
 * execve, so it reports the larger of the workload and whatever exec'd it
 * (run.sh's `timeout`, itself running with the allocator preloaded), which
 * hid the workload behind timeout's own footprint for the small ones. */
static long peak_rss_kib(void) {
  char line[256];
  long kib = -1;
  FILE *f = fopen("/proc/self/status", "r");
  while (f != NULL && fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "VmHWM: %ld", &kib) == 1) break;
  if (f != NULL) fclose(f);
  if (kib < 0) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    kib = ru.ru_maxrss;
  }
  return kib;
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

/* ---- handoff: tables of live blocks passed to new threads ------------------ */
typedef struct handoff {
  void **table;
  int gen;                     /* how many threads this table has seen */
  uint64_t seed;
  size_t lo, span;             /* sizes lo .. lo + span - 1 */
} handoff_t;
enum { HO_LIVE = 4000, HO_OPS = 50000, HO_GENS = 10 };

static void *handoff_worker(void *arg) {
  handoff_t *t = arg;
  uint64_t sum = 0;
  for (long i = 0; i < HO_OPS; i++) {
    unsigned k = (unsigned)(rnd(&t->seed) % HO_LIVE);
    if (t->table[k]) sum += *(unsigned char *)t->table[k];
    free(t->table[k]);
    size_t n = t->lo + rnd(&t->seed) % t->span;
    unsigned char *p = malloc(n);
    p[0] = (unsigned char)n;
    t->table[k] = p;
  }
  checksum += sum;
  if (++t->gen < HO_GENS) { /* hand the table over: the next thread frees these */
    pthread_t next;
    pthread_create(&next, NULL, handoff_worker, t);
    pthread_detach(next);
  } else {
    for (int k = 0; k < HO_LIVE; k++) free(t->table[k]);
    free(t->table);
    __atomic_store_n(&t->table, NULL, __ATOMIC_RELEASE);
  }
  return NULL;
}

static void handoff(size_t lo, size_t hi) {
  handoff_t t[32];
  for (int i = 0; i < nthreads; i++) {
    t[i] = (handoff_t){ calloc(HO_LIVE, sizeof(void *)), 0, 77 + (uint64_t)i, lo, hi - lo + 1 };
    pthread_t th;
    pthread_create(&th, NULL, handoff_worker, &t[i]);
    pthread_detach(th);
  }
  for (;;) { /* the last generation frees the table */
    int done = 1;
    for (int i = 0; i < nthreads; i++)
      if (__atomic_load_n(&t[i].table, __ATOMIC_ACQUIRE) != NULL) done = 0;
    if (done) break;
    struct timespec ts = { 0, 1000000 };
    nanosleep(&ts, NULL);
  }
}

/* ---- prod64: one producer, T-1 consumers, 64 B blocks ---------------------- */
#define P64_ITEMS 3000000
static void *prod64_consumer(void *arg) {
  ring_t *r = &rings[(intptr_t)arg];
  uint64_t sum = 0;
  for (;;) {
    uint64_t tail = r->tail;
    while (tail == atomic_load_explicit(&r->head, memory_order_acquire)) sched_yield();
    unsigned char *p = r->slot[tail % 4096];
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    if (p == NULL) break; /* the end */
    sum += p[0];
    free(p);
  }
  checksum += sum;
  return NULL;
}

static void prod64(void) {
  int nc = nthreads - 1;
  pthread_t t[32];
  for (int i = 0; i < nc; i++) pthread_create(&t[i], NULL, prod64_consumer, (void *)(intptr_t)i);
  for (uint64_t i = 0; i < P64_ITEMS + (uint64_t)nc; i++) {
    ring_t *r = &rings[i % (uint64_t)nc];
    unsigned char *p = NULL;
    if (i < P64_ITEMS) {
      p = malloc(64);
      p[0] = (unsigned char)i;
    }
    uint64_t head = r->head;
    while (head - atomic_load_explicit(&r->tail, memory_order_acquire) >= 4096) sched_yield();
    r->slot[head % 4096] = p;
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
  }
  for (int i = 0; i < nc; i++) pthread_join(t[i], NULL);
}

/* ---- pool: a shared pool refilled in bursts ------------------------------- */
enum { POOL_SLICES = 64, POOL_SLICE = 2048, POOL_BURSTS = 150 };
typedef struct pool_slice {
  pthread_mutex_t lock;
  void *obj[POOL_SLICE];
} pool_slice_t;
static pool_slice_t pool_slices[POOL_SLICES];

static void *pool_worker(void *arg) {
  uint64_t s = 500 + (uint64_t)(intptr_t)arg, sum = 0;
  for (int b = 0; b < POOL_BURSTS; b++) {
    pool_slice_t *sl = &pool_slices[rnd(&s) % POOL_SLICES];
    pthread_mutex_lock(&sl->lock);
    for (int i = 0; i < POOL_SLICE; i++) {
      free(sl->obj[i]); /* whoever allocated it */
      uint64_t r = rnd(&s) % 100;
      size_t n = r < 70 ? 8 + rnd(&s) % 120 : r < 95 ? 128 + rnd(&s) % 384 : 512 + rnd(&s) % 3584;
      unsigned char *p = malloc(n);
      p[0] = (unsigned char)n;
      sum += p[0]; /* deterministic: the burst's own blocks */
      sl->obj[i] = p;
    }
    pthread_mutex_unlock(&sl->lock);
  }
  checksum += sum;
  return NULL;
}

static void pool(void) {
  for (int i = 0; i < POOL_SLICES; i++) pthread_mutex_init(&pool_slices[i].lock, NULL);
  run_threads(pool_worker, nthreads);
  for (int i = 0; i < POOL_SLICES; i++)
    for (int j = 0; j < POOL_SLICE; j++) free(pool_slices[i].obj[j]);
}

/* ---- linked: build and drop lists and trees -------------------------------- */
typedef struct node {
  struct node *next, *left, *right;
  uint64_t key;
} node_t;

static node_t *tree_insert(node_t *t, node_t *n) {
  node_t **at = &t;
  while (*at) at = n->key < (*at)->key ? &(*at)->left : &(*at)->right;
  *at = n;
  return t;
}

static void tree_drop(node_t *t, uint64_t *sum) { /* post-order: not the build order */
  while (t) {
    tree_drop(t->right, sum);
    node_t *l = t->left;
    *sum += t->key & 0xff;
    free(t);
    t = l;
  }
}

static void *linked_worker(void *arg) {
  uint64_t s = 900 + (uint64_t)(intptr_t)arg, sum = 0;
  for (int round = 0; round < 5; round++) {
    int n = 20000 + (int)(rnd(&s) % 40000);
    node_t *list = NULL, *tree = NULL;
    for (int i = 0; i < n; i++) {
      size_t extra = rnd(&s) % 96;   /* nodes of 32..127 B */
      node_t *x = malloc(sizeof(node_t) + extra);
      x->key = rnd(&s);
      x->left = x->right = NULL;
      if (x->key & 1) {
        x->next = list;
        list = x;
      } else {
        tree = tree_insert(tree, x);
      }
    }
    /* the list from its middle outwards: every other node, then the rest */
    node_t *keep = NULL;
    for (node_t *x = list, *nx; x; x = nx) {
      nx = x->next;
      if (x->key & 2) {
        sum += x->key & 0xff;
        free(x);
      } else {
        x->next = keep;
        keep = x;
      }
    }
    tree_drop(tree, &sum);
    for (node_t *x = keep, *nx; x; x = nx) {
      nx = x->next;
      sum += x->key & 0xff;
      free(x);
    }
  }
  checksum += sum;
  return NULL;
}

/* ---- bignum: arbitrary-precision arithmetic ------------------------------- */
typedef struct big {
  size_t n;          /* limbs in use */
  uint32_t limb[];   /* little-endian base 2^32 */
} big_t;

static big_t *big_new(size_t n) {
  big_t *b = malloc(sizeof(big_t) + n * sizeof(uint32_t));
  b->n = n;
  return b;
}

static big_t *big_add(const big_t *a, const big_t *b) {
  if (a->n < b->n) { const big_t *t = a; a = b; b = t; }
  big_t *r = big_new(a->n + 1);
  uint64_t c = 0;
  for (size_t i = 0; i < a->n; i++) {
    c += (uint64_t)a->limb[i] + (i < b->n ? b->limb[i] : 0);
    r->limb[i] = (uint32_t)c;
    c >>= 32;
  }
  r->limb[a->n] = (uint32_t)c;
  if (c == 0) r->n--;
  return r;
}

static big_t *big_mul_small(const big_t *a, uint32_t m) {
  big_t *r = big_new(a->n + 1);
  uint64_t c = 0;
  for (size_t i = 0; i < a->n; i++) {
    c += (uint64_t)a->limb[i] * m;
    r->limb[i] = (uint32_t)c;
    c >>= 32;
  }
  r->limb[a->n] = (uint32_t)c;
  if (c == 0) r->n--;
  return r;
}

static void bignum(void) {
  uint64_t s = 5, sum = 0;
  for (int round = 0; round < 2500; round++) {
    /* a Fibonacci-like recurrence with a multiplier: every step allocates
     * temporaries and frees the operands, sizes grow to ~400 limbs */
    big_t *a = big_new(1), *b = big_new(1);
    a->limb[0] = 1;
    b->limb[0] = (uint32_t)(rnd(&s) | 1);
    int steps = 200 + (int)(rnd(&s) % 800);
    for (int i = 0; i < steps; i++) {
      big_t *t = big_mul_small(b, (uint32_t)(3 + rnd(&s) % 5));
      big_t *u = big_add(a, t);
      free(t);
      free(a);
      a = b;
      b = u;
      if (b->n > 400) { /* keep the numbers bounded: drop the low half */
        big_t *h = big_new(b->n / 2);
        memcpy(h->limb, b->limb + b->n - h->n, h->n * sizeof(uint32_t));
        free(b);
        b = h;
      }
    }
    sum += b->limb[0] + a->n;
    free(a);
    free(b);
  }
  checksum += sum;
}

/* ---- bigchurn: big blocks written and freed -------------------------------- */
static void bigchurn(void) {
  enum { LIVE = 4, ITERS = 60 };
  unsigned char *live[LIVE] = {0};
  size_t len[LIVE] = {0};
  uint64_t s = 17, sum = 0;
  for (int i = 0; i < ITERS; i++) {
    int k = i % LIVE;
    if (live[k]) sum += live[k][len[k] / 2];
    free(live[k]);
    len[k] = ((size_t)5 << 20) + rnd(&s) % ((size_t)20 << 20);
    live[k] = malloc(len[k]);
    memset(live[k], i & 0xff, len[k]);
  }
  for (int k = 0; k < LIVE; k++) free(live[k]);
  checksum += sum;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: lofbench churn|server|prodcons|realloc|longlived|sparse|handoff|handoff5k|prod64|pool|linked|bignum|bigchurn [threads]\n");
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
  else if (!strcmp(w, "handoff")) handoff(10, 1000);
  else if (!strcmp(w, "handoff5k")) handoff(5, 5000);
  else if (!strcmp(w, "prod64")) prod64();
  else if (!strcmp(w, "pool")) pool();
  else if (!strcmp(w, "linked")) run_threads(linked_worker, nthreads);
  else if (!strcmp(w, "bignum")) bignum();
  else if (!strcmp(w, "bigchurn")) bigchurn();
  else {
    fprintf(stderr, "lofbench: unknown workload %s\n", w);
    return 2;
  }
  double t1 = now();
  printf("%s %.3f %ld %llu\n", w, t1 - t0, peak_rss_kib(), (unsigned long long)checksum);
  return 0;
}
