/*
 * os.h -- the OS layer: every system call lofalloc's region layer makes.
 *
 * Every call is a raw system call; test builds can fail any of them on
 * purpose (lof__os_inject).
 *
 * Contracts common to all primitives: addresses and lengths are multiples of
 * LOF_PAGE_SIZE; a primitive returns 0 (or a pointer) on success and -1 (or
 * NULL) on failure with errno set to the kernel's answer; errno is otherwise
 * left alone.  None of them allocates memory or takes a lock.
 */
#ifndef LOF_OS_H
#define LOF_OS_H

#include <sys/types.h>

#include "internal.h"

/* The system-call sites, for the fault-injection seam of test builds. */
typedef enum lof_os_site {
  LOF_OS_MMAP, LOF_OS_MUNMAP, LOF_OS_MPROTECT, LOF_OS_MADVISE,
  LOF_OS_MLOCK2, LOF_OS_MUNLOCK, LOF_OS_MREMAP, LOF_OS_SITE_COUNT
} lof_os_site_t;

#ifdef LOF_TESTING
/* Test builds only: the nth next call at site (1 = the very next) fails with
 * err, and with sticky every call after it too; nth = 0 disarms.  Calls are
 * counted per site whether armed or not (lof__os_calls).  Exported from the
 * test build of the library (liblofalloc-test) so tests can call them. */
__attribute__((visibility("default"))) void lof__os_inject(lof_os_site_t site, unsigned nth,
                                                           int err, bool sticky);
__attribute__((visibility("default"))) unsigned lof__os_calls(lof_os_site_t site);
#endif

/* What the kernel offers, probed once by lof__os_probe(). */
typedef struct lof_os_caps {
  bool map_lockonfault;      /* mmap honours MAP_LOCKONFAULT (VmFlags shows lf) */
  bool dontneed_locked;      /* madvise(MADV_DONTNEED_LOCKED) works (>= 5.18) */
  bool thp_always;           /* THP "always": sparse heaps need MADV_NOHUGEPAGE */
  int mlockall_flags;        /* MCL_FUTURE[|MCL_ONFAULT] seen on a fresh mapping */
} lof_os_caps_t;

/* Probe the kernel: maps, inspects and unmaps three small probe mappings. */
LOF_HIDDEN void lof__os_probe(lof_os_caps_t *caps);

/* After the probe: the kernel charges RLIMIT_MEMLOCK for lock-on-fault
 * memory as pages fault in (kernel-patches/rfc/), and every lock-on-fault
 * call here asks for it.  A fault past the limit then gets SIGBUS instead
 * of the lock being refused, so the budget applies the limit itself. */
LOF_HIDDEN bool lof__os_lock_charged(void);

/* Test seams, in test builds (LOF_TESTING) only; constants elsewhere, so
 * the shipped library carries no hook:
 *  - lof__os_vmflags_hook: when set, the probe asks this function instead
 *    of /proc/self/smaps for a mapping's VmFlags line (NUL-terminated, the
 *    flags after "VmFlags:"); it returns 0, or -1 if the mapping was not
 *    found;
 *  - lof__os_force_legacy_purge: take the pre-5.18 purge path (munlock +
 *    MADV_DONTNEED + mlock2);
 *  - lof__os_pretend_charge: lof__os_lock_charged() says true without the
 *    flag being passed to the kernel (so the region layer's whole-reservation
 *    path runs on a kernel without the RFC, charged by range: root only). */
typedef int (*lof_os_vmflags_fn)(const void *addr, char *buf, size_t len);
#ifdef LOF_TESTING
LOF_HIDDEN extern lof_os_vmflags_fn lof__os_vmflags_hook;
LOF_HIDDEN extern bool lof__os_force_legacy_purge;
LOF_HIDDEN extern bool lof__os_pretend_charge;
#else
#define lof__os_vmflags_hook ((lof_os_vmflags_fn)0)
#define lof__os_force_legacy_purge false
#define lof__os_pretend_charge false
#endif

/* open(path, O_RDONLY | O_CLOEXEC), read and close as raw system calls
 * (results and errno as the libc calls). */
LOF_HIDDEN int lof__os_open_read(const char *path);
LOF_HIDDEN ssize_t lof__os_read(int fd, void *buf, size_t len);
LOF_HIDDEN void lof__os_close(int fd);

/* Read the VmFlags of the VMA containing addr from /proc/self/smaps. */
LOF_HIDDEN int lof__os_read_vmflags(const void *addr, char *buf, size_t len);

/* Whether the calling thread holds CAP_IPC_LOCK (RLIMIT_MEMLOCK does not
 * apply to it), and the soft RLIMIT_MEMLOCK (UINT64_MAX = unlimited). */
LOF_HIDDEN bool lof__os_have_ipc_lock(void);
LOF_HIDDEN uint64_t lof__os_memlock_limit(void);

/* The memory limit of the process's memory cgroup, the smallest of the
 * cgroup and its ancestors (v1 hierarchical_memory_limit, v2 memory.max),
 * in bytes; UINT64_MAX when there is none or it cannot be read. */
LOF_HIDDEN uint64_t lof__os_cgroup_memory_limit(void);

/* Reserve address space: PROT_NONE, never locked (it is munlocked if
 * mlockall(MCL_FUTURE) locked it), so neither RSS nor RLIMIT_MEMLOCK is
 * charged.  align is a power of two >= page size.  accounted = false maps
 * it MAP_NORESERVE (only parts will be committed); true lets the kernel's
 * overcommit policy judge the whole size when it is committed, as it judges
 * glibc's mmap.  NULL + ENOMEM on failure. */
LOF_HIDDEN void *lof__os_reserve(size_t size, size_t align, bool nohugepage, bool accounted);

/* Commit a reserved range as readable, writable and lock-on-fault, with the
 * MAP_LOCKONFAULT backend (one mmap MAP_FIXED) or the mlock2 backend
 * (mlock2(MLOCK_ONFAULT) while still PROT_NONE, then mprotect: there is no
 * window where the range is accessible and unlocked, and mlockall(MCL_FUTURE)
 * cannot populate it).  Nothing is populated.  0 on success; on failure the
 * range is left reserved, errno is the kernel's and the result says which
 * step failed: LOF_OS_LOCK_REFUSED (the lock: RLIMIT_MEMLOCK EAGAIN/ENOMEM,
 * EPERM, ENOSYS under seccomp or valgrind, ...) or LOF_OS_NOMEM (making the
 * range accessible: no memory, map count). */
enum { LOF_OS_LOCK_REFUSED = -1, LOF_OS_NOMEM = -2 };
LOF_HIDDEN int lof__os_commit_locked(void *addr, size_t len, bool use_map_flag,
                                     bool nohugepage);

/* Commit a reserved range readable and writable, not locked. */
LOF_HIDDEN int lof__os_commit_unlocked(void *addr, size_t len);

/* Drop the pages of a committed range (locked or not) and keep it committed
 * and, if it was, lock-on-fault: the next touch faults in a zero page.
 * MADV_DONTNEED_LOCKED, or munlock + MADV_DONTNEED + mlock2 where the kernel
 * lacks it (relock says whether the range was locked). */
LOF_HIDDEN int lof__os_purge(void *addr, size_t len, bool relock);

/* Return a committed range to the reserved state: unlocked (uncharged),
 * PROT_NONE, pages dropped.  Adjacent reserved VMAs merge again.  -1 on
 * failure, with the range still committed, accessible and locked as it was
 * (its pages may be gone: it must hold no live data). */
LOF_HIDDEN int lof__os_decommit(void *addr, size_t len);

/* Lock an already committed range on fault (after fork; pages already
 * present are locked at once, nothing is populated). */
LOF_HIDDEN int lof__os_lock_onfault(void *addr, size_t len);

/* munlock (the range stays committed; uncharged) and madvise, as is. */
LOF_HIDDEN int lof__os_unlock(void *addr, size_t len);
LOF_HIDDEN int lof__os_advise(void *addr, size_t len, int advice);

/* Unmap. */
LOF_HIDDEN int lof__os_release(void *addr, size_t len);

/* Sum smaps fields over the VMAs that intersect [lo, hi) ranges given by
 * the callback's table; see region.c.  Fields are in bytes. */
typedef struct lof_os_smaps_sum {
  uint64_t rss;
  uint64_t locked;
  uint64_t vmas;
} lof_os_smaps_sum_t;
typedef bool (*lof_os_range_pred)(uintptr_t start, uintptr_t end, void *arg);
LOF_HIDDEN int lof__os_smaps_sum(lof_os_range_pred in_heap, void *arg,
                                 lof_os_smaps_sum_t *sum);



/* Grow or shrink a mapping and move it to dest (mremap MAYMOVE|FIXED:
 * dest's old mapping, a reservation of the caller's, is replaced).  A
 * locked range stays lock-on-fault; growth is charged (EAGAIN at the
 * limit). */
LOF_HIDDEN int lof__os_remap_to(void *addr, size_t old_len, size_t new_len, void *dest);

/* Plain read-write anonymous memory for metadata (zeroed). NULL on failure. */
LOF_HIDDEN void *lof__os_map_meta(size_t len);

/* The same, MAP_NORESERVE, for large sparse tables of which a few pages are
 * ever touched (the registry). */
LOF_HIDDEN void *lof__os_map_sparse(size_t len);

/* A whole new readable, writable, lock-on-fault mapping in one mmap call
 * with MAP_LOCKONFAULT (only for the MAP_LOCKONFAULT backend), accounted as
 * glibc's mmap is. */
LOF_HIDDEN void *lof__os_map_whole_locked(size_t len);

/* Pass-through calls for the interposed mmap, mmap64, munmap, shmat and
 * shmdt that liblofalloc and liblofalloc-jemalloc-process export (the
 * program's own calls, made as the program asked, raw so that no other
 * interposer sees them twice; no fault injection).  Results and errno as the
 * libc calls; lof__os_shm_size is IPC_STAT's shm_segsz, 0 on failure. */
LOF_HIDDEN void *lof__os_mmap_as_is(void *addr, size_t len, int prot, int flags, int fd,
                                    off_t off);
LOF_HIDDEN int lof__os_munmap_as_is(void *addr, size_t len);
LOF_HIDDEN void *lof__os_shmat(int shmid, const void *addr, int flags);
LOF_HIDDEN int lof__os_shmdt(const void *addr);
LOF_HIDDEN size_t lof__os_shm_size(int shmid);

/* The filesystem type (statfs f_type) of an open file; 0 on failure. */
LOF_HIDDEN long lof__os_fs_type(int fd);

/* Populate [addr, addr+len) for writing, contents unchanged (a locked range's
 * pages become resident and locked now).  -1 + EINVAL before Linux 5.14. */
LOF_HIDDEN int lof__os_populate(void *addr, size_t len);
#endif /* LOF_OS_H */
