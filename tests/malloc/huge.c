/*
 * huge.c -- huge blocks: every power-of-two alignment up to 1 GiB and more;
 * the block is the whole mapping (metadata out of band); realloc past the
 * lock budget falls back to allocate-copy-free and keeps the data; freed
 * blocks are cached (reuse without a system call), decay (on huge calls and
 * on the arenas' clock, when only small blocks follow), and are given back
 * by lof_purge; with a reserve they are pinned and reused without a fault;
 * a request no cached block fits reuses the nearest one, mremapped, and its
 * resident pages are not faulted again (as root and unprivileged), and
 * sizes far apart share one block, grown in its room or handed out whole;
 * under RLIMIT_AS a block that fits only without its room gets none;
 * a reused
 * block keeps no resident pages of its earlier users past what the bound on
 * slack allows, and calloc drops them instead of writing zeros.
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
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lofalloc.h"
#include "nosyscall.h"
#include "proc.h"
#include "sanitizer.h"
#include "smaps.h"

#define MiB ((size_t)1 << 20)

static char *self;

/* stdout without stdio's buffer (whose malloc may be glibc's, a syscall) */
static void say(const char *msg) {
  ssize_t w = write(1, msg, strlen(msg));
  (void)w;
}

static void test_alignments_up_to_1g(void **state) {
  (void)state;
  for (size_t a = sizeof(void *); a <= ((size_t)4 << 30); a <<= 1) {
    void *p = NULL;
    assert_int_equal(lof_posix_memalign(&p, a, 100), 0);
    assert_non_null(p);
    assert_true(((uintptr_t)p & (a - 1)) == 0);
    memset(p, 1, 100);
    lof_free(p);
    char *q = lof_aligned_alloc(a, a < MiB ? a : MiB);
    assert_non_null(q);
    assert_true(((uintptr_t)q & (a - 1)) == 0);
    q[0] = 2;
    lof_free(q);
    q = lof_memalign(a, 3 * MiB);
    assert_non_null(q);
    assert_true(((uintptr_t)q & (a - 1)) == 0);
    q[3 * MiB - 1] = 3;
    assert_true(lof_malloc_usable_size(q) >= 3 * MiB);
    lof_free(q);
  }
  void *p = NULL;
  assert_int_equal(lof_posix_memalign(&p, 24, 100), EINVAL);
  assert_int_equal(lof_check(), 0);
}

/* The block is its whole mapping: no allocator page in front of it, and the
 * program may replace its own pages and still free the block. */
static void test_metadata_out_of_band(void **state) {
  (void)state;
  size_t sz = 8 * MiB;
  char *p = lof_malloc(sz);
  assert_non_null(p);
  smaps_vma_t v;
  assert_int_equal(smaps_vma_at(p, &v), 0);
  assert_true(v.start == (uintptr_t)p);
  memset(p, 0xab, sz);
  void *r = mmap(p, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  assert_true(r == p);
  assert_int_equal(lof_check(), 0);
  assert_true(lof_malloc_usable_size(p) >= sz);
  lof_free(p);
  assert_int_equal(lof_check(), 0);
}

/* LOFALLOC_MAX_LOCKED=16M (in a re-executed child): a 6 MiB block grown to
 * 30 MiB cannot be grown in place within the budget; the realloc still
 * succeeds and keeps the data.  Under strict it fails and keeps the block. */
static int child_realloc(bool strict) {
  size_t a = 6 * MiB, b = 30 * MiB;
  unsigned char *p = lof_malloc(a);
  if (p == NULL) return 1;
  for (size_t i = 0; i < a; i++) p[i] = (unsigned char)(i * 7);
  errno = 0;
  unsigned char *q = lof_realloc(p, b);
  if (strict) {
    if (q != NULL || errno != ENOMEM) return 2;
    q = p;
  } else if (q == NULL) {
    return 3;
  }
  for (size_t i = 0; i < a; i++)
    if (q[i] != (unsigned char)(i * 7)) return 4;
  if (!strict) memset(q + a, 5, b - a);
  printf("# realloc 6 -> 30 MiB under LOFALLOC_MAX_LOCKED=16M (%s): %s\n",
         strict ? "strict" : "fallback", strict ? "NULL, block kept" : "grown, data kept");
  lof_free(q);
  return lof_check() == 0 ? 0 : 5;
}

static void run_child(char *mode, char *const extra[]) {
  char *argv[] = {self, NULL};
  char *env[8];
  size_t n = 0;
  char modevar[64];
  snprintf(modevar, sizeof modevar, "LOFTEST_HUGE_CHILD=%s", mode);
  env[n++] = modevar;
  for (size_t i = 0; extra[i] && n < 7; i++) env[n++] = extra[i];
  env[n] = NULL;
  char err[4096];
  int st = run_with_env(argv, env, err, sizeof err);
  if (WIFEXITED(st) && WEXITSTATUS(st) == NOSYSCALL_EXIT) fail_msg("%s: SIGSYS: %s", mode, err);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("%s: child status %#x: %s", mode, st, err);
}

static void test_realloc_past_budget(void **state) {
  (void)state;
  run_child("realloc", (char *[]){"LOFALLOC_MAX_LOCKED=16M", NULL});
  run_child("realloc-strict", (char *[]){"LOFALLOC_MAX_LOCKED=16M", "LOFALLOC_POLICY=strict", NULL});
}

/* A freed block is reused by the next request of its size without a system
 * call; lof_purge gives it back. */
static int child_cache(void) {
  size_t sz = 8 * MiB;
  char *p = lof_malloc(sz);
  if (p == NULL) return 1;
  memset(p, 1, sz);
  lof_free(p);
  smaps_vma_t v;
  if (smaps_vma_at(p, &v) != 0) return 2; /* kept, not unmapped */
  char *q = lof_malloc(sz - 100 * 1024);
  if (q != p) return 3;
  lof_free(q);
  size_t purged = lof_purge();
  if (purged < sz) return 4;
  if (smaps_vma_at(p, &v) == 0 && v.start <= (uintptr_t)p && (uintptr_t)p < v.end &&
      v.rss != 0)
    return 5;
  /* and reuse is syscall-free */
  p = lof_malloc(sz);
  if (p == NULL) return 6;
  lof_free(p);
  if (nosyscall_install() != 0) return 7;
  q = lof_malloc(sz);
  if (q != p) return 8;
  q[0] = 1;
  say("# 8 MiB freed and reused at the same address, no system call\n");
  _exit(0); /* exit at once: the filter stays */
}

/* LOFALLOC_DECAY_MS=50: a cached block older than that is unmapped at the
 * next huge operation. */
static int child_decay(void) {
  char *p = lof_malloc(8 * MiB);
  if (p == NULL) return 1;
  lof_free(p);
  smaps_vma_t v;
  if (smaps_vma_at(p, &v) != 0) return 2;
  usleep(150 * 1000);
  char *q = lof_malloc(32 * MiB); /* too big to reuse it; runs the expiry */
  if (q == NULL || q == p) return 3;
  bool gone = smaps_vma_at(p, &v) != 0 || (uintptr_t)p < v.start || (uintptr_t)p >= v.end;
  lof_free(q);
  return gone ? 0 : 4;
}

/* LOFALLOC_DECAY_MS=50, and no huge call after the free: a program that
 * goes on with small blocks only gets the cached block's mapping and pages
 * back once it decayed (the arenas' decay clock expires the cache). */
static int child_decay_small(bool unpriv) {
  if (unpriv && drop_ipc_lock(8 * MiB) != 0) return 20;
  size_t sz = unpriv ? 4 * MiB + 4096 : 8 * MiB;
  char *p = lof_malloc(sz);
  if (p == NULL) return 1;
  memset(p, 1, sz);
  lof_free(p);
  smaps_vma_t v;
  if (smaps_vma_at(p, &v) != 0) return 2; /* cached: still mapped */
  uint64_t rss0 = smaps_total_rss();
  usleep(150 * 1000);
  /* 16 KiB blocks: a span holds 16, so these take 8 spans from the arena */
  enum { N = 128 };
  void *b[N];
  for (int i = 0; i < N; i++)
    if ((b[i] = lof_malloc(16000)) == NULL) return 3;
  bool gone = smaps_vma_at(p, &v) != 0 || (uintptr_t)p < v.start || (uintptr_t)p >= v.end;
  uint64_t rss1 = smaps_total_rss();
  for (int i = 0; i < N; i++) lof_free(b[i]);
  char msg[160];
  snprintf(msg, sizeof msg, "# %s: small mallocs only, 150 ms after a written %zu KiB block was "
           "freed: %s, RSS %llu -> %llu KiB\n", unpriv ? "unprivileged" : "root", sz >> 10,
           gone ? "unmapped" : "still cached", (unsigned long long)(rss0 >> 10),
           (unsigned long long)(rss1 >> 10));
  say(msg);
  if (!gone) return 4;
  return rss1 + sz - 3 * MiB <= rss0 ? 0 : 5; /* its pages left with it (the blocks add 2 MiB) */
}

/* With a reserve, a freed huge block is pinned and populated: its reuse
 * makes no system call and takes no page fault. */
static int child_reserve(void) {
  size_t sz = 4 * MiB;
  if (lof_reserve(4 * MiB) != 0) return 1;
  char *p = lof_malloc(sz);
  if (p == NULL) return 2;
  lof_free(p);
  struct rusage r0, r1;
  if (nosyscall_install() != 0) return 3;
  getrusage(RUSAGE_SELF, &r0);
  char *q = lof_malloc(sz);
  for (size_t off = 0; q != NULL && off < sz; off += 4096) q[off] = 1;
  getrusage(RUSAGE_SELF, &r1);
  if (q != p) return 4;
  long flt = (r1.ru_minflt - r0.ru_minflt) + (r1.ru_majflt - r0.ru_majflt);
  char msg[96];
  snprintf(msg, sizeof msg, "# reserve: a freed 4 MiB block reused: %ld faults, no system call\n", flt);
  say(msg);
  _exit(flt == 0 ? 0 : 5);
}

/* A freed, fully written 8 MiB block serves a 12 MiB request (grown in
 * place into its room, not moved and not a fresh mapping: its 8 MiB are
 * touched again without a fault), then a
 * 5 MiB one whole (at most four times the request); lof_purge gives it
 * back.  Unprivileged too, under the default 8 MiB limit, at smaller sizes. */
static long minflt(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_minflt;
}

static int child_resize(bool unpriv) {
  /* root cannot raise the hard limit: unprivileged, the default 8 MiB, so
   * smaller blocks (the huge threshold is 4 MiB) */
  if (unpriv && drop_ipc_lock(8 * MiB) != 0) return 20;
  size_t first = unpriv ? 4 * MiB + 256 * 1024 : 8 * MiB, grown = unpriv ? 6 * MiB : 12 * MiB;
  size_t small = unpriv ? 4 * MiB + 4096 : 5 * MiB;
  char *p = lof_malloc(first);
  if (p == NULL) return 1;
  memset(p, 1, first);
  lof_free(p);
  char *q = lof_malloc(grown);
  if (q == NULL) return 2;
  if (q != p) return 8; /* grown into its room, in place: not moved */
  long f0 = minflt();
  for (size_t off = 0; off < first; off += 4096) q[off] = 2;
  long f1 = minflt();
  for (size_t off = first; off < grown; off += 4096) q[off] = 3;
  if (lof_malloc_usable_size(q) < grown) return 3;
  if (lof_check() != 0) return 4;
  lof_free(q);
  char *r = lof_malloc(small);
  if (r != q || lof_malloc_usable_size(r) < grown) return 5; /* reused whole */
  lof_free(r);
  if (lof_purge() < grown) return 6;
  char msg[128];
  snprintf(msg, sizeof msg, "# %s: %zu KiB freed, reused for %zu KiB: %ld faults over its first part\n",
           unpriv ? "unprivileged" : "root", first >> 10, grown >> 10, f1 - f0);
  say(msg);
#ifdef UNDER_SANITIZER /* its shadow memory faults with every page touched */
  return 0;
#else
  return f1 - f0 < 64 ? 0 : 7;
#endif
}

/* The pages of [p, p + len) that are resident (mincore). */
static size_t resident_pages(const void *p, size_t len) {
  static unsigned char vec[(256 * MiB) / 4096];
  size_t n = len / 4096, count = 0;
  if (n > sizeof vec || mincore((void *)p, len, vec) != 0) return SIZE_MAX;
  for (size_t i = 0; i < n; i++) count += vec[i] & 1;
  return count;
}

static char *touched(size_t len, int byte) {
  char *p = lof_malloc(len);
  if (p != NULL) memset(p, byte, len);
  return p;
}

/* Sizes far apart reuse one block with no page dropped or moved.  A
 * cached block grows in place into its room (three times its size) for a
 * request up to four times larger, and is handed out whole, its slack
 * resident, for a request four to eight times smaller that nothing else
 * cached fits -- not shrunk (only further than that): on this VM (doc/malloc.md) dropping or moving
 * tens of MiB of resident pages makes every page of the process fault
 * again.  Unprivileged (8 MiB), with the huge threshold at 256 KiB, where
 * blocks get no room: the handing out whole. */
static int child_far(bool unpriv) {
  if (unpriv && drop_ipc_lock(8 * MiB) != 0) return 20;
  char msg[160];
  size_t big = 6 * MiB, req = 1 * MiB;
  if (!unpriv) {
    char *p = touched(8 * MiB, 1);
    if (p == NULL) return 1;
    lof_free(p);
    big = 30 * MiB;
    req = 5 * MiB;
    char *q = lof_malloc(big);
    if (q != p) return 2; /* grown into its room: 8 + 24 MiB */
    snprintf(msg, sizeof msg, "# root: an 8 MiB block reused for 30 MiB at its address\n");
    say(msg);
  }
  char *b = touched(big, 2);
  if (b == NULL) return 3;
  lof_free(b);
  char *r = lof_malloc(req);
  size_t usable = lof_malloc_usable_size(r), res = resident_pages(r, big);
  snprintf(msg, sizeof msg, "# %s: a %zu MiB block reused for %zu MiB: %zu MiB usable, %zu pages resident\n",
           unpriv ? "unprivileged" : "root", big >> 20, req >> 20, usable >> 20, res);
  say(msg);
  if (r != b) return 4;
  if (usable != big || res != big / 4096) return 5; /* whole, nothing dropped */
  lof_free(r);
  /* More than eight times smaller: shrunk, so no block carries a slack of
   * more than seven times its request. */
  if (!unpriv) {
    big = 64 * MiB;
    if ((b = touched(big, 3)) != r) return 6; /* grown in place once more */
    lof_free(b);
  }
  size_t small = unpriv ? 512 * 1024 : 5 * MiB;
  char *t = lof_malloc(small);
  usable = lof_malloc_usable_size(t);
  snprintf(msg, sizeof msg, "# %s: a %zu MiB block reused for %zu KiB: %zu KiB usable\n",
           unpriv ? "unprivileged" : "root", big >> 20, small >> 10, usable >> 10);
  say(msg);
  if (t != b || usable != small) return 7;
  lof_free(t);
  return lof_check() == 0 ? 0 : 8;
}

/* Under RLIMIT_AS with room for a block but not for the block and its
 * room (three times its size), malloc still succeeds: the block is mapped
 * without room, and works.  Unprivileged (8 MiB), the block is served
 * unlocked by the default fallback policy, still without room. */
static int child_aslimit(bool unpriv) {
  if (unpriv && drop_ipc_lock(8 * MiB) != 0) return 20;
  char *warm = lof_malloc(64); /* the heap's own reservations come first */
  if (warm == NULL) return 1;
  size_t vm = 0;
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  while (f != NULL && fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "VmSize: %zu", &vm) == 1) break;
  if (f != NULL) fclose(f);
  if (vm == 0) return 2;
  size_t big = 200 * MiB;
  struct rlimit rl = {(rlim_t)vm * 1024 + 300 * MiB, RLIM_INFINITY};
  if (setrlimit(RLIMIT_AS, &rl) != 0) return 3;
  char *p = lof_malloc(big);
  char msg[128];
  snprintf(msg, sizeof msg, "# %s, RLIMIT_AS VmSize + 300 MiB: malloc(200 MiB) %s\n",
           unpriv ? "unprivileged" : "root", p ? "served" : "failed");
  say(msg);
  if (p == NULL) return 4;
  p[0] = 1;
  p[big - 1] = 2;
  if (lof_malloc_usable_size(p) != big) return 5;
  lof_free(p);
  lof_free(warm);
  return lof_check() == 0 ? 0 : 6;
}

/* A reused block does not carry its earlier users' pages past what the
 * program asks for.  calloc of a freed, fully written block gets it back
 * with its pages dropped (zero, not resident) instead of zeros written over
 * them.  Root only (it needs more than the cache's 256 MiB bound): a block
 * handed out whole for a quarter of its size keeps its slack resident
 * while the cache and the live slack hold at most 256 MiB, and past that
 * the block is shrunk to the request. */
static int child_residency(bool unpriv) {
  if (unpriv && drop_ipc_lock(8 * MiB) != 0) return 20;
  size_t sz = unpriv ? 4 * MiB + 4096 : 8 * MiB;
  char *p = touched(sz, 0xab);
  if (p == NULL) return 1;
  lof_free(p);
  unsigned char *c = lof_calloc(1, sz);
  if (c != (unsigned char *)p) return 2; /* the cached block, reused */
  size_t res = resident_pages(c, sz);
  for (size_t i = 0; i < sz; i += 512)
    if (c[i] != 0) return 3;
  lof_free(c);
  char msg[160];
  snprintf(msg, sizeof msg, "# %s: calloc of a reused, written %zu KiB block: %zu pages resident\n",
           unpriv ? "unprivileged" : "root", sz >> 10, res);
  say(msg);
  if (res != 0) return 4;
  if (unpriv) return lof_check() == 0 ? 0 : 5;

  size_t big = 80 * MiB, req = 20 * MiB, slack = big - req;
  char *x = touched(big, 1);
  if (x == NULL) return 6;
  lof_free(x);
  char *kept = lof_malloc(req);
  if (kept != x) return 7;
  char *y[3];
  for (int i = 0; i < 3; i++)
    if ((y[i] = touched(big, 2)) == NULL) return 8;
  for (int i = 0; i < 3; i++) lof_free(y[i]);
  char *dropped = lof_malloc(req);
  if (dropped != y[0] && dropped != y[1] && dropped != y[2]) return 9;
  size_t kept_res = resident_pages(kept + req, slack);
  size_t kept_usable = lof_malloc_usable_size(kept), dropped_usable = lof_malloc_usable_size(dropped);
  snprintf(msg, sizeof msg,
           "# root: %zu MiB blocks for %zu MiB: in bound %zu MiB usable, %zu slack pages resident;"
           " past it %zu MiB usable\n", big >> 20, req >> 20, kept_usable >> 20, kept_res,
           dropped_usable >> 20);
  say(msg);
  if (kept_usable != big || kept_res != slack / 4096) return 10;
  if (dropped_usable != req) return 13; /* shrunk: the slack's pages and charge are gone */
  if (resident_pages(dropped, req) != req / 4096) return 11; /* the request's pages stay */
  lof_free(kept);
  lof_free(dropped);
  return lof_check() == 0 ? 0 : 12;
}

static void test_cache_residency(void **state) {
  (void)state;
  run_child("residency", (char *[]){NULL});
  run_child("residency-unpriv", (char *[]){NULL});
}

static void test_cache_resize(void **state) {
  (void)state;
  run_child("resize", (char *[]){NULL});
  run_child("resize-unpriv", (char *[]){NULL});
}

static __attribute__((unused)) void test_room_is_optional(void **state) {
  (void)state;
  run_child("aslimit", (char *[]){NULL});
  run_child("aslimit-unpriv", (char *[]){NULL});
}

static void test_cache_far_sizes(void **state) {
  (void)state;
  run_child("far", (char *[]){NULL});
  run_child("far-unpriv", (char *[]){"LOFALLOC_HUGE_THRESHOLD=262144", NULL});
}

static void test_cache_decay_without_huge_calls(void **state) {
  (void)state;
  run_child("decay-small", (char *[]){"LOFALLOC_DECAY_MS=50", NULL});
  run_child("decay-small-unpriv", (char *[]){"LOFALLOC_DECAY_MS=50", NULL});
}

static __attribute__((unused)) void test_cache(void **state) {
  (void)state;

  run_child("cache", (char *[]){NULL});
  run_child("decay", (char *[]){"LOFALLOC_DECAY_MS=50", NULL});
  run_child("reserve", (char *[]){NULL});
}

int main(int argc, char **argv) {
  (void)argc;
  self = argv[0];
  if (access("/proc/self/exe", X_OK) == 0) self = "/proc/self/exe";
  const char *mode = getenv("LOFTEST_HUGE_CHILD");
  if (mode) {
    if (strcmp(mode, "realloc") == 0) return child_realloc(false);
    if (strcmp(mode, "realloc-strict") == 0) return child_realloc(true);
    if (strcmp(mode, "cache") == 0) return child_cache();
    if (strcmp(mode, "decay") == 0) return child_decay();
    if (strcmp(mode, "decay-small") == 0) return child_decay_small(false);
    if (strcmp(mode, "decay-small-unpriv") == 0) return child_decay_small(true);
    if (strcmp(mode, "reserve") == 0) return child_reserve();
    if (strcmp(mode, "resize") == 0) return child_resize(false);
    if (strcmp(mode, "resize-unpriv") == 0) return child_resize(true);
    if (strcmp(mode, "aslimit") == 0) return child_aslimit(false);
    if (strcmp(mode, "aslimit-unpriv") == 0) return child_aslimit(true);
    if (strcmp(mode, "far") == 0) return child_far(false);
    if (strcmp(mode, "far-unpriv") == 0) return child_far(true);
    if (strcmp(mode, "residency") == 0) return child_residency(false);
    if (strcmp(mode, "residency-unpriv") == 0) return child_residency(true);
    return 99;
  }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_alignments_up_to_1g),
    cmocka_unit_test(test_metadata_out_of_band),
    cmocka_unit_test(test_realloc_past_budget),
    cmocka_unit_test(test_cache_resize),
    cmocka_unit_test(test_cache_residency),
    cmocka_unit_test(test_cache_far_sizes),
#ifndef UNDER_SANITIZER /* a sanitizer's shadow memory is address space too */
    cmocka_unit_test(test_room_is_optional),
#endif
    cmocka_unit_test(test_cache_decay_without_huge_calls),
#ifndef UNDER_SANITIZER /* a sanitizer runtime makes memory system calls of its own */
    cmocka_unit_test(test_cache),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
