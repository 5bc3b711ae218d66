/*
 * lofalloc-jemalloc.h -- the public API of liblofalloc-jemalloc: jemalloc
 * arenas whose memory comes from lofalloc's region layer, i.e. is locked on
 * fault (a page is locked into RAM when first touched, and only then), and
 * whose freed pages go back to the OS although they were locked.
 *
 * liblofalloc-jemalloc does not replace malloc and does not export the lof_*
 * names of liblofalloc: it has its own copy of the region layer, so its names
 * carry the lof_je_ prefix.  Use it with Debian's jemalloc 5.3 (unprefixed
 * API: mallocx, mallctl):
 *
 *   unsigned ind;
 *   if (lof_je_arena_create(&ind) == 0)
 *     p = mallocx(n, MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE);
 *
 * The whole-process mode (every malloc of a program that runs on jemalloc)
 * is liblofalloc-jemalloc-process.so; see doc/jemalloc.md.
 */
#ifndef LOFALLOC_JEMALLOC_H
#define LOFALLOC_JEMALLOC_H

#include <stddef.h>

#include "lofalloc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Create a jemalloc arena whose every extent (and its metadata) is
 * lock-on-fault.  0 and *arena_ind set, or an errno value (EINVAL when
 * arena_ind is NULL, or what mallctl("arenas.create") returned). */
LOF_EXPORT int lof_je_arena_create(unsigned *arena_ind);

/* The extent hooks themselves (an extent_hooks_t *), for programs that install
 * them with mallctl("arena.<i>.extent_hooks") or wrap them. */
LOF_EXPORT void *lof_je_extent_hooks(void);

/* Install the hooks on every automatic arena (arena 0 now; the others are
 * initialised with them, so their first extent is already lock-on-fault;
 * the huge arena for allocations >= opt.oversize_threshold is created with
 * one such allocation and switched).  Idempotent.  0, or an errno value from
 * mallctl.  The whole-process library calls it from its constructor; called
 * from a program without that library, what jemalloc mapped before, and the
 * metadata blocks b0 and the huge arena add later (jemalloc keeps their
 * metadata hooks), stay unlocked. */
LOF_EXPORT int lof_je_hook_automatic_arenas(void);

/* True when arena ind uses the lofalloc hooks. */
LOF_EXPORT int lof_je_arena_is_lof(unsigned ind);

/* Fill *out (out_size = sizeof(*out)) like lof_stats_get(): the region
 * layer's counters, and allocated/allocations summed over the lock-on-fault
 * arenas from jemalloc's own statistics.  0, or -1 with errno = EINVAL. */
LOF_EXPORT int lof_je_stats_get(lof_stats_t *out, size_t out_size);

/* Print the same on file descriptor fd. */
LOF_EXPORT void lof_je_stats_print(int fd);

#ifdef __cplusplus
}
#endif

#endif /* LOFALLOC_JEMALLOC_H */
