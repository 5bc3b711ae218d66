/*
 * huge.c -- huge blocks: at or above the huge threshold
 * (LOFALLOC_HUGE_THRESHOLD, 4 MiB by default, and always above what a
 * segment can hold), each block is its own lock-on-fault mapping from
 * lof__region_map.
 *
 * The mapping is 4 MiB-aligned; its first page holds a small header shaped
 * like a segment header (kind HUGE), so free() finds it by the same masking
 * and registry test as any other block.  The block starts at base + 4 KiB
 * (or base + the requested alignment, up to 2 MiB).  Nothing else of the
 * block is ever written by the allocator: a huge calloc is never memset
 * (fresh mappings read as zero) and a sparse block stays sparse.  realloc
 * grows or shrinks the mapping with mremap (no copy); if the kernel moves it
 * to an address that is not 4 MiB-aligned, the block is copied once into a
 * fresh aligned mapping.  free releases the mapping: its pages leave RAM at
 * once.
 */
#include <errno.h>
#include <string.h>

#include "frontend.h"
#include "options.h"

static pthread_mutex_t huge_lock = PTHREAD_MUTEX_INITIALIZER;
static lof_segment_t *huge_list;
static uint64_t huge_count, huge_bytes;

LOF_HIDDEN size_t lof__huge_threshold(void) {
  static size_t cached;
  size_t t = __atomic_load_n(&cached, __ATOMIC_RELAXED);
  if (LOF_UNLIKELY(t == 0)) {
    int64_t v = lof__option(LOF_OPT_HUGE_THRESHOLD);
    t = v <= 0 ? LOF_LARGE_MAX + 1 : (size_t)v;
    if (t > LOF_LARGE_MAX + 1) t = LOF_LARGE_MAX + 1;
    if (t <= LOF_SMALL_MAX) t = LOF_SMALL_MAX + 1;
    __atomic_store_n(&cached, t, __ATOMIC_RELAXED);
  }
  return t;
}

static void huge_link(lof_segment_t *seg) {
  pthread_mutex_lock(&huge_lock);
  seg->prev = NULL;
  seg->next = huge_list;
  if (huge_list) huge_list->prev = seg;
  huge_list = seg;
  huge_count++;
  huge_bytes += seg->huge_size;
  pthread_mutex_unlock(&huge_lock);
}

static void huge_unlink(lof_segment_t *seg) {
  pthread_mutex_lock(&huge_lock);
  if (seg->prev) seg->prev->next = seg->next; else huge_list = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
  huge_count--;
  huge_bytes -= seg->huge_size;
  pthread_mutex_unlock(&huge_lock);
}

static void huge_stat(int64_t bytes, int64_t n) {
  lof_heap_t *h = lof__heap_tls;
  if (h != &lof__heap_empty)
    lof__stat_add(h, bytes, n);
  else
    lof__stat_global(bytes, n);
}

static lof_segment_t *huge_map(size_t size, size_t align) {
  size_t off = align > LOF_PAGE_SIZE ? align : LOF_PAGE_SIZE;
  if (size > SIZE_MAX - off - LOF_SEG_SIZE) return NULL;
  size_t total = LOF_ALIGN_UP(off + size, LOF_PAGE_SIZE);
  lof_region_t *r = lof__region_map(total, LOF_SEG_SIZE);
  if (r == NULL) return NULL;
  lof_segment_t *seg = (lof_segment_t *)r->base;
  lof_assert(((uintptr_t)seg & LOF_SEG_MASK) == 0);
  seg->magic = LOF_SEG_MAGIC;
  seg->kind = LOF_SEG_HUGE;
  seg->region = r;
  seg->huge_offset = off;
  seg->huge_size = r->size - off;
  return seg;
}

LOF_HIDDEN void *lof__huge_alloc(size_t size, size_t align, bool *zero) {
  lof__malloc_init();
  lof_segment_t *seg = huge_map(size, align);
  if (seg == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  huge_link(seg);
  lof__registry_set(seg, true);
  huge_stat((int64_t)seg->huge_size, 1);
  *zero = true;
  return (char *)seg + seg->huge_offset;
}

LOF_HIDDEN void lof__huge_free(lof_segment_t *seg) {
  int saved = errno;
  lof__registry_set(seg, false);
  huge_unlink(seg);
  huge_stat(-(int64_t)seg->huge_size, -1);
  seg->magic = 0;
  lof__region_release(seg->region);
  errno = saved;
}

LOF_HIDDEN void *lof__huge_realloc(lof_segment_t *seg, size_t size) {
  size_t off = seg->huge_offset, old = seg->huge_size;
  if (size > SIZE_MAX - off - LOF_SEG_SIZE) {
    errno = ENOMEM;
    return NULL;
  }
  size_t total = LOF_ALIGN_UP(off + size, LOF_PAGE_SIZE);
  if (total == off + old) return (char *)seg + off;
  lof_region_t *r = seg->region;
  huge_unlink(seg);
  lof__registry_set(seg, false);
  if (lof__region_remap(r, total) != 0) {
    huge_link(seg);
    lof__registry_set(seg, true);
    errno = ENOMEM;
    return NULL;
  }
  lof_segment_t *nseg = (lof_segment_t *)r->base;
  if (((uintptr_t)nseg & LOF_SEG_MASK) != 0) {
    /* Moved off the 4 MiB grid: copy once into an aligned mapping. */
    lof_segment_t *aseg = huge_map(size, off);
    if (aseg == NULL)
      lof__fatal("realloc(): out of memory while re-aligning a moved huge block %p",
                 (void *)((char *)seg + off));
    memcpy((char *)aseg + off, (char *)nseg + off, size < old ? size : old);
    lof__region_release(r);
    nseg = aseg;
  } else {
    nseg->huge_size = r->size - off;
  }
  huge_link(nseg);
  lof__registry_set(nseg, true);
  huge_stat((int64_t)nseg->huge_size - (int64_t)old, 0);
  return (char *)nseg + off;
}

LOF_HIDDEN void lof__huge_stats(uint64_t *count, uint64_t *bytes) {
  pthread_mutex_lock(&huge_lock);
  *count = huge_count;
  *bytes = huge_bytes;
  pthread_mutex_unlock(&huge_lock);
}

LOF_HIDDEN int lof__huge_check(void) {
  int rc = 0;
  pthread_mutex_lock(&huge_lock);
  for (lof_segment_t *s = huge_list; s != NULL; s = s->next) {
    if (s->magic != LOF_SEG_MAGIC || s->kind != LOF_SEG_HUGE || !lof__registry_test(s) ||
        (uintptr_t)s != s->region->base || s->huge_offset + s->huge_size != s->region->size) {
      lof__message("check: huge block header %p is corrupt", (void *)s);
      rc = -1;
      break;
    }
  }
  pthread_mutex_unlock(&huge_lock);
  return rc;
}

LOF_HIDDEN void lof__huge_prefork(void) { pthread_mutex_lock(&huge_lock); }
LOF_HIDDEN void lof__huge_postfork(bool child) {
  if (child)
    pthread_mutex_init(&huge_lock, NULL);
  else
    pthread_mutex_unlock(&huge_lock);
}
