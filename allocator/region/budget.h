/*
 * budget.h -- the locking budget and the policy applied at every refused
 * lock (budget.c).  Used by the region layer only (region.c, external.c,
 * region_stats.c).
 *
 * Every byte the region layer locks is charged here first: heap ranges
 * (stats.locked_range) and the library's own metadata (stats.meta_locked).
 * A charge is refused when it would pass one of the limits that can stop
 * or kill the process:
 *   - LOFALLOC_MAX_LOCKED, the user's budget;
 *   - the memory cgroup's limit (locked pages cannot be reclaimed: locking
 *     past it gets the process OOM-killed, not ENOMEM);
 *   - RLIMIT_MEMLOCK, enforced by the kernel: a refusal of the kernel is
 *     remembered, so charges that cannot fit either are refused without a
 *     system call until the charge drops or a second has passed.
 * What a refusal means is LOFALLOC_POLICY's: strict fails the operation
 * (ENOMEM), fallback goes on unlocked, abort says why and aborts.  The
 * first refusal prints one line under every policy (what was refused, how
 * much is locked, the limit that applies and the remedy); LOFALLOC_VERBOSE
 * prints each refusal, at most one line a second.
 */
#ifndef LOF_BUDGET_H
#define LOF_BUDGET_H

#include "internal.h"
#include "lofalloc.h"

typedef enum lof_refusal {
  LOF_REFUSED_MAX_LOCKED = 1, /* LOFALLOC_MAX_LOCKED */
  LOF_REFUSED_CGROUP,         /* the memory cgroup's limit */
  LOF_REFUSED_KERNEL          /* the kernel said no (errno: RLIMIT_MEMLOCK, EPERM, ENOSYS...) */
} lof_refusal_t;

/* Read the policy and the limits (once, from lof__region_init).  locking is
 * false for the unlocked backend: then nothing is ever charged. */
LOF_HIDDEN void lof__budget_init(bool locking);

/* Charge bytes of heap about to be locked.  true: charged (refund it if the
 * lock then fails).  false: refused; *why and *err say by what. */
LOF_HIDDEN bool lof__budget_charge(uint64_t bytes, lof_refusal_t *why, int *err);
LOF_HIDDEN void lof__budget_refund(uint64_t bytes);

/* The kernel refused to lock bytes with err (after a successful charge,
 * which the caller refunds): remember it for the next charges. */
LOF_HIDDEN void lof__budget_kernel_refused(uint64_t bytes, int err);

/* A lock of len bytes for `what` ("heap", "fork child's heap") was refused:
 * apply the policy.  true: go on unlocked (fallback, and strict where the
 * memory already exists, see fork); false: fail with ENOMEM.  abort never
 * returns.  Counts stats.lock_failures. */
LOF_HIDDEN bool lof__budget_refused(const char *what, size_t len, lof_refusal_t why, int err,
                                    bool can_fail);

/* Committed bytes that are not locked (stats.fallback): + on commit, - on
 * decommit/release. */
LOF_HIDDEN void lof__budget_fallback(int64_t bytes);

/* Lock metadata on fault if the budget allows (never refused loudly:
 * bookkeeping must not fail what the heap could serve).  true if locked. */
LOF_HIDDEN bool lof__budget_lock_meta(void *addr, size_t len);
LOF_HIDDEN void lof__budget_unlock_meta(size_t len);
/* Metadata deliberately left unlocked (counted in stats.meta_unlocked). */
LOF_HIDDEN void lof__budget_meta_skipped(int64_t len);

/* Fill the budget's fields of *st. */
LOF_HIDDEN void lof__budget_stats(lof_stats_t *st);

/* "RLIMIT_MEMLOCK 8.0 MiB, no budget, no cgroup limit" for messages. */
LOF_HIDDEN void lof__budget_describe_limits(char *buf, size_t len);

#endif /* LOF_BUDGET_H */
