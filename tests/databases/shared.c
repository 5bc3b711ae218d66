/*
 * shared.c -- locked shared memory (LOFALLOC_LOCK_SHARED=1, allocator/
 * malloc/shared.c) on the real kernel: anonymous MAP_SHARED, shm_open,
 * memfd and System V segments come out `lo lf`, lock only what is touched
 * (smaps Locked: = touched), are counted in lof_stats_t.shared_* and given
 * back on munmap/shmdt (also in part); private and read-only mappings are
 * left alone; a fork child locks them again; past the budget the policy
 * applies (fallback: unlocked and counted; strict: ENOMEM).
 *
 * The binary re-executes itself with LOFALLOC_LOCK_SHARED=1 and
 * LOFALLOC_MAX_LOCKED=64M (options are read once, at start-up).  Sizes stay
 * small so the test also passes unprivileged under the default 8 MiB
 * RLIMIT_MEMLOCK.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lofalloc.h"
#include "smaps.h"

#define PAGE 4096
#define MAP_BYTES ((size_t)1 << 20) /* 1 MiB: fits any memlock limit beside the heap */

static lof_stats_t stats_now(void) {
  lof_stats_t st;
  assert_int_equal(lof_stats_get(&st, sizeof st), 0);
  return st;
}

/* Touch every other page; the VMA must be lo lf with Locked == touched. */
static void check_locked_sparse(char *p, size_t len) {
  assert_true(smaps_has_flags(p, "lo lf"));
  smaps_vma_t v0;
  assert_int_equal(smaps_vma_at(p, &v0), 0);
  assert_int_equal(v0.locked, 0); /* nothing touched, nothing locked */
  for (size_t off = 0; off < len; off += 2 * PAGE) p[off] = 1;
  smaps_vma_t v;
  assert_int_equal(smaps_vma_at(p, &v), 0);
  assert_int_equal(v.locked, len / 2);
  assert_int_equal(v.rss, len / 2);
}

static void test_anonymous_shared(void **state) {
  (void)state;
  lof_stats_t a = stats_now();
  char *p = mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  lof_stats_t b = stats_now();
  assert_int_equal(b.shared_locked_range, a.shared_locked_range + MAP_BYTES);
  assert_int_equal(b.shared_mappings, a.shared_mappings + 1);
  assert_true(b.locked_range >= a.locked_range + MAP_BYTES);
  check_locked_sparse(p, MAP_BYTES);
  assert_int_equal(munmap(p, MAP_BYTES), 0);
  lof_stats_t c = stats_now();
  assert_int_equal(c.shared_locked_range, a.shared_locked_range);
  assert_int_equal(c.shared_mappings, a.shared_mappings);
}

static void test_partial_unmap(void **state) {
  (void)state;
  lof_stats_t a = stats_now();
  char *p = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  assert_int_equal(munmap(p + 2 * PAGE, 3 * PAGE), 0); /* a hole in the middle */
  lof_stats_t b = stats_now();
  assert_int_equal(b.shared_locked_range, a.shared_locked_range + 5 * PAGE);
  assert_int_equal(b.shared_mappings, a.shared_mappings + 2);
  assert_true(smaps_has_flags(p, "lo lf"));
  assert_true(smaps_has_flags(p + 6 * PAGE, "lo lf"));
  /* MAP_FIXED over the tail replaces it with private memory: not counted */
  char *q = mmap(p + 5 * PAGE, 3 * PAGE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  assert_true(q == p + 5 * PAGE);
  b = stats_now();
  assert_int_equal(b.shared_locked_range, a.shared_locked_range + 2 * PAGE);
  assert_int_equal(munmap(p, 8 * PAGE), 0);
  b = stats_now();
  assert_int_equal(b.shared_locked_range, a.shared_locked_range);
  assert_int_equal(b.shared_mappings, a.shared_mappings);
}

static void test_posix_shm_and_memfd(void **state) {
  (void)state;
  char name[64];
  snprintf(name, sizeof name, "/lofalloc-test-%d", (int)getpid());
  int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
  assert_true(fd >= 0);
  shm_unlink(name);
  assert_int_equal(ftruncate(fd, (off_t)MAP_BYTES), 0);
  lof_stats_t a = stats_now();
  char *p = mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  assert_true(p != MAP_FAILED);
  assert_int_equal(stats_now().shared_locked_range, a.shared_locked_range + MAP_BYTES);
  check_locked_sparse(p, MAP_BYTES);
  /* read-only and private views are not locked */
  char *ro = mmap(NULL, MAP_BYTES, PROT_READ, MAP_SHARED, fd, 0);
  assert_true(ro != MAP_FAILED);
  assert_false(smaps_has_flags(ro, "lo"));
  assert_int_equal(stats_now().shared_locked_range, a.shared_locked_range + MAP_BYTES);
  munmap(ro, MAP_BYTES);
  munmap(p, MAP_BYTES);
  close(fd);

  fd = memfd_create("lofalloc-test", 0);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)MAP_BYTES), 0);
  p = mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  assert_true(p != MAP_FAILED);
  check_locked_sparse(p, MAP_BYTES);
  munmap(p, MAP_BYTES);
  close(fd);
  assert_int_equal(stats_now().shared_locked_range, a.shared_locked_range);
}

static void test_private_untouched(void **state) {
  (void)state;
  lof_stats_t a = stats_now();
  char *p = mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  assert_false(smaps_has_flags(p, "lo"));
  assert_int_equal(stats_now().shared_mappings, a.shared_mappings);
  munmap(p, MAP_BYTES);
}

static void test_sysv(void **state) {
  (void)state;
  int id = shmget(IPC_PRIVATE, MAP_BYTES, IPC_CREAT | 0600);
  assert_true(id >= 0);
  lof_stats_t a = stats_now();
  char *p = shmat(id, NULL, 0);
  shmctl(id, IPC_RMID, NULL);
  assert_true(p != (void *)-1);
  assert_int_equal(stats_now().shared_locked_range, a.shared_locked_range + MAP_BYTES);
  check_locked_sparse(p, MAP_BYTES);
  char *ro = shmat(id, NULL, SHM_RDONLY);
  if (ro != (void *)-1) { /* after IPC_RMID attaching may be refused */
    assert_false(smaps_has_flags(ro, "lo"));
    shmdt(ro);
  }
  assert_int_equal(shmdt(p), 0);
  lof_stats_t b = stats_now();
  assert_int_equal(b.shared_locked_range, a.shared_locked_range);
  assert_int_equal(b.shared_mappings, a.shared_mappings);
}

/* A fork child's copy is unlocked by the kernel; lofalloc locks it again. */
static void test_fork_child_relocks(void **state) {
  (void)state;
  char *p = mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  memset(p, 7, MAP_BYTES);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* a shared mapping's pages are not in the child's page tables until it
     * touches them (fork does not copy them): read them, then look */
    bool ok = smaps_has_flags(p, "lo lf");
    for (size_t off = 0; off < MAP_BYTES; off += PAGE) ok = ok && p[off] == 7;
    smaps_vma_t v;
    ok = ok && smaps_vma_at(p, &v) == 0 && v.locked > 0;
    _exit(ok ? 0 : 1);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  munmap(p, MAP_BYTES);
}

/* Past the budget (64M here, or the memlock limit): fallback maps it
 * unlocked and counts it; strict (a child run) fails it with ENOMEM. */
static void test_budget_and_policy(void **state) {
  (void)state;
  size_t big = (size_t)128 << 20;
  lof_stats_t a = stats_now();
  char *p = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  lof_stats_t b = stats_now();
  assert_false(smaps_has_flags(p, "lo"));
  assert_int_equal(b.shared_fallback, a.shared_fallback + big);
  assert_int_equal(b.lock_failures, a.lock_failures + 1);
  assert_int_equal(b.shared_locked_range, a.shared_locked_range);
  munmap(p, big);
  assert_int_equal(stats_now().shared_fallback, a.shared_fallback);

  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    setenv("LOFALLOC_POLICY", "strict", 1);
    execl("/proc/self/exe", "shared", "strict-child", (char *)NULL);
    _exit(3);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* Run under LOFALLOC_POLICY=strict: the big shared mapping must fail. */
static int strict_child(void) {
  errno = 0;
  void *p = mmap(NULL, (size_t)128 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  if (p != MAP_FAILED || errno != ENOMEM) {
    fprintf(stderr, "strict: mmap gave %p errno %d, expected MAP_FAILED/ENOMEM\n", p, errno);
    return 1;
  }
  void *q = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (q == MAP_FAILED || !smaps_has_flags(q, "lo lf")) return 1; /* small ones still fit */
  return 0;
}

int main(int argc, char **argv) {
  const char *on = getenv("LOFALLOC_LOCK_SHARED");
  if (on == NULL || strcmp(on, "1") != 0) {
    setenv("LOFALLOC_LOCK_SHARED", "1", 1);
    setenv("LOFALLOC_MAX_LOCKED", "64M", 1);
    execv("/proc/self/exe", argv);
    perror("execv");
    return 1;
  }
  if (argc > 1 && strcmp(argv[1], "strict-child") == 0) return strict_child();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_anonymous_shared),
    cmocka_unit_test(test_partial_unmap),
    cmocka_unit_test(test_posix_shm_and_memfd),
    cmocka_unit_test(test_private_untouched),
    cmocka_unit_test(test_sysv),
    cmocka_unit_test(test_fork_child_relocks),
    cmocka_unit_test(test_budget_and_policy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
