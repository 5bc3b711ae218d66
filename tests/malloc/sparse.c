/*
 * sparse.c -- a sparse heap stays sparse, every touched page of it is
 * locked, and it goes back:
 *  - a 1 GiB calloc with 1% of its pages touched: every touched page is
 *    mlocked, and the process's smaps Locked: grows by the touched pages plus
 *    the block's header page (and a stated slack for the test's own stdio);
 *    after free and lof_purge() it is back where it started;
 *  - 4096 x 64 KiB calloc blocks (large page runs) with their first page
 *    touched: every first page is mlocked, Locked: grows by at least the
 *    touched pages and at most those plus the segment headers (17 pages per
 *    4 MiB segment) the blocks needed; lof_purge() gives them all back but
 *    one header page per idle segment;
 *  - realloc of a sparse huge block that cannot grow in place (a mapping is
 *    placed right after it): it moves, and its pages are moved, not copied
 *    (Locked: does not grow, the touched pages are still mlocked).
 * "mlocked" is read from the pages' own flags (/proc/kpageflags) when the
 * test runs as root; unprivileged it falls back to smaps Locked: of the
 * block's VMAs and says so.  Unprivileged, under RLIMIT_MEMLOCK, the test
 * re-executes itself with LOFALLOC_HUGE_THRESHOLD=256K and sizes scaled to
 * the lockable room, and checks that nothing was served unlocked.
 * As root the test also runs itself that way, in a child without
 * CAP_IPC_LOCK under the default 8 MiB (test_as_unprivileged).  Numbers are
 * printed so a failure says by how much.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lofalloc.h"
#include "pageflags.h"
#include "proc.h"
#include "smaps.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define PAGE 4096u
/* Pages the test's own printf, fopen (smaps readers) and cmocka may touch in
 * the heap between two readings of smaps_rollup. */
#define SLACK (64 * KiB)
/* A 4 MiB segment's header: fields, pagemap and span descriptors
 * (doc/malloc.md: pages 0..16). */
#define SEG_HDR_PAGES 17u
#define SEG_USABLE_PAGES (1024u - SEG_HDR_PAGES)

extern char **environ;

static bool limited;      /* RLIMIT_MEMLOCK applies to this process */
static bool kpageflags;   /* the pages' own flags can be read */

/* Does this process hold CAP_IPC_LOCK (bit 14 of CapEff)? */
static bool has_ipc_lock(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  unsigned long long eff = 0;
  if (!f) return false;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "CapEff: %llx", &eff) == 1) break;
  fclose(f);
  return eff >> 14 & 1;
}

/* Bytes this process may still lock. */
static uint64_t lock_room(void) {
  struct rlimit rl;
  if (!limited || getrlimit(RLIMIT_MEMLOCK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return UINT64_MAX;
  uint64_t used = proc_vmlck();
  return rl.rlim_cur > used ? rl.rlim_cur - used : 0;
}

static uint64_t fallback_bytes(void) {
  lof_stats_t s;
  assert_int_equal(lof_stats_get(&s, sizeof(s)), 0);
  return s.fallback;
}

/* Every page at p, p + stride, ... below p + len that the test touched
 * (`touched` of them) is locked: by its flags (root), else by smaps Locked:
 * of the VMAs holding the range (at least the touched bytes). */
static void assert_touched_locked(const void *p, size_t len, size_t stride, size_t touched,
                                  const char *what) {
  if (kpageflags) {
    size_t present, mlocked, unevictable;
    assert_int_equal(pageflags_count(p, len, stride, &present, &mlocked, &unevictable), 0);
    printf("# %s: %zu touched pages, %zu present, %zu mlocked, %zu unevictable yet (kpageflags)\n",
           what, touched, present, mlocked, unevictable);
    assert_int_equal(present, touched);
    assert_int_equal(mlocked, touched);
  } else {
    uint64_t rss, locked;
    int vmas;
    assert_int_equal(smaps_range(p, len, &rss, &locked, &vmas), 0);
    printf("# %s: %zu touched pages, smaps Locked: %llu KiB over %d VMA(s) "
           "(unprivileged: no kpageflags, smaps fallback)\n",
           what, touched, (unsigned long long)(locked / KiB), vmas);
    assert_true(locked >= (uint64_t)touched * PAGE);
  }
}

static void test_sparse_calloc(void **state) {
  (void)state;
  lof_purge();
  uint64_t start = smaps_total_locked(), fb = fallback_bytes();
  uint64_t room = lock_room();
  size_t size = room == UINT64_MAX ? (size_t)1 << 30 : (size_t)(room / 2) & ~(size_t)(MiB - 1);
  size_t stride_pages = size >= 64 * MiB ? 100 : 8;
  assert_true(size >= MiB);
  unsigned char *p = lof_calloc(1, size);
  assert_non_null(p);
  assert_true(smaps_has_flags(p, "lo lf"));
  size_t pages = size / PAGE, touched = 0;
  for (size_t i = 0; i < pages; i += stride_pages) {
    assert_int_equal(p[i * PAGE + 17], 0);
    p[i * PAGE + 17] = 1;
    touched++;
  }
  uint64_t tb = (uint64_t)touched * PAGE;
  uint64_t locked = smaps_total_locked() - start;
  uint64_t limit = tb + PAGE + SLACK; /* the touched pages, the header page, the slack */
  printf("# %zu MiB calloc, %zu pages touched (%llu KiB): locked grew by %llu KiB (%llu..%llu)\n",
         size >> 20, touched, (unsigned long long)tb / KiB, (unsigned long long)locked / KiB,
         (unsigned long long)tb / KiB, (unsigned long long)limit / KiB);
  assert_true(locked <= limit);
  assert_true(locked >= tb);
  assert_touched_locked(p, size, stride_pages * PAGE, touched, "calloc");
  assert_int_equal(fallback_bytes(), fb); /* nothing was served unlocked */
  lof_free(p);
  lof_purge();
  uint64_t after = smaps_total_locked();
  printf("# after free + purge: locked %llu KiB, started at %llu KiB\n",
         (unsigned long long)after / KiB, (unsigned long long)start / KiB);
  assert_true(after <= start + SLACK);
}

static void test_sparse_large_blocks(void **state) {
  (void)state;
  lof_purge();
  uint64_t start = smaps_total_locked(), fb = fallback_bytes();
  /* Unprivileged: blocks that fit the lockable room with today's whole
   * segment commits (one 4 MiB segment is charged when created). */
  int n = lock_room() == UINT64_MAX ? 4096 : 24;
  static unsigned char *b[4096];
  for (int i = 0; i < n; i++) {
    b[i] = lof_calloc(1, 65536); /* 16 pages each, only the first touched */
    assert_non_null(b[i]);
    b[i][0] = 1;
  }
  uint64_t tb = (uint64_t)n * PAGE;
  uint64_t locked = smaps_total_locked() - start;
  /* Beside the touched pages only the headers of the segments the blocks
   * needed may be locked (one more for a partly used one). */
  uint64_t segments = ((uint64_t)n * 16 + SEG_USABLE_PAGES - 1) / SEG_USABLE_PAGES + 1;
  uint64_t limit = tb + segments * SEG_HDR_PAGES * PAGE + SLACK;
  printf("# %d x 64 KiB calloc, first page touched (%llu KiB): locked grew by %llu KiB "
         "(%llu..%llu: %llu segment headers)\n",
         n, (unsigned long long)tb / KiB, (unsigned long long)locked / KiB,
         (unsigned long long)tb / KiB, (unsigned long long)limit / KiB,
         (unsigned long long)segments);
  assert_true(locked <= limit);
  assert_true(locked >= tb);
  if (kpageflags) {
    size_t present, mlocked, mlocked_all = 0;
    for (int i = 0; i < n; i++) {
      assert_int_equal(pageflags_count(b[i], PAGE, PAGE, &present, &mlocked, NULL), 0);
      assert_int_equal(present, 1);
      mlocked_all += mlocked;
    }
    printf("# %zu of %d first pages mlocked (kpageflags)\n", mlocked_all, n);
    assert_int_equal(mlocked_all, (size_t)n);
  } else {
    assert_touched_locked(b[0], PAGE, PAGE, 1, "first block");
  }
  assert_true(smaps_has_flags(b[0], "lo lf"));
  assert_int_equal(fallback_bytes(), fb);
  for (int i = 0; i < n; i++) lof_free(b[i]);
  size_t purged = lof_purge();
  uint64_t after = smaps_total_locked();
  printf("# after free + purge (%zu KiB purged): locked %llu KiB, started at %llu KiB (limit %llu)\n",
         purged >> 10, (unsigned long long)after / KiB, (unsigned long long)start / KiB,
         (unsigned long long)(start + (segments + SEG_HDR_PAGES) * PAGE + SLACK) / KiB);
  assert_true(purged >= tb);
  /* An idle segment keeps its header's page 0 (doc/malloc.md), a partly
   * used one may keep its whole header. */
  assert_true(after <= start + segments * PAGE + SEG_HDR_PAGES * PAGE + SLACK);
  assert_int_equal(lof_check(), 0);
}

/* realloc of a huge block is mremap: when the block has to move, its
 * untouched pages are not copied (and so not touched, not locked). */
static void test_huge_realloc_moves_without_copy(void **state) {
  (void)state;
  uint64_t room = lock_room();
  /* Unlimited: a huge block, whose room (three times its size) holds
   * growth to four times; 128 -> 700 MiB is past it. */
  size_t from = room == UINT64_MAX ? 128 * MiB : (size_t)(room / 8) & ~(size_t)(64 * KiB - 1);
  size_t to = room == UINT64_MAX ? 700 * MiB : (size_t)(room / 3) & ~(size_t)(64 * KiB - 1);
  uint64_t fb = fallback_bytes();
  for (int round = 0; round < 2; round++) {
    unsigned char *p = lof_calloc(1, from);
    assert_non_null(p);
    p[0] = 42;
    p[from - 1] = 43;
    /* Block growth in place: map a page right after the block's VMA (if
     * something is there already -- a huge block's room -- it blocks just
     * as well, past the room). */
    smaps_vma_t v;
    assert_int_equal(smaps_vma_at(p, &v), 0);
    void *blocker = mmap((void *)v.end, PAGE, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    assert_true(blocker != MAP_FAILED || errno == EEXIST);
    if (blocker != MAP_FAILED && blocker != (void *)v.end) { /* an old kernel: a hint only */
      munmap(blocker, PAGE);
      blocker = MAP_FAILED;
      fail_msg("MAP_FIXED_NOREPLACE was not honoured");
    }
    uint64_t before = smaps_total_locked();
    unsigned char *q = lof_realloc(p, to);
    assert_non_null(q);
    uint64_t after = smaps_total_locked();
    printf("# realloc %zu KiB -> %zu KiB (%s): locked %llu KiB -> %llu KiB\n", from >> 10,
           to >> 10, q == p ? "in place" : "moved", (unsigned long long)before / KiB,
           (unsigned long long)after / KiB);
    assert_true(q != p); /* it had to move */
    assert_int_equal(q[0], 42);
    assert_int_equal(q[from - 1], 43);
    assert_int_equal(q[to - 1], 0);
    /* moved, not copied: no more locked than the two touched pages plus the
     * page read at the new end (a zero page: not resident) and the slack */
    assert_true(after <= before + PAGE + SLACK);
    assert_true(smaps_has_flags(q + to / 2, "lo lf"));
    size_t present, mlocked;
    if (kpageflags) {
      assert_int_equal(pageflags_count(q, PAGE, PAGE, &present, &mlocked, NULL), 0);
      assert_int_equal(mlocked, 1);
      assert_int_equal(pageflags_count(q + from - 1, 1, PAGE, &present, &mlocked, NULL), 0);
      assert_int_equal(mlocked, 1);
    } else {
      assert_touched_locked(q, to, to, 1, "moved block");
    }
    lof_free(q);
    if (blocker != MAP_FAILED) munmap(blocker, PAGE);
    /* the next round starts from no cached block: the moved one would be
     * reused whole for the next calloc, and grow nowhere */
    lof_purge();
  }
  assert_int_equal(fallback_bytes(), fb);
  assert_int_equal(lof_check(), 0);
}

/* Unprivileged: run again with a huge threshold the lockable room can hold
 * (options are read once, at the first malloc, so it must be in the
 * environment from the start). */
static void reexec_limited(char **argv) {
  static char *env[512];
  size_t n = 0;
  for (char **e = environ; *e != NULL && n < 509; e++) env[n++] = *e;
  env[n++] = "LOFALLOC_HUGE_THRESHOLD=256K";
  env[n++] = "LOFTEST_SPARSE_LIMITED=1";
  env[n] = NULL;
  execve("/proc/self/exe", argv, env);
  perror("execve /proc/self/exe");
  exit(1);
}

static char **self_argv;

/* As root, the same tests once more in a child that gave up CAP_IPC_LOCK
 * under the default 8 MiB RLIMIT_MEMLOCK, as an unprivileged user runs
 * them (the child re-executes itself limited, above).  Its output goes to
 * stderr, in the log but not read as this test's TAP. */
static void test_as_unprivileged(void **state) {
  (void)state;
  fflush(stdout);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(2, 1);
    if (drop_ipc_lock(8 * MiB) != 0) _exit(90);
    reexec_limited(self_argv);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("unprivileged run: status %#x (its output is above, on stderr)", st);
}

int main(int argc, char **argv) {
  (void)argc;
  self_argv = argv;
  struct rlimit rl;
  limited = !has_ipc_lock() && getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY;
  if (limited && !getenv("LOFTEST_SPARSE_LIMITED")) reexec_limited(argv);
  kpageflags = pageflags_available();
  if (!kpageflags)
    printf("# note: /proc/kpageflags is not readable (not root): 'locked' is checked with smaps "
           "Locked:, which counts a VMA's resident pages when the VMA is locked\n");
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sparse_calloc),
    cmocka_unit_test(test_sparse_large_blocks),
    cmocka_unit_test(test_huge_realloc_moves_without_copy),
    cmocka_unit_test(test_as_unprivileged), /* last: not in the limited run itself */
  };
  size_t n = sizeof tests / sizeof tests[0] - (limited ? 1 : 0);
  return _cmocka_run_group_tests("tests", tests, n, NULL, NULL);
}
