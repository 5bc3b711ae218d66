/*
 * sigfork.c -- fork() is async-signal-safe: a SIGALRM handler forks (every
 * millisecond of the interval timer) at any moment, and every child -- of the
 * handler and of the main loop -- allocates small, large and huge blocks,
 * writes and frees them, and exits 0.  Runs, each also inside a fork child:
 *  - threaded: three threads allocate and free (the signal lands in malloc
 *    and free, holding lofalloc's locks) while the main thread forks in a
 *    tight loop with SIGALRM blocked (glibc 2.36 itself holds its atfork lock
 *    across the fork system call in a threaded process, so a handler that
 *    interrupts its own thread's fork() deadlocks inside glibc, whatever the
 *    malloc: seen here, thread in _Fork -> on_alarm -> __run_prefork_handlers);
 *  - single-threaded (a fork child that never had threads, where glibc takes
 *    no atfork lock): the main thread allocates, frees and forks with
 *    SIGALRM open, so the handler's fork() interrupts another fork() inside
 *    lofalloc's atfork handlers, and malloc and free.
 * 1000 forks in all (500 threaded, 250 threaded in a child, 250 alone in a
 * child) must finish within the timeout (a deadlock is a timeout).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lofalloc.h"
#include "proc.h"
#include "sanitizer.h"

#define FORKS 1000
#define TIMEOUT_S 150 /* a run takes 7-28 s on a loaded 2-core VM */

static atomic_int stop;
static atomic_long handler_forks, loop_forks, child_failures;

/* What every fork child does: allocate small, large and huge, write, free. */
static int child_work(void) {
  void *p[8];
  static const size_t sizes[8] = {16, 100, 4000, 20000, 70000, 300000, 5 << 20, 48};
  for (int i = 0; i < 8; i++) {
    p[i] = lof_malloc(sizes[i]);
    if (p[i] == NULL) return 1;
    memset(p[i], i, sizes[i] < 4096 ? sizes[i] : 4096);
  }
  for (int i = 0; i < 8; i++) lof_free(p[i]);
  return 0;
}

static void reap(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    if (atomic_fetch_add(&child_failures, 1) < 3) {
      char msg[80];
      int n = snprintf(msg, sizeof msg, "# bad child: status %#x\n", st);
      if (n > 0 && write(2, msg, (size_t)n) < 0) atomic_fetch_add(&child_failures, 0);
    }
  }
}

static long fork_goal;            /* forks of this run */
static atomic_int main_in_fork;  /* the main loop is inside fork() */
static atomic_long nested_forks;  /* handler forks that interrupted it */

static void on_alarm(int sig) {
  (void)sig;
  int saved = errno;
  if (!atomic_load(&stop) && atomic_load(&handler_forks) + atomic_load(&loop_forks) < fork_goal) {
    if (atomic_load(&main_in_fork)) atomic_fetch_add(&nested_forks, 1);
    pid_t pid = fork();
    if (pid == 0) _exit(child_work());
    if (pid > 0) {
      reap(pid);
      atomic_fetch_add(&handler_forks, 1);
    }
  }
  errno = saved;
}

static void *allocator_thread(void *arg) {
  uint64_t x = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
  void *slot[32] = {0};
  while (!atomic_load(&stop)) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    unsigned k = (unsigned)(x % 32);
    lof_free(slot[k]);
    size_t sz = (x >> 8) % 1024 == 0 ? (size_t)(4 << 20) + 4096 : (size_t)16 << ((x >> 16) % 13);
    slot[k] = lof_malloc(sz);
    if (slot[k]) *(char *)slot[k] = 1;
  }
  for (int k = 0; k < 32; k++) lof_free(slot[k]);
  return NULL;
}

/* One run: nthreads allocating threads (0: the main thread allocates
 * itself), the timer, the forking loop.  0 on success. */
static int scenario(long forks, int nthreads) {
  atomic_store(&stop, 0);
  atomic_store(&handler_forks, 0);
  atomic_store(&loop_forks, 0);
  atomic_store(&child_failures, 0);
  atomic_store(&nested_forks, 0);
  fork_goal = forks;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGALRM, &sa, NULL) != 0) return 2;
  pthread_t t[3];
  for (int i = 0; i < nthreads; i++)
    if (pthread_create(&t[i], NULL, allocator_thread, (void *)(uintptr_t)(i + 1)) != 0) return 3;
  sigset_t alrm;
  sigemptyset(&alrm);
  sigaddset(&alrm, SIGALRM);
  if (nthreads > 0) pthread_sigmask(SIG_BLOCK, &alrm, NULL);
  struct itimerval it = {{0, 1000}, {0, 1000}};
  setitimer(ITIMER_REAL, &it, NULL);
  void *slot[16] = {0};
  uint64_t x = 88172645463325252ull;
  while (atomic_load(&handler_forks) + atomic_load(&loop_forks) < forks) {
    for (int i = 0; nthreads == 0 && i < 64; i++) { /* the signal lands in malloc/free too */
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      unsigned k = (unsigned)(x % 16);
      lof_free(slot[k]);
      slot[k] = lof_malloc((size_t)16 << ((x >> 16) % 13));
    }
    atomic_store(&main_in_fork, 1);
    pid_t pid = fork();
    if (pid == 0) _exit(child_work());
    atomic_store(&main_in_fork, 0);
    if (pid > 0) {
      reap(pid);
      atomic_fetch_add(&loop_forks, 1);
    }
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  atomic_store(&stop, 1);
  if (nthreads > 0) pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
  for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
  for (int k = 0; k < 16; k++) lof_free(slot[k]);
  fprintf(stderr, "# pid %d, %d threads: %ld forks from the SIGALRM handler (%ld while the main "
          "loop was in fork), %ld from the loop, %ld bad children\n", (int)getpid(), nthreads,
          atomic_load(&handler_forks), atomic_load(&nested_forks), atomic_load(&loop_forks),
          atomic_load(&child_failures));
  if (atomic_load(&child_failures) != 0) return 4;
  if (atomic_load(&handler_forks) == 0) return 5;
  return lof_check() == 0 ? 0 : 6;
}

/* scenario() in a fork child; its exit status (0 = success). */
static int in_child(long forks, int nthreads) {
  pid_t pid = fork();
  if (pid == 0) _exit(scenario(forks, nthreads));
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static int run_both(void *arg) {
  (void)arg;
  /* Single-threaded first, in a child that never had a thread (glibc takes
   * its atfork lock once a process has had threads). */
  int rc = in_child(FORKS / 4, 0);
  if (rc != 0) return 10 + rc;
  rc = scenario(FORKS / 2, 3);
  if (rc != 0) return rc;
  rc = in_child(FORKS / 4, 3); /* threaded again, inside a fork child */
  return rc != 0 ? 20 + rc : 0;
}

static __attribute__((unused)) void test_fork_from_signal_handler(void **state) {
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    setpgid(0, 0); /* so a timeout kills every process of the run */
    _exit(run_both(NULL));
  }
  int st = 0;
  time_t start = time(NULL);
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (time(NULL) - start > TIMEOUT_S) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      fail_msg("deadlock: %d forks not done within %d s", FORKS, TIMEOUT_S);
    }
    usleep(20 * 1000);
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("status %#x", st);
}

int main(void) {
#ifdef UNDER_SANITIZER
  /* the sanitizer runtimes' own fork handlers take their locks */
  printf("1..0 # SKIP the sanitizer runtimes' fork handlers take their own locks\n");
  return 0;
#else
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_fork_from_signal_handler)};
  return cmocka_run_group_tests(tests, NULL, NULL);
#endif
}
