/*
 * sizeclass.c -- the small size classes: one closed formula, tabulated.
 *
 * Classes: 16, 32, ... 128 (steps of 16), then four per power of two
 * (160, 192, 224, 256, 320, ... 16384): 36 classes.  A request gets the
 * smallest class that holds it, so the internal waste is at most 15 bytes
 * up to 128 B and below 25% of the request above (the step is a quarter of
 * the power of two below the class).  Every class is a multiple of 16, so
 * every block is 16-aligned; power-of-two classes up to 4096 are aligned to
 * their size (spans start on a page), which memalign uses.
 *
 * A class's span is max(64 KiB, 16 blocks) rounded to pages, so a span holds
 * at least 16 blocks and at most 4096, and never more than 256 KiB.
 */
#include "frontend.h"

#define C4(b) (b) + (b) / 4, (b) + (b) / 2, (b) + 3 * (b) / 4, 2 * (b)
LOF_HIDDEN const uint32_t lof__class_size[LOF_NCLASSES] = {
  16, 32, 48, 64, 80, 96, 112, 128,
  C4(128), C4(256), C4(512), C4(1024), C4(2048), C4(4096), C4(8192)
};
#undef C4

_Static_assert(LOF_NCLASSES == 8 + 7 * 4, "class count");

/* Class of a size <= LOF_SMALL_MAX, indexed by (size + 15) / 16; index 0 is
 * size 0.  Above 1024 the classes are multiples of 256, so 16-byte steps
 * stay exact; the entries agree with lof__size_class_pow (tests/malloc/
 * sizeclass.c checks every size). */
LOF_HIDDEN const uint8_t lof__class_lut[LOF_SMALL_MAX / 16 + 1] = {
  0, 0, 1, 2, 3, 4, 5, 6, 7,                  /* 0..128 */
  8, 8, 9, 9, 10, 10, 11, 11,                 /* ..256 */
  12, 12, 12, 12, 13, 13, 13, 13,             /* ..512 */
  14, 14, 14, 14, 15, 15, 15, 15,
  16, 16, 16, 16, 16, 16, 16, 16,             /* ..1024 */
  17, 17, 17, 17, 17, 17, 17, 17,
  18, 18, 18, 18, 18, 18, 18, 18,
  19, 19, 19, 19, 19, 19, 19, 19,
  [65 ... 80] = 20, [81 ... 96] = 21, [97 ... 112] = 22, [113 ... 128] = 23,       /* ..2048 */
  [129 ... 160] = 24, [161 ... 192] = 25, [193 ... 224] = 26, [225 ... 256] = 27,  /* ..4096 */
  [257 ... 320] = 28, [321 ... 384] = 29, [385 ... 448] = 30, [449 ... 512] = 31,  /* ..8192 */
  [513 ... 640] = 32, [641 ... 768] = 33, [769 ... 896] = 34, [897 ... 1024] = 35, /* ..16384 */
};

/* Each class's direct[] steps: the lut indexes [first, first + steps) name
 * it; steps is 0 above LOF_DIRECT_MAX, which direct[] does not cover
 * (heap.c: heap_cur_set; tests/malloc/sizeclass.c checks it against the
 * lut). */
LOF_HIDDEN const lof_class_direct_t lof__class_direct[LOF_NCLASSES] = {
  {0, 2}, {2, 1}, {3, 1}, {4, 1}, {5, 1}, {6, 1}, {7, 1}, {8, 1}, /* 16..128 (class 0 also size 0) */
  {9, 2}, {11, 2}, {13, 2}, {15, 2},                             /* ..256 */
  {17, 4}, {21, 4}, {25, 4}, {29, 4},                            /* ..512 */
  {33, 8}, {41, 8}, {49, 8}, {57, 8},                            /* ..1024 */
};

LOF_HIDDEN size_t lof__class_span_pages(unsigned cls) {
  size_t bytes = 16 * (size_t)lof__class_size[cls];
  if (bytes < 65536) bytes = 65536;
  return (bytes + LOF_PAGE_SIZE - 1) >> LOF_PAGE_SHIFT;
}

/* A small span's block geometry for class cls (its first page and npages
 * set): block size, the rotate's shift and inverse, its key, how many blocks
 * fit (lof__block_q, frontend.h). */
LOF_HIDDEN void lof__span_geometry(lof_span_t *s, unsigned cls) {
  uint32_t d = lof__class_size[cls];
  unsigned k = (unsigned)__builtin_ctz(d);
  d >>= k;
  uint32_t x = d; /* Newton's iteration: d^-1 mod 2^3 (d odd), then 6, 12, 24, 48 bits */
  for (int i = 0; i < 4; i++) x *= 2 - d * x;
  s->block_size = (uint16_t)lof__class_size[cls];
  s->bshift = (uint8_t)k;
  s->dinv = x;
  s->bkey = ((uint32_t)s->first << LOF_PAGE_SHIFT) * x;
  s->reserved = (uint16_t)(((size_t)s->npages << LOF_PAGE_SHIFT) / s->block_size);
}
