/*
 * fork.c -- fork while other threads hold heaps and are allocating: the
 * child allocates, frees (its own blocks and blocks inherited from the other
 * threads), passes lof_check, and exits cleanly; its heap is lock-on-fault
 * again (the region layer re-locks it after fork).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lofalloc.h"
#include "smaps.h"

#define NT 4
static _Atomic int stop;
static void *shared[NT][64];

static void *busy(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t s = 99 + (uint64_t)id;
  void *mine[256] = {0};
  while (!stop) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    unsigned k = (unsigned)(s >> 33) % 256;
    lof_free(mine[k]);
    size_t n = 1 + (s >> 20) % 70000;
    mine[k] = lof_malloc(n);
    memset(mine[k], id, n < 128 ? n : 128);
  }
  for (int k = 0; k < 256; k++) lof_free(mine[k]);
  return NULL;
}

static int child_work(void) {
  /* the child's only thread allocates at once, in every size range */
  void *p[300];
  for (int i = 0; i < 300; i++) {
    size_t n = (size_t)(i % 3 == 0 ? 24 : i % 3 == 1 ? 30000 : 5u << 20);
    p[i] = lof_malloc(n);
    if (p[i] == NULL) return 10;
    memset(p[i], 0x77, n < 4096 ? n : 4096);
  }
  if (!smaps_has_flags(p[0], "lo lf")) return 11; /* re-locked in the child */
  for (int i = 0; i < 300; i++) lof_free(p[i]);
  /* blocks the parent's other threads allocated before the fork */
  for (int t = 0; t < NT; t++)
    for (int k = 0; k < 64; k++) lof_free(shared[t][k]);
  if (lof_check() != 0) return 12;
  lof_purge();
  return 0;
}

static void test_fork_with_busy_threads(void **state) {
  (void)state;
  pthread_t t[NT];
  for (int i = 0; i < NT; i++)
    for (int k = 0; k < 64; k++) shared[i][k] = lof_malloc((size_t)(k + 1) * 40);
  for (int i = 0; i < NT; i++) assert_int_equal(pthread_create(&t[i], NULL, busy, (void *)(intptr_t)i), 0);
  for (int round = 0; round < 20; round++) {
    usleep(2000);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(child_work());
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
  }
  stop = 1;
  for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < NT; i++)
    for (int k = 0; k < 64; k++) lof_free(shared[i][k]);
  assert_int_equal(lof_check(), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_fork_with_busy_threads)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
