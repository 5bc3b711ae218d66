/*
 * mstats.c -- malloc_stats(), malloc_info() and mallinfo2() in glibc's layout: the
 * output is parsed as programs parse glibc's, and its numbers are checked
 * against lof_stats_get() and the heap the test built (through the lof_
 * names, so it also runs in the sanitizer builds).
 */
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lofalloc.h"

void lof_malloc_stats_glibc(void);
int lof_malloc_info(int options, FILE *fp);
struct mallinfo2 lof_mallinfo2(void);
int lof_malloc_trim(size_t pad);

/* What lof_malloc_stats_glibc wrote on stderr, through tmp (made by the
 * caller before it reads the stats: tmpfile allocates). */
static char *capture_stats(FILE *tmp) {
  int saved = dup(2);
  dup2(fileno(tmp), 2);
  lof_malloc_stats_glibc();
  dup2(saved, 2);
  close(saved);
  static char buf[65536];
  rewind(tmp);
  size_t n = fread(buf, 1, sizeof buf - 1, tmp);
  buf[n] = '\0';
  fclose(tmp);
  return buf;
}

static unsigned long long field_after(const char *from, const char *label) {
  const char *p = strstr(from, label);
  assert_non_null(p);
  p = strchr(p, '=');
  assert_non_null(p);
  return strtoull(p + 1, NULL, 10);
}

static void test_malloc_stats_layout(void **state) {
  (void)state;
  void *small[64];
  for (int i = 0; i < 64; i++) small[i] = lof_malloc(100 + i * 40);
  void *huge1 = lof_malloc((size_t)8 << 20), *huge2 = lof_malloc((size_t)9 << 20);
  assert_non_null(huge1);
  assert_non_null(huge2);
  FILE *tmp = tmpfile();
  assert_non_null(tmp);
  lof_stats_t st;
  assert_int_equal(lof_stats_get(&st, sizeof st), 0);
  char *out = capture_stats(tmp);
  /* every arena line pair, summed as a parser would */
  unsigned long long sys = 0, used = 0;
  unsigned arenas = 0;
  for (char *p = strstr(out, "Arena "); p != NULL; p = strstr(p + 1, "Arena ")) {
    sys += field_after(p, "system bytes");
    used += field_after(p, "in use bytes");
    arenas++;
  }
  char *total = strstr(out, "Total (incl. mmap):");
  assert_non_null(total);
  unsigned long long tsys = field_after(total, "system bytes");
  unsigned long long tused = field_after(total, "in use bytes");
  unsigned long long maxreg = field_after(total, "max mmap regions");
  unsigned long long maxbytes = field_after(total, "max mmap bytes");
  if (arenas == 0 || used > sys || tused != st.allocated || maxreg < 2 ||
      maxbytes < ((size_t)17 << 20) || tsys < sys + ((size_t)17 << 20) || tsys > st.committed)
    print_error("stats:\n%s\nallocated %llu committed %llu\n", out,
                (unsigned long long)st.allocated, (unsigned long long)st.committed);
  assert_true(arenas >= 1);
  assert_true(used > 0 && used <= sys);
  assert_int_equal(tused, st.allocated); /* nothing allocated in between */
  assert_true(maxreg >= 2);
  assert_true(maxbytes >= ((size_t)17 << 20));
  assert_true(tsys >= sys + ((size_t)17 << 20)); /* the huge blocks are the mmap part */
  assert_true(tsys <= st.committed);
  assert_non_null(strstr(out, "locked")); /* lofalloc's own lines follow */
  for (int i = 0; i < 64; i++) lof_free(small[i]);
  lof_free(huge1);
  lof_free(huge2);
}

static void test_malloc_info_xml(void **state) {
  (void)state;
  void *huge1 = lof_malloc((size_t)6 << 20);
  assert_non_null(huge1);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  assert_int_equal(lof_malloc_info(0, f), 0);
  fclose(f);
  assert_int_equal(strncmp(buf, "<malloc version=\"1\">\n", 21), 0);
  assert_non_null(strstr(buf, "<heap nr=\"0\">"));
  assert_non_null(strstr(buf, "</malloc>\n"));
  char *mm = strstr(buf, "<total type=\"mmap\" count=\"");
  assert_non_null(mm);
  unsigned long long count = strtoull(mm + strlen("<total type=\"mmap\" count=\""), NULL, 10);
  char *sz = strstr(mm, "size=\"");
  assert_non_null(sz);
  unsigned long long size = strtoull(sz + 6, NULL, 10);
  assert_true(count >= 1);
  assert_true(size >= ((size_t)6 << 20));
  /* balanced heap elements */
  unsigned open = 0, close_ = 0;
  for (char *p = buf; (p = strstr(p, "<heap ")) != NULL; p++) open++;
  for (char *p = buf; (p = strstr(p, "</heap>")) != NULL; p++) close_++;
  assert_int_equal(open, close_);
  free(buf);
  errno = 0;
  assert_int_equal(lof_malloc_info(1, stdout), -1);
  assert_int_equal(errno, EINVAL);
  lof_free(huge1);
}

/* mallinfo2's fields follow a heap the test builds: large blocks freed
 * between live ones are free chunks (ordblks) and trimmable (keepcost), a
 * freed huge block is a cached free chunk until malloc_trim, and arena =
 * uordblks + fordblks as in glibc. */
static void test_mallinfo2_fields(void **state) {
  (void)state;
  const size_t big = (size_t)256 << 10, huge = (size_t)6 << 20;
  struct mallinfo2 m0 = lof_mallinfo2();
  char *a[8];
  for (int i = 0; i < 8; i++) {
    a[i] = lof_malloc(big);
    assert_non_null(a[i]);
    memset(a[i], i, big);
  }
  char *h1 = lof_malloc(huge), *h2 = lof_malloc(huge);
  assert_non_null(h1);
  assert_non_null(h2);
  struct mallinfo2 m1 = lof_mallinfo2();
  assert_int_equal(m1.hblks, m0.hblks + 2);
  assert_true(m1.hblkhd >= m0.hblkhd + 2 * huge);
  assert_true(m1.uordblks >= m0.uordblks + 8 * big);
  assert_int_equal(m1.arena, m1.uordblks + m1.fordblks);
  assert_int_equal(m1.smblks + m1.fsmblks + m1.usmblks, 0);

  lof_free(a[1]);
  lof_free(a[3]);
  lof_free(a[5]);
  lof_free(h1);
  struct mallinfo2 m2 = lof_mallinfo2();
  print_message("# mallinfo2: ordblks %zu -> %zu, keepcost %zu -> %zu KiB\n", m1.ordblks,
                m2.ordblks, m1.keepcost >> 10, m2.keepcost >> 10);
  assert_int_equal(m2.hblks, m1.hblks - 1);
  assert_true(m2.ordblks >= m1.ordblks + 3); /* three runs between live blocks, one cached block */
  assert_true(m2.keepcost >= m1.keepcost + 3 * big + huge);
  assert_true(m2.uordblks + 3 * big <= m1.uordblks);
  assert_int_equal(m2.arena, m2.uordblks + m2.fordblks);

  assert_int_equal(lof_malloc_trim(0), 1);
  struct mallinfo2 m3 = lof_mallinfo2();
  assert_true(m3.keepcost + huge <= m2.keepcost); /* the cached block is gone */
  for (int i = 0; i < 8; i++)
    if (i != 1 && i != 3 && i != 5) lof_free(a[i]);
  lof_free(h2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_malloc_stats_layout),
    cmocka_unit_test(test_malloc_info_xml),
    cmocka_unit_test(test_mallinfo2_fields),
  };
  return cmocka_run_group_tests_name("mstats", tests, NULL, NULL);
}
