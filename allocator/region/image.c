/*
 * image.c -- a shared object's own static data: finds the writable segment
 * of the object that maps a given address (dl_iterate_phdr) and locks it on
 * fault as metadata, around a table the caller locks itself
 * (lof__region_meta_lock_image, contract in region.h).  The malloc frontend
 * locks liblofalloc's; the jemalloc frontend its own and libjemalloc's.
 */
#include <link.h>
#include <stdint.h>

#include "region.h"
#include "region_int.h"

typedef struct region_image_find {
  uintptr_t inside;
  uintptr_t lo, hi; /* the object's writable PT_LOAD, page-rounded */
} region_image_find_t;

/* dl_iterate_phdr: 1 when info is a shared object one of whose segments
 * holds f->inside (found: f->lo, f->hi are its writable segment, or empty),
 * -1 when that object is the program itself (a library linked in: the
 * segment holds the program's data too). */
static int region_image_segment(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  region_image_find_t *f = arg;
  bool holds = false;
  uintptr_t wlo = 0, whi = 0;
  for (unsigned i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t lo = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
    uintptr_t hi = lo + ph->p_memsz;
    bool here = f->inside >= lo && f->inside < hi;
    holds |= here;
    /* the writable segment: the one that holds inside, else the first */
    if ((ph->p_flags & PF_W) && (whi == 0 || here)) {
      wlo = lo;
      whi = hi;
    }
  }
  if (!holds) return 0;
  if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0') return -1;
  if (whi != 0) {
    f->lo = wlo & ~(uintptr_t)(LOF_PAGE_SIZE - 1);
    f->hi = LOF_ALIGN_UP(whi, LOF_PAGE_SIZE);
  }
  return 1;
}

bool lof__region_meta_lock_image(const void *inside, const void *skip, size_t skip_len) {
  region_image_find_t f = {(uintptr_t)inside, 0, 0};
  if (dl_iterate_phdr(region_image_segment, &f) != 1) return false;
  uintptr_t s0 = (uintptr_t)skip, s1 = s0 + skip_len;
  if (s0 < f.lo) s0 = f.lo;
  if (s1 > f.hi) s1 = f.hi;
  if (s1 <= s0) s0 = s1 = f.hi; /* skip lies outside: lock it whole */
  if (f.hi == f.lo) return false; /* no writable segment */
  bool below = s0 > f.lo && lof__region_meta_lock_bounded((void *)f.lo, s0 - f.lo);
  bool above = f.hi > s1 && lof__region_meta_lock_bounded((void *)s1, f.hi - s1);
  if (f.inside < f.lo || f.inside >= f.hi) /* inside is code or read-only data */
    return (below || s0 == f.lo) && (above || s1 == f.hi);
  return f.inside < s0 ? below : above;
}
