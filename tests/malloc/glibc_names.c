/*
 * glibc_names.c -- in builds that replace malloc (LOF_OVERRIDE): the
 * standard and glibc names reach lofalloc (malloc, __libc_malloc, memalign,
 * ...), mallinfo2 reports from the stats, mallopt accepts glibc's parameters,
 * malloc_trim(0) purges freed pages at once.  Also built -static
 * (test_malloc_static) to show that a static link takes lofalloc's malloc.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lofalloc.h"
#include "smaps.h"

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

/* TAP (the test driver counts each check): "ok"/"not ok" lines, plan at the end */
static int failures, checks;
#define CHECK(c)                                                                  \
  do {                                                                            \
    checks++;                                                                     \
    if (!(c)) {                                                                   \
      printf("not ok %d - %s (%s:%d)\n", checks, #c, __FILE__, __LINE__);         \
      failures++;                                                                 \
    } else {                                                                      \
      printf("ok %d - %s\n", checks, #c);                                         \
    }                                                                             \
  } while (0)

int main(void) {
  void *p = malloc(100);
  CHECK(malloc_usable_size(p) == lof_malloc_usable_size(p)); /* lofalloc's table: 112 */
  CHECK(malloc_usable_size(p) == 112);
  CHECK(smaps_has_flags(p, "lo lf"));
  void *q = __libc_malloc(3000);
  CHECK(q != NULL && lof_malloc_usable_size(q) >= 3000);
  __libc_free(q);
  void *m = __libc_memalign(256, 10);
  CHECK(((uintptr_t)m & 255) == 0);
  free(m);
  CHECK(mallopt(M_MMAP_THRESHOLD, 4 << 20) == 1);
  struct mallinfo2 a = mallinfo2();
  void *volatile big = malloc(1 << 20); /* volatile: clang may drop an unused malloc/free pair */
  memset((void *)big, 1, 1 << 20);
  struct mallinfo2 b = mallinfo2();
  CHECK(b.uordblks >= a.uordblks + (1 << 20));
  void *volatile huge = malloc(64u << 20); /* volatile: gcc may drop an unused malloc/free pair */
  ((volatile char *)huge)[0] = 1;
  struct mallinfo2 c = mallinfo2();
  CHECK(c.hblks == b.hblks + 1 && c.hblkhd >= b.hblkhd + (64u << 20));
  free(huge);
  free(big);
  void *blocks[64];
  for (int i = 0; i < 64; i++) {
    blocks[i] = malloc(100000);
    memset(blocks[i], 2, 100000);
  }
  for (int i = 0; i < 64; i++) free(blocks[i]);
  uint64_t before = smaps_total_locked(), rss_before = smaps_total_rss();
  lof_stats_t st;
  CHECK(lof_stats_get(&st, sizeof(st)) == 0);
  CHECK(malloc_trim(0) == 1);
  uint64_t after = smaps_total_locked(), rss_after = smaps_total_rss();
  /* The 64 blocks are 25 whole pages each, all touched, all freed: trim
   * must purge every one of those pages (the slack: pages printf and the
   * smaps reader may touch meanwhile).  Unprivileged, past RLIMIT_MEMLOCK,
   * part of them was served unlocked (st.fallback): then Rss: says it. */
  const uint64_t freed = 64ull * 25 * 4096, slack = 64 << 10;
  printf("# before trim: locked %llu KiB, rss %llu KiB; after: locked %llu KiB, rss %llu KiB; "
         "%llu KiB freed, %llu KiB served unlocked\n",
         (unsigned long long)before >> 10, (unsigned long long)rss_before >> 10,
         (unsigned long long)after >> 10, (unsigned long long)rss_after >> 10,
         (unsigned long long)freed >> 10, (unsigned long long)st.fallback >> 10);
  CHECK(rss_after + freed <= rss_before + slack);
  if (st.fallback == 0) CHECK(after + freed <= before + slack);
  free(p);
  CHECK(lof_check() == 0);
  printf("1..%d\n# %s: %d failure(s)\n", checks, failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
