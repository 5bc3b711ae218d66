/*
 * pagebits.h -- the per-page state bitmaps of a region (region.c's
 * committed_bits and unlocked_bits): one bit a page, 64 pages a word,
 * set and cleared with relaxed atomic read-modify-writes, so that writers
 * to different pages of one word never lose each other's bits.  Included
 * by region.c only.
 */
#ifndef LOF_PAGEBITS_H
#define LOF_PAGEBITS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "region.h"

static inline uint64_t bits_mask(size_t lo, size_t hi) { /* bits [lo, hi) of a word, hi <= 64 */
  uint64_t upper = hi == 64 ? ~(uint64_t)0 : (((uint64_t)1 << hi) - 1);
  return upper & ~(((uint64_t)1 << lo) - 1);
}

/* Apply fn to each word of bits [first, first+n) with the mask of that word. */
#define BITS_FOR_RANGE(first, n, word_var, mask_var, body)                 \
  do {                                                                     \
    size_t bit_ = (first), end_ = (first) + (n);                           \
    while (bit_ < end_) {                                                  \
      size_t word_var = bit_ / 64, lo_ = bit_ % 64;                        \
      size_t hi_ = (end_ - word_var * 64) < 64 ? (end_ - word_var * 64) : 64; \
      uint64_t mask_var = bits_mask(lo_, hi_);                             \
      body;                                                                \
      bit_ = word_var * 64 + hi_;                                          \
    }                                                                      \
  } while (0)

static inline void bits_set(_Atomic(uint64_t) *map, size_t first, size_t n) {
  BITS_FOR_RANGE(first, n, w, m, atomic_fetch_or_explicit(&map[w], m, memory_order_relaxed));
}

static inline void bits_clear(_Atomic(uint64_t) *map, size_t first, size_t n) {
  BITS_FOR_RANGE(first, n, w, m, atomic_fetch_and_explicit(&map[w], ~m, memory_order_relaxed));
}

static inline size_t bits_count(_Atomic(uint64_t) *map, size_t first, size_t n) {
  size_t c = 0;
  BITS_FOR_RANGE(first, n, w, m,
                 c += (size_t)__builtin_popcountll(atomic_load_explicit(&map[w], memory_order_relaxed) & m));
  return c;
}

/* Pages of [first, first+n) committed and locked (committed & ~unlocked). */
static inline size_t bits_count_locked(lof_region_t *r, size_t first, size_t n) {
  size_t c = 0;
  BITS_FOR_RANGE(first, n, w, m, {
    uint64_t v = atomic_load_explicit(&r->committed_bits[w], memory_order_relaxed) &
                 ~atomic_load_explicit(&r->unlocked_bits[w], memory_order_relaxed);
    c += (size_t)__builtin_popcountll(v & m);
  });
  return c;
}

/* Mark the committed pages of [first, first+n) unlocked; how many were
 * committed and locked before. */
static inline size_t bits_mark_unlocked(lof_region_t *r, size_t first, size_t n) {
  size_t c = bits_count_locked(r, first, n);
  BITS_FOR_RANGE(first, n, w, m, {
    uint64_t v = atomic_load_explicit(&r->committed_bits[w], memory_order_relaxed) & m;
    atomic_fetch_or_explicit(&r->unlocked_bits[w], v, memory_order_relaxed);
  });
  return c;
}

#endif /* LOF_PAGEBITS_H */
