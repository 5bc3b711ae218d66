/*
 * soak_mix.c -- the soak's own workload: a mixed multi-threaded program on
 * lofalloc (lof_* names, so it runs the same with or without the override).
 *
 *   soak_mix SECONDS CSV [THREADS]
 *
 * THREADS workers (default 3) keep a table of 256 live blocks each, replace
 * random slots with malloc, calloc, realloc or memalign, fill every block
 * with a pattern drawn from its slot and verify it before freeing; a quarter
 * of the frees hand the block to the next worker (cross-thread free).  Each
 * slot draws its sizes from a band of its own (slot_band): per table, 2 slots
 * of 2-8 MiB (large and huge blocks), 24 of 16 KiB-1 MiB, 77 of 512 B-17 KiB
 * and 153 of 16-528 B.  So the live set is stationary -- about 70 MB over 3
 * threads, give or take a few MB -- and the soak judges the allocator, not
 * the luck of the draw.  (The first 1 h soak drew every size from one
 * distribution: the number of live 2-8 MiB blocks wandered, and with it the
 * live bytes, 39-108 MB, which made "RSS stays flat" a test of the
 * workload.)  Each worker paces itself: 16 replacements every 100 ms (160/s;
 * about what a worker reached unpaced on this VM at load 11),
 * so the bytes freed per second -- and what the 1 s decay keeps resident of
 * them -- do not follow the machine's load; the CSV's ops column shows the
 * rate reached.  Every 2 s the main
 * thread forks a child that verifies a sample of the parent's blocks
 * (copy-on-write), allocates and frees on its own and exits 0.  Every 10 s
 * it appends a line to CSV:
 *   t_s,rss_kb,locked_resident_kb,locked_range_kb,vmlck_kb,allocated_kb,heap_vmas,children,errors,live_kb,committed_kb,ops
 * where rss/locked_resident/allocated/committed are the heap's (lof_stats_get;
 * allocated counts usable sizes), vmlck is the process's VmLck and live is
 * what the workload holds: the bytes it asked for and has not freed; ops
 * counts the replacements so far.  Exits 0 when no block was ever found corrupted, every
 * fork child exited 0 and lof_check() stayed 0; otherwise 1.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lofalloc.h"

#define SLOTS 256
#define MAXT 8

typedef struct block {
  unsigned char *p;
  size_t n;
  unsigned seed;
} block_t;

static block_t table[MAXT][SLOTS];
static pthread_mutex_t table_lock[MAXT];
static _Atomic(void *) handoff[MAXT];
static atomic_int stop;
static atomic_long errors;
static _Atomic(int64_t) live_bytes; /* requested and not yet freed, handoffs included */
static atomic_long ops;              /* slot replacements done */
#define BATCH 16                     /* replacements a worker does per period */
#define PERIOD_NS 100000000L         /* 100 ms */
static int nthreads = 3;

static uint32_t rnd(uint64_t *s) {
  *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
  return (uint32_t)(*s >> 11);
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
  /* the first, last and every 4096th byte carry the pattern: cheap on huge blocks */
  for (size_t i = 0; i < n; i += (n > 65536 ? 4096 : 1)) p[i] = (unsigned char)(seed + i);
  if (n) p[n - 1] = (unsigned char)(seed + n - 1);
}

static int verify(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i += (n > 65536 ? 4096 : 1))
    if (p[i] != (unsigned char)(seed + i)) return -1;
  if (n && p[n - 1] != (unsigned char)(seed + n - 1)) return -1;
  return 0;
}

/* The size band of a slot: a fixed number of slots per band keeps the live
 * set stationary (see the top of the file). */
static size_t slot_size(int slot, uint64_t *s) {
  if (slot < 2) return (2u << 20) + rnd(s) % (6u << 20);
  if (slot < 26) return 16384 + rnd(s) % (1u << 20);
  if (slot < 103) return 512 + rnd(s) % 16384;
  return 16 + rnd(s) % 512;
}

/* A block handed to another worker carries its requested size in its first
 * bytes (every block is at least 16), so whoever frees it can count it. */
static void free_handed(void *p) {
  size_t n;
  memcpy(&n, p, sizeof n);
  atomic_fetch_sub(&live_bytes, (int64_t)n);
  lof_free(p);
}

/* Sleep until the next period; a worker that fell behind starts afresh
 * from now rather than catching up in a burst. */
static void pace(struct timespec *next) {
  struct timespec now;
  next->tv_nsec += PERIOD_NS;
  if (next->tv_nsec >= 1000000000L) {
    next->tv_sec++;
    next->tv_nsec -= 1000000000L;
  }
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (now.tv_sec > next->tv_sec || (now.tv_sec == next->tv_sec && now.tv_nsec > next->tv_nsec))
    *next = now;
  else
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL);
}

static void *worker(void *arg) {
  int me = (int)(intptr_t)arg;
  uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(me + 1);
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  while (!atomic_load(&stop)) {
    void *h = atomic_exchange(&handoff[me], NULL);
    if (h) free_handed(h);
    pthread_mutex_lock(&table_lock[me]);
    for (int k = 0; k < BATCH; k++) {
      int slot = (int)(rnd(&s) % SLOTS);
      block_t *b = &table[me][slot];
      if (b->p) {
        if (verify(b->p, b->n, b->seed)) atomic_fetch_add(&errors, 1);
        if (rnd(&s) % 4 == 0) {
          memcpy(b->p, &b->n, sizeof b->n);
          void *old = atomic_exchange(&handoff[(me + 1) % nthreads], b->p);
          if (old) free_handed(old);
        } else {
          atomic_fetch_sub(&live_bytes, (int64_t)b->n);
          lof_free(b->p);
        }
        b->p = NULL;
      }
      size_t n = slot_size(slot, &s);
      unsigned seed = rnd(&s);
      switch (rnd(&s) % 4) {
      case 0: b->p = lof_malloc(n); break;
      case 1:
        b->p = lof_calloc(1, n);
        if (b->p && (b->p[0] || b->p[n - 1])) atomic_fetch_add(&errors, 1);
        break;
      case 2: {
        unsigned char *q = lof_malloc(n / 2 + 1);
        if (q) { fill(q, n / 2 + 1, seed); }
        b->p = lof_realloc(q, n);
        if (b->p && verify(b->p, n / 2 + 1, seed)) atomic_fetch_add(&errors, 1);
        break;
      }
      default: b->p = lof_memalign((size_t)64 << (rnd(&s) % 7), n); break;
      }
      if (!b->p) continue; /* an unlocked-policy refusal: not an error by itself */
      b->n = n;
      b->seed = seed;
      atomic_fetch_add(&live_bytes, (int64_t)n);
      fill(b->p, n, seed);
    }
    pthread_mutex_unlock(&table_lock[me]);
    atomic_fetch_add(&ops, BATCH);
    pace(&next);
  }
  return NULL;
}

static int child_check(void) {
  int bad = 0;
  for (int t = 0; t < nthreads; t++)
    for (int i = 0; i < SLOTS; i += 7)
      if (table[t][i].p && verify(table[t][i].p, table[t][i].n, table[t][i].seed)) bad++;
  void *v[256];
  for (int i = 0; i < 256; i++) {
    v[i] = lof_malloc((size_t)16 << (i % 14));
    if (v[i]) memset(v[i], i, (size_t)16 << (i % 14));
  }
  for (int i = 0; i < 256; i++) lof_free(v[i]);
  if (lof_check() != 0) bad++;
  return bad ? 1 : 0;
}

static long status_kb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  size_t kl = strlen(key);
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, key, kl)) { v = atol(line + kl); break; }
  fclose(f);
  return v;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: %s SECONDS CSV [THREADS]\n", argv[0]); return 2; }
  long secs = atol(argv[1]);
  FILE *csv = fopen(argv[2], "w");
  if (!csv) { perror(argv[2]); return 2; }
  if (argc > 3) nthreads = atoi(argv[3]);
  if (nthreads < 1 || nthreads > MAXT) nthreads = 3;
  fprintf(csv, "t_s,rss_kb,locked_resident_kb,locked_range_kb,vmlck_kb,allocated_kb,heap_vmas,children,errors,live_kb,committed_kb,ops\n");
  fflush(csv);
  pthread_t th[MAXT];
  /* block every thread's table while a fork is taken, so a child sees whole blocks */
  for (int t = 0; t < nthreads; t++) pthread_mutex_init(&table_lock[t], NULL);
  for (int t = 0; t < nthreads; t++) pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long children = 0, next_sample = 0, next_fork = 2;
  int check_failed = 0;
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    long el = now.tv_sec - t0.tv_sec;
    if (el >= next_fork) {
      next_fork = el + 2;
      for (int t = 0; t < nthreads; t++) pthread_mutex_lock(&table_lock[t]);
      pid_t pid = fork();
      if (pid == 0) _exit(child_check());
      for (int t = nthreads - 1; t >= 0; t--) pthread_mutex_unlock(&table_lock[t]);
      int st = 0;
      if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        atomic_fetch_add(&errors, 1);
      children++;
    }
    if (el >= next_sample) {
      next_sample += 10;
      lof_stats_t st;
      memset(&st, 0, sizeof st);
      lof_stats_get(&st, sizeof st);
      fprintf(csv, "%ld,%llu,%llu,%llu,%ld,%llu,%llu,%ld,%ld,%lld,%llu,%ld\n", el,
              (unsigned long long)st.resident / 1024, (unsigned long long)st.locked_resident / 1024,
              (unsigned long long)st.locked_range / 1024, status_kb("VmLck:"),
              (unsigned long long)st.allocated / 1024, (unsigned long long)st.heap_vmas, children,
              atomic_load(&errors), (long long)(atomic_load(&live_bytes) / 1024),
              (unsigned long long)st.committed / 1024, atomic_load(&ops));
      fflush(csv);
    }
    if (el >= secs) break;
    usleep(100000);
  }
  atomic_store(&stop, 1);
  for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
  for (int t = 0; t < nthreads; t++) {
    void *h = atomic_exchange(&handoff[t], NULL);
    if (h) free_handed(h);
    for (int i = 0; i < SLOTS; i++) {
      if (table[t][i].p && verify(table[t][i].p, table[t][i].n, table[t][i].seed))
        atomic_fetch_add(&errors, 1);
      lof_free(table[t][i].p);
    }
  }
  if (lof_check() != 0) check_failed = 1;
  long e = atomic_load(&errors);
  printf("soak_mix: %lds, %d threads, %ld fork children, %ld errors, lof_check %s\n", secs,
         nthreads, children, e, check_failed ? "FAILED" : "0");
  fclose(csv);
  return (e || check_failed) ? 1 : 0;
}
