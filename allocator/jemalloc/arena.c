/*
 * arena.c -- the entry points of liblofalloc-jemalloc: jemalloc arenas
 * backed by the lofalloc hooks, creating them (lof_je_arena_create), putting
 * the hooks under jemalloc's automatic arenas, the huge arena included
 * (lof_je_hook_automatic_arenas), and handing the hook table to a program
 * that installs it itself (lof_je_extent_hooks).  Each initialises the
 * frontend on first use: the hooks' options (hooks.c), then the
 * LOFALLOC_STATS report (stats.c).  The top of the frontend with fork.c and
 * process.c: it calls down to hooks.c and stats.c, nothing calls it but
 * process.c.
 *
 * Invariants: an arena is marked in the registry (stats.c) before any
 * allocation can be made from it through us.  Arena 0 is the
 * base (metadata) allocator of jemalloc's b0: once it has the hooks, every
 * new metadata block is lock-on-fault too.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "je.h"

/* The frontend's first use, from any of its entry points: the hooks read
 * their options, and the LOFALLOC_STATS report is registered (stats.c). */
static void arena_init(void) {
  lof__je_hooks_init();
  lof__je_stats_at_exit();
}

int lof_je_arena_create(unsigned *arena_ind) {
  if (arena_ind == NULL) return EINVAL;
  arena_init();
  extent_hooks_t *hooks = &lof__je_hooks;
  unsigned ind = 0;
  size_t sz = sizeof(ind);
  int err = mallctl("arenas.create", &ind, &sz, &hooks, sizeof(hooks));
  if (err != 0) return err;
  lof__je_arena_mark(ind);
  *arena_ind = ind;
  return 0;
}

/* Install the hooks on automatic arena ind: an arena not yet initialised is
 * created with them (its base, too, is then lock-on-fault from its first
 * byte); an initialised one switches to them. */
static int arena_hook(unsigned ind) {
  char name[64];
  snprintf(name, sizeof name, "arena.%u.extent_hooks", ind);
  extent_hooks_t *hooks = &lof__je_hooks, *old = NULL;
  size_t sz = sizeof(old);
  lof__je_arena_mark(ind); /* before: the arena may allocate at once */
  return mallctl(name, &old, &sz, &hooks, sizeof(hooks));
}

/* jemalloc serves allocations of opt.oversize_threshold bytes and more
 * from a dedicated automatic "huge" arena (index narenas), created on first
 * use with the default hooks; arena.<i>.extent_hooks cannot initialise it.
 * So: make jemalloc create it with one such allocation, find its index with
 * arenas.lookup, and switch it to the hooks.  (In the whole-process mode the
 * mappings this makes are jemalloc's own, so process.c locks them on fault.)
 * 0, or an errno value. */
static int arena_hook_huge(unsigned narenas) {
  size_t threshold = 0, sz = sizeof(threshold);
  if (mallctl("opt.oversize_threshold", &threshold, &sz, NULL, 0) != 0) return 0;
  if (threshold == 0 || threshold > ((size_t)1 << 30)) return 0; /* none, or not worth it */
  void *p = mallocx(threshold, MALLOCX_TCACHE_NONE);
  if (p == NULL) return ENOMEM;
  unsigned ind = 0;
  size_t isz = sizeof(ind);
  int err = mallctl("arenas.lookup", &ind, &isz, &p, sizeof(p));
  if (err == 0 && ind >= narenas) err = arena_hook(ind);
  dallocx(p, MALLOCX_TCACHE_NONE);
  return err;
}

int lof_je_hook_automatic_arenas(void) {
  static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  static bool done;
  int err = 0;
  pthread_mutex_lock(&mutex);
  if (!done) {
    arena_init();
    unsigned n = 0;
    size_t sz = sizeof(n);
    err = mallctl("opt.narenas", &n, &sz, NULL, 0);
    for (unsigned i = 0; err == 0 && i < n; i++) err = arena_hook(i);
    if (err == 0) err = arena_hook_huge(n);
    done = err == 0;
  }
  pthread_mutex_unlock(&mutex);
  return err;
}

void *lof_je_extent_hooks(void) {
  arena_init();
  return &lof__je_hooks;
}
