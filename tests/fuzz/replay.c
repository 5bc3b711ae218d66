/*
 * replay.c -- make check's side of the fuzzer: runs the harness
 * (fuzz_malloc.c, compiled in) on every input of tests/fuzz/corpus, which
 * holds the seeds and every input that once found a bug, under gcc and the
 * sanitizer builds without libFuzzer; plus the bugs' own small cases.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lofalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void test_corpus(void **state) {
  (void)state;
  const char *top = getenv("top_srcdir");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus", top ? top : "..");
  DIR *d = opendir(dir);
  assert_non_null(d);
  unsigned n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static uint8_t buf[4096];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len); /* aborts on a finding */
    n++;
  }
  closedir(d);
  printf("# replayed %u inputs from %s\n", n, dir);
  assert_true(n >= 5);
}

/* The first finding: memalign with an alignment above a page and size 0
 * made a large span of 0 pages (lof_check: "bad span"), and wrote over
 * memory beside it. */
static void test_memalign_size0(void **state) {
  (void)state;
  for (size_t align = 8192; align <= ((size_t)1 << 20); align <<= 1) {
    void *a = lof_malloc(100);
    void *p = lof_memalign(align, 0);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % align, 0);
    assert_int_equal(lof_check(), 0);
    void *q = NULL;
    assert_int_equal(lof_posix_memalign(&q, align, 0), 0);
    assert_int_equal(lof_check(), 0);
    lof_free(q);
    lof_free(p);
    lof_free(a);
    assert_int_equal(lof_check(), 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_memalign_size0),
    cmocka_unit_test(test_corpus),
  };
  return cmocka_run_group_tests_name("fuzz_replay", tests, NULL, NULL);
}
