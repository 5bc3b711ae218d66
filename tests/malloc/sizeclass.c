/*
 * sizeclass.c -- unit test of the size-class table and formula (internals):
 * every size maps to the smallest class that holds it, the documented
 * worst-case waste holds, classes are 16-aligned and increasing, and span
 * geometry stays within its limits; and the free fast path's block check
 * (lof__block_q: one multiply and one rotate say "the start of a block" and
 * its index) agrees with plain division for every class, at every byte
 * offset of spans at the lowest and highest first pages a segment has, and
 * at every first page for the offsets around each block's start.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* LOF_DIRECT_CLASSES is the count of classes up to LOF_DIRECT_MAX: heap.c
 * keeps direct[] equal to cur[] for exactly those (heap_cur_set). */
static void test_direct_classes(void **state) {
  (void)state;
  unsigned below = 0;
  for (unsigned c = 0; c < LOF_NCLASSES; c++)
    if (lof__class_size[c] <= LOF_DIRECT_MAX) below++;
  assert_int_equal(below, LOF_DIRECT_CLASSES);
  assert_int_equal(lof__class_size[LOF_DIRECT_CLASSES - 1], LOF_DIRECT_MAX);
  assert_int_equal(lof__class_lut[LOF_DIRECT_N - 1], LOF_DIRECT_CLASSES - 1);
  /* each class's direct[] steps are exactly the lut entries naming it, in
   * order, and the classes above LOF_DIRECT_MAX have none */
  unsigned next = 0;
  for (unsigned c = 0; c < LOF_NCLASSES; c++) {
    unsigned first = lof__class_direct[c].first, n = lof__class_direct[c].steps;
    if (c >= LOF_DIRECT_CLASSES) {
      assert_int_equal(n, 0);
      continue;
    }
    assert_true(n == 1 || n == 2 || n == 4 || n == 8); /* heap_cur_set's cases */
    assert_int_equal(first, next);
    for (unsigned i = first; i < first + n; i++) assert_int_equal(lof__class_lut[i], c);
    next = first + n;
  }
  assert_int_equal(next, LOF_DIRECT_N);
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

/* q for the byte at offset n into a span of class c starting at page first;
 * fails the test unless q is the block index when n starts a block, and at
 * least the span's block count otherwise. */
static void check_q(lof_span_t *sp, uint32_t n) {
  uint32_t off = ((uint32_t)sp->first << LOF_PAGE_SHIFT) + n;
  uint32_t q = lof__block_q(sp, off);
  if (n % sp->block_size == 0) {
    if (q != n / sp->block_size)
      fail_msg("class %u first %u offset %u: q %u, want %u", sp->block_size, sp->first, n, q,
               n / sp->block_size);
  } else if (q < sp->reserved) {
    fail_msg("class %u first %u offset %u (inside a block): q %u < %u blocks", sp->block_size,
             sp->first, n, q, sp->reserved);
  }
}

static void test_block_q(void **state) {
  (void)state;
  for (unsigned c = 0; c < LOF_NCLASSES; c++) {
    lof_span_t sp;
    memset(&sp, 0, sizeof sp);
    sp.npages = (uint16_t)lof__class_span_pages(c);
    uint16_t lo = (uint16_t)LOF_SEG_HDR_PAGES, hi = (uint16_t)(LOF_SEG_PAGES - sp.npages);
    uint32_t bytes = (uint32_t)sp.npages << LOF_PAGE_SHIFT;
    for (uint16_t first = lo; first <= hi; first++) {
      sp.first = first;
      lof__span_geometry(&sp, c);
      assert_int_equal(sp.block_size, lof__class_size[c]);
      assert_int_equal(sp.reserved, bytes / lof__class_size[c]);
      if (first == lo || first == lo + 1 || first == hi) {
        for (uint32_t n = 0; n < bytes; n++) check_q(&sp, n); /* every byte */
      } else {
        for (uint32_t b = 0; b < sp.reserved; b += 7) /* around every 7th block's start */
          for (uint32_t n = b * sp.block_size; n < b * sp.block_size + 17 && n < bytes; n++) {
            check_q(&sp, n);
            if (n >= 17) check_q(&sp, n - 17);
          }
      }
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_classes),
    cmocka_unit_test(test_direct_classes),
    cmocka_unit_test(test_smallest_fit_and_waste),
    cmocka_unit_test(test_block_q),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
