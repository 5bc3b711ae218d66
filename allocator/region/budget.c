/*
 * budget.c -- the locking budget and the policy at every refused lock
 * (contract in budget.h).
 *
 * Two atomics hold the charge: budget_heap (the heap's locked bytes, under
 * LOFALLOC_MAX_LOCKED) and budget_charged (heap + metadata, under the
 * memory cgroup's limit); charges are compare-and-swapped against their
 * limit, so concurrent commits never overshoot it.
 * RLIMIT_MEMLOCK itself is the kernel's to enforce (it also counts what the
 * program locks itself); its refusals are remembered for a second so that a
 * heap at the limit does not make a failing mlock2 per commit.  On a kernel
 * with the fault-time charge (kernel-patches/rfc/) the kernel refuses no
 * lock, so the soft RLIMIT_MEMLOCK joins the total's limit instead.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "budget.h"
#include "options.h"
#include "os.h"

static bool budget_locking;            /* false: unlocked backend, nothing charged */
static lof_policy_t budget_policy;     /* LOFALLOC_POLICY */
static uint64_t budget_max_locked;     /* LOFALLOC_MAX_LOCKED, 0 = none */
static uint64_t budget_cgroup_limit;   /* the memory cgroup's limit, UINT64_MAX = none */
static bool budget_total_is_memlock;   /* budget_cgroup_limit is the soft RLIMIT_MEMLOCK */

static _Atomic uint64_t budget_charged;     /* heap + metadata locked bytes */
static _Atomic uint64_t budget_heap;        /* heap locked bytes (stats.locked_range) */
static _Atomic uint64_t budget_meta;        /* metadata locked bytes (stats.meta_locked) */
static _Atomic uint64_t budget_meta_unlocked; /* metadata left unlocked */
static _Atomic int64_t budget_fallback_bytes; /* committed unlocked (stats.fallback) */
static _Atomic uint64_t budget_failures;    /* refused locks (stats.lock_failures) */

/* The last refusal by the kernel: charges that would reach `at` are refused
 * without asking it again until budget_refused_ms + 1 s. */
static _Atomic uint64_t budget_refused_at;  /* 0 = none */
static _Atomic uint64_t budget_refused_ms;
static _Atomic int budget_refused_err;

static atomic_flag budget_warned = ATOMIC_FLAG_INIT;
static _Atomic uint64_t budget_verbose_ms;  /* last verbose line */
static _Atomic uint64_t budget_verbose_quiet; /* refusals not reported since */

static uint64_t budget_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u + 1;
}

void lof__budget_init(bool locking) {
  budget_locking = locking;
  budget_policy = (lof_policy_t)lof__option(LOF_OPT_POLICY);
  budget_max_locked = (uint64_t)lof__option(LOF_OPT_MAX_LOCKED);
  budget_cgroup_limit = locking ? lof__os_cgroup_memory_limit() : UINT64_MAX;
  budget_total_is_memlock = false;
  /* Under the kernel's fault-time charge (lof__os_lock_charged) a lock is
   * no longer refused at RLIMIT_MEMLOCK, a fault past it gets SIGBUS: keep
   * heap + metadata under the soft limit here, in the same total. */
  if (locking && lof__os_lock_charged() && !lof__os_have_ipc_lock()) {
    uint64_t rl = lof__os_memlock_limit();
    if (rl < budget_cgroup_limit) {
      budget_cgroup_limit = rl;
      budget_total_is_memlock = true;
    }
  }
}

/* ---- charges ---------------------------------------------------------------- */

/* Add bytes to the total (heap + metadata) under the cgroup's limit. */
static bool budget_take(uint64_t bytes) {
  uint64_t cur = atomic_load(&budget_charged);
  do {
    if (cur + bytes < cur || cur + bytes > budget_cgroup_limit) return false;
  } while (!atomic_compare_exchange_weak(&budget_charged, &cur, cur + bytes));
  return true;
}

/* Add bytes to the heap's charge under LOFALLOC_MAX_LOCKED (which budgets
 * the heap: stats.locked_range never passes it). */
static bool budget_take_heap(uint64_t bytes) {
  uint64_t cur = atomic_load(&budget_heap);
  uint64_t max = budget_max_locked ? budget_max_locked : UINT64_MAX;
  do {
    if (cur + bytes < cur || cur + bytes > max) return false;
  } while (!atomic_compare_exchange_weak(&budget_heap, &cur, cur + bytes));
  return true;
}

bool lof__budget_charge(uint64_t bytes, lof_refusal_t *why, int *err) {
  *err = 0;
  uint64_t at = atomic_load_explicit(&budget_refused_at, memory_order_relaxed);
  if (at != 0 && atomic_load(&budget_charged) + bytes >= at) {
    if (budget_now_ms() < atomic_load(&budget_refused_ms) + 1000) {
      *why = LOF_REFUSED_KERNEL;
      *err = atomic_load(&budget_refused_err);
      return false;
    }
    atomic_store(&budget_refused_at, 0); /* a second passed: ask the kernel again */
  }
  if (!budget_take_heap(bytes)) { *why = LOF_REFUSED_MAX_LOCKED; return false; }
  if (!budget_take(bytes)) {
    atomic_fetch_sub(&budget_heap, bytes);
    *why = LOF_REFUSED_CGROUP;
    return false;
  }
  return true;
}

void lof__budget_refund(uint64_t bytes) {
  atomic_fetch_sub(&budget_heap, bytes);
  atomic_fetch_sub(&budget_charged, bytes);
  atomic_store_explicit(&budget_refused_at, 0, memory_order_relaxed); /* room again */
}

void lof__budget_kernel_refused(uint64_t bytes, int err) {
  atomic_store(&budget_refused_err, err);
  atomic_store(&budget_refused_ms, budget_now_ms());
  atomic_store(&budget_refused_at, atomic_load(&budget_charged) + bytes);
}

void lof__budget_fallback(int64_t bytes) {
  if (budget_locking) atomic_fetch_add(&budget_fallback_bytes, bytes);
}

bool lof__budget_lock_meta(void *addr, size_t len) {
  if (!budget_locking) return false;
  if (!budget_take(len)) {
    atomic_fetch_add(&budget_meta_unlocked, len);
    return false;
  }
  if (lof__os_lock_onfault(addr, len) != 0) {
    atomic_fetch_sub(&budget_charged, len);
    atomic_fetch_add(&budget_meta_unlocked, len);
    return false;
  }
  atomic_fetch_add(&budget_meta, len);
  return true;
}

void lof__budget_meta_skipped(int64_t len) {
  if (budget_locking) atomic_fetch_add(&budget_meta_unlocked, (uint64_t)len);
}

void lof__budget_unlock_meta(size_t len) {
  atomic_fetch_sub(&budget_meta, len);
  atomic_fetch_sub(&budget_charged, len);
}

/* ---- the policy and its messages ------------------------------------------ */

static void budget_size(char *buf, size_t len, uint64_t bytes) {
  if (bytes == UINT64_MAX) snprintf(buf, len, "unlimited");
  else if (bytes >= ((uint64_t)1 << 30)) snprintf(buf, len, "%.1f GiB", (double)bytes / (1 << 30));
  else if (bytes >= ((uint64_t)1 << 20)) snprintf(buf, len, "%.1f MiB", (double)bytes / (1 << 20));
  else snprintf(buf, len, "%.1f KiB", (double)bytes / 1024);
}

void lof__budget_describe_limits(char *buf, size_t len) {
  char rl[32], mx[32], cg[32];
  bool cap = lof__os_have_ipc_lock();
  budget_size(rl, sizeof rl, lof__os_memlock_limit());
  budget_size(mx, sizeof mx, budget_max_locked ? budget_max_locked : UINT64_MAX);
  budget_size(cg, sizeof cg, budget_cgroup_limit);
  snprintf(buf, len, "RLIMIT_MEMLOCK %s, LOFALLOC_MAX_LOCKED %s, memory cgroup %s",
           cap ? "does not apply (CAP_IPC_LOCK)" : rl, mx, cg);
}

/* What stopped the lock, and the remedy, in words. */
static void budget_reason(char *buf, size_t len, lof_refusal_t why, int err) {
  char lim[32];
  switch (why) {
    case LOF_REFUSED_MAX_LOCKED:
      budget_size(lim, sizeof lim, budget_max_locked);
      snprintf(buf, len, "LOFALLOC_MAX_LOCKED (%s) reached; raise it", lim);
      return;
    case LOF_REFUSED_CGROUP:
      if (budget_total_is_memlock) break; /* the kernel's fault-time charge: RLIMIT_MEMLOCK */
      budget_size(lim, sizeof lim, budget_cgroup_limit);
      snprintf(buf, len, "the memory cgroup's limit (%s) would be passed, and locked memory "
               "past it is OOM-killed; raise the limit (memory.max, memory.limit_in_bytes, "
               "systemd MemoryMax=, docker --memory)", lim);
      return;
    case LOF_REFUSED_KERNEL:
      break;
  }
  if (why == LOF_REFUSED_CGROUP) {
    budget_size(lim, sizeof lim, budget_cgroup_limit);
    snprintf(buf, len, "RLIMIT_MEMLOCK (%s) reached; raise it: ulimit -l, systemd "
             "LimitMEMLOCK=, docker run --ulimit memlock=, /etc/security/limits.conf", lim);
  } else if (err == ENOSYS) {
    snprintf(buf, len, "mlock2 is not available (ENOSYS: a seccomp filter, valgrind or a "
             "kernel before 4.4)");
  } else if (err == EPERM || err == EAGAIN || err == ENOMEM) {
    if (lof__os_have_ipc_lock()) {
      snprintf(buf, len, "the kernel refused (%s) although RLIMIT_MEMLOCK does not apply "
               "(CAP_IPC_LOCK)", strerror(err));
    } else {
      budget_size(lim, sizeof lim, lof__os_memlock_limit());
      snprintf(buf, len, "RLIMIT_MEMLOCK (%s) reached; raise it: ulimit -l, systemd "
               "LimitMEMLOCK=, docker run --ulimit memlock=, /etc/security/limits.conf", lim);
    }
  } else {
    snprintf(buf, len, "the kernel refused the lock (%s)", strerror(err));
  }
}

static const char *budget_consequence(bool can_fail) {
  switch (budget_policy) {
    case LOF_POLICY_STRICT:
      return can_fail ? "failing the allocation with ENOMEM (LOFALLOC_POLICY=strict)"
                      : "it stays unlocked (LOFALLOC_POLICY=strict: memory that already "
                        "exists cannot be failed) and is counted in stats.fallback";
    case LOF_POLICY_ABORT: return "aborting (LOFALLOC_POLICY=abort)";
    default: return "serving it unlocked (LOFALLOC_POLICY=fallback; stats.fallback counts it)";
  }
}

bool lof__budget_refused(const char *what, size_t len, lof_refusal_t why, int err,
                         bool can_fail) {
  atomic_fetch_add(&budget_failures, 1);
  char reason[320], size[32], locked[32];
  budget_reason(reason, sizeof reason, why, err);
  budget_size(size, sizeof size, len);
  budget_size(locked, sizeof locked, atomic_load(&budget_charged));
  if (budget_policy == LOF_POLICY_ABORT)
    lof__fatal("cannot lock %s more of the %s: %s; %s locked; %s", size, what, reason,
               locked, budget_consequence(can_fail));
  bool first = !atomic_flag_test_and_set(&budget_warned);
  bool verbose = lof__option(LOF_OPT_VERBOSE) != 0;
  if (first || verbose) {
    uint64_t now = budget_now_ms(), last = atomic_load(&budget_verbose_ms);
    if (first || now >= last + 1000) {
      atomic_store(&budget_verbose_ms, now);
      uint64_t quiet = atomic_exchange(&budget_verbose_quiet, 0);
      char more[48] = "";
      if (quiet) snprintf(more, sizeof more, " (%llu more refusals not shown)",
                          (unsigned long long)quiet);
      lof__message("%s: cannot lock %s more of the %s: %s; %s locked; %s%s",
                   first ? "warning" : "refused", size, what, reason, locked,
                   budget_consequence(can_fail), more);
    } else {
      atomic_fetch_add(&budget_verbose_quiet, 1);
    }
  }
  return budget_policy != LOF_POLICY_STRICT || !can_fail;
}

/* ---- stats ------------------------------------------------------------------ */

void lof__budget_stats(lof_stats_t *st) {
  st->locked_range = budget_locking ? atomic_load(&budget_heap) : 0;
  int64_t fb = atomic_load(&budget_fallback_bytes);
  st->fallback = fb > 0 ? (uint64_t)fb : 0;
  st->lock_failures = atomic_load(&budget_failures);
  st->max_locked = budget_max_locked;
  st->meta_locked = atomic_load(&budget_meta);
  st->meta_unlocked = atomic_load(&budget_meta_unlocked);
  st->cgroup_limit = budget_cgroup_limit == UINT64_MAX ? 0 : budget_cgroup_limit;
  st->memlock_limit = lof__os_have_ipc_lock() ? 0 : lof__os_memlock_limit();
}
