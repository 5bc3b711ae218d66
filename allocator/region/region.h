/*
 * region.h -- the region layer: every heap byte of every lofalloc frontend
 * comes from a region, a reservation of address space whose committed parts
 * are locked on fault.
 *
 * A region is reserved (PROT_NONE, not locked, not charged to
 * RLIMIT_MEMLOCK; on a kernel with the fault-time charge, readable,
 * writable and locked on fault whole, charged only as pages fault in, see
 * lof__region_locks_whole); a frontend commits page ranges of it (usable, locked on
 * fault: a page is locked when first touched, never before), purges ranges it
 * has freed (pages go back to the OS, the range stays committed and
 * lock-on-fault and reads as zeros), decommits ranges (back to reserved,
 * uncharged) and finally releases the region.
 *
 * Locking can fail (RLIMIT_MEMLOCK, EPERM, LOFALLOC_MAX_LOCKED); the policy
 * decides what happens (LOFALLOC_POLICY, see options.h): strict -> the commit
 * fails with ENOMEM and nothing else changes; fallback -> the range is
 * committed unlocked, counted in stats.fallback, with a warning once; abort ->
 * a message and abort().
 *
 * Invariants and contracts:
 *  - A region's state is tracked per page in two bitmaps (committed,
 *    unlocked), so every counter in lof_stats_t is exact and a commit of an
 *    already committed page is not counted twice.
 *  - Callers own their ranges: two threads never operate on overlapping
 *    ranges at once.  Different ranges of one region may be operated on
 *    concurrently (bitmap words are updated atomically).
 *  - Regions are listed in one global list under a mutex, touched only by
 *    reserve/release/find/stats/fork.  The one system call made under it is
 *    the mapping of a new 64 KiB block of descriptors (rare), so the mutex
 *    is never held across a commit, purge or unmap of heap memory.
 *  - Nothing here calls malloc: descriptors and bitmaps live in their own
 *    mmap'd metadata, itself locked on fault (charged to the same budget,
 *    counted apart: stats.meta_locked).
 *  - Every lock can be refused (budget.h): the policy decides at each place
 *    one is taken -- commit, map, remap growth, fork re-lock -- for any
 *    errno the kernel gives (ENOSYS and EINVAL included).
 *  - Adjacent ranges committed one after another end up in one VMA: commit
 *    and decommit restore exactly the flags of their neighbours so the kernel
 *    merges them; purge never changes VMA flags.
 */
#ifndef LOF_REGION_H
#define LOF_REGION_H

#include "internal.h"
#include "lofalloc.h"

typedef struct lof_region lof_region_t;

struct lof_region {
  uintptr_t base;            /* first byte of the reservation (read-only for callers) */
  size_t size;               /* bytes reserved (read-only for callers); a WHOLE
                              * region's committed size */
  size_t room;               /* WHOLE regions: bytes reserved past size (PROT_NONE,
                              * uncharged) that lof__region_remap grows into in
                              * place (read-only for callers) */
  /* --- private to region.c --- */
  uint32_t kind;             /* LOF_REGION_RESERVED or LOF_REGION_WHOLE */
  bool whole_locked;         /* WHOLE regions: committed locked (else fallback) */
  uint8_t room_ratio;        /* WHOLE regions: room / size when mapped (0: no room);
                              * a move past the room reserves room_ratio x the new size */
  _Atomic(bool) lockall;     /* RESERVED, on a kernel with the fault-time charge: the
                              * whole reservation is readable, writable and locked on
                              * fault from the start (one lock call); commit and
                              * decommit only charge the budget and drop pages */
  _Atomic(uint64_t) *committed_bits; /* 1 bit per page: committed (NULL for WHOLE) */
  _Atomic(uint64_t) *unlocked_bits;  /* 1 bit per page: committed unlocked */
  size_t bitmap_bytes;       /* mapping size of both bitmaps together */
  lof_region_t *next;        /* global region list */
  lof_region_t *prev;
};

/* Reserve size bytes (rounded up to a page) aligned to align (a power of two,
 * at least a page).  Nothing is committed.  NULL + ENOMEM on failure. */
LOF_HIDDEN lof_region_t *lof__region_reserve(size_t size, size_t align);

/* Reserve and commit a whole region in one step (huge allocations), with
 * room bytes of address space reserved after it (PROT_NONE, neither
 * charged nor resident) to grow into in place.  room 0: the cheapest path
 * the backend has (one mmap with MAP_LOCKONFAULT).  Subject to the locking
 * policy like a commit.  NULL + ENOMEM on failure. */
LOF_HIDDEN lof_region_t *lof__region_map(size_t size, size_t room, size_t align);

/* Grow or shrink a region made by lof__region_map to new_size bytes,
 * without copying.  A shrink gives the tail back to the room (decommitted:
 * its pages and its lock charge go); growth within the room commits the
 * room's first pages in place, so the block keeps its address and its page
 * tables.  Growth past the room moves the block (mremap) into a new
 * reservation, with room in the proportion it was mapped with (room /
 * size, at least 1 if it had room; read r->base after): a moved range's
 * pages are resident still, but a VM that shadows page tables refaults
 * every one of them on its next touch, and every other page of the process
 * too (20 MiB moved: 5-25 ms of first touches of it on this project's test
 * VM, against 0.5 ms in place; doc/malloc.md).  Growth of a locked region that the budget or
 * the kernel refuses fails quietly: 0, or -1 + ENOMEM (region unchanged),
 * and the caller moves the block (lof__region_map applies the policy). */
LOF_HIDDEN int lof__region_remap(lof_region_t *r, size_t new_size);

/* Commit [addr, addr+len) of r: readable, writable, lock-on-fault (or
 * unlocked under the fallback policy).  Pages never committed before, and
 * pages purged since, read as zeros.  0, or -1 + ENOMEM (strict policy or a
 * kernel failure; the range stays as it was). */
LOF_HIDDEN int lof__region_commit(lof_region_t *r, void *addr, size_t len);

/* Commit a range readable and writable, not locked (counted as fallback),
 * for a frontend that locks it later, as it is touched, with
 * lof__region_commit (jemalloc's base blocks).  0, or -1 + ENOMEM/EINVAL. */
LOF_HIDDEN int lof__region_commit_unlocked(lof_region_t *r, void *addr, size_t len);

/* True when every page of [addr, addr+len) of r is committed and locked. */
LOF_HIDDEN bool lof__region_is_locked(const lof_region_t *r, const void *addr, size_t len);

/* Drop the pages of a committed range; it stays committed and lock-on-fault
 * and refaults as zeros.  0, or -1 + errno from the kernel. */
LOF_HIDDEN int lof__region_purge(lof_region_t *r, void *addr, size_t len);

/* Return a committed range to reserved (pages dropped, no longer charged). */
LOF_HIDDEN int lof__region_decommit(lof_region_t *r, void *addr, size_t len);

/* Unmap the whole region and free its descriptor.  r is invalid after. */
LOF_HIDDEN void lof__region_release(lof_region_t *r);

/* The region containing addr, or NULL.  O(number of regions). */
LOF_HIDDEN lof_region_t *lof__region_find(const void *addr);

/* True when every page of [addr, addr+len) of r is committed. */
LOF_HIDDEN bool lof__region_is_committed(const lof_region_t *r,
                                         const void *addr, size_t len);

/* The frontends' own bookkeeping (tables, registries): lock [addr, addr+len)
 * on fault if the budget allows (never refused loudly), count it in
 * stats.meta_locked and re-lock it in a fork child; unlock undoes a lock of
 * exactly that range.  Page-aligned. */
LOF_HIDDEN void lof__region_meta_lock(void *addr, size_t len);
LOF_HIDDEN void lof__region_meta_unlock(void *addr, size_t len);

/* Lock bookkeeping [p, p+len) as lof__region_meta_lock does, unless a
 * RLIMIT_MEMLOCK applies and len is over the 64 KiB bound on tables (the
 * kernel would charge the whole range): then it stays unlocked, counted in
 * stats.meta_unlocked, and the answer is false. */
LOF_HIDDEN bool lof__region_meta_lock_bounded(void *p, size_t len);

/* A library's own static data (the writable segment of the shared object
 * that maps inside -- in any of its segments: its .data and .bss, where
 * the option table, the arenas and the empty heap live), locked on fault
 * like other bookkeeping, except [skip, skip+skip_len) (page-aligned: a
 * table the caller locks itself).  Under a RLIMIT_MEMLOCK, a piece larger
 * than the bound on other tables (64 KiB) stays unlocked as they do.
 * false: the part that holds inside (every part, when inside is not in
 * the writable segment) was not locked, because it is that large, or is
 * in the program itself (the library linked in statically: that segment
 * is the program's data too), or in no segment found. */
LOF_HIDDEN bool lof__region_meta_lock_image(const void *inside, const void *skip,
                                            size_t skip_len);

/* Initialise (idempotent, thread-safe; every entry point above calls it). */
LOF_HIDDEN void lof__region_init(void);

/* True when reservations are locked whole on fault (the kernel charges
 * RLIMIT_MEMLOCK as pages fault in, kernel-patches/rfc/): a reservation
 * is then one readable, writable, lock-on-fault VMA, a commit makes no
 * system call and a decommit drops pages without unlocking. */
LOF_HIDDEN bool lof__region_locks_whole(void);

/* The backend chosen at init. */
LOF_HIDDEN lof_backend_t lof__region_backend(void);

/* Fill the region-layer fields of *st (everything but the frontend's;
 * region_stats.c). */
LOF_HIDDEN void lof__region_stats(lof_stats_t *st);

/* The counters only, without reading /proc (cheap). */
LOF_HIDDEN void lof__region_stats_basic(lof_stats_t *st);

/* fork: the frontend's atfork handlers call these last (prefork) and first
 * (postfork).  The child re-locks its committed locked ranges on fault
 * (memory locks are not inherited across fork) unless LOFALLOC_FORK_RELOCK=0. */
LOF_HIDDEN void lof__region_prefork(void);
LOF_HIDDEN void lof__region_postfork_parent(void);
LOF_HIDDEN void lof__region_postfork_child(void);

/* Memory the region layer did not map (external.c: a frontend's shared
 * mappings, see malloc/shared.c), locked on fault under the heap's budget and policy.
 * lock: 0 locked; 1 left unlocked (fallback, counted); -1 + ENOMEM (strict:
 * the caller fails the mapping).  unlock: the range is gone (unmapped or
 * detached by the caller); give back what lock counted (was_locked = lock
 * returned 0). */
LOF_HIDDEN int lof__region_lock_external(void *addr, size_t len);
LOF_HIDDEN void lof__region_unlock_external(void *addr, size_t len, bool was_locked);

#ifdef LOF_TESTING
/* Test seam: forget the probed backend so the next call probes again (only
 * valid while no region exists). */
LOF_HIDDEN void lof__region_reset_for_test(void);
#endif

#endif /* LOF_REGION_H */
