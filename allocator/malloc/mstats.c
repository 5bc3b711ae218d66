/*
 * mstats.c -- malloc_stats() and malloc_info() in glibc's layout, with
 * lofalloc's numbers (programs and tools parse glibc's lines).
 *
 * Per arena ("Arena N:"): system bytes = the committed prefixes of its
 * segments; in use bytes = those minus the free runs in them (so small
 * spans count whole: a block-exact figure exists only for the whole heap).
 * "Total (incl. mmap):" adds the huge blocks (glibc's mmapped chunks) and
 * its in use bytes are the live bytes handed out (stats.allocated).  "max
 * mmap regions" / "max mmap bytes" are the huge blocks' high-water marks as
 * far as this file has seen them (updated at every call here and at every
 * mallinfo2 via lof__mstats_huge_now): lofalloc does not keep a peak itself.
 * Then lofalloc's own summary follows (lof_stats_print: locked bytes).
 *
 * mallinfo2() (its fields in glibc's sense, from the same gathering):
 *   arena    = the arenas' system bytes (committed prefixes of segments)
 *   ordblks  = free chunks: free runs in the arenas + cached huge blocks
 *   smblks, fsmblks = 0 (no fastbins: small free blocks are per thread)
 *   hblks, hblkhd = live huge blocks (glibc's mmapped chunks) and bytes
 *   usmblks  = 0 (as in glibc)
 *   uordblks = bytes handed out outside huge blocks (usable sizes)
 *   fordblks = arena - uordblks (free runs and free room in small spans)
 *   keepcost = at most what malloc_trim() can give back now: the free runs'
 *              bytes plus the unpinned cached huge blocks' (free runs that
 *              decay already purged are counted too)
 *
 * malloc_info(0, fp) writes glibc's <malloc version="1"> document: one
 * <heap nr="N"> per arena, then the totals; EINVAL for options != 0.
 * Numbers are gathered (arena locks taken one at a time) before anything is
 * printed: stdio may call malloc.
 */
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "config.h"
#include "frontend.h"

typedef struct mstats_arena {
  uint64_t system;   /* committed bytes of its segments */
  uint64_t in_use;   /* of them, not in free runs */
  uint64_t free_runs;
  uint64_t free_bytes;
} mstats_arena_t;

static _Atomic(uint64_t) mstats_max_hcount, mstats_max_hbytes;

static void mstats_arena(lof_arena_t *a, mstats_arena_t *out) {
  out->system = out->in_use = out->free_runs = out->free_bytes = 0;
  lof__lock_marked(&a->lock);
  for (lof_segment_t *seg = a->segments; seg != NULL; seg = seg->next) {
    size_t top = atomic_load_explicit(&seg->committed_pages, memory_order_relaxed);
    uint64_t free_pages = 0;
    for (size_t i = LOF_SEG_HDR_PAGES; i < top && i < LOF_SEG_PAGES;) {
      lof_span_t *s = lof__pagemap_span(seg, i);
      size_t n = s->npages ? s->npages : 1;
      if (s->state == LOF_SPAN_FREE || s->state == LOF_SPAN_PURGING) {
        free_pages += (i + n > top ? top - i : n);
        out->free_runs++;
      }
      i += n;
    }
    out->system += (uint64_t)top << LOF_PAGE_SHIFT;
    out->free_bytes += free_pages << LOF_PAGE_SHIFT;
  }
  lof__unlock_marked(&a->lock);
  out->in_use = out->system - out->free_bytes;
}

static void mstats_huge(uint64_t *count, uint64_t *bytes) {
  lof__huge_stats(count, bytes);
  uint64_t m = atomic_load(&mstats_max_hcount);
  while (*count > m && !atomic_compare_exchange_weak(&mstats_max_hcount, &m, *count)) {}
  m = atomic_load(&mstats_max_hbytes);
  while (*bytes > m && !atomic_compare_exchange_weak(&mstats_max_hbytes, &m, *bytes)) {}
}

typedef struct mstats_all {
  unsigned narenas;
  mstats_arena_t arena[LOF_MAX_ARENAS];
  uint64_t system, in_use, hcount, hbytes, allocated;
} mstats_all_t;

static void mstats_gather(mstats_all_t *m) {
  lof__malloc_init();
  m->narenas = lof__narenas;
  m->system = 0;
  for (unsigned i = 0; i < m->narenas; i++) {
    mstats_arena(&lof__arenas[i], &m->arena[i]);
    m->system += m->arena[i].system;
  }
  mstats_huge(&m->hcount, &m->hbytes);
  int64_t a, n;
  lof__heaps_stats(&a, &n);
  m->allocated = a > 0 ? (uint64_t)a : 0;
}

LOF_EXPORT void lof_malloc_stats_glibc(void);
LOF_EXPORT void lof_malloc_stats_glibc(void) {
  mstats_all_t m;
  mstats_gather(&m);
  for (unsigned i = 0; i < m.narenas; i++)
    dprintf(STDERR_FILENO, "Arena %u:\nsystem bytes     = %10llu\nin use bytes     = %10llu\n", i,
            (unsigned long long)m.arena[i].system, (unsigned long long)m.arena[i].in_use);
  dprintf(STDERR_FILENO,
          "Total (incl. mmap):\nsystem bytes     = %10llu\nin use bytes     = %10llu\n"
          "max mmap regions = %10llu\nmax mmap bytes   = %10llu\n",
          (unsigned long long)(m.system + m.hbytes), (unsigned long long)m.allocated,
          (unsigned long long)atomic_load(&mstats_max_hcount),
          (unsigned long long)atomic_load(&mstats_max_hbytes));
  lof_stats_print(STDERR_FILENO);
}

LOF_EXPORT int lof_malloc_info(int options, FILE *fp);
LOF_EXPORT int lof_malloc_info(int options, FILE *fp) {
  if (options != 0 || fp == NULL) {
    errno = EINVAL;
    return -1;
  }
  mstats_all_t m;
  mstats_gather(&m);
  uint64_t runs = 0, free_bytes = 0;
  fputs("<malloc version=\"1\">\n", fp);
  for (unsigned i = 0; i < m.narenas; i++) {
    const mstats_arena_t *a = &m.arena[i];
    runs += a->free_runs;
    free_bytes += a->free_bytes;
    fprintf(fp, "<heap nr=\"%u\">\n<sizes>\n</sizes>\n"
                "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
                "<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n"
                "<system type=\"current\" size=\"%llu\"/>\n"
                "<system type=\"max\" size=\"%llu\"/>\n"
                "<aspace type=\"total\" size=\"%llu\"/>\n"
                "<aspace type=\"mprotect\" size=\"%llu\"/>\n</heap>\n",
            i, (unsigned long long)a->free_runs, (unsigned long long)a->free_bytes,
            (unsigned long long)a->system, (unsigned long long)a->system,
            (unsigned long long)a->system, (unsigned long long)a->system);
  }
  fprintf(fp, "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
              "<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n"
              "<total type=\"mmap\" count=\"%llu\" size=\"%llu\"/>\n"
              "<system type=\"current\" size=\"%llu\"/>\n"
              "<system type=\"max\" size=\"%llu\"/>\n"
              "<aspace type=\"total\" size=\"%llu\"/>\n"
              "<aspace type=\"mprotect\" size=\"%llu\"/>\n</malloc>\n",
          (unsigned long long)runs, (unsigned long long)free_bytes,
          (unsigned long long)m.hcount, (unsigned long long)m.hbytes,
          (unsigned long long)m.system, (unsigned long long)m.system,
          (unsigned long long)m.system, (unsigned long long)m.system);
  return 0;
}

#ifdef LOF_OVERRIDE
#define MSTATS_ALIAS(target) __attribute__((alias(#target), visibility("default"), used))
void malloc_stats(void) MSTATS_ALIAS(lof_malloc_stats_glibc);
int malloc_info(int options, FILE *fp) MSTATS_ALIAS(lof_malloc_info);
#endif

LOF_HIDDEN void lof__mstats_mallinfo2(struct mallinfo2 *mi) {
  mstats_all_t m;
  mstats_gather(&m);
  uint64_t runs = 0, free_bytes = 0, ccount, cbytes;
  for (unsigned i = 0; i < m.narenas; i++) {
    runs += m.arena[i].free_runs;
    free_bytes += m.arena[i].free_bytes;
  }
  lof__huge_cache_stats(&ccount, &cbytes);
  uint64_t small_large = m.allocated > m.hbytes ? m.allocated - m.hbytes : 0;
  memset(mi, 0, sizeof *mi);
  mi->arena = m.system;
  mi->ordblks = runs + ccount;
  mi->hblks = m.hcount;
  mi->hblkhd = m.hbytes;
  mi->uordblks = small_large;
  mi->fordblks = m.system > small_large ? m.system - small_large : 0;
  mi->keepcost = free_bytes + cbytes;
}
