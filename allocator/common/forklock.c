/*
 * forklock.c -- the fork-time mutex protocol of forklock.h.
 *
 * "Held by this thread" is read from the mutex itself: glibc records the
 * owner's thread id in every mutex it locks (__data.__owner, set right after
 * the lock word is taken and cleared right before it is released).  Between
 * those two stores and the lock word the owner field can lag by a few
 * instructions; a signal landing exactly there would make a blocking lock
 * wait for ourselves, so the wait is a trylock loop that re-reads the owner:
 * a mutex held by another thread is waited for as long as it takes; one
 * that stays locked with no owner recorded for LOF_FORK_WAIT_MS can only be
 * held by the interrupted code of this very thread, and is gone on without.
 *
 * Two threads may run fork's prepare at once (glibc releases its atfork lock
 * around each handler), each signalled while it held a mutex the other
 * wants: each would wait for the other.  A mutex held by a thread that is
 * itself inside fork's prepare is therefore not waited for: its holder took
 * it to fork, so nobody is updating what it guards (unless that holder's
 * interrupted code took it -- the case forklock.h owns up to), and its
 * holder's parent handler releases it.
 *
 * Per thread: the nesting depth and, per depth, a bit mask of the mutexes
 * that fork's prepare took (bit k = the k-th lof__fork_lock call; the calls
 * come in the same order every time, recorded in fork_order).
 */
#include <errno.h>
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
static FORK_TLS uint64_t fork_mine[LOF_FORK_MAX_DEPTH];     /* bit k: held by the code we interrupted */
static FORK_TLS pid_t fork_tid;
static pthread_mutex_t *fork_order[LOF_FORK_MAX_LOCKS];     /* the k-th mutex of the order */
#define FORK_PREPARING_MAX 32
static _Atomic(pid_t) fork_preparing[FORK_PREPARING_MAX]; /* threads inside a prepare */

static void fork_preparing_set(pid_t tid, bool on) {
  for (unsigned i = 0; i < FORK_PREPARING_MAX; i++) {
    pid_t want = on ? 0 : tid;
    if (atomic_compare_exchange_strong(&fork_preparing[i], &want, on ? tid : 0)) return;
  }
}

static bool fork_is_preparing(pid_t tid) {
  for (unsigned i = 0; i < FORK_PREPARING_MAX; i++)
    if (atomic_load_explicit(&fork_preparing[i], memory_order_relaxed) == tid) return true;
  return false;
}

static uint64_t fork_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void lof__fork_begin(void) {
  fork_tid = (pid_t)syscall(SYS_gettid);
  if (fork_depth == 0) fork_preparing_set(fork_tid, true);
  unsigned d = fork_depth++;
  if (d < LOF_FORK_MAX_DEPTH) {
    fork_next[d] = 0;
    fork_taken[d] = 0;
    fork_mine[d] = 0;
  }
}

void lof__fork_end(bool child) {
  if (fork_depth > 0) fork_depth--;
  if (child) {
    /* one thread left, with a new id; an outer prepare asks again */
    for (unsigned i = 0; i < FORK_PREPARING_MAX; i++) atomic_store(&fork_preparing[i], 0);
    fork_tid = 0;
    if (fork_depth > 0) fork_preparing_set((pid_t)syscall(SYS_gettid), true);
  } else if (fork_depth == 0) {
    fork_preparing_set(fork_tid, false);
  }
}

static bool fork_held_by_me(pthread_mutex_t *m) {
  return __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED) == fork_tid;
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
  uint64_t deadline = 0;
  for (;;) {
    if (fork_held_by_me(m)) {
      /* by an outer fork's prepare (quiescent) or by the interrupted code */
      bool outer = false;
      for (unsigned o = 0; o < d; o++)
        if (k < fork_next[o] && (fork_taken[o] >> k & 1)) outer = true;
      if (!outer) fork_mine[d] |= (uint64_t)1 << k;
      break;
    }
    if (pthread_mutex_trylock(m) == 0) {
      fork_taken[d] |= (uint64_t)1 << k;
      break;
    }
    pid_t owner = __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED);
    if (owner != 0 && fork_is_preparing(owner)) break; /* held to fork: quiescent */
    if (owner != 0) {
      deadline = 0; /* another thread holds it: wait for it */
    } else {
      uint64_t now = fork_now_ms();
      if (deadline == 0) deadline = now + LOF_FORK_WAIT_MS;
      if (now >= deadline) { /* locked, no owner, for that long: our own */
        fork_mine[d] |= (uint64_t)1 << k;
        break;
      }
    }
    sched_yield();
  }
  errno = saved;
}

/* Inside a fork: unlock m if this fork's prepare took it; true if it did. */
static bool fork_release_taken(pthread_mutex_t *m) {
  unsigned d = fork_depth - 1;
  if (d >= LOF_FORK_MAX_DEPTH) return false;
  unsigned n = fork_next[d] < LOF_FORK_MAX_LOCKS ? fork_next[d] : LOF_FORK_MAX_LOCKS;
  for (unsigned k = 0; k < n; k++)
    if (fork_order[k] == m && (fork_taken[d] >> k & 1)) {
      fork_taken[d] &= ~((uint64_t)1 << k);
      pthread_mutex_unlock(m);
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

bool lof__fork_interrupted_holder(pthread_mutex_t *m) {
  if (fork_depth == 0 || fork_depth > LOF_FORK_MAX_DEPTH) return false;
  unsigned d = fork_depth - 1;
  unsigned n = fork_next[d] < LOF_FORK_MAX_LOCKS ? fork_next[d] : LOF_FORK_MAX_LOCKS;
  for (unsigned k = 0; k < n; k++)
    if (fork_order[k] == m && (fork_mine[d] >> k & 1)) return true;
  return false;
}
