/*
 * stats_api.c -- liblofalloc's exported statistics: lof_stats_get's
 * versioned copy-out and errors, the numbers it reads from the kernel, and
 * LOFALLOC_STATS=1 / LOFALLOC_VERBOSE=1 output of a program at exit.
 */
#include <errno.h>
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

static void test_errors(void **state) {
  (void)state;
  lof_stats_t st;
  errno = 0;
  assert_int_equal(lof_stats_get(NULL, sizeof st), -1);
  assert_int_equal(errno, EINVAL);
  errno = 0;
  assert_int_equal(lof_stats_get(&st, 4), -1);
  assert_int_equal(errno, EINVAL);
}

static void test_versioned_copy(void **state) {
  (void)state;
  /* An old caller that knows only the first fields gets only those. */
  unsigned char buf[sizeof(lof_stats_t) + 16];
  memset(buf, 0xee, sizeof buf);
  size_t old_size = offsetof(lof_stats_t, reserved);
  assert_int_equal(lof_stats_get((lof_stats_t *)buf, old_size), 0);
  lof_stats_t head;
  memcpy(&head, buf, old_size);
  assert_int_equal(head.version, LOF_STATS_VERSION);
  assert_int_equal(head.size, old_size);
  bool flag = kernel_has_map_lockonfault();
  assert_string_equal(head.backend_name, flag ? "MAP_LOCKONFAULT" : "mlock2");
  for (size_t i = old_size; i < sizeof buf; i++) assert_int_equal(buf[i], 0xee);
  lof_stats_t st;
  assert_int_equal(lof_stats_get(&st, sizeof st), 0);
  assert_int_equal(st.size, sizeof st);
  assert_int_equal(st.backend, flag ? LOF_BACKEND_MAP_LOCKONFAULT : LOF_BACKEND_MLOCK2);
  assert_string_equal(st.policy_name, "fallback");
}

static void test_heap_numbers(void **state) {
  (void)state;
  size_t len = 64 << 20;
  char *p = lof_malloc(len);
  assert_non_null(p);
  lof_stats_t a, b;
  assert_int_equal(lof_stats_get(&a, sizeof a), 0);
  memset(p, 1, 8 << 20);
  assert_int_equal(lof_stats_get(&b, sizeof b), 0);
  uint64_t grew = b.locked_resident - a.locked_resident;
  assert_in_range(grew, 8 << 20, (8 << 20) + (1 << 20));
  assert_true(b.locked_range >= len);
  assert_true(b.heap_vmas >= 1);
  assert_true(b.allocated >= len);
  lof_free(p);
}

/* This binary, run again with LOFALLOC_STATS=1 and LOFALLOC_VERBOSE=1, exits
 * at once: liblofalloc prints its backend at start and its stats at exit. */
static void test_stats_at_exit(void **state) {
  (void)state;
  char *argv[] = {"/proc/self/exe", "--exit-at-once", NULL};
  char *env[] = {"LOFALLOC_STATS=1", "LOFALLOC_VERBOSE=1", NULL};
  char err[8192];
  int status = run_with_env(argv, env, err, sizeof err);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_non_null(strstr(err, kernel_has_map_lockonfault()
                                  ? "lofalloc: backend MAP_LOCKONFAULT, policy fallback"
                                  : "lofalloc: backend mlock2, policy fallback"));
  assert_non_null(strstr(err, "lofalloc: locked_resident"));
  assert_non_null(strstr(err, "lofalloc: heap_vmas"));
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--exit-at-once") == 0) {
    free(malloc(100)); /* start the allocator: it reports itself */
    return 0;
  }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_errors),
    cmocka_unit_test(test_versioned_copy),
    cmocka_unit_test(test_heap_numbers),
    cmocka_unit_test(test_stats_at_exit),
  };
  return cmocka_run_group_tests_name("stats_api", tests, NULL, NULL);
}
