/*
 * forklock.h -- taking lofalloc's mutexes around fork(2) in a way that
 * survives fork() called from a signal handler at any moment: while another
 * fork() of the same thread runs its handlers, or while the interrupted
 * thread holds one of the mutexes inside malloc or free.
 *
 * The atfork prepare handler starts with lof__fork_begin(), the parent and
 * child handlers end with lof__fork_end(child), and the prepare handler takes
 * each mutex with lof__fork_lock() in the documented order (malloc/fork.c).
 * The handlers of one fork run at a time: lof__fork_begin waits while
 * another thread's fork runs its handlers (forklock.c: the gate).  A mutex
 * the calling thread already holds -- an outer fork's prepare took it, or the
 * code the signal interrupted did -- is not taken again (that would deadlock
 * on our own thread); nor is one held by a thread waiting at the gate (only
 * the code its signal interrupted can hold it, and it cannot let go before
 * it has forked); every other one is waited for.  The parent handler
 * releases, with lof__fork_unlock(), only the mutexes this fork took; the
 * child handler passes every one to lof__fork_reset(), which releases what
 * this fork took (so a race detector sees each lock matched by its unlock)
 * and re-initialises the rest (the child has a single thread, and nobody
 * left to release them).  Nesting is tracked per thread, up to
 * LOF_FORK_MAX_DEPTH forks deep.
 *
 * What this cannot give: a mutex that interrupted code held is not taken, so
 * the child's copy of the data under it may be half-updated -- and in the
 * forking thread the interrupted code resumes, in the child too, once the
 * handler returns.  So every frontend and region mutex but the arenas' is
 * held only with the thread's asynchronous signals blocked
 * (lof__lock_nosignal / lof__unlock_nosignal): no handler runs while its
 * thread holds one, so no fork ever finds one of them held by interrupted
 * code.  (Seen here before: a handler interrupted lof__huge_alloc halfway
 * through unlinking a cached block; its child's free walked the torn cache
 * list for ever.)  The arena locks, taken on every span refill, are not
 * masked: lof__fork_torn tells the fork handlers which of them were
 * not taken for that reason, so they keep away from their data (malloc/fork.c
 * moves the child's heap off such an arena).
 */
#ifndef LOF_FORKLOCK_H
#define LOF_FORKLOCK_H

#include <pthread.h>
#include <signal.h>

#include "internal.h"

#define LOF_FORK_MAX_DEPTH 8
#define LOF_FORK_MAX_LOCKS 64

LOF_HIDDEN void lof__fork_begin(void);
LOF_HIDDEN void lof__fork_end(bool child);
LOF_HIDDEN void lof__fork_lock(pthread_mutex_t *m);
LOF_HIDDEN void lof__fork_unlock(pthread_mutex_t *m);
/* In the child handler, for each mutex of the prepare handler, before
 * lof__fork_end(true): an unlocked mutex afterwards. */
LOF_HIDDEN void lof__fork_reset(pthread_mutex_t *m);

/* In a fork handler: did this fork's prepare leave m untaken because
 * interrupted code holds it -- this thread's, or that of a thread waiting to
 * fork -- so that the data under it may be half-updated? */
LOF_HIDDEN bool lof__fork_torn(pthread_mutex_t *m);

/* Mutexes taken with signals open (the arenas'): lof__lock_marked notes m in
 * the thread's lof__fork_marked before it locks, lof__unlock_marked clears
 * it after it unlocks.  A fork from a signal handler reads it: glibc sets a
 * mutex's owner a few instructions after the lock word, so a handler that
 * lands between the two leaves a mutex locked with no owner, and the mark
 * is how another thread's fork tells "held by the code a fork at the gate
 * interrupted" (go on without it) from "just taken by a running thread"
 * (wait for it).  Two stores a section. */
LOF_HIDDEN extern __thread __attribute__((tls_model("initial-exec"))) pthread_mutex_t *lof__fork_marked;
static inline void lof__lock_marked(pthread_mutex_t *m) {
  lof__fork_marked = m;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  pthread_mutex_lock(m);
}
static inline void lof__unlock_marked(pthread_mutex_t *m) {
  pthread_mutex_unlock(m);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  lof__fork_marked = NULL;
}

/* Lock m with every asynchronous signal of this thread blocked (*saved: the
 * mask to give back); unlock m, then restore the mask.  The synchronous
 * signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS) stay open, so a
 * fault still reaches the program's handler.  Two system calls a section:
 * about 0.2 us here, for sections that make system calls or walk lists. */
LOF_HIDDEN void lof__lock_nosignal(pthread_mutex_t *m, sigset_t *saved);
LOF_HIDDEN void lof__unlock_nosignal(pthread_mutex_t *m, const sigset_t *saved);

#endif /* LOF_FORKLOCK_H */
