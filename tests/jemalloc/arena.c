/*
 * arena.c -- lock-on-fault jemalloc arenas through mallocx, checked
 * against the kernel's view (/proc/self/smaps): every heap VMA is `lo lf`,
 * a sparse 1 GiB block locks only what is touched, a purge gives locked
 * pages back (stock jemalloc under MCL_ONFAULT cannot), the locking policy,
 * lof stats, and a multi-threaded stress with cross-thread frees.
 *
 * Run as is, and by conf.sh under other MALLOC_CONF and commit modes.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "je_test.h"
#include "proc.h"
#include "sanitizer.h"
#include "smaps.h"

static char *self_path;

static unsigned new_arena(void) {
  unsigned ind = 0;
  assert_int_equal(lof_je_arena_create(&ind), 0);
  assert_true(lof_je_arena_is_lof(ind));
  return ind;
}

static void test_every_vma_lolf(void **state) {
  /* (the arena's metadata comes from the hooks too: hooks.c's spies see
   * arenas.create allocate a committed region) */
  unsigned ind = new_arena();
  static const size_t sizes[] = {1, 8, 48, 100, 512, 4000, 9000, 40000, 100000,
                                 1 << 20, 5 << 20, 33 << 20};
  void *ptrs[sizeof sizes / sizeof sizes[0]][16];
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    for (int k = 0; k < 16; k++) {
      ptrs[i][k] = mallocx(sizes[i], je_flags(ind));
      assert_non_null(ptrs[i][k]);
      memset(ptrs[i][k], 0xab, sizes[i]);
      assert_true(smaps_range_all_have_flags(ptrs[i][k], sizes[i], "rd wr lo lf"));
    }
  /* callocx-style zeroed memory is zero */
  unsigned char *z = mallocx(3 << 20, je_flags(ind) | MALLOCX_ZERO);
  for (size_t off = 0; off < (3u << 20); off += 4093) assert_int_equal(z[off], 0);
  dallocx(z, MALLOCX_TCACHE_NONE);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    for (int k = 0; k < 16; k++) dallocx(ptrs[i][k], MALLOCX_TCACHE_NONE);
  lof_stats_t st = je_stats();
  printf("  regions %llu committed %llu KiB locked_resident %llu KiB heap_vmas %llu\n",
         (unsigned long long)st.regions, (unsigned long long)(st.committed >> 10),
         (unsigned long long)(st.locked_resident >> 10), (unsigned long long)st.heap_vmas);
  assert_int_equal(je_ctl_arena("destroy", ind), 0);
}

static void test_sparse_1g(void **state) {
  unsigned ind = new_arena();
  const size_t n = GiB;
  char *p = mallocx(n, je_flags(ind));
  assert_non_null(p);
  uint64_t rss0 = 0, locked0 = 0;
  assert_int_equal(smaps_range(p, n, &rss0, &locked0, NULL), 0);
  size_t touched = 0;
  for (size_t off = 0; off < n; off += 100 * 4096, touched += 4096) p[off] = 1;
  uint64_t rss = 0, locked = 0;
  int vmas = 0;
  assert_int_equal(smaps_range(p, n, &rss, &locked, &vmas), 0);
  printf("  touched %zu KiB, Locked %llu KiB (before touch %llu KiB), %d VMAs\n", touched >> 10,
         (unsigned long long)(locked >> 10), (unsigned long long)(locked0 >> 10), vmas);
  assert_true(smaps_range_all_have_flags(p, n, "lo lf"));
  assert_true(locked >= touched);
  /* the touched pages plus at most 1 MiB of jemalloc's own pages */
  assert_true(locked - locked0 <= touched + touched / 20 + MiB);
  dallocx(p, MALLOCX_TCACHE_NONE);
  assert_int_equal(je_ctl_arena("destroy", ind), 0);
}

static void test_purge_gives_back(void **state) {
  unsigned ind = new_arena();
  const size_t n = 64 * MiB;
  char *p = mallocx(n, je_flags(ind));
  assert_non_null(p);
  memset(p, 1, n);
  uint64_t locked = 0;
  assert_int_equal(smaps_range(p, n, NULL, &locked, NULL), 0);
  assert_true(locked >= n);
  lof_stats_t before = je_stats();
  assert_true(before.locked_resident >= n);
  dallocx(p, MALLOCX_TCACHE_NONE);
  assert_int_equal(je_ctl_arena("purge", ind), 0);
  assert_int_equal(smaps_range(p, n, NULL, &locked, NULL), 0);
  lof_stats_t after = je_stats();
  printf("  after purge: Locked in range %llu KiB, lof locked_resident %llu -> %llu KiB, purged %llu KiB\n",
         (unsigned long long)(locked >> 10), (unsigned long long)(before.locked_resident >> 10),
         (unsigned long long)(after.locked_resident >> 10), (unsigned long long)(after.purged >> 10));
  assert_true(locked < MiB);
  assert_true(after.locked_resident + n - MiB <= before.locked_resident);
  /* the range is reused and reads zero or is simply usable again */
  char *q = mallocx(n, je_flags(ind));
  assert_non_null(q);
  memset(q, 2, n);
  assert_true(smaps_range_all_have_flags(q, n, "lo lf"));
  dallocx(q, MALLOCX_TCACHE_NONE);
  assert_int_equal(je_ctl_arena("destroy", ind), 0);
}

/* The control needs mlockall: not built or registered under sanitizers
 * (sanitizer.h). */
#ifndef UNDER_SANITIZER
/* Stock jemalloc on a heap locked with mlockall(MCL_ONFAULT): its purge is
 * madvise(MADV_DONTNEED/FREE), which fails with EINVAL on locked memory,
 * so the freed pages stay locked.  In a child (mlockall is process-wide);
 * exit 0 = the pages stayed locked (retain), or were unmapped (retain:false),
 * as documented. */
static int stock_child(void *arg) {
  if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0) return 10;
  unsigned ind;
  size_t sz = sizeof ind;
  if (mallctl("arenas.create", &ind, &sz, NULL, 0) != 0) return 11;
  const size_t n = 64 * MiB;
  char *p = mallocx(n, MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE);
  if (p == NULL) return 12;
  memset(p, 1, n);
  dallocx(p, MALLOCX_TCACHE_NONE);
  if (je_ctl_arena("purge", ind) != 0) return 13;
  uint64_t locked = 0;
  if (smaps_range(p, n, NULL, &locked, NULL) != 0) return 14;
  bool retain = false;
  sz = sizeof retain;
  mallctl("opt.retain", &retain, &sz, NULL, 0);
  printf("  stock jemalloc (retain %d) + MCL_ONFAULT after purge: Locked %llu KiB\n", retain,
         (unsigned long long)(locked >> 10));
  fflush(stdout);
  /* With retain (Debian's default) jemalloc purges with madvise, which
   * fails on locked pages: they stay locked.  Without retain it unmaps the
   * freed extent, which works: they are gone.  Both are checked. */
  if (retain) return locked >= n - MiB ? 0 : 1;
  return locked < MiB ? 0 : 2;
}

static void test_stock_cannot_purge(void **state) {
  int status = run_in_child(stock_child, NULL, NULL, 0);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}
#endif /* UNDER_SANITIZER */

static void test_stats_follow_jemalloc(void **state) {
  unsigned ind = new_arena();
  lof_stats_t a = je_stats();
  void *p[100];
  for (int i = 0; i < 100; i++) p[i] = mallocx(10000, je_flags(ind));
  lof_stats_t b = je_stats();
  assert_true(b.allocated >= a.allocated + 100 * 10000);
  assert_true(b.allocations >= a.allocations + 100);
  assert_true(b.committed >= a.committed);
  assert_string_not_equal(b.backend_name, "");
  for (int i = 0; i < 100; i++) dallocx(p[i], MALLOCX_TCACHE_NONE);
  lof_stats_t c = je_stats();
  assert_true(c.allocated + 100 * 10000 <= b.allocated);
  assert_int_equal(c.allocations + 100, b.allocations);
  assert_int_equal(je_ctl_arena("destroy", ind), 0);
}

/* ---- the locking policy, in a re-executed child without CAP_IPC_LOCK ---- */

/* argv[1] == "policy-child": RLIMIT_MEMLOCK 8 MiB (the hard limit here), then 64 MiB from a lof
 * arena.  strict: the allocation fails (nothing unlocked is handed out);
 * fallback: it succeeds, counted in stats.fallback. */
static int policy_child(const char *policy) {
  if (drop_ipc_lock(8 * MiB) != 0) return 20;
  unsigned ind;
  int err = lof_je_arena_create(&ind);
  if (err != 0) return 21;
  char *p = mallocx(64 * MiB, je_flags(ind));
  lof_stats_t st = je_stats();
  printf("  policy %s: 64 MiB -> %s, fallback %llu KiB, lock_failures %llu\n", policy,
         p ? "allocated" : "NULL", (unsigned long long)(st.fallback >> 10),
         (unsigned long long)st.lock_failures);
  if (strcmp(policy, "strict") == 0) {
    if (p != NULL) return 22;
    /* small allocations still work within the budget, locked */
    char *s = mallocx(100, je_flags(ind));
    if (s == NULL) return 23;
    if (!smaps_has_flags(s, "lo lf")) return 24;
    return st.fallback == 0 ? 0 : 25;
  }
  if (p == NULL) return 26;
  memset(p, 1, 64 * MiB);
  return st.fallback >= 32 * MiB ? 0 : 27;
}

static void run_policy(const char *policy) {
  char env[64], *argv[] = {self_path, "policy-child", NULL};
  snprintf(env, sizeof env, "LOFALLOC_POLICY=%s", policy);
  char *extra[] = {env, NULL};
  char err[4096] = "";
  int status = run_with_env(argv, extra, err, sizeof err);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) printf("  child stderr: %s\n", err);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_policy_strict(void **state) { run_policy("strict"); }
static void test_policy_fallback(void **state) { run_policy("fallback"); }

/* ---- multi-threaded stress: 4 threads, 2 lof arenas, cross-thread frees -- */

enum { STRESS_THREADS = 4, STRESS_SLOTS = 4096 };
static unsigned stress_arena[2];
static _Atomic(uintptr_t) stress_slots[STRESS_SLOTS]; /* shared: any thread frees */
static _Atomic int stress_bad;

/* Each block: its size in its first bytes, a tag derived from it in its
 * last byte; whoever frees it (any thread) checks both. */
static void *stress_thread(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  unsigned seed = 42 + id;
  for (int i = 0; i < 200000; i++) {
    unsigned r = (unsigned)rand_r(&seed);
    size_t size = sizeof(size_t) + 1 + ((r % 16 == 0) ? r % (256 * 1024) : r % 1024);
    unsigned char *p = mallocx(size, je_flags(stress_arena[r % 2]));
    if (p == NULL) { stress_bad = 1; break; }
    memcpy(p, &size, sizeof size);
    p[size - 1] = (unsigned char)(size * 31 + 7);
    uintptr_t old = atomic_exchange(&stress_slots[r % STRESS_SLOTS], (uintptr_t)p);
    if (old) {
      unsigned char *q = (unsigned char *)old;
      size_t qs;
      memcpy(&qs, q, sizeof qs);
      if (sallocx(q, 0) < qs || q[qs - 1] != (unsigned char)(qs * 31 + 7)) stress_bad = 2;
      dallocx(q, MALLOCX_TCACHE_NONE);
    }
  }
  return NULL;
}

static void test_mt_stress(void **state) {
  stress_arena[0] = new_arena();
  stress_arena[1] = new_arena();
  pthread_t t[STRESS_THREADS];
  for (unsigned i = 0; i < STRESS_THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, stress_thread, (void *)(uintptr_t)i), 0);
  for (unsigned i = 0; i < STRESS_THREADS; i++) pthread_join(t[i], NULL);
  assert_int_equal(stress_bad, 0);
  int checked = 0;
  for (int i = 0; i < STRESS_SLOTS; i++) {
    uintptr_t p = atomic_exchange(&stress_slots[i], 0);
    if (!p) continue;
    if (i % 64 == 0) {
      assert_true(smaps_has_flags((void *)p, "lo lf"));
      checked++;
    }
    dallocx((void *)p, MALLOCX_TCACHE_NONE);
  }
  assert_true(checked > 0);
  for (int k = 0; k < 2; k++) assert_int_equal(je_ctl_arena("purge", stress_arena[k]), 0);
  lof_stats_t st = je_stats();
  printf("  after stress + purge: committed %llu KiB, locked_resident %llu KiB, regions %llu\n",
         (unsigned long long)(st.committed >> 10), (unsigned long long)(st.locked_resident >> 10),
         (unsigned long long)st.regions);
  for (int k = 0; k < 2; k++) assert_int_equal(je_ctl_arena("destroy", stress_arena[k]), 0);
}

/* fork: the child of a process with lof arenas has its heap locked again */
static int fork_child_check(void *arg) {
  char *p = arg;
  /* memory locks are not inherited: the region layer re-locks on fault */
  if (!smaps_has_flags(p, "lo lf")) return 30;
  p[0] = 3;
  unsigned ind;
  if (lof_je_arena_create(&ind) != 0) return 31;
  char *q = mallocx(1 << 20, je_flags(ind));
  if (q == NULL || !smaps_has_flags(q, "lo lf")) return 32;
  return 0;
}

static void test_fork(void **state) {
  unsigned ind = new_arena();
  char *p = mallocx(4 * MiB, je_flags(ind));
  memset(p, 1, 4 * MiB);
  int status = run_in_child(fork_child_check, p, NULL, 0);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  dallocx(p, MALLOCX_TCACHE_NONE);
}

int main(int argc, char **argv) {
  self_path = argv[0];
  if (argc > 1 && strcmp(argv[1], "policy-child") == 0) {
    const char *pol = getenv("LOFALLOC_POLICY");
    return policy_child(pol ? pol : "fallback");
  }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_vma_lolf),
    cmocka_unit_test(test_sparse_1g),
    cmocka_unit_test(test_purge_gives_back),
#ifndef UNDER_SANITIZER
    cmocka_unit_test(test_stock_cannot_purge),
#endif
    cmocka_unit_test(test_stats_follow_jemalloc),
    cmocka_unit_test(test_policy_strict),
    cmocka_unit_test(test_policy_fallback),
    cmocka_unit_test(test_mt_stress),
    cmocka_unit_test(test_fork),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
