/*
 * hooks.c -- the extent hooks, called directly and through jemalloc
 * with spy hooks that record every call, pass it to lofalloc's hooks and
 * check what the region layer did (lof_je_stats_get and smaps).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include "je_test.h"
#include "proc.h"
#include "smaps.h"

static extent_hooks_t *lof;

/* ---- spy hooks: count each call, remember the last arguments, pass on ---- */
enum { SPY_ALLOC, SPY_DALLOC, SPY_DESTROY, SPY_COMMIT, SPY_DECOMMIT,
       SPY_PURGE_LAZY, SPY_PURGE_FORCED, SPY_SPLIT, SPY_MERGE, SPY_N };
static const char *spy_names[SPY_N] = {"alloc", "dalloc", "destroy", "commit", "decommit",
                                       "purge_lazy", "purge_forced", "split", "merge"};
static _Atomic unsigned spy_calls[SPY_N];
static _Atomic unsigned spy_refused[SPY_N];  /* calls where lofalloc said "no" (true/NULL) */
static _Atomic unsigned spy_alloc_uncommitted; /* allocs asked with *commit false */

static void spy_reset(void) {
  for (int i = 0; i < SPY_N; i++) spy_calls[i] = spy_refused[i] = 0;
  spy_alloc_uncommitted = 0;
}

static void spy_print(const char *when) {
  printf("  spy %-22s", when);
  for (int i = 0; i < SPY_N; i++)
    if (spy_calls[i]) printf(" %s=%u(no %u)", spy_names[i], spy_calls[i], spy_refused[i]);
  printf("\n");
}

static bool spy_note(int which, bool refused) {
  spy_calls[which]++;
  if (refused) spy_refused[which]++;
  return refused;
}

static void *spy_alloc(extent_hooks_t *h, void *a, size_t s, size_t al, bool *z, bool *c, unsigned i) {
  if (!*c) spy_alloc_uncommitted++;
  void *p = lof->alloc(lof, a, s, al, z, c, i);
  spy_note(SPY_ALLOC, p == NULL);
  return p;
}
static bool spy_dalloc(extent_hooks_t *h, void *a, size_t s, bool c, unsigned i) {
  return spy_note(SPY_DALLOC, lof->dalloc(lof, a, s, c, i));
}
static void spy_destroy(extent_hooks_t *h, void *a, size_t s, bool c, unsigned i) {
  lof->destroy(lof, a, s, c, i);
  spy_note(SPY_DESTROY, false);
}
static bool spy_commit(extent_hooks_t *h, void *a, size_t s, size_t o, size_t l, unsigned i) {
  return spy_note(SPY_COMMIT, lof->commit(lof, a, s, o, l, i));
}
static bool spy_decommit(extent_hooks_t *h, void *a, size_t s, size_t o, size_t l, unsigned i) {
  return spy_note(SPY_DECOMMIT, lof->decommit(lof, a, s, o, l, i));
}
static bool spy_purge_lazy(extent_hooks_t *h, void *a, size_t s, size_t o, size_t l, unsigned i) {
  return spy_note(SPY_PURGE_LAZY, lof->purge_lazy(lof, a, s, o, l, i));
}
static bool spy_purge_forced(extent_hooks_t *h, void *a, size_t s, size_t o, size_t l, unsigned i) {
  return spy_note(SPY_PURGE_FORCED, lof->purge_forced(lof, a, s, o, l, i));
}
static bool spy_split(extent_hooks_t *h, void *a, size_t s, size_t sa, size_t sb, bool c, unsigned i) {
  return spy_note(SPY_SPLIT, lof->split(lof, a, s, sa, sb, c, i));
}
static bool spy_merge(extent_hooks_t *h, void *a, size_t sa, void *b, size_t sb, bool c, unsigned i) {
  return spy_note(SPY_MERGE, lof->merge(lof, a, sa, b, sb, c, i));
}

static extent_hooks_t spy_hooks = {spy_alloc, spy_dalloc, spy_destroy, spy_commit,
                                   spy_decommit, spy_purge_lazy, spy_purge_forced,
                                   spy_split, spy_merge};

static bool opt_retain(void) {
  bool retain = false;
  size_t sz = sizeof retain;
  mallctl("opt.retain", &retain, &sz, NULL, 0);
  return retain;
}

/* The commit mode the test REQUESTED (LOFALLOC_JE_COMMIT), worked out here
 * from the environment and the process's privileges, never from the hooks:
 * eager and lazy are taken as asked; auto (or unset) is eager when locking
 * is not budgeted (CAP_IPC_LOCK effective or RLIMIT_MEMLOCK unlimited, and
 * no LOFALLOC_MAX_LOCKED).  A library that ignores the variable fails
 * test_commit_mode_requested. */
static bool eager;


static bool requested_eager(void) {
  const char *mode = getenv("LOFALLOC_JE_COMMIT");
  if (mode != NULL && strcmp(mode, "eager") == 0) return true;
  if (mode != NULL && strcmp(mode, "lazy") == 0) return false;
  return !lock_budgeted();
}

static int setup(void **state) {
  lof = lof_je_extent_hooks();
  /* Hooks are set up lazily; an arena created through the API reads
   * jemalloc's options first. */
  unsigned ind;
  if (lof_je_arena_create(&ind) != 0) return -1;
  eager = requested_eager();
  printf("  commit mode requested: %s (LOFALLOC_JE_COMMIT=%s), retain %s\n",
         eager ? "eager" : "lazy", getenv("LOFALLOC_JE_COMMIT") ? getenv("LOFALLOC_JE_COMMIT") : "",
         opt_retain() ? "on" : "off");
  return 0;
}

/* The requested mode against the kernel's view: a region jemalloc asks
 * for uncommitted is, in eager mode, reported committed AND mapped
 * readable, writable and lock-on-fault (smaps); in lazy mode neither. */
static void test_commit_mode_requested(void **state) {
  bool zero = false, commit = false;
  char *p = lof->alloc(lof, NULL, 256 * KiB, 4096, &zero, &commit, 0);
  assert_non_null(p);
  bool mapped = smaps_range_all_have_flags(p, 256 * KiB, "rd wr lo lf");
  bool readable = smaps_has_flags(p, "rd");
  printf("  uncommitted alloc: *commit %d, smaps rd %d, rd wr lo lf %d\n", commit, readable, mapped);
  lof->destroy(lof, p, 256 * KiB, commit, 0);
  assert_int_equal(commit, eager);
  assert_int_equal(mapped, eager);
  assert_int_equal(readable, eager);
}

/* ---- the hooks called directly ------------------------------------------- */

static void test_alloc_contract(void **state) {
  bool zero = false, commit = false;
  lof_stats_t before = je_stats();
  /* a given new_addr is refused */
  assert_null(lof->alloc(lof, (void *)(uintptr_t)0x100000000000ull, 64 * KiB, 4096, &zero, &commit, 0));
  /* alignment honoured, nothing committed, zeroed */
  char *p = lof->alloc(lof, NULL, 3 * MiB, 2 * MiB, &zero, &commit, 0);
  assert_non_null(p);
  assert_true(((uintptr_t)p & (2 * MiB - 1)) == 0);
  assert_true(zero);
  assert_int_equal(commit, eager);
  lof_stats_t st = je_stats();
  assert_int_equal(st.regions, before.regions + 1);
  if (eager) {
    assert_int_equal(st.committed, before.committed + 3 * MiB);
    assert_true(smaps_range_all_have_flags(p, 3 * MiB, "rd wr lo lf"));
    uint64_t locked = 1;
    assert_int_equal(smaps_range(p, 3 * MiB, NULL, &locked, NULL), 0);
    assert_int_equal(locked, 0); /* committed is not populated */
  } else {
    assert_int_equal(st.committed, before.committed);
    assert_false(smaps_has_flags(p, "rd"));
  }

  /* commit one page in the middle: readable, lock-on-fault, zero */
  assert_false(lof->commit(lof, p, 3 * MiB, MiB, 4096, 0));
  assert_true(smaps_has_flags(p + MiB, "rd wr lo lf"));
  assert_int_equal(p[MiB], 0);
  p[MiB] = 7;
  smaps_vma_t v;
  assert_int_equal(smaps_vma_at(p + MiB, &v), 0);
  assert_true(v.locked >= 4096);

  /* purge_lazy is refused on locked memory; purge_forced drops the page,
   * the range stays committed and lock-on-fault and reads zero */
  assert_true(lof->purge_lazy(lof, p, 3 * MiB, MiB, 4096, 0));
  assert_false(lof->purge_forced(lof, p, 3 * MiB, MiB, 4096, 0));
  assert_int_equal(smaps_vma_at(p + MiB, &v), 0);
  assert_int_equal(v.locked, 0);
  assert_true(smaps_has_flags(p + MiB, "rd wr lo lf"));
  assert_int_equal(p[MiB], 0);

  /* decommit: back to reserved (lazy); refused in eager mode, where
   * jemalloc purges instead */
  st = je_stats();
  assert_int_equal(lof->decommit(lof, p, 3 * MiB, MiB, 4096, 0), eager);
  if (!eager) {
    assert_int_equal(je_stats().committed, st.committed - 4096);
    assert_false(smaps_has_flags(p + MiB, "rd"));
  }

  /* split is always allowed; merge only within a region */
  assert_false(lof->split(lof, p, 3 * MiB, MiB, 2 * MiB, false, 0));
  assert_false(lof->merge(lof, p, MiB, p + MiB, 2 * MiB, false, 0));
  bool z2 = false, c2 = true;
  char *q = lof->alloc(lof, NULL, 64 * KiB, 4096, &z2, &c2, 0);
  assert_non_null(q);
  assert_true(c2 && z2);
  assert_true(smaps_has_flags(q, "rd wr lo lf"));
  assert_true(lof->merge(lof, p, 3 * MiB, q, 64 * KiB, false, 0));
  assert_true(lof->merge(lof, q, 64 * KiB, p, 3 * MiB, false, 0));

  /* destroy the pieces: the region goes with its last byte */
  lof->destroy(lof, p, MiB, false, 0);
  assert_int_equal(je_stats().regions, before.regions + 2);
  lof->destroy(lof, p + MiB, 2 * MiB, false, 0);
  assert_int_equal(je_stats().regions, before.regions + 1);
  /* dalloc of a whole region is accepted, retain or not */
  assert_false(lof->dalloc(lof, q, 64 * KiB, true, 0));
  assert_int_equal(je_stats().regions, before.regions);
}

static void test_dalloc_partial(void **state) {
  bool zero = false, commit = true;
  lof_stats_t before = je_stats();
  char *p = lof->alloc(lof, NULL, 1 * MiB, 4096, &zero, &commit, 0);
  assert_non_null(p);
  memset(p, 1, MiB);
  uint64_t locked_before = 0;
  assert_int_equal(smaps_range(p, MiB, NULL, &locked_before, NULL), 0);
  bool refused = lof->dalloc(lof, p, 512 * KiB, true, 0);
  /* under retain jemalloc keeps the range (we opt out); without, the
   * piece is decommitted and the region stays for the other half */
  assert_int_equal(refused, opt_retain());
  bool committed = true;
  if (refused) {
    /* what jemalloc does next: decommit, or purge if that is refused */
    if (!lof->decommit(lof, p, 512 * KiB, 0, 512 * KiB, 0)) committed = false;
    else assert_false(lof->purge_forced(lof, p, 512 * KiB, 0, 512 * KiB, 0));
  } else {
    committed = false;
  }
  assert_int_equal(je_stats().committed, before.committed + (committed ? MiB : 512 * KiB));
  /* either way the first half's pages left RAM (smaps sums whole VMAs, and
   * a VMA may span neighbouring regions: compare before and after) */
  uint64_t locked = 0;
  assert_int_equal(smaps_range(p, MiB, NULL, &locked, NULL), 0);
  assert_true(locked + 512 * KiB <= locked_before);
  lof->destroy(lof, p, 512 * KiB, committed, 0);
  lof->destroy(lof, p + 512 * KiB, 512 * KiB, true, 0);
  assert_int_equal(je_stats().regions, before.regions);
  assert_int_equal(je_stats().committed, before.committed);
}

/* ---- through jemalloc, with spies ----------------------------------------- */

static void test_spy_arena_life(void **state) {
  lof_stats_t base = je_stats();
  spy_reset();
  extent_hooks_t *hooks = &spy_hooks;
  unsigned ind;
  size_t sz = sizeof ind;
  assert_int_equal(mallctl("arenas.create", &ind, &sz, &hooks, sizeof hooks), 0);
  spy_print("arenas.create");
  /* the arena's metadata (its base) came from a committed region */
  assert_true(spy_calls[SPY_ALLOC] >= 1);
  lof_stats_t st = je_stats();
  assert_true(st.regions > base.regions);
  assert_true(st.committed > base.committed);

  /* a large allocation: jemalloc grows (retain: an uncommitted region,
   * then commit of what it uses) */
  spy_reset();
  size_t n = 2 * MiB; /* with the arenas' bases, fits the default 8 MiB RLIMIT_MEMLOCK (nobody) */
  char *p = mallocx(n, je_flags(ind));
  assert_non_null(p);
  spy_print("mallocx 2 MiB");
  assert_true(spy_calls[SPY_ALLOC] >= 1);
  if (opt_retain()) {
    /* jemalloc grows retained memory uncommitted; the lazy hooks commit
     * what it then uses, the eager ones committed the region at once */
    assert_true(spy_alloc_uncommitted >= 1);
    assert_true(eager ? spy_calls[SPY_COMMIT] == 0 : spy_calls[SPY_COMMIT] >= 1);
  }
  assert_true(smaps_has_flags(p, "lo lf"));
  memset(p, 0x5a, n);
  smaps_vma_t v;
  assert_int_equal(smaps_vma_at(p, &v), 0);
  assert_true(v.locked >= n);
  assert_true(je_stats().committed >= st.committed + n);

  /* free + purge: jemalloc's decay hands the extent to dalloc; under retain
   * we opt out and it decommits; either way the pages leave RAM */
  spy_reset();
  st = je_stats();
  dallocx(p, MALLOCX_TCACHE_NONE);
  assert_int_equal(je_ctl_arena("purge", ind), 0);
  spy_print("dallocx + purge");
  assert_true(spy_calls[SPY_DALLOC] >= 1);
  if (opt_retain()) assert_true(spy_calls[SPY_DECOMMIT] >= 1);
  if (eager && opt_retain()) assert_true(spy_calls[SPY_PURGE_FORCED] >= 1);
  lof_stats_t after = je_stats();
  if (!eager) assert_true(after.committed + n <= st.committed);
  uint64_t rss = 0, locked = 0;
  int vmas = 0;
  assert_int_equal(smaps_range(p, n, &rss, &locked, &vmas), 0);
  assert_true(locked < n / 8);

  /* destroy: every region of the arena is released */
  spy_reset();
  assert_int_equal(je_ctl_arena("destroy", ind), 0);
  spy_print("arena.destroy");
  assert_int_equal(je_stats().regions, base.regions);
  assert_int_equal(je_stats().committed, base.committed);
}

static void test_spy_small_churn(void **state) {
  /* many small and medium allocations: splits, merges, only refusals are
   * cross-region merges */
  extent_hooks_t *hooks = &spy_hooks;
  unsigned ind;
  size_t sz = sizeof ind;
  assert_int_equal(mallctl("arenas.create", &ind, &sz, &hooks, sizeof hooks), 0);
  spy_reset();
  enum { N_MAX = 20000 };
  static void *ptrs[N_MAX];
  /* under a lock budget (nobody, 8 MiB), a live set that fits it */
  const int N = lock_budgeted() ? 2500 : N_MAX;
  unsigned seed = 1;
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < N; i++) {
      size_t s = 16 + (size_t)(rand_r(&seed) % (i % 97 == 0 ? 200000 : 2000));
      ptrs[i] = mallocx(s, je_flags(ind));
      assert_non_null(ptrs[i]);
      memset(ptrs[i], i & 0xff, s < 64 ? s : 64);
    }
    for (int i = 0; i < N; i++) {
      assert_int_equal(((unsigned char *)ptrs[i])[0], i & 0xff);
      if (i % 4096 == 0) assert_true(smaps_has_flags(ptrs[i], "lo lf"));
      dallocx(ptrs[i], MALLOCX_TCACHE_NONE);
    }
  }
  assert_int_equal(je_ctl_arena("purge", ind), 0);
  spy_print("small churn");
  assert_int_equal(spy_refused[SPY_SPLIT], 0);
  assert_int_equal(spy_refused[SPY_COMMIT], 0);
  assert_int_equal(spy_refused[SPY_PURGE_FORCED], 0);
  assert_int_equal(je_ctl_arena("destroy", ind), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_commit_mode_requested),
    cmocka_unit_test(test_alloc_contract),
    cmocka_unit_test(test_dalloc_partial),
    cmocka_unit_test(test_spy_arena_life),
    cmocka_unit_test(test_spy_small_churn),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
