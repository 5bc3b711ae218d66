/*
 * sparse.c -- a sparse heap stays sparse and goes back: a 1 GiB calloc with
 * 1% of its pages touched keeps the process's smaps Locked: within 2% + 2 MiB
 * of the touched bytes; after free and lof_purge() it returns within 2 MiB
 * of where it started.  The same for a heap of many 64 KiB blocks (large
 * page runs), which must be purged by lof_purge (they stay committed); there
 * the segment headers (< 2% of the allocated bytes) may be locked too.
 * Numbers are printed so a failure says by how much.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lofalloc.h"
#include "smaps.h"

#define MiB ((uint64_t)1 << 20)

static void test_sparse_calloc(void **state) {
  (void)state;
  lof_purge();
  uint64_t start = smaps_total_locked();
  size_t size = (size_t)1 << 30;
  unsigned char *p = lof_calloc(1, size);
  assert_non_null(p);
  assert_true(smaps_has_flags(p, "lo lf"));
  size_t pages = size / 4096, touched = 0;
  for (size_t i = 0; i < pages; i += 100) {
    assert_int_equal(p[i * 4096 + 17], 0);
    p[i * 4096 + 17] = 1;
    touched++;
  }
  uint64_t tb = (uint64_t)touched * 4096;
  uint64_t locked = smaps_total_locked() - start;
  printf("# 1 GiB calloc, %zu pages touched (%llu KiB): locked grew by %llu KiB (limit %llu KiB)\n",
         touched, (unsigned long long)tb >> 10, (unsigned long long)locked >> 10,
         (unsigned long long)(tb + tb / 50 + 2 * MiB) >> 10);
  assert_true(locked <= tb + tb / 50 + 2 * MiB);
  assert_true(locked + 2 * MiB >= tb); /* and the touched pages are locked */
  lof_free(p);
  lof_purge();
  uint64_t after = smaps_total_locked();
  printf("# after free + purge: locked %llu KiB, started at %llu KiB\n",
         (unsigned long long)after >> 10, (unsigned long long)start >> 10);
  assert_true(after <= start + 2 * MiB);
}

static void test_sparse_large_blocks(void **state) {
  (void)state;
  lof_purge();
  uint64_t start = smaps_total_locked();
  enum { N = 4096 };
  static unsigned char *b[N];
  for (int i = 0; i < N; i++) {
    b[i] = lof_calloc(1, 65536); /* 16 pages each, only the first touched */
    assert_non_null(b[i]);
    b[i][0] = 1;
  }
  uint64_t tb = (uint64_t)N * 4096;
  uint64_t locked = smaps_total_locked() - start;
  /* Beside the touched pages only segment headers may be locked: at most
   * 17 pages per 4 MiB segment, i.e. < 2% of the bytes allocated. */
  uint64_t limit = tb + (uint64_t)N * 65536 / 50 + 2 * MiB;
  printf("# %d x 64 KiB calloc, first page touched (%llu KiB): locked grew by %llu KiB (limit %llu KiB)\n",
         N, (unsigned long long)tb >> 10, (unsigned long long)locked >> 10,
         (unsigned long long)limit >> 10);
  assert_true(locked <= limit);
  assert_true(smaps_has_flags(b[0], "lo lf"));
  for (int i = 0; i < N; i++) lof_free(b[i]);
  size_t purged = lof_purge();
  uint64_t after = smaps_total_locked();
  printf("# after free + purge (%zu KiB purged): locked %llu KiB, started at %llu KiB\n",
         purged >> 10, (unsigned long long)after >> 10, (unsigned long long)start >> 10);
  assert_true(after <= start + 2 * MiB);
  assert_int_equal(lof_check(), 0);
}

/* realloc of a huge block is mremap: even when the block has to move, its
 * untouched pages are not copied (and so not touched, not locked). */
static void test_huge_realloc_no_copy(void **state) {
  (void)state;
  for (int round = 0; round < 4; round++) {
    unsigned char *p = lof_calloc(1, 256u << 20);
    assert_non_null(p);
    p[0] = 42;
    p[(256u << 20) - 1] = 43;
    void *blocker = lof_malloc(8u << 20); /* likely right after p: forces a move */
    ((volatile char *)blocker)[0] = 1;
    uint64_t before = smaps_total_locked();
    unsigned char *q = lof_realloc(p, 700u << 20);
    assert_non_null(q);
    uint64_t after = smaps_total_locked();
    printf("# realloc 256 MiB -> 700 MiB (%s): locked %llu KiB -> %llu KiB\n",
           q == p ? "in place" : "moved", (unsigned long long)before >> 10,
           (unsigned long long)after >> 10);
    assert_int_equal(q[0], 42);
    assert_int_equal(q[(256u << 20) - 1], 43);
    assert_int_equal(q[(700u << 20) - 1], 0);
    assert_true(after <= before + 2 * MiB);
    assert_true(smaps_has_flags(q + (600u << 20), "lo lf"));
    lof_free(q);
    lof_free(blocker);
  }
  assert_int_equal(lof_check(), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sparse_calloc),
    cmocka_unit_test(test_sparse_large_blocks),
    cmocka_unit_test(test_huge_realloc_no_copy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
