/*
 * fork.c -- fork(2) with lock-on-fault arenas: the region layer's mutex and
 * the hooks' ledger mutex are taken around fork, and the child locks its
 * heap again (memory locks are not inherited across fork): its regions
 * (region layer) and the locked parts of jemalloc's own mappings (boot.c).
 *
 * Lock order: the hooks run with jemalloc's arena mutexes held and take the
 * region mutex inside (reserve/release/find), so around fork the region
 * mutex must be taken after jemalloc's prefork handler has taken its
 * mutexes.  glibc runs prepare handlers in the reverse order of their
 * registration, so ours must be registered before jemalloc's:
 *  - the whole-process library registers them from its mmap interposer, at
 *    jemalloc's first mapping, which precedes jemalloc's own pthread_atfork
 *    call in its initialisation (lof__je_fork_register_early);
 *  - liblofalloc-jemalloc is loaded after jemalloc has initialised itself
 *    (jemalloc is its dependency), too late for that order: it registers
 *    only a child handler, which re-initialises the mutexes and re-locks
 *    the child's heap, without taking them in the parent.  A
 *    fork racing with a region reserve/release on another thread can then
 *    see the region list mid-update in the child (doc/jemalloc.md, limits).
 *
 * The top of the frontend for fork: the handlers call down into each
 * module's prefork/postfork (region layer, hooks.c, boot.c); nothing calls
 * back up here but process.c (lof__je_fork_register_early).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "je.h"
#include "options.h"
#include "region.h"

static _Atomic(bool) fork_registered;

static void fork_prepare(void) {
  lof__je_hooks_prefork();
  lof__region_prefork();
}

static void fork_parent(void) {
  lof__region_postfork_parent();
  lof__je_hooks_postfork_parent();
}

static void fork_child(void) {
  lof__region_postfork_child();
  lof__je_hooks_postfork_child();
  if (lof__option(LOF_OPT_FORK_RELOCK) && lof__region_backend() != LOF_BACKEND_UNLOCKED)
    lof__je_boot_postfork_child();
}

void lof__je_fork_register_early(void) {
  if (atomic_exchange(&fork_registered, true)) return;
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}

__attribute__((constructor)) static void fork_register_late(void) {
  if (atomic_exchange(&fork_registered, true)) return;
  pthread_atfork(NULL, NULL, fork_child);
}
