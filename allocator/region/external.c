/*
 * external.c -- ranges a frontend maps itself (malloc/shared.c: a program's
 * shared mappings): locked on fault under the region layer's budget and
 * policy, like a region's commit, and counted in lof_stats_t.shared_*, but
 * not regions (not in the region list, not re-locked after fork here: the
 * frontend keeps them and does it).
 *
 * Invariants: the budget is charged before the lock and refunded when the
 * kernel refuses it; a range is counted in exactly one of shared_locked and
 * shared_fallback until its unlock.  No lock is taken here.
 */
#include <errno.h>
#include <stdatomic.h>

#include "budget.h"
#include "os.h"
#include "region.h"
#include "region_int.h"

static _Atomic uint64_t external_locked;   /* bytes locked */
static _Atomic uint64_t external_fallback; /* bytes left unlocked */
static _Atomic uint64_t external_maps;     /* live ranges, either way */

int lof__region_lock_external(void *addr, size_t len) {
  len = LOF_ALIGN_UP(len, LOF_PAGE_SIZE);
  if (lof__region_backend() == LOF_BACKEND_UNLOCKED) return 1;
  lof_refusal_t why;
  int err;
  if (lof__budget_charge(len, &why, &err)) {
    if (lof__os_lock_onfault(addr, len) == 0) {
      atomic_fetch_add(&external_locked, len);
      atomic_fetch_add(&external_maps, 1);
      return 0;
    }
    err = errno;
    lof__budget_refund(len);
    lof__budget_kernel_refused(len, err);
    why = LOF_REFUSED_KERNEL;
  }
  if (!lof__budget_refused("shared memory", len, why, err, true)) { errno = ENOMEM; return -1; }
  atomic_fetch_add(&external_fallback, len);
  atomic_fetch_add(&external_maps, 1);
  return 1;
}

void lof__region_unlock_external(void *addr, size_t len, bool was_locked) {
  (void)addr;
  len = LOF_ALIGN_UP(len, LOF_PAGE_SIZE);
  if (lof__region_backend() == LOF_BACKEND_UNLOCKED) return;
  if (was_locked) {
    lof__budget_refund(len);
    atomic_fetch_sub(&external_locked, len);
  } else {
    atomic_fetch_sub(&external_fallback, len);
  }
  atomic_fetch_sub(&external_maps, 1);
}

void lof__region_external_stats(lof_stats_t *st) {
  st->shared_locked_range = atomic_load(&external_locked);
  st->shared_fallback = atomic_load(&external_fallback);
  st->shared_mappings = atomic_load(&external_maps);
}
