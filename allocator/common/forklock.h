/*
 * forklock.h -- taking lofalloc's mutexes around fork(2) in a way that
 * survives fork() called from a signal handler at any moment: while another
 * fork() of the same thread runs its handlers, or while the interrupted
 * thread holds one of the mutexes inside malloc or free.
 *
 * The atfork prepare handler starts with lof__fork_begin(), the parent and
 * child handlers end with lof__fork_end(child), and the prepare handler takes each mutex
 * with lof__fork_lock() in the documented order (malloc/fork.c).  A mutex
 * the calling thread already holds -- an outer fork's prepare took it, or the
 * code the signal interrupted did -- is not taken again (that would deadlock
 * on our own thread); every other one is waited for as before.  The parent
 * handler releases, with lof__fork_unlock(), only the mutexes this fork took;
 * the child handler passes every one to lof__fork_reset(), which releases
 * what this fork took (so a race detector sees each lock matched by its
 * unlock) and re-initialises the rest (the child has a single thread, and
 * nobody left to release them).  Nesting is tracked per thread, up to
 * LOF_FORK_MAX_DEPTH forks deep.
 *
 * What this cannot give: when the interrupted code held a mutex, the child's
 * copy of the data under it may be half-updated.  lof__fork_interrupted_holder
 * tells the child handler which mutexes those were, so it can keep away from
 * their data (malloc/fork.c moves the child's heap off such an arena).
 */
#ifndef LOF_FORKLOCK_H
#define LOF_FORKLOCK_H

#include <pthread.h>

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

/* In a fork handler: was m held, when this fork began, by the code the
 * signal interrupted in this thread (its data may be half-updated)? */
LOF_HIDDEN bool lof__fork_interrupted_holder(pthread_mutex_t *m);

#endif /* LOF_FORKLOCK_H */
