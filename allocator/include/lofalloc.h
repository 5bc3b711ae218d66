/*
 * lofalloc.h -- the public API of liblofalloc.
 *
 * liblofalloc is a malloc whose heap is locked on fault: a heap page is
 * locked into RAM when it is first touched, and only then.  Linking or
 * preloading the library replaces malloc and friends; the lof_* names below
 * are always available, for programs that want lofalloc beside another malloc
 * (configure --disable-override builds a library that exports only them).
 *
 * Everything here is thread-safe.  Internals live in allocator/region and
 * allocator/malloc and are not exported.
 */
#ifndef LOFALLOC_H
#define LOFALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOFALLOC_VERSION_MAJOR 0
#define LOFALLOC_VERSION_MINOR 1
#define LOFALLOC_VERSION_PATCH 0

#if defined(__GNUC__)
#define LOF_EXPORT __attribute__((visibility("default")))
#define LOF_MALLOC_ATTR __attribute__((malloc))
#else
#define LOF_EXPORT
#define LOF_MALLOC_ATTR
#endif

/* ---- the malloc family under lof_ names -------------------------------- */
LOF_EXPORT void *lof_malloc(size_t size) LOF_MALLOC_ATTR;
LOF_EXPORT void lof_free(void *p);
LOF_EXPORT void *lof_calloc(size_t n, size_t size) LOF_MALLOC_ATTR;
LOF_EXPORT void *lof_realloc(void *p, size_t size);
LOF_EXPORT void *lof_reallocarray(void *p, size_t n, size_t size);
LOF_EXPORT int lof_posix_memalign(void **out, size_t align, size_t size);
LOF_EXPORT void *lof_aligned_alloc(size_t align, size_t size) LOF_MALLOC_ATTR;
LOF_EXPORT void *lof_memalign(size_t align, size_t size) LOF_MALLOC_ATTR;
LOF_EXPORT void *lof_valloc(size_t size) LOF_MALLOC_ATTR;
LOF_EXPORT void *lof_pvalloc(size_t size) LOF_MALLOC_ATTR;
LOF_EXPORT size_t lof_malloc_usable_size(const void *p);

/* Purge every free page of the heap back to the OS now (malloc_trim(0) does
 * the same).  Returns the number of bytes purged. */
LOF_EXPORT size_t lof_purge(void);

/* Lock and populate `bytes` of heap now, for the life of the process: the
 * heap's pinned memory (what it already holds, pinned too, plus fresh
 * segments) becomes at least `bytes`, every page resident and locked, and
 * it is never purged, decommitted or unmapped.  Later small and large
 * requests that fit it make no system call and take no page fault; huge
 * blocks freed afterwards are kept for reuse up to the same size.  Returns
 * 0, or -1 with errno = ENOMEM when the lock budget (RLIMIT_MEMLOCK,
 * LOFALLOC_MAX_LOCKED) cannot hold it, whatever the policy: then nothing is
 * reserved or charged.  LOFALLOC_RESERVE=SIZE does the same at start-up. */
LOF_EXPORT int lof_reserve(size_t bytes);

/* Walk the heap and check its invariants.  Returns 0 when they hold; on a
 * violation prints what is wrong on stderr and returns -1. */
LOF_EXPORT int lof_check(void);

/* ---- backends --------------------------------------------------------- */
typedef enum lof_backend {
  LOF_BACKEND_NONE = 0,        /* not yet initialised */
  LOF_BACKEND_MAP_LOCKONFAULT, /* mmap(MAP_LOCKONFAULT): patched kernel */
  LOF_BACKEND_MLOCK2,          /* mmap + mlock2(MLOCK_ONFAULT) */
  LOF_BACKEND_UNLOCKED         /* plain memory (LOFALLOC_BACKEND=unlocked) */
} lof_backend_t;

/* ---- statistics --------------------------------------------------------- */
#define LOF_STATS_VERSION 2

/* Versioned: callers pass sizeof(lof_stats_t); fields are only ever appended.
 * Byte counts are exact counters kept by the region layer unless noted. */
typedef struct lof_stats {
  uint32_t version;          /* LOF_STATS_VERSION of the library that filled it */
  uint32_t size;             /* bytes of this struct the library filled */
  uint32_t backend;          /* lof_backend_t in use */
  uint32_t mlockall_flags;   /* MCL_* seen in force at start-up (0 if none) */
  char backend_name[24];     /* "MAP_LOCKONFAULT", "mlock2", "unlocked" */
  char policy_name[16];      /* "strict", "fallback" or "abort" */
  uint64_t reserved;         /* address space reserved (PROT_NONE, uncharged) */
  uint64_t committed;        /* bytes committed (usable), locked or not */
  uint64_t locked_range;     /* committed and lock-on-fault: what RLIMIT_MEMLOCK is charged */
  uint64_t locked_resident;  /* resident locked heap bytes: smaps Locked:, read on demand */
  uint64_t resident;         /* resident heap bytes: smaps Rss:, read on demand */
  uint64_t fallback;         /* committed but unlocked (policy=fallback after a lock failure) */
  uint64_t purged;           /* cumulative bytes purged or decommitted (pages given back) */
  uint64_t purge_calls;      /* cumulative purge and decommit operations */
  uint64_t commit_calls;     /* cumulative commit operations */
  uint64_t lock_failures;    /* commits whose locking failed */
  uint64_t heap_vmas;        /* kernel VMAs inside the heap's reservations (read on demand) */
  uint64_t regions;          /* live reservations */
  uint64_t max_locked;       /* the locking budget in force (0 = none) */
  /* filled by the malloc frontend */
  uint64_t allocated;        /* bytes handed out by malloc and not yet freed (usable size) */
  uint64_t allocations;      /* live allocations */
  /* version 2 */
  uint64_t meta_locked;      /* the library's own bookkeeping locked on fault (range, as VmLck
                              * counts it); VmLck = locked_range + meta_locked + what the
                              * program locks itself */
  uint64_t meta_unlocked;    /* bookkeeping left unlocked (the budget had no room) */
  uint64_t memlock_limit;    /* RLIMIT_MEMLOCK that applies: 0 = none (CAP_IPC_LOCK),
                              * UINT64_MAX = unlimited */
  uint64_t cgroup_limit;     /* the memory cgroup's limit in force as a budget (0 = none) */
  uint64_t release_failures; /* unmaps the kernel refused */
  uint64_t leaked;           /* bytes still mapped after such refusals (still counted above) */
  uint64_t pinned;           /* lof_reserve: bytes pinned (never purged or unmapped) */
  uint64_t pinned_populated; /* lof_reserve: bytes of them populated (resident and locked) */
  /* shared memory locked on fault (LOFALLOC_LOCK_SHARED=1; liblofalloc) */
  uint64_t shared_locked_range; /* shared mappings locked on fault (also in locked_range) */
  uint64_t shared_fallback;  /* shared mappings left unlocked after a lock failure */
  uint64_t shared_mappings;  /* live shared mappings lofalloc tracks */
} lof_stats_t;

/* Fill *out (out_size = sizeof(*out)).  Reading locked_resident, resident and
 * heap_vmas walks /proc/self/smaps.  Returns 0, or -1 with errno = EINVAL
 * when out is NULL or out_size is too small for version and size. */
LOF_EXPORT int lof_stats_get(lof_stats_t *out, size_t out_size);

/* Print a human-readable summary to the file descriptor fd. */
LOF_EXPORT void lof_stats_print(int fd);

#ifdef __cplusplus
}
#endif

#endif /* LOFALLOC_H */
