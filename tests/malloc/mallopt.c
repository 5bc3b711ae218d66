/*
 * mallopt.c -- lof_mallopt (mallopt when lofalloc replaces malloc): 1 for
 * every glibc parameter with a value glibc accepts, 0 for the rest, and the
 * effect of each parameter lofalloc has a concept for: M_TRIM_THRESHOLD -1
 * (nothing purged after the decay time), M_MMAP_THRESHOLD (the huge
 * threshold), M_MMAP_MAX 0 (no mapping per block; freed huge blocks kept),
 * M_PERTURB (fill bytes), M_ARENA_MAX (threads share arenas).  Each case
 * runs in a child process (mallopt changes the whole process).
 */
#include <malloc.h>
#include <pthread.h>
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
#include "sanitizer.h"
#include "smaps.h"

int lof_mallopt(int param, int value);
struct mallinfo2 lof_mallinfo2(void);

#define MiB ((size_t)1 << 20)

static char *self;

static void run(int (*fn)(void *)) {
  char err[4096];
  int st = run_in_child(fn, NULL, err, sizeof err);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("child status %#x: %s", st, err);
}

static int child_returns(void *arg) {
  (void)arg;
  static const struct { int param, value, want; } cases[] = {
    {M_TRIM_THRESHOLD, -1, 1}, {M_TRIM_THRESHOLD, 128 * 1024, 1}, {M_TOP_PAD, 64 * 1024, 1},
    {M_MMAP_THRESHOLD, 1 << 20, 1}, {M_MMAP_THRESHOLD, 64 << 20, 0}, {M_MMAP_THRESHOLD, -1, 0},
    {M_MMAP_MAX, 0, 1}, {M_MMAP_MAX, 65536, 1}, {M_CHECK_ACTION, 3, 1}, {M_PERTURB, 0, 1},
    {M_ARENA_TEST, 8, 1}, {M_ARENA_TEST, 0, 0}, {M_ARENA_MAX, 2, 1}, {M_ARENA_MAX, 0, 0},
    {M_MXFAST, 0, 1}, {M_MXFAST, 64, 1}, {M_MXFAST, 1000, 0}, {12345, 1, 0}, {-100, 1, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int got = lof_mallopt(cases[i].param, cases[i].value);
    if (got != cases[i].want) {
      fprintf(stderr, "mallopt(%d, %d) = %d, want %d\n", cases[i].param, cases[i].value, got,
              cases[i].want);
      return 1;
    }
  }
  return 0;
}

static void test_return_values(void **state) {
  (void)state;
  run(child_returns);
}

/* Re-executed with LOFALLOC_DECAY_MS=50: after M_TRIM_THRESHOLD -1 freed
 * pages outlive the decay time; a non-negative value brings decay back. */
static int child_trim(void) {
  enum { N = 64, SZ = 100000 };
  void *b[N];
  lof_stats_t s0, s1, s2;
  if (lof_mallopt(M_TRIM_THRESHOLD, -1) != 1) return 1;
  for (int i = 0; i < N; i++) {
    b[i] = lof_malloc(SZ);
    memset(b[i], 3, SZ);
  }
  for (int i = 0; i < N; i++) lof_free(b[i]);
  lof_stats_get(&s0, sizeof s0);
  usleep(200 * 1000);
  void *poke = lof_malloc(SZ); /* arena activity: the decay pass would run here */
  lof_free(poke);
  lof_stats_get(&s1, sizeof s1);
  if (lof_mallopt(M_TRIM_THRESHOLD, 128 * 1024) != 1) return 2;
  usleep(200 * 1000);
  poke = lof_malloc(SZ);
  lof_free(poke);
  usleep(100 * 1000);
  poke = lof_malloc(SZ);
  lof_free(poke);
  lof_stats_get(&s2, sizeof s2);
  printf("# M_TRIM_THRESHOLD -1: %llu bytes purged after 200 ms; back to 50 ms decay: %llu\n",
         (unsigned long long)(s1.purged - s0.purged), (unsigned long long)(s2.purged - s1.purged));
  if (s1.purged != s0.purged) return 3;
  if (s2.purged - s1.purged < (uint64_t)N * SZ / 2) return 4;
  return 0;
}

static void test_trim_threshold(void **state) {
  (void)state;
  char *argv[] = {self, NULL};
  char *env[] = {"LOFALLOC_DECAY_MS=50", "LOFTEST_MALLOPT_CHILD=trim", NULL};
  char err[4096];
  int st = run_with_env(argv, env, err, sizeof err);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("child status %#x: %s", st, err);
}

static size_t huge_blocks(void) { return lof_mallinfo2().hblks; }

static int child_mmap_threshold(void *arg) {
  (void)arg;
  size_t h0 = huge_blocks();
  void *a = lof_malloc(2 * MiB); /* below the 4 MiB default: a large block */
  if (huge_blocks() != h0) return 1;
  if (lof_mallopt(M_MMAP_THRESHOLD, 1 << 20) != 1) return 2;
  void *b = lof_malloc(2 * MiB); /* now huge: its own mapping */
  if (huge_blocks() != h0 + 1) return 3;
  smaps_vma_t v;
  if (smaps_vma_at(b, &v) != 0 || v.start != (uintptr_t)b) return 4;
  lof_free(a);
  lof_free(b);
  return 0;
}

static void test_mmap_threshold(void **state) {
  (void)state;
  run(child_mmap_threshold);
}

/* M_MMAP_MAX 0: what fits a segment goes there whatever the threshold, and
 * a freed huge block is kept (even through lof_purge) for the next one. */
static int child_mmap_max(void *arg) {
  (void)arg;
  if (lof_mallopt(M_MMAP_THRESHOLD, 1 << 20) != 1 || lof_mallopt(M_MMAP_MAX, 0) != 1) return 1;
  size_t h0 = huge_blocks();
  void *a = lof_malloc(3 * MiB);
  if (a == NULL || huge_blocks() != h0) return 2;
  char *b = lof_malloc(8 * MiB);
  if (b == NULL || huge_blocks() != h0 + 1) return 3;
  memset(b, 1, 8 * MiB);
  lof_free(b);
  lof_purge();
  smaps_vma_t v;
  if (smaps_vma_at(b, &v) != 0 || v.rss < 8 * MiB) return 4; /* still there, still resident */
  char *c = lof_malloc(8 * MiB);
  if (c != b) return 5;
  lof_free(c);
  lof_free(a);
  return lof_check() == 0 ? 0 : 6;
}

static void test_mmap_max(void **state) {
  (void)state;
  run(child_mmap_max);
}

static int child_perturb(void *arg) {
  (void)arg;
  if (lof_mallopt(M_PERTURB, 0xa5) != 1) return 1;
  static const size_t sizes[] = {100, 5000, 64 * 1024};
  for (size_t k = 0; k < 3; k++) {
    size_t sz = sizes[k];
    unsigned char *p = lof_malloc(sz);
    if (p == NULL) return 2;
    for (size_t i = 0; i < sz; i++)
      if (p[i] != 0x5a) return 3;
    lof_free(p);
    for (size_t i = 16; i < sz; i++) /* the allocator's own memory now; it stays mapped */
      if (((volatile unsigned char *)p)[i] != 0xa5) return 4;
  }
  if (lof_mallopt(M_PERTURB, 0) != 1) return 5;
  return lof_check() == 0 ? 0 : 6;
}

static void test_perturb(void **state) {
  (void)state;
  run(child_perturb);
}

/* Threads created one after another each keep a 64 KiB block: with
 * M_ARENA_MAX 1 they all come from one arena (one segment here); without
 * it the threads spread over the arenas (several segments). */
static void *thread_block(void *arg) {
  *(void **)arg = lof_malloc(64 * 1024);
  return NULL;
}

static int segments_used(void) {
  enum { T = 4 };
  void *blocks[T];
  for (int i = 0; i < T; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, thread_block, &blocks[i]) != 0) return -1;
    pthread_join(t, NULL);
    if (blocks[i] == NULL) return -1;
  }
  int distinct = 0;
  for (int i = 0; i < T; i++) {
    bool seen = false;
    for (int j = 0; j < i; j++)
      seen |= ((uintptr_t)blocks[i] >> 22) == ((uintptr_t)blocks[j] >> 22);
    distinct += !seen;
  }
  return distinct;
}

static int child_arena_max(void *arg) {
  (void)arg;
  if (lof_mallopt(M_ARENA_MAX, 1) != 1) return 1;
  int n = segments_used();
  printf("# M_ARENA_MAX 1: 4 threads' blocks in %d segment(s)\n", n);
  return n == 1 ? 0 : 2;
}

static int child_arena_default(void *arg) {
  (void)arg;
  int n = segments_used();
  printf("# no M_ARENA_MAX: 4 threads' blocks in %d segment(s)\n", n);
  return n > 1 ? 0 : 3;
}

static void test_arena_max(void **state) {
  (void)state;
  run(child_arena_max);
  run(child_arena_default);
}

int main(int argc, char **argv) {
  (void)argc;
  self = argv[0];
  if (access("/proc/self/exe", X_OK) == 0) self = "/proc/self/exe";
  const char *mode = getenv("LOFTEST_MALLOPT_CHILD");
  if (mode && strcmp(mode, "trim") == 0) return child_trim();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_return_values), cmocka_unit_test(test_trim_threshold),
    cmocka_unit_test(test_mmap_threshold), cmocka_unit_test(test_mmap_max),
    cmocka_unit_test(test_perturb),
    cmocka_unit_test(test_arena_max),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
