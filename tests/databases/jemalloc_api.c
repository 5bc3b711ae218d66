/*
 * jemalloc_api.c -- the jemalloc API liblofalloc answers (allocator/malloc/
 * jemalloc_api.c): mallctl's names and error codes, stats that follow the
 * heap, purge, and the *allocx family against malloc_usable_size.  Linked
 * with liblofalloc only (no libjemalloc), so every call lands in lofalloc.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <malloc.h>

#include "lofalloc.h"

/* jemalloc's prototypes and flag macros, spelled out (no jemalloc.h). */
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
int mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp);
int mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp,
                 size_t newlen);
void malloc_stats_print(void (*write_cb)(void *, const char *), void *cbopaque, const char *opts);
void *mallocx(size_t size, int flags);
void *rallocx(void *ptr, size_t size, int flags);
size_t xallocx(void *ptr, size_t size, size_t extra, int flags);
size_t sallocx(const void *ptr, int flags);
void dallocx(void *ptr, int flags);
void sdallocx(void *ptr, size_t size, int flags);
size_t nallocx(size_t size, int flags);
#define MALLOCX_LG_ALIGN(la) ((int)(la))
#define MALLOCX_ZERO ((int)0x40)
#define MALLOCX_TCACHE_NONE ((int)((-1 + 2) << 8))

static size_t stat_of(const char *name) {
  size_t v = 0, sz = sizeof v;
  assert_int_equal(mallctl(name, &v, &sz, NULL, 0), 0);
  return v;
}

static void bump_epoch(void) {
  uint64_t e = 1;
  size_t sz = sizeof e;
  assert_int_equal(mallctl("epoch", &e, &sz, &e, sz), 0);
}

static void test_version_and_errors(void **state) {
  (void)state;
  const char *v = NULL;
  size_t sz = sizeof v;
  assert_int_equal(mallctl("version", &v, &sz, NULL, 0), 0);
  assert_non_null(strstr(v, "lofalloc"));
  assert_int_equal(mallctl("no.such.name", NULL, NULL, NULL, 0), ENOENT);
  assert_int_equal(mallctl(NULL, NULL, NULL, NULL, 0), EINVAL);
  size_t x = 1;
  assert_int_equal(mallctl("stats.allocated", NULL, NULL, &x, sizeof x), EPERM);
  uint32_t small = 0;
  sz = sizeof small;
  assert_int_equal(mallctl("stats.allocated", &small, &sz, NULL, 0), EINVAL);
  uint64_t e = 1;
  assert_int_equal(mallctl("epoch", NULL, NULL, &e, 3), EINVAL);
  assert_int_equal(mallctl("arena.0.purge", &x, &sz, NULL, 0), EINVAL);
  assert_int_equal(mallctl("arena.x.purge", NULL, NULL, NULL, 0), ENOENT);
  assert_int_equal(mallctl("arena.999999.purge", NULL, NULL, NULL, 0), EFAULT);
}

static void test_epoch_advances(void **state) {
  (void)state;
  uint64_t e0 = 0, e1 = 0, w = 1;
  size_t sz = sizeof e0;
  assert_int_equal(mallctl("epoch", &e0, &sz, NULL, 0), 0);
  assert_int_equal(mallctl("epoch", &e1, &sz, &w, sizeof w), 0);
  assert_int_equal(e1, e0 + 1);
}

/* stats.* follow the heap only when the epoch moves, and agree with
 * lof_stats_get. */
static void test_stats_follow_the_heap(void **state) {
  (void)state;
  enum { N = 8192, SZ = 1024 };
  bump_epoch();
  size_t before = stat_of("stats.allocated");
  void **blocks = malloc(N * sizeof *blocks);
  assert_non_null(blocks);
  for (int i = 0; i < N; i++) {
    blocks[i] = malloc(SZ);
    assert_non_null(blocks[i]);
    memset(blocks[i], i, SZ);
  }
  assert_int_equal(stat_of("stats.allocated"), before); /* a snapshot until the epoch moves */
  bump_epoch();
  size_t during = stat_of("stats.allocated");
  assert_true(during >= before + (size_t)N * SZ);
  lof_stats_t st;
  assert_int_equal(lof_stats_get(&st, sizeof st), 0);
  assert_true(st.allocated + 65536 >= during && during + 65536 >= st.allocated);
  size_t active = stat_of("stats.active"), resident = stat_of("stats.resident");
  size_t mapped = stat_of("stats.mapped");
  assert_true(during <= active && active <= mapped);
  assert_true(resident >= (size_t)N * SZ);
  assert_true(resident <= mapped + 4 * 1024 * 1024);
  (void)stat_of("stats.retained");
  for (int i = 0; i < N; i++) free(blocks[i]);
  free(blocks);
  bump_epoch();
  assert_true(stat_of("stats.allocated") + (size_t)N * SZ / 2 < during);
}

static void test_narenas_and_purge(void **state) {
  (void)state;
  unsigned n = 0;
  size_t sz = sizeof n;
  assert_int_equal(mallctl("arenas.narenas", &n, &sz, NULL, 0), 0);
  assert_true(n >= 1);
  size_t page = stat_of("arenas.page");
  assert_int_equal(page, 4096);
  /* free a large block's worth of dirty pages, then purge through mallctl */
  char *big[16];
  for (int i = 0; i < 16; i++) {
    big[i] = malloc(256 * 1024);
    assert_non_null(big[i]);
    memset(big[i], 1, 256 * 1024);
  }
  for (int i = 0; i < 16; i++) free(big[i]);
  lof_stats_t a, b;
  lof_stats_get(&a, sizeof a);
  assert_int_equal(mallctl("arena.4096.purge", NULL, NULL, NULL, 0), 0);
  lof_stats_get(&b, sizeof b);
  assert_true(b.purged >= a.purged + 256 * 1024);
  assert_int_equal(mallctl("arena.0.purge", NULL, NULL, NULL, 0), 0);
  assert_int_equal(mallctl("arena.0.decay", NULL, NULL, NULL, 0), 0);
  assert_int_equal(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0), 0);
}

static void test_mib(void **state) {
  (void)state;
  size_t mib[4], miblen = 4;
  assert_int_equal(mallctlnametomib("stats.allocated", mib, &miblen), 0);
  assert_int_equal(miblen, 2);
  bump_epoch();
  size_t v = 0, sz = sizeof v;
  assert_int_equal(mallctlbymib(mib, miblen, &v, &sz, NULL, 0), 0);
  assert_int_equal(v, stat_of("stats.allocated"));
  mib[0] = 9999;
  assert_int_equal(mallctlbymib(mib, miblen, &v, &sz, NULL, 0), ENOENT);
}

static void stats_cb(void *arg, const char *text) {
  size_t *calls = arg;
  if (strstr(text, "Allocated:") != NULL) (*calls)++;
}

static void test_malloc_stats_print(void **state) {
  (void)state;
  size_t calls = 0;
  malloc_stats_print(stats_cb, &calls, NULL);
  assert_int_equal(calls, 1);
}

/* nallocx predicts sallocx(mallocx()) == malloc_usable_size, every size. */
static void test_nallocx_matches(void **state) {
  (void)state;
  for (size_t size = 1; size < 6 * 1024 * 1024; size += size < 20000 ? 7 : 40961) {
    for (unsigned lg = 0; lg <= 16; lg += 4) {
      int flags = MALLOCX_LG_ALIGN(lg);
      void *p = mallocx(size, flags);
      assert_non_null(p);
      assert_int_equal((uintptr_t)p & (((uintptr_t)1 << lg) - 1), 0);
      size_t real = sallocx(p, 0);
      assert_int_equal(real, malloc_usable_size(p));
      if (nallocx(size, flags) != real)
        fail_msg("nallocx(%zu, lg %u) = %zu, usable %zu", size, lg, nallocx(size, flags), real);
      dallocx(p, MALLOCX_TCACHE_NONE);
    }
  }
  assert_int_equal(nallocx((size_t)1 << 60, 0), 0);
}

static void test_zero_realloc_and_sized_free(void **state) {
  (void)state;
  /* dirty some memory, free it, then ask for zeroed blocks of that size */
  for (int round = 0; round < 64; round++) {
    char *d = malloc(3000);
    memset(d, 0xab, 3000);
    free(d);
    char *z = mallocx(3000, MALLOCX_ZERO | MALLOCX_LG_ALIGN(6));
    assert_non_null(z);
    assert_int_equal((uintptr_t)z % 64, 0);
    for (int i = 0; i < 3000; i++) assert_int_equal(z[i], 0);
    memset(z, 0x5a, 3000);
    z = rallocx(z, 100000, MALLOCX_ZERO);
    assert_non_null(z);
    for (int i = 0; i < 3000; i++) assert_int_equal((unsigned char)z[i], 0x5a);
    for (int i = 4096; i < 100000; i++) assert_int_equal(z[i], 0);
    z = rallocx(z, 50, MALLOCX_LG_ALIGN(12));
    assert_non_null(z);
    assert_int_equal((uintptr_t)z % 4096, 0);
    for (int i = 0; i < 50; i++) assert_int_equal((unsigned char)z[i], 0x5a);
    size_t cur = sallocx(z, 0);
    assert_int_equal(xallocx(z, cur, 0, 0), cur);
    assert_true(xallocx(z, cur + 1000000, 0, 0) < cur + 1000000); /* never in place */
    sdallocx(z, 50, 0);
  }
  lof_stats_t st;
  lof_stats_get(&st, sizeof st);
  assert_int_equal(lof_check(), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_version_and_errors),
    cmocka_unit_test(test_epoch_advances),
    cmocka_unit_test(test_stats_follow_the_heap),
    cmocka_unit_test(test_narenas_and_purge),
    cmocka_unit_test(test_mib),
    cmocka_unit_test(test_malloc_stats_print),
    cmocka_unit_test(test_nallocx_matches),
    cmocka_unit_test(test_zero_realloc_and_sized_free),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
