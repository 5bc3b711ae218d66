/*
 * huge.c -- huge blocks: at or above the huge threshold
 * (LOFALLOC_HUGE_THRESHOLD, 4 MiB by default, and always above what a
 * segment can hold), each block is its own lock-on-fault mapping from
 * lof__region_map.
 *
 * The mapping's first page holds a small header (a lof_segment_t prefix of
 * kind HUGE); the block starts right after it (or at the requested
 * alignment, up to 2 MiB).  Huge mappings are not in the segment registry:
 * free() of a pointer whose 4 MiB unit is not a segment looks it up here, in
 * a hash table keyed by the block address whose chains run through the
 * headers (under huge_lock; a huge free costs an munmap anyway).  A pointer
 * found nowhere is reported as invalid.  Because nothing depends on where the
 * mapping sits, realloc grows or shrinks it with mremap (lof__region_remap)
 * and never copies, even when the kernel moves it.
 *
 * Nothing but the header page is written by the allocator: a huge calloc is
 * never memset (fresh mappings read as zero) and a sparse block stays
 * sparse.  free releases the mapping: its pages leave RAM at once.
 */
#include <errno.h>
#include <string.h>

#include "frontend.h"
#include "options.h"

#define HUGE_BUCKETS 1024
static pthread_mutex_t huge_lock = PTHREAD_MUTEX_INITIALIZER;
static lof_segment_t *huge_buckets[HUGE_BUCKETS]; /* chains through seg->next/prev */
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

static size_t huge_hash(const void *block) {
  uintptr_t x = (uintptr_t)block >> LOF_PAGE_SHIFT;
  return (size_t)((x * 0x9e3779b97f4a7c15ull) >> 54) % HUGE_BUCKETS;
}

static void *huge_block(const lof_segment_t *seg) { return (char *)seg + seg->huge_offset; }

static void huge_link_locked(lof_segment_t *seg) {
  lof_segment_t **head = &huge_buckets[huge_hash(huge_block(seg))];
  seg->prev = NULL;
  seg->next = *head;
  if (*head) (*head)->prev = seg;
  *head = seg;
  huge_count++;
  huge_bytes += seg->huge_size;
}

static void huge_unlink_locked(lof_segment_t *seg) {
  lof_segment_t **head = &huge_buckets[huge_hash(huge_block(seg))];
  if (seg->prev) seg->prev->next = seg->next; else *head = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
  huge_count--;
  huge_bytes -= seg->huge_size;
}

/* The huge block starting at p, unlinked (the caller owns it now), or NULL. */
static lof_segment_t *huge_take(const void *p) {
  lof_segment_t *found = NULL;
  pthread_mutex_lock(&huge_lock);
  for (lof_segment_t *s = huge_buckets[huge_hash(p)]; s != NULL; s = s->next)
    if (huge_block(s) == p) {
      found = s;
      huge_unlink_locked(s);
      break;
    }
  pthread_mutex_unlock(&huge_lock);
  return found;
}

LOF_HIDDEN size_t lof__huge_usable(const void *p) {
  size_t n = 0;
  pthread_mutex_lock(&huge_lock);
  for (lof_segment_t *s = huge_buckets[huge_hash(p)]; s != NULL; s = s->next)
    if (huge_block(s) == p) {
      n = s->huge_size;
      break;
    }
  pthread_mutex_unlock(&huge_lock);
  return n;
}

static void huge_stat(int64_t bytes, int64_t n) {
  lof_heap_t *h = lof__heap_tls;
  if (h != &lof__heap_empty)
    lof__stat_add(h, bytes, n);
  else
    lof__stat_global(bytes, n);
}

LOF_HIDDEN void *lof__huge_alloc(size_t size, size_t align, bool *zero) {
  lof__malloc_init();
  size_t off = align > LOF_PAGE_SIZE ? align : LOF_PAGE_SIZE;
  if (size > SIZE_MAX - off - LOF_SEG_SIZE) {
    errno = ENOMEM;
    return NULL;
  }
  lof_region_t *r = lof__region_map(LOF_ALIGN_UP(off + size, LOF_PAGE_SIZE), off);
  if (r == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  lof_segment_t *seg = (lof_segment_t *)(r->base + off - LOF_PAGE_SIZE);
  /* the header is the page just before the block; for alignments above a
   * page the pages before it stay untouched */
  seg->magic = LOF_SEG_MAGIC;
  seg->kind = LOF_SEG_HUGE;
  seg->region = r;
  seg->huge_offset = LOF_PAGE_SIZE;
  seg->huge_size = r->size - off;
  pthread_mutex_lock(&huge_lock);
  huge_link_locked(seg);
  pthread_mutex_unlock(&huge_lock);
  huge_stat((int64_t)seg->huge_size, 1);
  *zero = true;
  return huge_block(seg);
}

/* free: 0 if p is a huge block (now released), -1 if it is not one. */
LOF_HIDDEN int lof__huge_free(void *p) {
  lof_segment_t *seg = huge_take(p);
  if (seg == NULL) return -1;
  int saved = errno;
  huge_stat(-(int64_t)seg->huge_size, -1);
  seg->magic = 0;
  lof__region_release(seg->region);
  errno = saved;
  return 0;
}

/* realloc: the new address (maybe p), NULL + ENOMEM (p unchanged), or
 * (void *)-1 when p is not a huge block. */
LOF_HIDDEN void *lof__huge_realloc(void *p, size_t size, size_t *old_size) {
  lof_segment_t *seg = huge_take(p);
  if (seg == NULL) return (void *)-1;
  lof_region_t *r = seg->region;
  size_t lead = (uintptr_t)seg + LOF_PAGE_SIZE - r->base; /* bytes before the block */
  size_t old = seg->huge_size;
  *old_size = old;
  void *q = NULL;
  if (size <= SIZE_MAX - lead - LOF_SEG_SIZE &&
      lof__region_remap(r, LOF_ALIGN_UP(lead + size, LOF_PAGE_SIZE)) == 0) {
    seg = (lof_segment_t *)(r->base + lead - LOF_PAGE_SIZE); /* it may have moved */
    seg->huge_size = r->size - lead;
    q = huge_block(seg);
    huge_stat((int64_t)seg->huge_size - (int64_t)old, 0);
  } else {
    errno = ENOMEM;
  }
  pthread_mutex_lock(&huge_lock);
  huge_link_locked(seg);
  pthread_mutex_unlock(&huge_lock);
  return q;
}

LOF_HIDDEN void lof__huge_stats(uint64_t *count, uint64_t *bytes) {
  pthread_mutex_lock(&huge_lock);
  *count = huge_count;
  *bytes = huge_bytes;
  pthread_mutex_unlock(&huge_lock);
}

LOF_HIDDEN int lof__huge_check(void) {
  int rc = 0;
  uint64_t n = 0;
  pthread_mutex_lock(&huge_lock);
  for (size_t b = 0; b < HUGE_BUCKETS && rc == 0; b++)
    for (lof_segment_t *s = huge_buckets[b]; s != NULL; s = s->next, n++) {
      if (s->magic != LOF_SEG_MAGIC || s->kind != LOF_SEG_HUGE || huge_hash(huge_block(s)) != b ||
          (uintptr_t)huge_block(s) + s->huge_size != s->region->base + s->region->size ||
          lof__registry_test(s)) {
        lof__message("check: huge block header %p is corrupt", (void *)s);
        rc = -1;
        break;
      }
    }
  if (rc == 0 && n != huge_count) {
    lof__message("check: %llu huge blocks listed, counter says %llu", (unsigned long long)n,
                 (unsigned long long)huge_count);
    rc = -1;
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
