/*
 * misuse.c -- detectable misuse aborts with a message instead of corrupting
 * the heap: double free (small by the owner or by another thread, large,
 * huge), free of a pointer
 * inside a block, free of a block boundary never handed out, free, realloc
 * and malloc_usable_size of a pointer that never came from lofalloc.  Each
 * case runs in a child (run_in_child) and must die by SIGABRT with the
 * reason on stderr; where the child can name the pointer (it prints
 * "# pointer %p" first) the whole message, pointer included, must match.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
/* Tell the parent which pointer the message must name. */
static void name_pointer(const void *p) { fprintf(stderr, "# pointer %p\n", p); }

static int large_double(void *arg) {
  (void)arg;
  void *p = lof_malloc(100000);
  name_pointer(p);
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
static char notheap[64]; /* .bss: in no 4 MiB unit of the heap, no huge block */
static int foreign(void *arg) {
  (void)arg;
  name_pointer(notheap + 16);
  lof_free(notheap + 16);
  return 0;
}
static int foreign_realloc(void *arg) {
  (void)arg;
  name_pointer(notheap + 16);
  void *volatile q = lof_realloc(notheap + 16, 100);
  (void)q;
  return 0;
}
static int foreign_usable_size(void *arg) {
  (void)arg;
  name_pointer(notheap + 16);
  return (int)lof_malloc_usable_size(notheap + 16);
}

static void expect_abort(int (*fn)(void *), const char *what) {
  char err[4096];
  int st = run_in_child(fn, NULL, err, sizeof(err));
  if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
    fail_msg("%s: child did not abort (status %#x), stderr: %s", what, st, err);
  if (strstr(err, what) == NULL) fail_msg("expected \"%s\" on stderr, got: %s", what, err);
}

/* As expect_abort, and the message is exactly "lofalloc: fatal: " + fmt
 * with the pointer the child named. */
static void expect_abort_naming(int (*fn)(void *), const char *fmt) {
  char err[4096], want[256];
  void *p = NULL;
  int st = run_in_child(fn, NULL, err, sizeof(err));
  if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
    fail_msg("%s: child did not abort (status %#x), stderr: %s", fmt, st, err);
  const char *at = strstr(err, "# pointer ");
  if (at == NULL || sscanf(at, "# pointer %p", &p) != 1) fail_msg("no pointer named: %s", err);
  snprintf(want, sizeof want, "\nlofalloc: fatal: ");
  size_t n = strlen(want);
  snprintf(want + n, sizeof want - n, fmt, p);
  strncat(want, "\n", sizeof want - strlen(want) - 1);
  if (strstr(err, want) == NULL) fail_msg("expected the line \"%s\" on stderr, got: %s", want + 1, err);
}

static void test_small_double_free(void **s) { (void)s; expect_abort(small_double, "double free"); }
static void test_small_double_free_remote(void **s) {
  (void)s;
  expect_abort(small_double_remote, "double free");
  expect_abort(small_double_remote_twice, "double free");
}
static void test_large_double_free(void **s) {
  (void)s;
  expect_abort_naming(large_double, "free(): double free or invalid pointer %p");
}
static void test_huge_double_free(void **s) { (void)s; expect_abort(huge_double, "invalid pointer"); }
static void test_interior_pointer(void **s) {
  (void)s;
  expect_abort(interior, "invalid pointer");
  expect_abort(interior_remote, "not the start of a block"); /* freed by another thread */
}
static void test_never_allocated(void **s) { (void)s; expect_abort(never_allocated, "never allocated"); }
static void test_large_interior(void **s) { (void)s; expect_abort(large_interior, "invalid pointer"); }
static void test_foreign_pointer(void **s) {
  (void)s;
  expect_abort_naming(foreign, "free(): invalid pointer %p");
  expect_abort_naming(foreign_realloc, "realloc(): invalid pointer %p");
  expect_abort_naming(foreign_usable_size, "malloc_usable_size(): invalid pointer %p");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_small_double_free), cmocka_unit_test(test_large_double_free),
    cmocka_unit_test(test_huge_double_free),  cmocka_unit_test(test_interior_pointer),
    cmocka_unit_test(test_large_interior),    cmocka_unit_test(test_foreign_pointer),
    cmocka_unit_test(test_never_allocated),   cmocka_unit_test(test_small_double_free_remote),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
