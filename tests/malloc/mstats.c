/*
 * mstats.c -- malloc_stats() and malloc_info() in glibc's layout: the
 * output is parsed as programs parse glibc's, and its numbers are checked
 * against lof_stats_get() and the heap the test built (through the lof_
 * names, so it also runs in the sanitizer builds).
 */
#include <errno.h>
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

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_malloc_stats_layout),
    cmocka_unit_test(test_malloc_info_xml),
  };
  return cmocka_run_group_tests_name("mstats", tests, NULL, NULL);
}
