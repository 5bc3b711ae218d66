/*
 * rt_loop.c -- a real-time control loop on lofalloc: SCHED_FIFO and
 * mlockall(MCL_CURRENT) of the stack and code where permitted, lof_reserve()
 * of the heap, then a paced loop (one period every --period-us, --ops
 * malloc+free pairs per period, sizes 16 B..--max-size log-uniform, each
 * block written once per page) for --seconds after a one-second warm-up.
 * Prints the latency histogram of malloc and free, their percentiles, and
 * the page faults of the timed phase.
 *
 * The same source is the paced loop of `make bench-rt` (bench/rt.sh), built
 * there without liblofalloc so LD_PRELOAD picks the allocator: lof_reserve
 * is a weak reference, used when the running malloc has it; --mallopt applies
 * the glibc PREEMPT_RT recipe (M_TRIM_THRESHOLD -1, M_MMAP_MAX 0) and
 * --mlockall locks MCL_CURRENT|MCL_FUTURE as that recipe does.  --quantiles
 * FILE writes 1000 quantiles of each latency (for a CDF plot).
 */
#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

extern int lof_reserve(size_t bytes) __attribute__((weak));

typedef struct rt_opts {
  double seconds;
  long period_us, ops;
  size_t max_size, reserve_mib, slots;
  int cpu;
  bool mlockall_future, glibc_mallopt;
  const char *quantiles;
  const char *label;
} rt_opts_t;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static size_t rng_size(size_t max) {
  unsigned top = 63u - (unsigned)__builtin_clzll(max);
  unsigned k = 4 + (unsigned)(rng() % (top - 3));
  size_t lo = (size_t)1 << k, sz = lo + (size_t)(rng() % lo);
  return sz > max ? max : sz;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static uint32_t pct(const uint32_t *v, size_t n, double p) {
  size_t i = (size_t)(p / 100.0 * (double)(n - 1));
  return v[i];
}

static void report(const char *what, uint32_t *v, size_t n, FILE *q, char *row, size_t rowlen) {
  qsort(v, n, sizeof v[0], cmp_u32);
  size_t used = strlen(row);
  snprintf(row + used, rowlen - used, " %u %u %u %u %u", pct(v, n, 50), pct(v, n, 99),
           pct(v, n, 99.9), pct(v, n, 99.99), v[n - 1]);
  printf("%-6s n=%zu p50=%u p99=%u p99.9=%u p99.99=%u max=%u ns\n", what, n, pct(v, n, 50),
         pct(v, n, 99), pct(v, n, 99.9), pct(v, n, 99.99), v[n - 1]);
  /* log2 histogram */
  size_t bucket[33] = {0};
  for (size_t i = 0; i < n; i++) bucket[v[i] ? 32 - __builtin_clz(v[i]) : 0]++;
  for (int b = 0; b < 33; b++)
    if (bucket[b])
      printf("  %-6s < %10llu ns: %zu\n", what, (unsigned long long)1 << b, bucket[b]);
  if (q)
    for (int k = 0; k <= 1000; k++) {
      double p = k < 1000 ? k / 10.0 : 100.0;
      fprintf(q, "%s %.4f %u\n", what, p / 100.0, pct(v, n, p));
    }
}

static void usage(void) {
  fprintf(stderr, "usage: rt_loop [--seconds S] [--period-us US] [--ops N] [--max-size BYTES]\n"
                  "               [--reserve MIB] [--cpu N] [--mlockall] [--mallopt]\n"
                  "               [--quantiles FILE] [--label NAME]\n");
  exit(2);
}

static void parse(int argc, char **argv, rt_opts_t *o) {
  *o = (rt_opts_t){10, 1000, 100, 1 << 20, 64, 64, -1, false, false, NULL, "rt_loop"};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--mlockall")) { o->mlockall_future = true; continue; }
    if (!strcmp(a, "--mallopt")) { o->glibc_mallopt = true; continue; }
    if (v == NULL) usage();
    i++;
    if (!strcmp(a, "--seconds")) o->seconds = atof(v);
    else if (!strcmp(a, "--period-us")) o->period_us = atol(v);
    else if (!strcmp(a, "--ops")) o->ops = atol(v);
    else if (!strcmp(a, "--max-size")) o->max_size = (size_t)atol(v);
    else if (!strcmp(a, "--reserve")) o->reserve_mib = (size_t)atol(v);
    else if (!strcmp(a, "--cpu")) o->cpu = atoi(v);
    else if (!strcmp(a, "--quantiles")) o->quantiles = v;
    else if (!strcmp(a, "--label")) o->label = v;
    else usage();
  }
  if (o->seconds <= 0 || o->period_us <= 0 || o->ops <= 0 || o->max_size < 32) usage();
}

static void setup(const rt_opts_t *o) {
  if (o->cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o->cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) perror("rt_loop: sched_setaffinity");
  }
  struct sched_param sp = {.sched_priority = 80};
  if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0)
    fprintf(stderr, "rt_loop: SCHED_FIFO not permitted (%s): running SCHED_OTHER\n", strerror(errno));
  if (o->glibc_mallopt) {
    mallopt(M_TRIM_THRESHOLD, -1);
    mallopt(M_MMAP_MAX, 0);
  }
  int flags = MCL_CURRENT | (o->mlockall_future ? MCL_FUTURE : 0);
  if (mlockall(flags) != 0)
    fprintf(stderr, "rt_loop: mlockall not permitted (%s): stack and code unlocked\n", strerror(errno));
  if (o->reserve_mib && lof_reserve) {
    if (lof_reserve(o->reserve_mib << 20) != 0)
      fprintf(stderr, "rt_loop: lof_reserve(%zu MiB): %s\n", o->reserve_mib, strerror(errno));
  }
}

/* One period: ops random free + malloc pairs, timed one by one. */
static void period(const rt_opts_t *o, void **slot, uint32_t *tm, uint32_t *tf, size_t *n) {
  for (long i = 0; i < o->ops; i++) {
    size_t k = (size_t)(rng() % o->slots);
    uint64_t t0 = now_ns();
    free(slot[k]);
    uint64_t t1 = now_ns();
    size_t sz = rng_size(o->max_size);
    char *p = malloc(sz);
    uint64_t t2 = now_ns();
    if (p == NULL) {
      fprintf(stderr, "rt_loop: malloc(%zu) failed\n", sz);
      exit(1);
    }
    for (size_t off = 0; off < sz; off += 4096) p[off] = (char)i;
    slot[k] = p;
    if (tm) {
      tf[*n] = (uint32_t)(t1 - t0 > UINT32_MAX ? UINT32_MAX : t1 - t0);
      tm[*n] = (uint32_t)(t2 - t1 > UINT32_MAX ? UINT32_MAX : t2 - t1);
      (*n)++;
    }
  }
}

int main(int argc, char **argv) {
  rt_opts_t o;
  parse(argc, argv, &o);
  long periods = (long)(o.seconds * 1e6 / (double)o.period_us);
  size_t cap = (size_t)periods * (size_t)o.ops;
  uint32_t *tm = calloc(cap, sizeof *tm), *tf = calloc(cap, sizeof *tf);
  void **slot = calloc(o.slots, sizeof *slot);
  if (!tm || !tf || !slot) return 1;
  memset(tm, 0, cap * sizeof *tm);
  memset(tf, 0, cap * sizeof *tf);
  setup(&o);

  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  long warm = (long)(1e6 / (double)o.period_us);
  size_t n = 0;
  struct rusage r0, r1;
  long overruns = 0;
  for (long t = -warm; t < periods; t++) {
    if (t == 0) getrusage(RUSAGE_SELF, &r0);
    period(&o, slot, t >= 0 ? tm : NULL, tf, &n);
    next.tv_nsec += o.period_us * 1000;
    while (next.tv_nsec >= 1000000000) {
      next.tv_nsec -= 1000000000;
      next.tv_sec++;
    }
    struct timespec cur;
    clock_gettime(CLOCK_MONOTONIC, &cur);
    if (cur.tv_sec > next.tv_sec || (cur.tv_sec == next.tv_sec && cur.tv_nsec > next.tv_nsec))
      overruns++;
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
  getrusage(RUSAGE_SELF, &r1);
  long minflt = r1.ru_minflt - r0.ru_minflt, majflt = r1.ru_majflt - r0.ru_majflt;
  printf("%s: %ld periods of %ld us, %ld malloc+free each (16 B..%zu B), %ld overruns\n", o.label,
         periods, o.period_us, o.ops, o.max_size, overruns);
  printf("faults in the timed phase: %ld minor, %ld major\n", minflt, majflt);
  FILE *q = o.quantiles ? fopen(o.quantiles, "w") : NULL;
  char row[256];
  snprintf(row, sizeof row, "RESULT %s %ld %ld", o.label, minflt, majflt);
  report("malloc", tm, n, q, row, sizeof row);
  report("free", tf, n, q, row, sizeof row);
  if (q) fclose(q);
  printf("%s\n", row); /* label minflt majflt, malloc p50 p99 p99.9 p99.99 max, free the same */
  for (size_t k = 0; k < o.slots; k++) free(slot[k]);
  return 0;
}
