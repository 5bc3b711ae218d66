/*
 * forklock.c -- the fork-time mutex protocol of forklock.h.
 *
 * "Held by this thread" is read from the mutex itself: glibc records the
 * owner's thread id in every mutex it locks (__data.__owner, set right after
 * the lock word is taken and cleared right before it is released).  Between
 * those two stores and the lock word the owner field can lag by a few
 * instructions; a signal landing exactly there would make a blocking lock
 * wait for ourselves, so the wait is a trylock loop that re-reads the owner:
 * a mutex held by another thread is waited for as long as it takes.  One
 * locked with no owner recorded is told apart by notes: an outer fork of
 * this thread taking or letting go of it (fork_busy) -- quiescent, gone on
 * without; the arena lock that a forking thread's interrupted code was
 * taking or letting go of (lof__fork_marked, kept in fork_preparing_marked
 * when the thread reaches lof__fork_begin) -- gone on without after 2 ms and
 * recorded as torn; else after LOF_FORK_WAIT_MS, when only this thread's own
 * interrupted code can hold it.  (Without the notes, each such case cost
 * the full 200 ms, and test_malloc_sigfork took 40-150 s instead of 1-2.)
 *
 * Two threads may call fork() at once (glibc releases its atfork lock around
 * each handler).  Their handlers run one fork at a time: lof__fork_begin
 * waits at a gate (fork_gate, the id of the thread whose fork runs its
 * handlers) until the other fork has run its parent handler, and a fork
 * nested in the gate holder's own handlers (a signal handler's) goes
 * through.  The gate is what keeps the child's copy whole: without it, a
 * mutex held by another forking thread had to be gone on without (waiting
 * could deadlock), and that thread's parent handler released it -- and
 * malloc went on under it -- before this fork copied the memory (seen here:
 * a child whose huge-block cache held a block that was live too, and whose
 * free looped on it for ever).
 *
 * A thread waiting at the gate may hold a mutex from the code its signal
 * interrupted (an arena lock: forklock.h), and cannot let go of it until it
 * has forked.  The gate holder does not wait for such a mutex (the waiting
 * thread is in fork_preparing): it goes on without it, and records it as
 * torn, as it does one that the code it interrupted itself holds.
 *
 * Per thread: the nesting depth and, per depth, bit masks of the mutexes
 * that fork's prepare took and of those it found torn (bit k = the k-th
 * lof__fork_lock call; the calls come in the same order every time, recorded
 * in fork_order).
 */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "forklock.h"

#define LOF_FORK_WAIT_MS 200

#define FORK_TLS __thread __attribute__((tls_model("initial-exec")))
static FORK_TLS unsigned fork_depth;                        /* forks in progress in this thread */
static FORK_TLS unsigned fork_next[LOF_FORK_MAX_DEPTH];     /* lof__fork_lock calls so far */
static FORK_TLS uint64_t fork_taken[LOF_FORK_MAX_DEPTH];    /* bit k: the k-th mutex was taken */
static FORK_TLS uint64_t fork_torn[LOF_FORK_MAX_DEPTH];     /* bit k: held by interrupted code */
static FORK_TLS pthread_mutex_t *fork_busy[LOF_FORK_MAX_DEPTH]; /* being taken or let go */
static FORK_TLS unsigned fork_entered;                      /* forks begun, at the gate or past it */
static FORK_TLS pid_t fork_tid;
static pthread_mutex_t *fork_order[LOF_FORK_MAX_LOCKS];     /* the k-th mutex of the order */
static _Atomic(pid_t) fork_gate;                            /* the thread whose fork runs, or 0 */
#define FORK_PREPARING_MAX 128
static _Atomic(pid_t) fork_preparing[FORK_PREPARING_MAX]; /* threads in a fork's handlers or at the gate */
static pthread_mutex_t *_Atomic fork_preparing_marked[FORK_PREPARING_MAX]; /* their lof__fork_marked */
__thread __attribute__((tls_model("initial-exec"))) pthread_mutex_t *lof__fork_marked;

static void fork_preparing_set(pid_t tid, bool on) {
  for (unsigned i = 0; i < FORK_PREPARING_MAX; i++) {
    pid_t want = on ? 0 : tid;
    if (atomic_load_explicit(&fork_preparing[i], memory_order_relaxed) != want) continue;
    if (on) {
      if (!atomic_compare_exchange_strong(&fork_preparing[i], &want, tid)) continue;
      atomic_store(&fork_preparing_marked[i], lof__fork_marked);
      return;
    }
    atomic_store(&fork_preparing_marked[i], NULL); /* first: a tid never pairs with a stale mark */
    atomic_store(&fork_preparing[i], 0);
    return;
  }
}

static bool fork_is_preparing(pid_t tid) {
  for (unsigned i = 0; i < FORK_PREPARING_MAX; i++)
    if (atomic_load_explicit(&fork_preparing[i], memory_order_relaxed) == tid) return true;
  return false;
}

/* Is m marked (lof__fork_marked) by a thread in a fork's handlers or at the
 * gate -- this one included -- when its signal came? */
static bool fork_marked_by_preparing(pthread_mutex_t *m) {
  for (unsigned i = 0; i < FORK_PREPARING_MAX; i++)
    if (atomic_load(&fork_preparing[i]) != 0 && atomic_load(&fork_preparing_marked[i]) == m)
      return true;
  return false;
}

static uint64_t fork_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void lof__fork_begin(void) {
  int saved = errno;
  fork_tid = (pid_t)syscall(SYS_gettid);
  if (fork_entered++ == 0) fork_preparing_set(fork_tid, true);
  if (atomic_load(&fork_gate) != fork_tid) { /* not nested in our own fork: wait our turn */
    pid_t open = 0;
    while (!atomic_compare_exchange_strong(&fork_gate, &open, fork_tid)) {
      /* asleep until the holder opens it (a 10 ms nap at most: a wake-up
       * lost to a signal of ours costs no more than that) */
      struct timespec nap = {0, 10 * 1000 * 1000};
      syscall(SYS_futex, &fork_gate, FUTEX_WAIT_PRIVATE, open, &nap, NULL, 0);
      open = 0;
    }
  }
  unsigned d = fork_depth++;
  if (d < LOF_FORK_MAX_DEPTH) {
    fork_next[d] = 0;
    fork_busy[d] = NULL;
    fork_taken[d] = 0;
    fork_torn[d] = 0;
  }
  errno = saved;
}

void lof__fork_end(bool child) {
  int saved = errno;
  if (fork_depth > 0) fork_depth--;
  if (fork_entered > 0) fork_entered--;
  if (child) {
    /* one thread left, with a new id: it holds the gate if an outer fork of
     * its own is still running its handlers */
    for (unsigned i = 0; i < FORK_PREPARING_MAX; i++) {
      atomic_store(&fork_preparing_marked[i], NULL);
      atomic_store(&fork_preparing[i], 0);
    }
    fork_tid = (pid_t)syscall(SYS_gettid);
    atomic_store(&fork_gate, fork_depth > 0 ? fork_tid : 0);
    if (fork_entered > 0) fork_preparing_set(fork_tid, true);
    fork_tid = 0;
  } else {
    if (fork_depth == 0) {
      atomic_store(&fork_gate, 0);
      syscall(SYS_futex, &fork_gate, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    if (fork_entered == 0) fork_preparing_set(fork_tid, false);
  }
  errno = saved;
}

static bool fork_held_by_me(pthread_mutex_t *m) {
  return __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED) == fork_tid;
}

/* Is m being taken or let go by an outer fork of this thread (depth < d)? */
static bool fork_busy_outer(unsigned d, pthread_mutex_t *m) {
  for (unsigned o = 0; o < d; o++)
    if (fork_busy[o] == m) return true;
  return false;
}

/* Outside lof__fork_begin/end (a caller that does not use the protocol,
 * e.g. the jemalloc frontend's handlers) these are plain lock and unlock. */
void lof__fork_lock(pthread_mutex_t *m) {
  if (fork_depth == 0) {
    pthread_mutex_lock(m);
    return;
  }
  unsigned d = fork_depth - 1;
  if (d >= LOF_FORK_MAX_DEPTH) return;
  unsigned k = fork_next[d]++;
  if (k >= LOF_FORK_MAX_LOCKS) return;
  fork_order[k] = m;
  int saved = errno;
  if (fork_tid == 0) fork_tid = (pid_t)syscall(SYS_gettid);
  uint64_t ownerless_since = 0; /* 0: the owner was last seen set */
  for (;;) {
    if (fork_held_by_me(m)) {
      /* by an outer fork's prepare (quiescent) or by the interrupted code */
      bool outer = fork_busy_outer(d, m);
      for (unsigned o = 0; o < d; o++)
        if (k < fork_next[o] && (fork_taken[o] >> k & 1)) outer = true;
      if (!outer) fork_torn[d] |= (uint64_t)1 << k;
      break;
    }
    fork_busy[d] = m;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    bool took = pthread_mutex_trylock(m) == 0;
    if (took) fork_taken[d] |= (uint64_t)1 << k;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    fork_busy[d] = NULL;
    if (took) break;
    pid_t owner = __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED);
    if (owner == 0 && fork_busy_outer(d, m)) break; /* an outer fork of ours, mid-way: quiescent */
    if (owner != 0 && fork_is_preparing(owner)) { /* its holder waits at the gate */
      fork_torn[d] |= (uint64_t)1 << k;
      break;
    }
    if (owner != 0) {
      ownerless_since = 0; /* another thread holds it: wait for it */
    } else {
      /* locked, no owner yet: just taken by a running thread (wait), or
       * by code a signal interrupted -- a fork's own, or one at the gate.
       * A mark of such code settles it after a millisecond or two; else,
       * after LOF_FORK_WAIT_MS, only our own interrupted code can hold it. */
      uint64_t now = fork_now_ms();
      if (ownerless_since == 0) ownerless_since = now;
      uint64_t waited = now - ownerless_since;
      if (waited >= LOF_FORK_WAIT_MS || (waited >= 2 && fork_marked_by_preparing(m))) {
        fork_torn[d] |= (uint64_t)1 << k;
        break;
      }
    }
    sched_yield();
  }
  errno = saved;
}

/* Inside a fork: unlock m if this fork's prepare took it; true if it did.
 * fork_busy names m meanwhile: glibc clears a mutex's owner before its lock
 * word, and a fork from a handler that lands in between must know the
 * mutex for its outer fork's. */
static bool fork_release_taken(pthread_mutex_t *m) {
  unsigned d = fork_depth - 1;
  if (d >= LOF_FORK_MAX_DEPTH) return false;
  unsigned n = fork_next[d] < LOF_FORK_MAX_LOCKS ? fork_next[d] : LOF_FORK_MAX_LOCKS;
  for (unsigned k = 0; k < n; k++)
    if (fork_order[k] == m && (fork_taken[d] >> k & 1)) {
      fork_busy[d] = m;
      __atomic_signal_fence(__ATOMIC_SEQ_CST);
      fork_taken[d] &= ~((uint64_t)1 << k);
      pthread_mutex_unlock(m);
      __atomic_signal_fence(__ATOMIC_SEQ_CST);
      fork_busy[d] = NULL;
      return true;
    }
  return false;
}

void lof__fork_unlock(pthread_mutex_t *m) {
  if (fork_depth == 0)
    pthread_mutex_unlock(m);
  else
    fork_release_taken(m);
}

/* Unlocking a mutex in the child that the parent's thread locked is sound
 * for glibc's default mutexes (no owner check); re-initialising one that the
 * forking thread itself holds is what ThreadSanitizer cannot follow -- it
 * would still count the lock as held and report the next one as a double
 * lock. */
void lof__fork_reset(pthread_mutex_t *m) {
  if (fork_depth == 0 || !fork_release_taken(m)) pthread_mutex_init(m, NULL);
}

bool lof__fork_torn(pthread_mutex_t *m) {
  if (fork_depth == 0 || fork_depth > LOF_FORK_MAX_DEPTH) return false;
  unsigned d = fork_depth - 1;
  unsigned n = fork_next[d] < LOF_FORK_MAX_LOCKS ? fork_next[d] : LOF_FORK_MAX_LOCKS;
  for (unsigned k = 0; k < n; k++)
    if (fork_order[k] == m && (fork_torn[d] >> k & 1)) return true;
  return false;
}

void lof__lock_nosignal(pthread_mutex_t *m, sigset_t *saved) {
  sigset_t block;
  sigfillset(&block);
  static const int synchronous[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS};
  for (size_t i = 0; i < sizeof synchronous / sizeof synchronous[0]; i++)
    sigdelset(&block, synchronous[i]);
  int saved_errno = errno;
  pthread_sigmask(SIG_BLOCK, &block, saved);
  errno = saved_errno;
  pthread_mutex_lock(m);
}

void lof__unlock_nosignal(pthread_mutex_t *m, const sigset_t *saved) {
  pthread_mutex_unlock(m);
  int saved_errno = errno;
  pthread_sigmask(SIG_SETMASK, saved, NULL);
  errno = saved_errno;
}
