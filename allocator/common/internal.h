/*
 * internal.h -- macros shared by every lofalloc source file: visibility,
 * branch hints, assertions, page size.
 *
 * Assertions: lof_assert() is always on and cheap; lof_assert_expensive() runs
 * only in --enable-debug builds (LOF_DEBUG).  Both report through
 * lof__fatal(), which writes to stderr without malloc and aborts.
 */
#ifndef LOF_INTERNAL_H
#define LOF_INTERNAL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOF_HIDDEN __attribute__((visibility("hidden")))
#define LOF_LIKELY(x) __builtin_expect(!!(x), 1)
#define LOF_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define LOF_NOINLINE __attribute__((noinline))
#define LOF_COLD __attribute__((cold))
#define LOF_PRINTF(f, a) __attribute__((format(printf, f, a)))

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

/* Run fn once across all threads; a caller that finds it running waits until
 * it is done.  *state: 0 not run, 1 running, 2 done (reset it to 0 to run fn
 * again, in tests).  errno is preserved.  Never allocates. */
static inline void lof__once(_Atomic int *state, void (*fn)(void)) {
  if (LOF_LIKELY(atomic_load_explicit(state, memory_order_acquire) == 2)) return;
  int expected = 0;
  if (atomic_compare_exchange_strong(state, &expected, 1)) {
    int saved = errno;
    fn();
    errno = saved;
    atomic_store_explicit(state, 2, memory_order_release);
    return;
  }
  while (atomic_load_explicit(state, memory_order_acquire) != 2) {
  }
}

#endif /* LOF_INTERNAL_H */
