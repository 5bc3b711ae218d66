/*
 * je.h -- internals shared by the jemalloc frontend's files: the extent
 * hooks (hooks.c), the registry of lock-on-fault arenas (stats.c) and the
 * own mappings of the whole-process mode (boot.c, process.c) and the lock
 * gate (gate.c).
 *
 * Nothing declared here calls malloc: the hooks run inside jemalloc's
 * malloc, with jemalloc's own locks held.
 */
#ifndef LOF_JE_H
#define LOF_JE_H

#include <jemalloc/jemalloc.h>

#include "internal.h"
#include "lofalloc-jemalloc.h"
#include "options.h"
#include "region.h"
#include "stats_print.h"

/* A function only libjemalloc defines: its address names libjemalloc's
 * object for dladdr/dl_iterate_phdr (process.c, hooks.c).  Not malloc,
 * which in a non-PIE executable resolves to the executable's PLT entry. */
#define LOF_JE_OBJECT_ANCHOR ((const void *)&mallctl)

/* The hook table every lock-on-fault arena uses. */
LOF_HIDDEN extern extent_hooks_t lof__je_hooks;

/* jemalloc's opt.retain, read once before the first arena gets the hooks:
 * dalloc opts out when it is true (see hooks.c). */
LOF_HIDDEN extern bool lof__je_hooks_retain;

/* Commit mode (hooks.c banner): true = eager, false = lazy. */
LOF_HIDDEN extern bool lof__je_hooks_eager;

/* Read the jemalloc options the hooks depend on (idempotent; calls mallctl,
 * so never from inside a hook). */
LOF_HIDDEN void lof__je_hooks_init(void);

/* Counters of what the hooks asked of the region layer (for stats and the
 * spy tests; relaxed atomics). */
typedef struct lof_je_counters {
  _Atomic(uint64_t) allocs;       /* alloc hook calls that returned memory */
  _Atomic(uint64_t) alloc_fails;  /* alloc hook calls that returned NULL */
  _Atomic(uint64_t) dallocs;      /* dalloc calls accepted (range given back) */
  _Atomic(uint64_t) destroys;     /* destroy calls */
  _Atomic(uint64_t) releases;     /* regions released (all their bytes given back) */
  _Atomic(uint64_t) foreign;      /* calls on ranges not from the region layer */
  _Atomic(uint64_t) bootstrap;    /* bytes of jemalloc's own mappings adopted (process.c) */
  _Atomic(uint64_t) lock_attempts; /* locks asked of the kernel through the gate (gate.c) */
  _Atomic(uint64_t) lock_refusals; /* ... that it refused (limit reached) */
  _Atomic(uint64_t) lock_skipped;  /* locks not asked: the gate knew they would be refused */
  _Atomic(uint64_t) fork_relock_failures; /* child re-locks of jemalloc's own mappings that failed */
} lof_je_counters_t;
LOF_HIDDEN extern lof_je_counters_t lof__je_counters;

/* Remember that arena ind uses the hooks (stats.c: the registry that
 * lof_je_arena_is_lof and the stats read). */
LOF_HIDDEN void lof__je_arena_mark(unsigned ind);
/* Register the LOFALLOC_STATS report at exit (stats.c; once, idempotent;
 * called by the entry points of arena.c after lof__je_hooks_init). */
LOF_HIDDEN void lof__je_stats_at_exit(void);

/* jemalloc's own mappings (boot.c): mappings jemalloc made with its default
 * hooks (before ours were installed, or for metadata), that process.c
 * adopted.  add lists one (locked: it was locked on fault whole); false
 * when the table is full (the mapping is then treated as unlocked).
 * contains: [addr, addr+len) lies in one listed mapping; locked: and every
 * granule of it is locked.  lock_touched locks, where locking is budgeted,
 * the granules jemalloc has touched.  postfork_child re-locks the child's
 * copy of every locked granule. */
LOF_HIDDEN bool lof__je_boot_add(const void *addr, size_t len, bool locked);
/* List a base block's region (committed unlocked), locked as touched. */
LOF_HIDDEN bool lof__je_boot_add_base(lof_region_t *r);
LOF_HIDDEN bool lof__je_boot_contains(const void *addr, size_t len);
LOF_HIDDEN bool lof__je_boot_locked(const void *addr, size_t len);
LOF_HIDDEN void lof__je_boot_lock_touched(void);
LOF_HIDDEN void lof__je_boot_postfork_child(void);
LOF_HIDDEN uint64_t lof__je_boot_locked_bytes(void);
/* Forget the listed range starting at addr (its region is being released). */
LOF_HIDDEN void lof__je_boot_remove(const void *addr);

/* The lock gate (gate.c).  budgeted: locking is charged to a limit (no
 * CAP_IPC_LOCK and a finite RLIMIT_MEMLOCK, or LOFALLOC_MAX_LOCKED).
 * gate_open: a lock of len more bytes may succeed (else do not ask);
 * gate_result: what the kernel answered (err = errno on failure).
 * own_locked: the locked bytes of jemalloc's own mappings now
 * (lof__je_boot_locked_bytes), part of the charge the gate weighs. */
LOF_HIDDEN bool lof__je_lock_budgeted(void);
LOF_HIDDEN bool lof__je_gate_open(size_t len, uint64_t own_locked);
LOF_HIDDEN void lof__je_gate_result(size_t len, uint64_t own_locked, bool locked, int err);

/* The ledger mutex around fork (hooks.c). */
LOF_HIDDEN void lof__je_hooks_prefork(void);
LOF_HIDDEN void lof__je_hooks_postfork_parent(void);
LOF_HIDDEN void lof__je_hooks_postfork_child(void);

/* Register the fork handlers in the right order relative to jemalloc's
 * (fork.c); call before jemalloc registers its own (process.c). */
LOF_HIDDEN void lof__je_fork_register_early(void);

/* ---- the jemalloc frontend's options (options.c) ------------------------ */

LOF_HIDDEN extern lof_option_t lof__opt_je_commit;

/* LOFALLOC_JE_COMMIT: auto|eager|lazy, the hooks' commit mode (auto) */
#define LOF_OPT_JE_COMMIT (&lof__opt_je_commit)

typedef enum lof_je_commit_choice {
  LOF_JE_COMMIT_AUTO,
  LOF_JE_COMMIT_EAGER,
  LOF_JE_COMMIT_LAZY
} lof_je_commit_choice_t;

#endif /* LOF_JE_H */
