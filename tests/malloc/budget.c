/*
 * budget.c -- the lock budget on the real kernel, as an unprivileged process
 * under the default 8 MiB RLIMIT_MEMLOCK: the heap's charge follows use and
 * comes back, the policy holds at every place a lock can be refused (commit,
 * fork re-lock, ENOSYS from a seccomp filter), the memory cgroup's limit is a
 * budget, impossible sizes fail with ENOMEM, and the stats stay true to the
 * kernel's VmLck after an injected failure.
 *
 * Each scenario runs in a fresh process: the test forks, drops CAP_IPC_LOCK
 * and sets the limit (proc.h), and re-executes this binary with
 * "--scenario NAME" and the options under test.  It links liblofalloc-test
 * (the OS layer's fault-injection seam).
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lofalloc.h"
#include "os.h"
#include "proc.h"
#include "smaps.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)

static const char *self_path;

/* ---- scenarios (run in the re-executed child; exit 0 = pass) --------------- */

#define CHECK(cond)                                                           \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "scenario check failed: %s (line %d)\n", #cond, __LINE__); \
      exit(__LINE__ % 200 + 10);                                              \
    }                                                                         \
  } while (0)

static lof_stats_t stats_now(void) {
  lof_stats_t st;
  CHECK(lof_stats_get(&st, sizeof st) == 0);
  return st;
}

static void *thread_malloc16(void *arg) {
  (void)arg;
  void *p = lof_malloc(16);
  if (p != NULL) memset(p, 0x5a, 16);
  lof_free(p);
  return p;
}

/* strict under 8 MiB: threads each get a heap; 7 MiB of live small and
 * large blocks fit; after free-all and trim the charge is back; 100 rounds. */
static int scenario_strict_7m(void) {
  uint64_t vmlck0 = proc_vmlck();
  for (int t = 0; t < 4; t++) {
    pthread_t th;
    void *ret = NULL;
    CHECK(pthread_create(&th, NULL, thread_malloc16, NULL) == 0);
    CHECK(pthread_join(th, &ret) == 0);
    CHECK(ret != NULL); /* malloc(16) succeeded in thread t */
  }
  enum { NSMALL = 3 * 1024, NLARGE = 64 };     /* 3 MiB of 1 KiB + 4 MiB of 64 KiB */
  static char *small[NSMALL], *large[NLARGE];
  uint64_t high = 0;
  for (int round = 0; round < 100; round++) {
    for (int i = 0; i < NSMALL; i++) {
      small[i] = lof_malloc(1024);
      CHECK(small[i] != NULL);
      memset(small[i], (char)(i + round), 1024);
    }
    for (int i = 0; i < NLARGE; i++) {
      large[i] = lof_malloc(64 * KiB);
      CHECK(large[i] != NULL);
      memset(large[i], (char)(i ^ round), 64 * KiB);
    }
    lof_stats_t st = stats_now();
    CHECK(st.allocated >= 7 * MiB);
    CHECK(st.fallback == 0 && st.lock_failures == 0);
    CHECK(st.locked_range <= 8 * MiB);
    if (st.locked_range > high) high = st.locked_range;
    for (int i = 0; i < NSMALL; i++) {
      CHECK(small[i][1023] == (char)(i + round));
      lof_free(small[i]);
    }
    for (int i = 0; i < NLARGE; i++) {
      CHECK(large[i][64 * KiB - 1] == (char)(i ^ round));
      lof_free(large[i]);
    }
    lof_purge(); /* what malloc_trim(0) does */
    uint64_t vmlck = proc_vmlck();
    CHECK(vmlck < vmlck0 + 1 * MiB); /* the charge came back */
    /* and the stats say exactly what the kernel charges: heap + the
     * library's own bookkeeping (registry page, arenas, descriptors) */
    st = stats_now();
    CHECK(vmlck == st.locked_range + st.meta_locked);
    CHECK(st.meta_locked > 0 && st.meta_locked < 512 * KiB);
    if (round == 0)
      fprintf(stderr, "strict-7m: VmLck start %llu KiB, with 7 MiB live: locked_range %llu KiB, "
              "after free-all + malloc_trim(0): %llu KiB\n", (unsigned long long)(vmlck0 >> 10),
              (unsigned long long)(high >> 10), (unsigned long long)(vmlck >> 10));
  }
  return 0;
}

/* The lock refused with ENOSYS (a seccomp filter, installed by the parent
 * before exec, like valgrind or a sandbox): policy decides. */
static int scenario_enosys(void) {
  errno = 0;
  char *p = lof_malloc(100 * KiB);
  const char *policy = getenv("LOFALLOC_POLICY");
  lof_stats_t st = stats_now();
  CHECK(st.lock_failures >= 1);
  if (strcmp(policy, "strict") == 0) {
    CHECK(p == NULL && errno == ENOMEM);
    return 0;
  }
  CHECK(p != NULL); /* fallback: served, unlocked, counted */
  memset(p, 7, 100 * KiB);
  char *q = lof_malloc(8 * MiB);
  CHECK(q != NULL);
  memset(q, 8, 8 * MiB);
  st = stats_now();
  CHECK(st.fallback >= 8 * MiB && st.locked_range == 0);
  lof_free(q);
  lof_free(p);
  return 0;
}

/* A fork child whose re-lock is refused (injected): per policy. */
static int scenario_fork_relock(void) {
  char *p = lof_malloc(2 * MiB);
  CHECK(p != NULL);
  memset(p, 3, 2 * MiB);
  lof__os_inject(LOF_OS_MLOCK2, 1, ENOMEM, true);
  pid_t pid = fork();
  if (pid == 0) {
    lof_stats_t st;
    if (lof_stats_get(&st, sizeof st) != 0) _exit(2);
    /* the stats say what the kernel says: the child's copy is unlocked */
    if (st.fallback < 2 * MiB) _exit(3);
    if (proc_vmlck() > st.locked_range + st.meta_locked) _exit(4);
    if (p[2 * MiB - 1] != 3) _exit(5);
    _exit(0);
  }
  lof__os_inject(LOF_OS_MLOCK2, 0, 0, false);
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  fprintf(stderr, "fork-relock: child status %#x\n", status);
  if (strcmp(getenv("LOFALLOC_POLICY"), "abort") == 0) {
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  } else {
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  lof_free(p);
  return 0;
}

/* An unmap the kernel refuses (injected): warned once, counted, and the
 * stats keep matching VmLck. */
static int scenario_failed_release(void) {
  /* VmLck is read before the stats each time: its stdio may grow the heap */
#define GAP(st, v) ((int64_t)(v) - (int64_t)((st).locked_range + (st).meta_locked))
  char *huge = lof_malloc(6 * MiB);
  CHECK(huge != NULL);
  memset(huge, 1, 6 * MiB);
  uint64_t v = proc_vmlck();
  lof_stats_t st = stats_now();
  int64_t gap0 = GAP(st, v);
  lof_free(huge); /* kept in the huge cache ... */
  lof__os_inject(LOF_OS_MUNMAP, 1, ENOMEM, false);
  lof_purge(); /* ... which this empties: its munmap is refused */
  lof__os_inject(LOF_OS_MUNMAP, 0, 0, false);
  v = proc_vmlck();
  st = stats_now();
  int64_t gap1 = GAP(st, v);
  CHECK(st.release_failures == 1 && st.leaked >= 6 * MiB);
  if (gap0 != gap1)
    fprintf(stderr, "gap0 %lld gap1 %lld (VmLck %llu, locked_range %llu, meta %llu)\n",
            (long long)gap0, (long long)gap1, (unsigned long long)v,
            (unsigned long long)st.locked_range, (unsigned long long)st.meta_locked);
  CHECK(gap0 == gap1);
  char *again = lof_malloc(1 * MiB);
  CHECK(again != NULL);
  lof_free(again);
  v = proc_vmlck();
  st = stats_now();
  CHECK(GAP(st, v) == gap0);
#undef GAP
  return 0;
}

/* strict in a memory cgroup limited to 64 MiB: ENOMEM, not an OOM kill. */
static int scenario_cgroup(void) {
  errno = 0;
  char *big = lof_malloc(128 * MiB);
  CHECK(big == NULL && errno == ENOMEM);
  char *ok = lof_malloc(16 * MiB);
  CHECK(ok != NULL);
  memset(ok, 1, 16 * MiB);
  lof_stats_t st = stats_now();
  CHECK(st.cgroup_limit == 64 * MiB);
  lof_free(ok);
  return 0;
}

/* Sizes that cannot be backed fail with ENOMEM as glibc's mmap would. */
static int scenario_sizes(void) {
  struct sysinfo si;
  CHECK(sysinfo(&si) == 0);
  size_t ram_swap = (size_t)(si.totalram + si.totalswap) * si.mem_unit;
  size_t sizes[] = {ram_swap + 4 * GiB, (size_t)64 << 40, (size_t)1 << 47, SIZE_MAX / 2,
                    SIZE_MAX - 4096};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *plain = mmap(NULL, sizes[i], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bool kernel_says_no = plain == MAP_FAILED;
    if (!kernel_says_no) munmap(plain, sizes[i]);
    errno = 0;
    void *p = lof_malloc(sizes[i]);
    if (kernel_says_no) CHECK(p == NULL && errno == ENOMEM);
    lof_free(p);
  }
  lof_stats_t st = stats_now();
  CHECK(st.locked_range < 64 * MiB && st.committed < 64 * MiB); /* nothing wrapped */
  return 0;
}

/* Bookkeeping stays small next to what is touched: 4096 blocks of 64 KiB
 * with one page touched each, and a 1 GiB calloc with every 100th page
 * touched, lock at most 1.005 x the touched bytes + 512 KiB. */
static int scenario_metadata(void) {
  enum { NBLOCKS = 4096 };
  static char *blocks[NBLOCKS];
  lof_stats_t st0 = stats_now();
  size_t touched = 0;
  for (int i = 0; i < NBLOCKS; i++) {
    blocks[i] = lof_calloc(1, 64 * KiB);
    CHECK(blocks[i] != NULL);
    blocks[i][0] = 1;
    touched += 4096;
  }
  char *big = lof_calloc(1, GiB);
  CHECK(big != NULL);
  for (size_t off = 0; off < GiB; off += 100 * 4096) {
    big[off] = 1;
    touched += 4096;
  }
  lof_stats_t st1 = stats_now();
  uint64_t grew = st1.locked_resident - st0.locked_resident;
  fprintf(stderr, "metadata: touched %zu KiB, locked-resident grew %llu KiB (bound %zu KiB)\n",
          touched >> 10, (unsigned long long)(grew >> 10), (touched + touched / 200 + 512 * KiB) >> 10);
  CHECK(grew >= touched);
  CHECK(grew <= touched + touched / 200 + 512 * KiB);
  for (int i = 0; i < NBLOCKS; i++) lof_free(blocks[i]);
  lof_free(big);
  CHECK(lof_check() == 0);
  return 0;
}

static int run_scenario(const char *name) {
  if (strcmp(name, "metadata") == 0) return scenario_metadata();
  if (strcmp(name, "strict-7m") == 0) return scenario_strict_7m();
  if (strcmp(name, "enosys") == 0) return scenario_enosys();
  if (strcmp(name, "fork-relock") == 0) return scenario_fork_relock();
  if (strcmp(name, "failed-release") == 0) return scenario_failed_release();
  if (strcmp(name, "cgroup") == 0) return scenario_cgroup();
  if (strcmp(name, "sizes") == 0) return scenario_sizes();
  fprintf(stderr, "unknown scenario %s\n", name);
  return 99;
}

/* ---- the tests (parent side) -------------------------------------------------- */

typedef struct spawn {
  const char *scenario;
  const char *env[4];
  size_t memlock;        /* the RLIMIT_MEMLOCK the child gets, without CAP_IPC_LOCK (0: keep
                          * the caller's privileges; a hard limit cannot be raised here) */
  bool enosys_mlock2;    /* a seccomp filter: mlock2 fails with ENOSYS */
  const char *cgroup;    /* a cgroup.procs file to join, or NULL */
} spawn_t;

static void install_enosys_filter(void) {
  struct sock_filter f[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mlock2, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof f / sizeof f[0], f};
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static int spawn_child(void *arg) {
  spawn_t *s = arg;
  if (s->cgroup != NULL) {
    FILE *f = fopen(s->cgroup, "w");
    if (f == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) return 90;
  }
  if (s->memlock != 0 && drop_ipc_lock(s->memlock) != 0) return 91;
  for (int i = 0; s->env[i]; i++) putenv((char *)s->env[i]);
  /* last, so that only the exec'd scenario meets it */
  if (s->enosys_mlock2) install_enosys_filter();
  execl(self_path, self_path, "--scenario", s->scenario, (char *)NULL);
  return 92;
}

static void run_spawn(spawn_t *s, char *err, size_t len) {
  int status = run_in_child(spawn_child, s, err, len);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    print_error("scenario %s: status %#x; its stderr:\n%s\n", s->scenario, status, err);
    fail();
  }
}

static void test_strict_7m_under_8m(void **state) {
  (void)state;
  char err[4096];
  spawn_t s = {"strict-7m", {"LOFALLOC_POLICY=strict", NULL}, 8 * MiB, false, NULL};
  run_spawn(&s, err, sizeof err);
  assert_null(strstr(err, "cannot lock")); /* never refused */
  fprintf(stderr, "%s", err);
}

static void test_enosys_strict(void **state) {
  (void)state;
  char err[4096];
  spawn_t s = {"enosys", {"LOFALLOC_POLICY=strict", NULL}, 8 * MiB, true, NULL};
  run_spawn(&s, err, sizeof err);
  assert_non_null(strstr(err, "mlock2 is not available (ENOSYS"));
  assert_non_null(strstr(err, "failing the allocation with ENOMEM"));
}

static void test_enosys_fallback(void **state) {
  (void)state;
  char err[4096];
  spawn_t s = {"enosys", {"LOFALLOC_POLICY=fallback", NULL}, 8 * MiB, true, NULL};
  run_spawn(&s, err, sizeof err);
  char *w = strstr(err, "lofalloc: warning: cannot lock");
  if (w == NULL || strstr(w + 1, "lofalloc: warning: cannot lock") != NULL)
    print_error("stderr:\n%s\n", err);
  assert_non_null(w);
  assert_non_null(strstr(w, "ENOSYS"));
  assert_null(strstr(w + 1, "lofalloc: warning: cannot lock")); /* once */
}

static void fork_relock(const char *policy_env, const char *expect) {
  char err[4096];
  spawn_t s = {"fork-relock", {policy_env, NULL}, 8 * MiB, false, NULL};
  run_spawn(&s, err, sizeof err);
  char *w = strstr(err, "more of the fork child's heap");
  if (w == NULL) print_error("stderr:\n%s\n", err);
  assert_non_null(w);
  assert_non_null(strstr(w, expect));
}

static void test_fork_relock_strict(void **state) {
  (void)state;
  fork_relock("LOFALLOC_POLICY=strict", "it stays unlocked (LOFALLOC_POLICY=strict");
}

static void test_fork_relock_fallback(void **state) {
  (void)state;
  fork_relock("LOFALLOC_POLICY=fallback", "serving it unlocked");
}

static void test_fork_relock_abort(void **state) {
  (void)state;
  fork_relock("LOFALLOC_POLICY=abort", "aborting (LOFALLOC_POLICY=abort)");
}

static void test_failed_release_counted(void **state) {
  (void)state;
  char err[4096];
  spawn_t s = {"failed-release", {"LOFALLOC_POLICY=strict", NULL}, 0, false, NULL};
  run_spawn(&s, err, sizeof err);
  char *w = strstr(err, "lofalloc: warning: the kernel refused to unmap");
  assert_non_null(w);
  assert_null(strstr(w + 1, "lofalloc: warning: the kernel refused to unmap")); /* once */
}

#define CGROUP_V1_MEMORY "/sys/fs/cgroup/memory"
static void test_cgroup_strict_enomem(void **state) {
  (void)state;
  const char *root = CGROUP_V1_MEMORY;
  char dir[256], file[300];
  snprintf(dir, sizeof dir, "%s/lofalloc-budget-%d", root, (int)getpid());
  assert_int_equal(mkdir(dir, 0755), 0);
  snprintf(file, sizeof file, "%s/memory.limit_in_bytes", dir);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fprintf(f, "%zu\n", 64 * MiB);
  fclose(f);
  snprintf(file, sizeof file, "%s/cgroup.procs", dir);
  char err[4096];
  /* As root with CAP_IPC_LOCK, so that the cgroup (not an 8 MiB
   * RLIMIT_MEMLOCK, which root cannot raise here) is the limit that binds. */
  spawn_t s = {"cgroup", {"LOFALLOC_POLICY=strict", NULL}, 0, false, file};
  int status = run_in_child(spawn_child, &s, err, sizeof err);
  rmdir(dir);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    print_error("cgroup scenario: status %#x (signal %d = killed?); stderr:\n%s\n", status,
                WIFSIGNALED(status) ? WTERMSIG(status) : 0, err);
    fail();
  }
  assert_non_null(strstr(err, "the memory cgroup's limit (64.0 MiB) would be passed"));
}

static void test_sizes_enomem(void **state) {
  (void)state;
  char err[4096];
  spawn_t s = {"sizes", {"LOFALLOC_POLICY=strict", NULL}, 8 * MiB, false, NULL};
  run_spawn(&s, err, sizeof err);
}

static void test_metadata_overhead(void **state) {
  (void)state;
  /* the scenario locks 27 MiB: an 8 MiB limit serves most of it unlocked */
  if (lock_budgeted()) {
    printf("# metadata overhead not measured: locking is budgeted here (no CAP_IPC_LOCK)\n");
    skip();
  }
  char err[4096];
  spawn_t s = {"metadata", {NULL}, 0, false, NULL};
  run_spawn(&s, err, sizeof err);
  fprintf(stderr, "%s", err);
}

int main(int argc, char **argv) {
  self_path = "/proc/self/exe";
  if (argc == 3 && strcmp(argv[1], "--scenario") == 0) return run_scenario(argv[2]);
  static char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) { exe[n] = '\0'; self_path = exe; }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_strict_7m_under_8m),
    cmocka_unit_test(test_enosys_strict),
    cmocka_unit_test(test_enosys_fallback),
    cmocka_unit_test(test_fork_relock_strict),
    cmocka_unit_test(test_fork_relock_fallback),
    cmocka_unit_test(test_fork_relock_abort),
    cmocka_unit_test(test_failed_release_counted),
    cmocka_unit_test(test_sizes_enomem),
    cmocka_unit_test(test_metadata_overhead),
    cmocka_unit_test(test_cgroup_strict_enomem), /* last: only where it can run */
  };
  size_t ntests = sizeof tests / sizeof tests[0];
  struct stat sb;
  if (geteuid() != 0 || stat(CGROUP_V1_MEMORY, &sb) != 0) {
    printf("# the cgroup test is not run: it needs root and %s\n", CGROUP_V1_MEMORY);
    ntests--;
  }
  return _cmocka_run_group_tests("budget", tests, ntests, NULL, NULL);
}
