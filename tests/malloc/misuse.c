/*
 * misuse.c -- detectable misuse aborts with a message instead of corrupting
 * the heap: double free (small by the owner or by another thread, large,
 * huge), free of a pointer
 * inside a block, free of a block boundary never handed out, free of a
 * pointer that never came from lofalloc.  Each case
 * runs in a child (run_in_child) and must die by SIGABRT with "free():" and
 * the reason on stderr.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "lofalloc.h"
#include "proc.h"

static int small_double(void *arg) {
  (void)arg;
  void *p = lof_malloc(40);
  void *q = lof_malloc(40);
  lof_free(p);
  lof_free(q);
  lof_free(p);
  return 0;
}
/* The second free comes from a thread that does not own the block's span. */
static void *free_in_thread(void *p) {
  lof_free(p);
  return NULL;
}
static int small_double_remote(void *arg) {
  (void)arg;
  void *p = lof_malloc(40);
  pthread_t t;
  lof_free(p); /* the owner frees it ... */
  if (pthread_create(&t, NULL, free_in_thread, p) != 0) return 1;
  pthread_join(t, NULL); /* ... and another thread frees it again */
  return 0;
}
static int small_double_remote_twice(void *arg) {
  (void)arg;
  void *p = lof_malloc(40);
  pthread_t t;
  for (int i = 0; i < 2; i++) { /* two other threads free it, one after the other */
    if (pthread_create(&t, NULL, free_in_thread, p) != 0) return 1;
    pthread_join(t, NULL);
  }
  return 0;
}
static int interior_remote(void *arg) {
  (void)arg;
  char *p = lof_malloc(100);
  pthread_t t;
  if (pthread_create(&t, NULL, free_in_thread, p + 16) != 0) return 1;
  pthread_join(t, NULL);
  return 0;
}
static int large_double(void *arg) {
  (void)arg;
  void *p = lof_malloc(100000);
  lof_free(p);
  lof_free(p);
  return 0;
}
static int huge_double(void *arg) {
  (void)arg;
  void *p = lof_malloc(64u << 20);
  lof_free(p);
  lof_free(p);
  return 0;
}
static int interior(void *arg) {
  (void)arg;
  char *p = lof_malloc(100);
  lof_free(p + 16);
  return 0;
}
static int never_allocated(void *arg) {
  (void)arg;
  /* a block boundary of p's span past the blocks carved so far (a 48-byte
   * span holds 1365 blocks and carves one page, 85, at a time) */
  char *p = lof_malloc(40);
  lof_free(p + 48 * 1000);
  return 0;
}
static int large_interior(void *arg) {
  (void)arg;
  char *p = lof_malloc(200000);
  lof_free(p + 8192);
  return 0;
}
static int foreign(void *arg) {
  (void)arg;
  static char notheap[64];
  lof_free(notheap + 16);
  return 0;
}

static void expect_abort(int (*fn)(void *), const char *what) {
  char err[4096];
  int st = run_in_child(fn, NULL, err, sizeof(err));
  if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
    fail_msg("%s: child did not abort (status %#x), stderr: %s", what, st, err);
  if (strstr(err, what) == NULL) fail_msg("expected \"%s\" on stderr, got: %s", what, err);
}

static void test_small_double_free(void **s) { (void)s; expect_abort(small_double, "double free"); }
static void test_small_double_free_remote(void **s) {
  (void)s;
  expect_abort(small_double_remote, "double free");
  expect_abort(small_double_remote_twice, "double free");
}
static void test_large_double_free(void **s) { (void)s; expect_abort(large_double, "free(): "); }
static void test_huge_double_free(void **s) { (void)s; expect_abort(huge_double, "invalid pointer"); }
static void test_interior_pointer(void **s) {
  (void)s;
  expect_abort(interior, "invalid pointer");
  expect_abort(interior_remote, "not the start of a block"); /* freed by another thread */
}
static void test_never_allocated(void **s) { (void)s; expect_abort(never_allocated, "never allocated"); }
static void test_large_interior(void **s) { (void)s; expect_abort(large_interior, "invalid pointer"); }
static void test_foreign_pointer(void **s) { (void)s; expect_abort(foreign, "invalid pointer"); }

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_small_double_free), cmocka_unit_test(test_large_double_free),
    cmocka_unit_test(test_huge_double_free),  cmocka_unit_test(test_interior_pointer),
    cmocka_unit_test(test_large_interior),    cmocka_unit_test(test_foreign_pointer),
    cmocka_unit_test(test_never_allocated),   cmocka_unit_test(test_small_double_free_remote),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
