/*
 * region_stats.c -- the region layer's statistics: lof__region_stats_basic
 * (counters only: region.c's, external.c's and the budget's) and
 * lof__region_stats (the same plus what /proc/self/smaps says of the
 * regions: resident, locked resident, VMAs).
 *
 * The regions' ranges are copied (sorted, under region_lock, by region.c)
 * into a buffer mapped for the call, so /proc is read without the lock and
 * without malloc.  Counters are read one at a time (relaxed): a snapshot of
 * each, not of all at one instant.
 */
#include <stdatomic.h>
#include <string.h>

#include "budget.h"
#include "options.h"
#include "os.h"
#include "region.h"
#include "region_int.h"

/* The counters only (no /proc reads). */
void lof__region_stats_basic(lof_stats_t *st) {
  memset(st, 0, sizeof *st);
  st->version = LOF_STATS_VERSION;
  st->size = sizeof *st;
  lof__region_counters(st);
  strncpy(st->policy_name, lof__option_enum_name(LOF_OPT_POLICY), sizeof st->policy_name - 1);
  lof__region_external_stats(st);
  lof__budget_stats(st);
}

typedef struct region_snapshot { lof_region_span_t *spans; size_t n; } region_snapshot_t;

static bool region_snapshot_contains(uintptr_t start, uintptr_t end, void *arg) {
  region_snapshot_t *s = arg;
  size_t lo = 0, hi = s->n;
  while (lo < hi) { /* first span whose end > start */
    size_t mid = (lo + hi) / 2;
    if (s->spans[mid].end <= start) lo = mid + 1;
    else hi = mid;
  }
  return lo < s->n && s->spans[lo].start < end;
}

void lof__region_stats(lof_stats_t *st) {
  lof__region_init();
  lof__region_stats_basic(st);
  /* Snapshot the regions' spans (sorted) so /proc is read without the lock. */
  size_t cap = (size_t)st->regions + 16;
  size_t bytes = LOF_ALIGN_UP(cap * sizeof(lof_region_span_t), LOF_PAGE_SIZE);
  region_snapshot_t snap = {lof__os_map_meta(bytes), 0};
  if (snap.spans == NULL) return;
  snap.n = lof__region_spans(snap.spans, cap);
  lof_os_smaps_sum_t sum;
  if (lof__os_smaps_sum(region_snapshot_contains, &snap, &sum) == 0) {
    st->locked_resident = sum.locked;
    st->resident = sum.rss;
    st->heap_vmas = sum.vmas;
  }
  lof__os_release(snap.spans, bytes);
}
