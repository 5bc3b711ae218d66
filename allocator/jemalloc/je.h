/*
 * je.h -- internals shared by the jemalloc frontend's files: the extent
 * hooks (hooks.c), the registry of lock-on-fault arenas (arena.c) and the
 * bootstrap ranges of the whole-process mode (process.c).
 *
 * Nothing declared here calls malloc: the hooks run inside jemalloc's
 * malloc, with jemalloc's own locks held.
 */
#ifndef LOF_JE_H
#define LOF_JE_H

#include <jemalloc/jemalloc.h>

#include "internal.h"
#include "lofalloc-jemalloc.h"

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
  _Atomic(uint64_t) bootstrap;    /* bytes of jemalloc's bootstrap mappings locked on fault (process.c) */
} lof_je_counters_t;
LOF_HIDDEN extern lof_je_counters_t lof__je_counters;

/* Remember that arena ind uses the hooks (arena.c). */
LOF_HIDDEN void lof__je_arena_mark(unsigned ind);

/* The whole-process mode: mappings jemalloc made with its default hooks
 * (before ours were installed, or for metadata), that process.c locked on
 * fault.  Hooks asked about a range outside the region layer ("foreign")
 * purge it keeping it locked when it is listed here.  add returns false when
 * the table is full (the range is then treated as unlocked). */
LOF_HIDDEN bool lof__je_bootstrap_add(const void *addr, size_t len);
LOF_HIDDEN bool lof__je_bootstrap_contains(const void *addr, size_t len);

/* The ledger mutex around fork (hooks.c). */
LOF_HIDDEN void lof__je_hooks_prefork(void);
LOF_HIDDEN void lof__je_hooks_postfork_parent(void);
LOF_HIDDEN void lof__je_hooks_postfork_child(void);

/* Register the fork handlers in the right order relative to jemalloc's
 * (fork.c); call before jemalloc registers its own (process.c). */
LOF_HIDDEN void lof__je_fork_register_early(void);

#endif /* LOF_JE_H */
