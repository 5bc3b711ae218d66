/*
 * sizeclass.c -- unit test of the size-class table and formula (internals):
 * every size maps to the smallest class that holds it, the documented
 * worst-case waste holds, classes are 16-aligned and increasing, and span
 * geometry stays within its limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "frontend.h"

static void test_classes(void **state) {
  (void)state;
  for (unsigned c = 0; c < LOF_NCLASSES; c++) {
    assert_int_equal(lof__class_size[c] % 16, 0);
    if (c > 0) assert_true(lof__class_size[c] > lof__class_size[c - 1]);
    size_t pages = lof__class_span_pages(c);
    size_t blocks = (pages * LOF_PAGE_SIZE) / lof__class_size[c];
    assert_true(blocks >= 16 && blocks <= 4096);
    assert_true(pages * LOF_PAGE_SIZE <= ((size_t)1 << 18));
  }
  assert_int_equal(lof__class_size[LOF_NCLASSES - 1], LOF_SMALL_MAX);
}

static void test_smallest_fit_and_waste(void **state) {
  (void)state;
  for (size_t n = 0; n <= LOF_SMALL_MAX; n++) {
    unsigned c = lof__size_class(n);
    assert_true(c < LOF_NCLASSES);
    size_t cs = lof__class_size[c];
    assert_true(cs >= n);
    if (c > 0) assert_true(lof__class_size[c - 1] < n || n == 0);
    if (n > 128) assert_int_equal(c, lof__size_class_pow(n)); /* the table agrees with the formula */
    if (n <= 128) assert_true(cs - n <= 15 || n == 0);
    else assert_true((cs - n) * 4 < n);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_classes),
    cmocka_unit_test(test_smallest_fit_and_waste),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
