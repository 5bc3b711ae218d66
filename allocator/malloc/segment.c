/*
 * segment.c -- where segments come from, and the registry that says which
 * 4 MiB units hold a frontend header.
 *
 * Segments are cut in address order from 1 GiB reservations (PROT_NONE,
 * uncharged) and committed one whole segment per call, so a growing heap is
 * one commit (one mlock2) per 4 MiB and consecutive segments merge into one
 * lock-on-fault VMA.  A segment, once committed, stays committed: its free
 * pages are purged (they leave RAM and the lock count) but the range keeps
 * its VMA flags, which avoids VMA splits.
 *
 * The registry is one bit per 4 MiB unit of the 47-bit user address space
 * (4 MiB of zero-fill BSS, touched only where the heap lives).  free() tests
 * the bit before it reads a header, so a pointer that malloc never returned
 * is reported rather than followed.  Bits are set before a pointer of the
 * unit is handed out and cleared after its last block is gone.
 */
#include <errno.h>
#include <string.h>

#include "frontend.h"

LOF_HIDDEN _Atomic(uint64_t) lof__registry[LOF_REGISTRY_BITS / 64];

LOF_HIDDEN void lof__registry_set(const void *unit, bool on) {
  uintptr_t i = (uintptr_t)unit >> LOF_SEG_SHIFT;
  lof_assert(i < LOF_REGISTRY_BITS);
  uint64_t bit = (uint64_t)1 << (i % 64);
  if (on)
    atomic_fetch_or_explicit(&lof__registry[i / 64], bit, memory_order_release);
  else
    atomic_fetch_and_explicit(&lof__registry[i / 64], ~bit, memory_order_release);
}

/* The reservation segments are currently cut from. */
static pthread_mutex_t segment_lock = PTHREAD_MUTEX_INITIALIZER;
static lof_region_t *segment_region; /* current reservation */
static size_t segment_next;          /* offset of the next segment in it */

LOF_HIDDEN lof_segment_t *lof__segment_new(lof_arena_t *arena) {
  lof_region_t *r;
  uintptr_t base;

  lof_segment_t *pinned = lof__reserve_take(arena); /* lof_reserve's pool first: no syscall */
  if (pinned != NULL) return pinned;
  pthread_mutex_lock(&segment_lock);
  if (segment_region == NULL || segment_next + LOF_SEG_SIZE > segment_region->size) {
    /* Reserving is a syscall, but a rare one (once per 1 GiB); holding the
     * lock keeps two threads from reserving at once. */
    lof_region_t *nr = lof__region_reserve(LOF_RESERVE_SIZE, LOF_SEG_SIZE);
    if (nr == NULL) {
      pthread_mutex_unlock(&segment_lock);
      errno = ENOMEM;
      return NULL;
    }
    segment_region = nr;
    segment_next = 0;
  }
  r = segment_region;
  base = r->base + segment_next;
  segment_next += LOF_SEG_SIZE;
  pthread_mutex_unlock(&segment_lock);

  if (lof__region_commit(r, (void *)base, LOF_SEG_SIZE) != 0) {
    /* The slot is lost to this reservation; it stays reserved (uncharged). */
    errno = ENOMEM;
    return NULL;
  }
  lof_segment_t *seg = (lof_segment_t *)base;
  /* Fresh pages read as zero: only the fields that must be non-zero are set. */
  seg->kind = LOF_SEG_NORMAL;
  seg->region = r;
  seg->arena = arena;
  for (size_t i = 0; i < LOF_SEG_HDR_PAGES; i++) {
    seg->pagemap[i] = 0;
    seg->spans[i].state = LOF_SPAN_HEADER;
  }
  seg->spans[0].npages = (uint16_t)LOF_SEG_HDR_PAGES;
  seg->magic = LOF_SEG_MAGIC;
  lof__registry_set(seg, true);
  return seg;
}

LOF_HIDDEN void lof__segment_prefork(void) { lof__fork_lock(&segment_lock); }

LOF_HIDDEN void lof__segment_postfork(bool child) {
  if (child)
    pthread_mutex_init(&segment_lock, NULL);
  else
    lof__fork_unlock(&segment_lock);
}
