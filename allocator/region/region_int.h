/*
 * region_int.h -- what region.c tells the region layer's other files
 * (region_stats.c, external.c, whole.c); no frontend includes it.
 *
 * Layers inside region/: os.c at the bottom, budget.c above it, region.c
 * above both, then whole.c (huge blocks' mappings), external.c (ranges a
 * frontend maps itself) and region_stats.c (which reads all of them).
 * Calls only go down.
 */
#ifndef LOF_REGION_INT_H
#define LOF_REGION_INT_H

#include "region.h"

/* region.c: the backend (and its name), the kernel's mlockall flags and
 * region.c's counters into *st (no lock, no system call). */
LOF_HIDDEN void lof__region_counters(lof_stats_t *st);

/* region.c: the live regions' address ranges, sorted by start, at most cap
 * of them, into spans (taken under region_lock); returns how many. */
typedef struct lof_region_span { uintptr_t start, end; } lof_region_span_t;
LOF_HIDDEN size_t lof__region_spans(lof_region_span_t *spans, size_t cap);

/* A region's kind: reserved and committed range by range (segments,
 * metadata pools), or mapped and committed whole (huge blocks, whole.c). */
enum { LOF_REGION_RESERVED = 1, LOF_REGION_WHOLE = 2 };

/* region.c, for whole.c.  Lock bytes of new memory: charge the budget, run
 * lock(arg), refund and apply the policy on a refusal; 1 locked, 0 go on
 * unlocked (fallback), -1 fail (errno ENOMEM). */
LOF_HIDDEN int lof__region_lock_new(size_t bytes, int (*lock)(void *), void *arg);
LOF_HIDDEN bool lof__region_args_ok(size_t size, size_t align);
/* munmap, counting a refusal (stats.release_failures); true if unmapped. */
LOF_HIDDEN bool lof__region_unmap(void *p, size_t len);
LOF_HIDDEN bool lof__region_nohugepage(void);
/* A new WHOLE region [base, base + size) with room bytes reserved after it,
 * listed and counted (reserved, committed), locked or not; NULL if no
 * descriptor could be had. */
LOF_HIDDEN lof_region_t *lof__region_register_whole(uintptr_t base, size_t size, size_t room,
                                                    bool locked);
/* Add to the reserved and committed counters (bytes, either sign). */
LOF_HIDDEN void lof__region_count_add(int64_t reserved, int64_t committed);
/* A WHOLE region's new base, size and room, under region_lock (find and
 * the stats' span list read them). */
LOF_HIDDEN void lof__region_set_whole(lof_region_t *r, uintptr_t base, size_t size, size_t room);

/* external.c: the shared_* fields of *st. */
LOF_HIDDEN void lof__region_external_stats(lof_stats_t *st);


#endif /* LOF_REGION_INT_H */
