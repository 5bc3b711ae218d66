/*
 * check.c -- lof_check(): walk the heap and verify its invariants.
 *
 * Checked: every segment of every arena tiles its pages exactly with spans
 * whose pagemap bounds name their descriptor slot, every slot in use heads
 * one span, and no span in use lies above the committed prefix; free runs are coalesced (no two free
 * neighbours), sit in the bin of their size, and are on the dirty list
 * exactly when not known zero; small spans have the geometry of their class;
 * the calling thread's own spans have consistent free lists and counts,
 * and remote stacks that hold the count their word says;
 * huge headers are intact.  Each arena is locked while it is walked, so the
 * check is safe while other threads run (their own small spans are only
 * checked for geometry).  Returns 0, or -1 after one message on stderr.
 */
#include "frontend.h"

static int check_segment(lof_arena_t *a, lof_segment_t *seg) {
  size_t top = atomic_load_explicit(&seg->committed_pages, memory_order_relaxed);
  size_t i = LOF_SEG_HDR_PAGES;
  bool prev_free = false;
  if (seg->magic != LOF_SEG_MAGIC || seg->kind != LOF_SEG_NORMAL || seg->arena != a ||
      !lof__registry_test(seg)) {
    lof__message("check: segment %p header is corrupt", (void *)seg);
    return -1;
  }
  size_t slots = 1; /* slot 0: the header */
  if (seg->pagemap[0] != 0 || seg->spans[0].state != LOF_SPAN_HEADER || !(seg->slot_used[0] & 1)) {
    lof__message("check: segment %p: header descriptor", (void *)seg);
    return -1;
  }
  while (i < LOF_SEG_PAGES) {
    uint16_t entry = seg->pagemap[i];
    lof_span_t *s = lof__pagemap_span(seg, i);
    size_t slot = lof__span_slot(seg, s);
    size_t n = s->npages;
    if (entry % sizeof(lof_span_t) != 0 || n == 0 || s->first != i || i + n > LOF_SEG_PAGES ||
        seg->pagemap[i + n - 1] != entry ||
        !((seg->slot_used[slot / 64] >> (slot % 64)) & 1)) {
      lof__message("check: segment %p page %zu: bad span (%zu pages, state %u)", (void *)seg, i,
                   n, s->state);
      return -1;
    }
    slots++;
    switch (s->state) {
    case LOF_SPAN_FREE: {
      if (prev_free) {
        lof__message("check: segment %p page %zu: free runs not coalesced", (void *)seg, i);
        return -1;
      }
      bool found = false;
      for (lof_span_t *f = a->bins[lof__arena_bin(n)]; f && !found; f = f->next) found = f == s;
      bool dirty = false;
      for (lof_span_t *f = a->dirty; f && !dirty; f = f->dnext) dirty = f == s;
      bool want_dirty = !s->zero && !lof__segment_pinned(seg);
      if (!found || dirty != want_dirty) {
        lof__message("check: segment %p page %zu: free run misfiled (bin %d dirty %d zero %d)",
                     (void *)seg, i, found, dirty, s->zero);
        return -1;
      }
      break;
    }
    case LOF_SPAN_PURGING: /* only while a thread purges this arena */
      if (a->purgers == 0) {
        lof__message("check: segment %p page %zu: a run left out of the bins (purging, and no "
                     "purge is running)", (void *)seg, i);
        return -1;
      }
      break;
    case LOF_SPAN_LARGE:
      break;
    case LOF_SPAN_SMALL:
      /* capacity and used are the owner's (only its thread writes them,
       * without a lock): read them for this thread's own spans only */
      if (s->cls >= LOF_NCLASSES || s->block_size != lof__class_size[s->cls] ||
          n != lof__class_span_pages(s->cls) ||
          (atomic_load_explicit(&s->owner, memory_order_relaxed) == lof__heap_tls->id &&
           (s->capacity > s->reserved || lof__span_used(s) > s->capacity))) {
        lof__message("check: segment %p page %zu: small span geometry", (void *)seg, i);
        return -1;
      }
      for (size_t k = i; k < i + n; k++)
        if (seg->pagemap[k] != entry) {
          lof__message("check: segment %p page %zu: pagemap of small span", (void *)seg, k);
          return -1;
        }
      break;
    default:
      lof__message("check: segment %p page %zu: state %u", (void *)seg, i, s->state);
      return -1;
    }
    /* a run being purged is free; its trim may already have lowered the top */
    if (s->state != LOF_SPAN_FREE && s->state != LOF_SPAN_PURGING && i + n > top) {
      lof__message("check: segment %p page %zu: in use above the committed prefix (%zu pages)",
                   (void *)seg, i, top);
      return -1;
    }
    prev_free = s->state == LOF_SPAN_FREE;
    i += n;
  }
  size_t in_use = 0;
  for (size_t w = 0; w < LOF_SEG_PAGES / 64; w++) in_use += (size_t)__builtin_popcountll(seg->slot_used[w]);
  if (in_use != slots) {
    lof__message("check: segment %p: %zu descriptor slots in use for %zu spans", (void *)seg,
                 in_use, slots);
    return -1;
  }
  return 0;
}

/* ---- the calling thread's heap ------------------------------------------ */

/* One span on h's lists: owned by h, its free list inside its carved blocks. */
static int heap_check_span(lof_heap_t *h, lof_span_t *s) {
  if (s->state != LOF_SPAN_SMALL || atomic_load_explicit(&s->owner, memory_order_relaxed) != h->id) {
    lof__message("check: span %p in heap %u has state %u owner %u", (void *)s, h->id, s->state,
                 atomic_load_explicit(&s->owner, memory_order_relaxed));
    return -1;
  }
  uintptr_t start = lof__span_start(s), end = start + (size_t)s->capacity * s->block_size;
  size_t n = 0;
  for (lof_block_t *b = s->free; b != NULL; b = b->next) {
    uintptr_t p = (uintptr_t)b;
    if (p < start || p >= end || (p - start) % s->block_size != 0 || ++n > s->capacity) {
      lof__message("check: span %p: free list holds bad block %p", (void *)s, (void *)b);
      return -1;
    }
  }
  if (n + lof__span_used(s) != s->capacity || s->capacity > s->reserved) {
    lof__message("check: span %p: %zu free + %u used != %u carved", (void *)s, n, lof__span_used(s),
                 s->capacity);
    return -1;
  }
  /* The remote stack holds as many blocks as its word says (other threads
   * only push above this snapshot; only this thread, the owner, takes). */
  uintptr_t x = atomic_load_explicit(&s->xfree, memory_order_acquire);
  size_t k = 0;
  for (lof_block_t *b = lof__xfree_top(x); b != NULL; b = b->next) {
    uintptr_t p = (uintptr_t)b;
    if (p < start || p >= end || (p - start) % s->block_size != 0 || ++k > s->capacity) {
      lof__message("check: span %p: remote stack holds bad block %p", (void *)s, (void *)b);
      return -1;
    }
  }
  if (k != lof__xfree_count(x) || k > lof__span_used(s)) {
    lof__message("check: span %p: remote stack of %zu blocks counted %u (%u used)", (void *)s, k,
                 lof__xfree_count(x), lof__span_used(s));
    return -1;
  }
  return 0;
}

/* h's lists, cur, fresh and direct[] agree. */
static int heap_check(lof_heap_t *h) {
  for (unsigned c = 0; c < LOF_NCLASSES; c++) {
    for (int pass = 0; pass < 2; pass++) {
      lof_span_t *last = NULL;
      for (lof_span_t *s = pass ? h->fulls[c] : h->spans[c]; s != NULL; s = s->next) {
        if (s->cls != c || heap_check_span(h, s) != 0) return -1;
        last = s;
      }
      if (last != (pass ? h->fulls_tail[c] : h->spans_tail[c])) {
        lof__message("check: heap %u class %u: %s list tail is not its last span", h->id, c,
                     pass ? "full" : "span");
        return -1;
      }
    }
    if (h->cur[c] != &lof__span_empty && h->cur[c] != h->spans[c]) {
      lof__message("check: heap %u class %u: current span is not the head of its list", h->id, c);
      return -1;
    }
    lof_span_t *f = h->fresh[c];
    /* fresh: pages left to carve, or an empty span kept whole on fulls[] */
    bool kept = f != NULL && lof__span_used(f) == 0 && lof__span_on_fulls(f);
    if (f != NULL &&
        (f->cls != c || (f->capacity >= f->reserved && !kept) || heap_check_span(h, f) != 0)) {
      lof__message("check: heap %u class %u: fresh span %p has no pages to carve and is not an "
                   "empty kept span", h->id, c, (void *)f);
      return -1;
    }
    if (h->cur[c] != &lof__span_empty && h->cur[c]->cls != c) {
      lof__message("check: heap %u class %u: current span of class %u", h->id, c, h->cur[c]->cls);
      return -1;
    }
  }
  for (size_t i = 0; i < LOF_DIRECT_N; i++)
    if (h->direct[i] != h->cur[lof__class_lut[i]]) {
      lof__message("check: heap %u: malloc's span for %zu B is not its class's", h->id, i * 16);
      return -1;
    }
  return 0;
}

LOF_EXPORT int lof_check(void) {
  lof__malloc_init();
  for (unsigned k = 0; k < lof__narenas; k++) {
    lof_arena_t *a = &lof__arenas[k];
    int rc = 0;
    size_t dirty = 0;
    lof__lock_marked(&a->lock);
    for (lof_segment_t *seg = a->segments; seg != NULL && rc == 0; seg = seg->next)
      rc = check_segment(a, seg);
    for (lof_span_t *f = a->dirty; f != NULL && rc == 0; f = f->dnext) dirty += f->npages;
    if (rc == 0 && dirty != a->dirty_pages) {
      lof__message("check: arena %u: dirty list holds %zu pages, counter says %zu", k, dirty,
                   a->dirty_pages);
      rc = -1;
    }
    lof__unlock_marked(&a->lock);
    if (rc != 0) return -1;
  }
  if (lof__heap_tls != &lof__heap_empty && heap_check(lof__heap_tls) != 0) return -1;
  return lof__huge_check();
}
