/*
 * gate.c -- when the jemalloc frontend asks the kernel to lock memory.
 *
 * Owns: whether locking is budgeted for this process (lof__je_lock_budgeted),
 * and the lock gate for jemalloc's own mappings (boot.c, process.c): after
 * the kernel refused to lock len more bytes while the frontend's charge (its regions' locked range plus jemalloc's own
 * locked mappings, boot.c) was C, the limit is below C + len, so no lock is
 * asked for while charge + request >= that bound: the mapping stays
 * unlocked (fallback) without a system call.  The bound only tightens with
 * each refusal; it is tried again as soon as the charge has dropped enough.
 * (Regions' commits go through the region layer's budget, which remembers
 * the kernel's refusals itself.)
 *
 * Counters (attempts, refusals, skipped) are relaxed atomics, reported by
 * lof_je_stats_print; the frontend's counter struct (lof__je_counters, je.h)
 * is defined here, in the lowest file, so that every file may count.  The
 * gate knows jemalloc's own locked bytes only as its callers pass them
 * (boot.c counts them): it calls nothing of the frontend.  Nothing here
 * allocates or takes a lock.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "je.h"
#include "options.h"
#include "os.h"
#include "region.h"

/* Defined here, in the frontend's lowest file, so that every file may count
 * (the fields say who counts what, je.h). */
lof_je_counters_t lof__je_counters;

static _Atomic(int) gate_budget_state; /* 0 unknown, 1 free, 2 budgeted */
static _Atomic(uint64_t) gate_bound = UINT64_MAX; /* charge + request known to fail */

/* CAP_IPC_LOCK in the effective set, or RLIMIT_MEMLOCK unlimited, and no
 * LOFALLOC_MAX_LOCKED: locking is free.  Asked once (system calls and
 * the options table only: callable from jemalloc's mmap). */
bool lof__je_lock_budgeted(void) {
  int state = atomic_load_explicit(&gate_budget_state, memory_order_relaxed);
  if (LOF_LIKELY(state != 0)) return state == 2;
  bool budgeted = true;
  if (lof__option(LOF_OPT_MAX_LOCKED) != 0)
    budgeted = true;
  else if (lof__os_memlock_limit() == UINT64_MAX)
    budgeted = false;
  else
    budgeted = !lof__os_have_ipc_lock();
  atomic_store(&gate_budget_state, budgeted ? 2 : 1);
  return budgeted;
}

/* What the frontend has locked: the region layer's heap and metadata, and
 * jemalloc's own mappings (own_locked: boot.c counts them, and the caller
 * passes them, so that the gate stays below boot.c). */
static uint64_t gate_charge(uint64_t own_locked) {
  lof_stats_t st;
  lof__region_stats_basic(&st);
  return st.locked_range + st.meta_locked + own_locked;
}

bool lof__je_gate_open(size_t len, uint64_t own_locked) {
  uint64_t bound = atomic_load_explicit(&gate_bound, memory_order_relaxed);
  if (LOF_LIKELY(bound == UINT64_MAX) || gate_charge(own_locked) + len < bound) return true;
  atomic_fetch_add_explicit(&lof__je_counters.lock_skipped, 1, memory_order_relaxed);
  return false;
}

void lof__je_gate_result(size_t len, uint64_t own_locked, bool locked, int err) {
  atomic_fetch_add_explicit(&lof__je_counters.lock_attempts, 1, memory_order_relaxed);
  if (locked || !(err == ENOMEM || err == EAGAIN || err == EPERM)) return;
  atomic_fetch_add_explicit(&lof__je_counters.lock_refusals, 1, memory_order_relaxed);
  uint64_t bound = gate_charge(own_locked) + len;
  uint64_t cur = atomic_load(&gate_bound);
  while (bound < cur && !atomic_compare_exchange_weak(&gate_bound, &cur, bound)) {
  }
}
