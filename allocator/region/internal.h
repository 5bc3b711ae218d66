/*
 * internal.h -- macros shared by every lofalloc source file: visibility,
 * branch hints, assertions, page size, and the LOF_PRIVATE test seam.
 *
 * Assertions: lof_assert() is always on and cheap; lof_assert_expensive() runs
 * only in --enable-debug builds (LOF_DEBUG).  Both report through
 * lof__fatal(), which writes to stderr without malloc and aborts.
 */
#ifndef LOF_INTERNAL_H
#define LOF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOF_HIDDEN __attribute__((visibility("hidden")))
#define LOF_LIKELY(x) __builtin_expect(!!(x), 1)
#define LOF_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define LOF_NOINLINE __attribute__((noinline))
#define LOF_COLD __attribute__((cold))
#define LOF_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* In unit-test builds (LOF_TESTING) internal statics become visible so tests
 * can reach them; elsewhere they stay static. */
#ifdef LOF_TESTING
#define LOF_PRIVATE LOF_HIDDEN
#else
#define LOF_PRIVATE static
#endif

#define LOF_PAGE_SIZE ((size_t)4096)
#define LOF_ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((uintptr_t)(a) - 1))
#define LOF_ALIGN_DOWN(x, a) ((x) & ~((uintptr_t)(a) - 1))
#define LOF_IS_POW2(x) ((x) != 0 && ((x) & ((x) - 1)) == 0)

LOF_HIDDEN LOF_COLD __attribute__((noreturn)) LOF_PRINTF(1, 2)
void lof__fatal(const char *fmt, ...);

/* One line on stderr, prefixed "lofalloc: ", without malloc. */
LOF_HIDDEN LOF_PRINTF(1, 2) void lof__message(const char *fmt, ...);

#define lof_assert(cond)                                                      \
  do {                                                                        \
    if (LOF_UNLIKELY(!(cond)))                                                \
      lof__fatal("assertion failed: %s (%s:%d)", #cond, __FILE__, __LINE__); \
  } while (0)

#ifdef LOF_DEBUG
#define lof_assert_expensive(cond) lof_assert(cond)
#else
#define lof_assert_expensive(cond) ((void)0)
#endif

#endif /* LOF_INTERNAL_H */
