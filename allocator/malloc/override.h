/*
 * override.h -- interposition: the standard malloc names as aliases of the
 * lof_* functions (no wrapper, no extra call).  Included at the end of
 * alloc.c because an alias must live in its target's translation unit.
 *
 * Built only with LOF_OVERRIDE (configure's default; off with
 * --disable-override and under sanitizers, which own malloc).  Besides the
 * ISO/POSIX names it provides glibc's __libc_* entry points (used by some
 * programs and by glibc itself in a few places), the GNU extras (malloc_trim,
 * mallopt, mallinfo/mallinfo2, malloc_stats, cfree) so that a static link
 * never pulls glibc's malloc.o beside ours.  C++ operator new/delete in
 * libstdc++ call malloc/free and so reach lofalloc without a shim.
 */
#ifndef LOF_OVERRIDE_H
#define LOF_OVERRIDE_H

#include "config.h"

#ifdef LOF_OVERRIDE

#define LOF_ALIAS(target) __attribute__((alias(#target), visibility("default"), used))

void *malloc(size_t size) LOF_MALLOC_ATTR LOF_ALIAS(lof_malloc);
void free(void *p) LOF_ALIAS(lof_free);
void *calloc(size_t n, size_t size) LOF_MALLOC_ATTR LOF_ALIAS(lof_calloc);
void *realloc(void *p, size_t size) LOF_ALIAS(lof_realloc);
void *reallocarray(void *p, size_t n, size_t size) LOF_ALIAS(lof_reallocarray);
int posix_memalign(void **out, size_t align, size_t size) LOF_ALIAS(lof_posix_memalign);
void *aligned_alloc(size_t align, size_t size) LOF_MALLOC_ATTR LOF_ALIAS(lof_aligned_alloc);
void *memalign(size_t align, size_t size) LOF_MALLOC_ATTR LOF_ALIAS(lof_memalign);
void *valloc(size_t size) LOF_MALLOC_ATTR LOF_ALIAS(lof_valloc);
void *pvalloc(size_t size) LOF_MALLOC_ATTR LOF_ALIAS(lof_pvalloc);
size_t malloc_usable_size(void *p) LOF_ALIAS(lof_malloc_usable_size);
int malloc_trim(size_t pad) LOF_ALIAS(lof_malloc_trim);
int mallopt(int param, int value) LOF_ALIAS(lof_mallopt);
struct mallinfo2 mallinfo2(void) LOF_ALIAS(lof_mallinfo2);
/* malloc_stats and malloc_info: glibc's layout, in mstats.c */
void cfree(void *p) LOF_ALIAS(lof_free);

/* glibc-internal names some programs (and glibc itself) call directly. */
void *__libc_malloc(size_t size) LOF_MALLOC_ATTR LOF_ALIAS(lof_malloc);
void __libc_free(void *p) LOF_ALIAS(lof_free);
void *__libc_calloc(size_t n, size_t size) LOF_MALLOC_ATTR LOF_ALIAS(lof_calloc);
void *__libc_realloc(void *p, size_t size) LOF_ALIAS(lof_realloc);
void *__libc_memalign(size_t align, size_t size) LOF_MALLOC_ATTR LOF_ALIAS(lof_memalign);
void *__libc_valloc(size_t size) LOF_MALLOC_ATTR LOF_ALIAS(lof_valloc);
void *__libc_pvalloc(size_t size) LOF_MALLOC_ATTR LOF_ALIAS(lof_pvalloc);
int __posix_memalign(void **out, size_t align, size_t size) LOF_ALIAS(lof_posix_memalign);

/* mallinfo (deprecated, int fields): derived from mallinfo2, saturated. */
struct mallinfo mallinfo(void) __attribute__((visibility("default"), used));
struct mallinfo mallinfo(void) {
  struct mallinfo2 m2 = lof_mallinfo2();
  struct mallinfo m;
#define LOF_SAT(x) ((x) > (size_t)0x7fffffff ? 0x7fffffff : (int)(x))
  m.arena = LOF_SAT(m2.arena);
  m.ordblks = LOF_SAT(m2.ordblks);
  m.smblks = LOF_SAT(m2.smblks);
  m.hblks = LOF_SAT(m2.hblks);
  m.hblkhd = LOF_SAT(m2.hblkhd);
  m.usmblks = LOF_SAT(m2.usmblks);
  m.fsmblks = LOF_SAT(m2.fsmblks);
  m.uordblks = LOF_SAT(m2.uordblks);
  m.fordblks = LOF_SAT(m2.fordblks);
  m.keepcost = LOF_SAT(m2.keepcost);
#undef LOF_SAT
  return m;
}

#endif /* LOF_OVERRIDE */
#endif /* LOF_OVERRIDE_H */
