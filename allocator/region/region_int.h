/*
 * region_int.h -- what region.c tells the region layer's other files
 * (region_stats.c, external.c); no frontend includes it.
 *
 * Layers inside region/: os.c at the bottom, budget.c above it, region.c
 * above both, then external.c (ranges a frontend maps itself) and
 * region_stats.c (which reads all of them).  Calls only go down.
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

/* external.c: the shared_* fields of *st. */
LOF_HIDDEN void lof__region_external_stats(lof_stats_t *st);


#endif /* LOF_REGION_INT_H */
