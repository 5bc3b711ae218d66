/*
 * options.c -- the options table: size/bool parsing, reading
 * LOFALLOC_* from the environment, and one warning + the default for a bad
 * value or an unknown name.
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
  setenv("LOFALLOC_DECAY_MS", "250", 1);
  lof__options_reload();
  assert_int_equal(lof__option(LOF_OPT_POLICY), LOF_POLICY_STRICT);
  assert_string_equal(lof__option_enum_name(LOF_OPT_POLICY), "strict");
  assert_int_equal(lof__option(LOF_OPT_MAX_LOCKED), 64 << 20);
  assert_int_equal(lof__option(LOF_OPT_VERBOSE), 1);
  assert_int_equal(lof__option(LOF_OPT_DECAY_MS), 250);
  unsetenv("LOFALLOC_POLICY");
  unsetenv("LOFALLOC_MAX_LOCKED");
  unsetenv("LOFALLOC_VERBOSE");
  unsetenv("LOFALLOC_DECAY_MS");
  lof__options_reload();
  assert_int_equal(lof__option(LOF_OPT_POLICY), LOF_POLICY_FALLBACK); /* the default */
  assert_int_equal(lof__option(LOF_OPT_MAX_LOCKED), 0);
  assert_int_equal(lof__option(LOF_OPT_FORK_RELOCK), 1);
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
  int status = run_in_child(child_bad_values, NULL, err, sizeof err);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_non_null(strstr(err, "lofalloc: warning: ignoring LOFALLOC_POLICY=lenient"));
  assert_non_null(strstr(err, "lofalloc: warning: ignoring LOFALLOC_MAX_LOCKED=lots"));
  assert_non_null(strstr(err, "lofalloc: warning: unknown option LOFALLOC_NO_SUCH_OPTION"));
  int lines = 0;
  for (char *p = err; (p = strchr(p, '\n')); p++) lines++;
  assert_int_equal(lines, 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_parse_size),
    cmocka_unit_test(test_parse_bool),
    cmocka_unit_test(test_environment),
    cmocka_unit_test(test_bad_values_warn_once),
  };
  return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
