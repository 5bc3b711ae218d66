/*
 * realtime.c -- lof_reserve: a heap that never faults after start-up, with
 * the proof.  After lof_reserve, 10^6 mixed malloc/free of 16 B up to
 * 1 MiB (64 KiB in one 4 MiB segment where only the default 8 MiB
 * RLIMIT_MEMLOCK is available),
 * each block written once per page, run under a seccomp filter that traps
 * every memory system call (SIGSYS fails the test), and ru_minflt/ru_majflt
 * must not move.  A reserve the lock budget cannot hold fails with ENOMEM
 * and changes nothing; LOFALLOC_RESERVE does it at start-up; pinned memory
 * survives lof_purge.  Every case runs in a child process.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* May this process lock 128 MiB (CAP_IPC_LOCK or a large enough limit)? */
static bool can_lock_big(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  unsigned long long cap = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "CapEff: %llx", &cap) == 1) break;
  if (f) fclose(f);
  if (cap & (1ull << 14)) return true; /* CAP_IPC_LOCK */
  struct rlimit rl;
  return getrlimit(RLIMIT_MEMLOCK, &rl) == 0 &&
         (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= 128 * MiB);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) { /* xorshift64: no system call, no libc state */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* A size from 16 B to max, log-uniform. */
static size_t rng_size(size_t max) {
  unsigned top = 63u - (unsigned)__builtin_clzll(max); /* log2(max) */
  unsigned k = 4 + (unsigned)(rng() % (top - 3));      /* 2^4 .. 2^top */
  size_t lo = (size_t)1 << k, sz = lo + (size_t)(rng() % lo);
  return sz > max ? max : sz;
}

typedef struct mix {
  size_t slots;    /* live blocks at most */
  size_t max_size; /* largest request */
  long ops;        /* malloc + free pairs */
} mix_t;

/* The paced loop's work without the pacing: random slot, free what is
 * there, malloc a new size, write one byte per page.  Returns -1 on NULL. */
static int run_mix(const mix_t *m, void **slot, uint64_t *checksum) {
  for (long i = 0; i < m->ops; i++) {
    size_t k = (size_t)(rng() % m->slots);
    lof_free(slot[k]);
    size_t sz = rng_size(m->max_size);
    char *p = lof_malloc(sz);
    if (p == NULL) return -1;
    for (size_t off = 0; off < sz; off += 4096) p[off] = (char)i;
    p[sz - 1] = 1;
    *checksum += (uintptr_t)p & 0xff;
    slot[k] = p;
  }
  return 0;
}

static void touch_stack(void) {
  volatile char pad[256 * 1024];
  for (size_t i = 0; i < sizeof pad; i += 4096) pad[i] = 0;
}

static void say(const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) {
    ssize_t w = write(1, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    (void)w;
  }
}

static int child_no_syscall(void *arg) {
  (void)arg;
  bool big = can_lock_big();
  size_t reserve = big ? 64 * MiB : 4 * MiB;
  mix_t mix = {big ? 32 : 8, big ? MiB : 64 * 1024, 1000000};
  static void *slot[64];
  /* LOFTEST_RT_RESERVE=0 runs the same mix without a reserve: the control
   * that shows the proof can fail (by hand, not part of the suite). */
  const char *force = getenv("LOFTEST_RT_RESERVE");
  if (force) reserve = (size_t)strtoull(force, NULL, 0);
  if (reserve && lof_reserve(reserve) != 0) {
    say("# lof_reserve(%zu MiB) failed: %s\n", reserve / MiB, strerror(errno));
    return 10;
  }
  lof_stats_t st;
  lof_stats_get(&st, sizeof st);
  if (st.pinned < reserve || st.pinned_populated < reserve) return 11;
  lof_purge(); /* the control starts from a purged heap, as after an idle second */
  /* Warm-up: the thread heap, code pages and stack, not the memory (that is
   * the reserve's job): a short run of the same mix, then everything freed. */
  uint64_t sum = 0;
  mix_t warm = mix;
  warm.ops = 20000;
  touch_stack();
  if (run_mix(&warm, slot, &sum) != 0) return 12;
  for (size_t k = 0; k < mix.slots; k++) {
    lof_free(slot[k]);
    slot[k] = NULL;
  }
  struct rusage r0, r1;
  if (nosyscall_install() != 0) return 13;
  getrusage(RUSAGE_SELF, &r0);
  rng_state = 0x1234567890abcdefull; /* a different sequence from the warm-up */
  int rc = run_mix(&mix, slot, &sum);
  getrusage(RUSAGE_SELF, &r1);
  long minflt = r1.ru_minflt - r0.ru_minflt, majflt = r1.ru_majflt - r0.ru_majflt;
  say("# reserve %zu MiB, %ld malloc+free of 16 B..%zu KiB: %ld minor, %ld major faults, "
      "no memory system call (checksum %llu)\n",
      reserve / MiB, mix.ops, mix.max_size / 1024, minflt, majflt, (unsigned long long)sum);
  if (rc != 0) return 14;
  if (minflt != 0 || majflt != 0) return 15;
  return lof_check() == 0 ? 0 : 16;
}

static __attribute__((unused)) void test_reserve_no_syscall_no_fault(void **state) {
  (void)state;

  char err[4096];
  int st = run_in_child(child_no_syscall, NULL, err, sizeof err);
  if (WIFEXITED(st) && WEXITSTATUS(st) == NOSYSCALL_EXIT) fail_msg("SIGSYS: %s", err);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("child status %#x: %s", st, err);
}

/* Under the default 8 MiB limit, without CAP_IPC_LOCK, 64 MiB cannot be
 * locked: ENOMEM, and nothing is charged, pinned or broken. */
static int child_refused(void *arg) {
  (void)arg;
  if (drop_ipc_lock(8 * MiB) != 0) return 20;
  void *warm = lof_malloc(100);
  (void)proc_vmlck(); /* its stdio takes its blocks before the counts below */
  lof_stats_t s0, s1;
  lof_stats_get(&s0, sizeof s0);
  uint64_t vmlck0 = proc_vmlck();
  errno = 0;
  int rc = lof_reserve(64 * MiB);
  int err = errno;
  lof_stats_get(&s1, sizeof s1);
  uint64_t vmlck1 = proc_vmlck();
  say("# refused: rc %d errno %d, VmLck %llu -> %llu KiB, locked_range %llu -> %llu KiB, "
      "pinned %llu\n", rc, err, (unsigned long long)vmlck0 >> 10,
      (unsigned long long)vmlck1 >> 10, (unsigned long long)s0.locked_range >> 10,
      (unsigned long long)s1.locked_range >> 10, (unsigned long long)s1.pinned);
  if (rc != -1 || err != ENOMEM) return 21;
  if (vmlck1 != vmlck0 || s1.locked_range != s0.locked_range) return 22;
  if (s1.pinned != s0.pinned) return 23;
  char *p = lof_malloc(3 * MiB);
  if (p == NULL) return 24;
  memset(p, 7, 3 * MiB);
  lof_free(p);
  lof_free(warm);
  return lof_check() == 0 ? 0 : 25;
}

static void test_reserve_refused_under_budget(void **state) {
  (void)state;
  char err[4096];
  int st = run_in_child(child_refused, NULL, err, sizeof err);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("child status %#x: %s", st, err);
  assert_non_null(strstr(err, "lof_reserve")); /* the one-line warning */
}

/* Pinned memory stays resident and locked through lof_purge. */
static int child_purge(void *arg) {
  (void)arg;
  size_t reserve = can_lock_big() ? 32 * MiB : 4 * MiB;
  if (lof_reserve(reserve) != 0) return 30;
  enum { N = 16 };
  void *b[N];
  for (int i = 0; i < N; i++) {
    b[i] = lof_malloc(reserve / N / 2);
    if (b[i] == NULL) return 31;
    memset(b[i], 1, reserve / N / 2);
  }
  for (int i = 0; i < N; i++) lof_free(b[i]);
  uint64_t before = smaps_total_locked();
  size_t purged = lof_purge();
  uint64_t after = smaps_total_locked();
  say("# pinned %zu MiB: lof_purge gave back %zu bytes, locked %llu -> %llu KiB\n",
      reserve / MiB, purged, (unsigned long long)before >> 10, (unsigned long long)after >> 10);
  if (after < reserve) return 32;
  if (before > after + MiB) return 33;
  return lof_check() == 0 ? 0 : 34;
}

static void test_reserve_survives_purge(void **state) {
  (void)state;
  char err[4096];
  int st = run_in_child(child_purge, NULL, err, sizeof err);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("child status %#x: %s", st, err);
}

/* LOFALLOC_RESERVE=2M: pinned and populated before main. */
static int child_env(void) {
  lof_stats_t st;
  void *p = lof_malloc(16);
  lof_stats_get(&st, sizeof st);
  uint64_t locked = smaps_total_locked();
  printf("# LOFALLOC_RESERVE=2M: pinned %llu KiB, populated %llu KiB, locked %llu KiB\n",
         (unsigned long long)st.pinned >> 10, (unsigned long long)st.pinned_populated >> 10,
         (unsigned long long)locked >> 10);
  lof_free(p);
  if (st.pinned < 2 * MiB || st.pinned_populated < 2 * MiB) return 1;
  return locked >= 2 * MiB ? 0 : 2;
}

static void test_reserve_env(void **state) {
  (void)state;
  char *argv[] = {self, NULL};
  char *env[] = {"LOFALLOC_RESERVE=2M", "LOFTEST_RT_CHILD=env", NULL};
  char err[4096];
  int st = run_with_env(argv, env, err, sizeof err);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("child status %#x: %s", st, err);
}

int main(int argc, char **argv) {
  (void)argc;
  self = argv[0];
  if (access("/proc/self/exe", X_OK) == 0) self = "/proc/self/exe";
  const char *mode = getenv("LOFTEST_RT_CHILD");
  if (mode && strcmp(mode, "env") == 0) return child_env();
  const struct CMUnitTest tests[] = {
#ifndef UNDER_SANITIZER /* a sanitizer runtime makes memory system calls of its own */
    cmocka_unit_test(test_reserve_no_syscall_no_fault),
#endif
    cmocka_unit_test(test_reserve_refused_under_budget),
    cmocka_unit_test(test_reserve_survives_purge),
    cmocka_unit_test(test_reserve_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
