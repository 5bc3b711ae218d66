/*
 * sanitizer.h -- UNDER_SANITIZER, defined when this test is compiled with
 * AddressSanitizer or ThreadSanitizer (gcc's __SANITIZE_*__ macros, clang's
 * __has_feature).  Their runtimes turn mlockall into a no-op (and
 * MCL_CURRENT would populate their terabytes of shadow), so tests that need
 * mlockall in force are not built or registered there.
 */
#ifndef LOF_TEST_SANITIZER_H
#define LOF_TEST_SANITIZER_H

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

/* UNDER_TSAN: ThreadSanitizer alone, gcc's or clang's. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

#endif
