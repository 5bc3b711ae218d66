/*
 * misuse.c -- detectable misuse aborts with a message instead of corrupting
 * the heap: double free (small by the owner or by another thread, large,
 * huge), free of a pointer
 * inside a block (in every kind of size class), free of a block boundary
 * never carved and of a carved block never handed out, free, realloc
 * and malloc_usable_size of a pointer that never came from lofalloc.  These
 * are the checks that keep a misuse from corrupting the heap (a block twice
 * on a free list, overlapping blocks, a foreign pointer on a list): they are
 * on in every build, and this test runs in every build.  One diagnostic is
 * checked only where it exists, in --enable-debug builds (LOF_DEBUG): a
 * write to a freed block, noticed by the malloc that hands it out.  Each
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
/* A block of a fresh page carved with p but never handed out: a class this
 * process uses nowhere else (513..640 B), whose first malloc carves a page of
 * 6 blocks; p and q are its first two, so q + 640 is carved and free. */
static int carved_never_allocated(void *arg) {
  (void)arg;
  char *p = lof_malloc(600), *q = lof_malloc(600);
  if (q != p + 640 || ((uintptr_t)q & 4095) + 2 * 640 > 4096) return 2; /* not the layout assumed */
  lof_free(q + 640);
  return 0;
}
/* An interior pointer of each kind of class: 16 (free at +8), and classes
 * whose size is odd x 16, odd x 32 and a power of two, small and big. */
static const size_t interior_sizes[] = {16, 48, 80, 224, 448, 4096, 5120, 16384};
static int interior_of(void *arg) {
  size_t size = *(const size_t *)arg;
  char *p = lof_malloc(size);
  lof_free(p + (size == 16 ? 8 : 16));
  return 0;
}
#ifdef LOF_DEBUG
/* A write into a freed block's second word (its cookie), then the malloc
 * that hands the block out again. */
static int write_after_free(void *arg) {
  (void)arg;
  void **p = lof_malloc(40);
  lof_free(p);
  p[1] = p;
  void *volatile q = lof_malloc(40);
  (void)q;
  return 0;
}
#endif
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
/* carved, still on the free list: a second copy there would be handed out twice */
static void test_carved_never_allocated(void **s) { (void)s; expect_abort(carved_never_allocated, "double free"); }
static void test_interior_every_kind_of_class(void **s) {
  (void)s;
  for (size_t i = 0; i < sizeof interior_sizes / sizeof interior_sizes[0]; i++) {
    char err[4096];
    int st = run_in_child(interior_of, (void *)&interior_sizes[i], err, sizeof(err));
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT || strstr(err, "invalid pointer") == NULL)
      fail_msg("size %zu: interior free not reported (status %#x): %s", interior_sizes[i], st, err);
  }
}
#ifdef LOF_DEBUG /* a diagnostic of --enable-debug builds only */
static void test_write_after_free_debug(void **s) {
  (void)s;
  expect_abort(write_after_free, "written after it was freed");
}
#endif
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
    cmocka_unit_test(test_interior_every_kind_of_class),
    cmocka_unit_test(test_carved_never_allocated),
#ifdef LOF_DEBUG
    cmocka_unit_test(test_write_after_free_debug),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
