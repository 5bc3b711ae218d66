/*
 * options.c -- the options parser: size/bool parsing, reading
 * LOFALLOC_* from the environment, one warning + the default for a bad
 * value or an unknown name, and the frontend rule: the parser reads the
 * common rows and the registered frontend's, leaves the foreign names alone
 * and knows no other frontend's option (this test registers a table of its
 * own, as a frontend's constructor does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "options.h"
#include "proc.h"

/* The test's "frontend": two rows and one foreign name. */
static lof_option_t test_ms = LOF_OPTION_ROW("LOFALLOC_TEST_MS", LOF_OPTION_MS, 1000, NULL);
static lof_option_t test_size = LOF_OPTION_ROW("LOFALLOC_TEST_SIZE", LOF_OPTION_SIZE, 5, NULL);
static lof_option_t *const test_rows[] = {&test_ms, &test_size, NULL};
static const char *const test_foreign[] = {"LOFALLOC_TEST_ELSEWHERE", NULL};
static const lof_option_table_t test_table = {test_rows, test_foreign};

static void test_parse_size(void **state) {
  (void)state;
  int64_t v;
  assert_int_equal(lof__parse_size("0", &v), 0);
  assert_int_equal(v, 0);
  assert_int_equal(lof__parse_size("4096", &v), 0);
  assert_int_equal(v, 4096);
  assert_int_equal(lof__parse_size("8K", &v), 0);
  assert_int_equal(v, 8192);
  assert_int_equal(lof__parse_size("3m", &v), 0);
  assert_int_equal(v, 3 << 20);
  assert_int_equal(lof__parse_size("2GiB", &v), 0);
  assert_int_equal(v, (int64_t)2 << 30);
  assert_int_equal(lof__parse_size("1T", &v), 0);
  assert_int_equal(v, (int64_t)1 << 40);
  v = 77;
  assert_int_equal(lof__parse_size("", &v), -1);
  assert_int_equal(lof__parse_size("-1", &v), -1);
  assert_int_equal(lof__parse_size("12Q", &v), -1);
  assert_int_equal(lof__parse_size("1G ", &v), -1);
  assert_int_equal(lof__parse_size("99999999999999999999", &v), -1);
  assert_int_equal(lof__parse_size("9999999999T", &v), -1);
  assert_int_equal(v, 77);
}

static void test_parse_bool(void **state) {
  (void)state;
  const char *yes[] = {"1", "true", "YES", "on", "y"};
  const char *no[] = {"0", "false", "No", "OFF", "n"};
  int64_t v;
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(lof__parse_bool(yes[i], &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(lof__parse_bool(no[i], &v), 0);
    assert_int_equal(v, 0);
  }
  assert_int_equal(lof__parse_bool("maybe", &v), -1);
  assert_int_equal(lof__parse_bool("", &v), -1);
}

static void test_environment(void **state) {
  (void)state;
  setenv("LOFALLOC_POLICY", "strict", 1);
  setenv("LOFALLOC_MAX_LOCKED", "64M", 1);
  setenv("LOFALLOC_VERBOSE", "yes", 1);
  setenv("LOFALLOC_TEST_MS", "250", 1);
  lof__options_reload();
  assert_int_equal(lof__option(LOF_OPT_POLICY), LOF_POLICY_STRICT);
  assert_string_equal(lof__option_enum_name(LOF_OPT_POLICY), "strict");
  assert_int_equal(lof__option(LOF_OPT_MAX_LOCKED), 64 << 20);
  assert_int_equal(lof__option(LOF_OPT_VERBOSE), 1);
  assert_int_equal(lof__option(&test_ms), 250);
  unsetenv("LOFALLOC_POLICY");
  unsetenv("LOFALLOC_MAX_LOCKED");
  unsetenv("LOFALLOC_VERBOSE");
  unsetenv("LOFALLOC_TEST_MS");
  lof__options_reload();
  assert_int_equal(lof__option(LOF_OPT_POLICY), LOF_POLICY_FALLBACK); /* the default */
  assert_int_equal(lof__option(LOF_OPT_MAX_LOCKED), 0);
  assert_int_equal(lof__option(LOF_OPT_FORK_RELOCK), 1);
  assert_int_equal(lof__option(&test_ms), 1000);
}

/* Run fn in a child, which must exit 0, with its stderr in err; returns the
 * number of lines it printed. */
static int child_lines(int (*fn)(void *), char *err, size_t len) {
  int status = run_in_child(fn, NULL, err, len);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  int lines = 0;
  for (char *p = err; (p = strchr(p, '\n')); p++) lines++;
  return lines;
}

static int child_bad_values(void *arg) {
  (void)arg;
  setenv("LOFALLOC_POLICY", "lenient", 1);
  setenv("LOFALLOC_MAX_LOCKED", "lots", 1);
  setenv("LOFALLOC_NO_SUCH_OPTION", "1", 1);
  lof__options_reload();
  if (lof__option(LOF_OPT_POLICY) != LOF_POLICY_FALLBACK) return 1;
  if (lof__option(LOF_OPT_MAX_LOCKED) != 0) return 2;
  lof__option(LOF_OPT_STATS); /* no second warning */
  return 0;
}

static void test_bad_values_warn_once(void **state) {
  (void)state;
  char err[2048];
  int lines = child_lines(child_bad_values, err, sizeof err);
  assert_non_null(strstr(err, "lofalloc: warning: ignoring LOFALLOC_POLICY=lenient"));
  assert_non_null(strstr(err, "lofalloc: warning: ignoring LOFALLOC_MAX_LOCKED=lots"));
  assert_non_null(strstr(err, "lofalloc: warning: unknown option LOFALLOC_NO_SUCH_OPTION"));
  assert_int_equal(lines, 3);
}

/* A foreign name is neither parsed nor warned about; another frontend's
 * option that this "frontend" did not list (LOFALLOC_DECAY_MS is the malloc
 * frontend's) is unknown here: the common parser has no row for it. */
static int child_frontend_rule(void *arg) {
  (void)arg;
  setenv("LOFALLOC_TEST_ELSEWHERE", "bogus", 1);
  setenv("LOFALLOC_DECAY_MS", "bogus", 1);
  setenv("LOFALLOC_TEST_SIZE", "lots", 1);
  lof__options_reload();
  return lof__option(&test_size) == 5 ? 0 : 1;
}

static void test_frontend_rule(void **state) {
  (void)state;
  char err[2048];
  int lines = child_lines(child_frontend_rule, err, sizeof err);
  assert_null(strstr(err, "LOFALLOC_TEST_ELSEWHERE"));
  assert_null(strstr(err, "ignoring LOFALLOC_DECAY_MS"));
  assert_non_null(strstr(err, "lofalloc: warning: unknown option LOFALLOC_DECAY_MS"));
  assert_non_null(strstr(err, "lofalloc: warning: ignoring LOFALLOC_TEST_SIZE=lots"));
  assert_int_equal(lines, 2);
}

/* A row no table holds yet is read on its first lookup (a malloc before
 * the frontend's constructor ran looks its rows up so). */
static int child_unregistered_row(void *arg) {
  (void)arg;
  static lof_option_t late = LOF_OPTION_ROW("LOFALLOC_TEST_LATE", LOF_OPTION_SIZE, 7, NULL);
  setenv("LOFALLOC_TEST_LATE", "3K", 1);
  return lof__option(&late) == 3072 ? 0 : 1;
}

static void test_unregistered_row(void **state) {
  (void)state;
  char err[256];
  assert_int_equal(child_lines(child_unregistered_row, err, sizeof err), 0);
}

int main(void) {
  lof__options_register(&test_table);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_parse_size),
    cmocka_unit_test(test_parse_bool),
    cmocka_unit_test(test_environment),
    cmocka_unit_test(test_bad_values_warn_once),
    cmocka_unit_test(test_frontend_rule),
    cmocka_unit_test(test_unregistered_row),
  };
  return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
