/*
 * decay.c -- freed page runs are purged by decay, without a syscall per
 * free and without malloc_trim: with LOFALLOC_DECAY_MS=50, 64 freed 100 KB
 * blocks stay resident right after the free (no purge per free) and are gone
 * from smaps Locked: once 50 ms have passed and the arena sees activity.
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
#include <unistd.h>

#include <cmocka.h>

#include "lofalloc.h"
#include "proc.h"
#include "smaps.h"

static char *self;

static int child(void) {
  enum { N = 64, SZ = 100000 };
  void *b[N];
  for (int i = 0; i < N; i++) {
    b[i] = lof_malloc(SZ);
    memset(b[i], 3, SZ);
  }
  lof_stats_t s0, s1, s2;
  lof_stats_get(&s0, sizeof(s0));
  uint64_t full = smaps_total_locked();
  for (int i = 0; i < N; i++) lof_free(b[i]);
  lof_stats_get(&s1, sizeof(s1));
  uint64_t after_free = smaps_total_locked();
  usleep(200 * 1000);
  void *poke = lof_malloc(SZ); /* arena activity runs the decay pass */
  lof_free(poke);
  lof_stats_get(&s2, sizeof(s2));
  uint64_t after_decay = smaps_total_locked();
  printf("# locked: %llu KiB in use, %llu KiB just after free (%llu purge calls), "
         "%llu KiB after decay (%llu purge calls)\n",
         (unsigned long long)full >> 10, (unsigned long long)after_free >> 10,
         (unsigned long long)(s1.purge_calls - s0.purge_calls), (unsigned long long)after_decay >> 10,
         (unsigned long long)(s2.purge_calls - s0.purge_calls));
  if (after_free + (uint64_t)N * SZ / 2 < full) return 1;       /* freed pages are kept for a while */
  if (s1.purge_calls - s0.purge_calls > 2) return 2;             /* not a syscall per free */
  if (after_decay + (uint64_t)N * SZ * 9 / 10 > full) return 3;  /* ... then given back */
  return lof_check() == 0 ? 0 : 4;
}

static void test_decay_purges(void **state) {
  (void)state;
  char *argv[] = {self, NULL};
  char *env[] = {"LOFALLOC_DECAY_MS=50", "LOFTEST_DECAY_CHILD=1", NULL};
  char err[4096];
  int st = run_with_env(argv, env, err, sizeof(err));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("decay child failed (status %#x): %s", st, err);
}

int main(int argc, char **argv) {
  (void)argc;
  self = argv[0];
  if (access("/proc/self/exe", X_OK) == 0) self = "/proc/self/exe";
  if (getenv("LOFTEST_DECAY_CHILD")) return child();
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_decay_purges)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
