/*
 * decay.c -- freed page runs are purged by decay, after the decay time and
 * not before, without a syscall per free and without malloc_trim.
 *
 * With LOFALLOC_DECAY_MS=600, 32 freed 100 KB blocks must stay resident and
 * locked right after the free (no purge per free) and for as long as less
 * than 600 ms have passed since the first free, although the arena sees
 * activity every few ms (a decay pass may run every 301 ms: a library that
 * purged whatever is dirty at its next pass would purge them by ~301 ms).
 * Then, with the same activity, they must leave smaps Locked: (and Rss:)
 * once the period has passed.  Only samples taken after a pass must have run
 * (more than 302 ms after the free) and before any run can be 600 ms old
 * count as "before the decay time"; a scheduler stall that leaves none is
 * retried, and fails after three tries.
 * The test re-executes itself with the option in its environment (options
 * are read once, at the first malloc).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lofalloc.h"
#include "proc.h"
#include "smaps.h"

#define DECAY_MS 600
#define DECAY_ENV "LOFALLOC_DECAY_MS=600"

static char *self;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Arena activity: a large malloc and free run the arena's decay pass when
 * one is due.  The block is not touched (it reuses freed, still dirty pages
 * at the low end of the freed run, whose age it keeps: coalescing keeps the
 * oldest free time). */
static void poke(void) {
  void *volatile p = lof_malloc(100000);
  lof_free(p);
}

/* Returns 0 when the scenario ran and passed, a code > 0 on a failure and -1
 * when no sample fell inside the decisive window (to retry). */
static int scenario(int attempt) {
  enum { N = 32, SZ = 100000 }; /* 800 pages: one segment */
  const uint64_t freed_bytes = (uint64_t)N * 25 * 4096; /* 100000 B = 25 whole pages each */
  const uint64_t poke_bytes = 25 * 4096;
  void *b[N];
  for (int i = 0; i < N; i++) {
    b[i] = lof_malloc(SZ);
    if (b[i] == NULL) return 10;
    memset(b[i], 3, SZ);
  }
  lof_stats_t s0, s1, s2;
  lof_stats_get(&s0, sizeof(s0));
  uint64_t full = smaps_total_locked();
  uint64_t t0 = now_ms(); /* no run can be older than now - t0 */
  for (int i = 0; i < N; i++) lof_free(b[i]);
  lof_stats_get(&s1, sizeof(s1));
  uint64_t after_free = smaps_total_locked();

  /* Before the decay time: poke every 5 ms; a sample is decisive when the
   * poke started after any pass that was due had to run (302 ms) and the
   * reading ended before any run could be DECAY_MS old. */
  uint64_t early_min = UINT64_MAX;
  int decisive = 0;
  for (;;) {
    uint64_t start = now_ms();
    if (start - t0 + 5 >= DECAY_MS) break;
    poke();
    uint64_t locked = smaps_total_locked();
    uint64_t end = now_ms();
    if (start - t0 > DECAY_MS / 2 + 2 && end - t0 + 2 < DECAY_MS) {
      decisive++;
      if (locked < early_min) early_min = locked;
    }
    usleep(5000);
  }
  /* After it: the same activity until 2.5 periods have passed (passes run
   * at most every DECAY_MS / 2 + 1 ms, so two have run after the runs aged). */
  while (now_ms() - t0 < DECAY_MS * 5 / 2) {
    poke();
    usleep(5000);
  }
  poke();
  lof_stats_get(&s2, sizeof(s2));
  uint64_t after_decay = smaps_total_locked();
  printf("# attempt %d: locked %llu KiB in use, %llu KiB just after free (%llu purge calls), "
         "at least %llu KiB over %d samples at %d..%d ms, %llu KiB after %d ms (%llu purge calls)\n",
         attempt, (unsigned long long)full >> 10, (unsigned long long)after_free >> 10,
         (unsigned long long)(s1.purge_calls - s0.purge_calls),
         (unsigned long long)(early_min == UINT64_MAX ? 0 : early_min >> 10), decisive,
         DECAY_MS / 2 + 2, DECAY_MS - 2, (unsigned long long)after_decay >> 10, DECAY_MS * 5 / 2,
         (unsigned long long)(s2.purge_calls - s0.purge_calls));
  /* 64 KiB: pages the test's own stdio and cmocka may touch or release
   * between two readings. */
  const uint64_t slack = 64 << 10;
  if (after_free + slack < full) return 1;                 /* freed pages are kept for a while */
  if (s1.purge_calls - s0.purge_calls > 0) return 2;       /* no purge at free time */
  if (decisive == 0) return -1;
  if (early_min + slack < full) return 3;                  /* ... until the decay time */
  /* ... then every freed page goes, but those of the pokes' block: it
   * was carved from the dirty run before the pass that purged the rest,
   * and each poke frees it again, fresh. */
  if (after_decay + freed_bytes > full + slack + poke_bytes) return 4;
  return lof_check() == 0 ? 0 : 5;
}

static int child(void) {
  for (int attempt = 1; attempt <= 3; attempt++) {
    int rc = scenario(attempt);
    if (rc >= 0) return rc;
    lof_purge(); /* start the next attempt clean */
  }
  fprintf(stderr, "decay: no sample fell between %d and %d ms in 3 tries (machine too busy)\n",
          DECAY_MS / 2 + 2, DECAY_MS - 2);
  return 6;
}

static void test_decay_purges_after_the_decay_time(void **state) {
  (void)state;
  char *argv[] = {self, NULL};
  char *env[] = {DECAY_ENV, "LOFTEST_DECAY_CHILD=1", NULL};
  char err[4096];
  int st = run_with_env(argv, env, err, sizeof(err));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail_msg("decay child failed (status %#x: 1 purged at free, 2 purge calls at free, "
             "3 purged before the decay time, 4 not purged after it, 5 lof_check, "
             "6 no decisive sample): %s", st, err);
}

int main(int argc, char **argv) {
  (void)argc;
  self = argv[0];
  if (access("/proc/self/exe", X_OK) == 0) self = "/proc/self/exe";
  if (getenv("LOFTEST_DECAY_CHILD")) return child();
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_decay_purges_after_the_decay_time)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
