/*
 * shared.c -- locked shared memory (LOFALLOC_LOCK_SHARED=1): the shared
 * mappings a program creates are locked on fault like the heap, under the
 * heap's budget and policy (lof__region_lock_external), and counted in
 * lof_stats_t.shared_*.  A database's shared buffers (PostgreSQL's
 * shared_buffers is an anonymous MAP_SHARED mapping) are then kept out of
 * swap as its heap is.
 *
 * What is locked: writable MAP_SHARED mappings that are anonymous or of a
 * file on tmpfs (shm_open, memfd_create, /dev/shm), and writable System V
 * attachments (shmat).  Huge-page mappings (MAP_HUGETLB) are never swapped
 * and are left alone; so is everything when the option is off (each call is
 * then the system call plus one test).
 *
 * This file exports mmap, mmap64, munmap, shmat and shmdt as thin system
 * call wrappers.  The tracked ranges live in a small fixed table under one
 * mutex; munmap, shmdt and a MAP_FIXED mapping over a tracked range give
 * the charge back (a partial unmap re-counts the pieces that remain).  Not
 * followed: mremap of a tracked mapping (it stays locked, its charge is given
 * back only at exit) and unmaps glibc makes internally.  Memory locks are not
 * inherited across fork: the child locks the tracked ranges again (unless
 * LOFALLOC_FORK_RELOCK=0).  Nothing here calls malloc, except
 * pthread_atfork from the constructor.  The table's mutex is held across the
 * mlock2 of a range being tracked (shared mappings are few and rare; the
 * heap's paths never take it).  Built only when the library replaces malloc
 * (a sanitizer owns mmap otherwise).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#include "config.h"
#include "frontend.h"
#include "options.h"
#include "os.h"

#ifdef LOF_OVERRIDE

#define SHARED_TMPFS_MAGIC 0x01021994
#define SHARED_SLOTS 256

LOF_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
LOF_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
LOF_EXPORT int munmap(void *addr, size_t len);
LOF_EXPORT void *shmat(int shmid, const void *addr, int flags);
LOF_EXPORT int shmdt(const void *addr);

typedef struct shared_range {
  uintptr_t start;  /* page-aligned; 0 = free slot */
  size_t len;       /* page multiple */
  bool locked;      /* lof__region_lock_external said 0 */
} shared_range_t;

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static shared_range_t shared_ranges[SHARED_SLOTS]; /* under shared_lock */
static _Atomic(unsigned) shared_count;            /* used slots (read without the lock) */
static atomic_flag shared_full_warned = ATOMIC_FLAG_INIT;

static bool shared_enabled(void) { return lof__option(LOF_OPT_LOCK_SHARED) != 0; }

/* Lock [start, start+len) and remember it.  Under shared_lock.  -1 when the
 * strict policy refuses it (errno ENOMEM). */
static int shared_track_locked(uintptr_t start, size_t len) {
  shared_range_t *slot = NULL;
  for (size_t i = 0; i < SHARED_SLOTS && slot == NULL; i++)
    if (shared_ranges[i].start == 0) slot = &shared_ranges[i];
  if (slot == NULL) {
    if (!atomic_flag_test_and_set(&shared_full_warned))
      lof__message("warning: LOFALLOC_LOCK_SHARED: more than %d shared mappings; "
                   "the others stay unlocked", SHARED_SLOTS);
    return 0;
  }
  int r = lof__region_lock_external((void *)start, len);
  if (r < 0) return -1;
  slot->start = start;
  slot->len = len;
  slot->locked = r == 0;
  atomic_fetch_add(&shared_count, 1);
  return 0;
}

static int shared_track(void *p, size_t len) {
  pthread_mutex_lock(&shared_lock);
  int r = shared_track_locked((uintptr_t)p, LOF_ALIGN_UP(len, LOF_PAGE_SIZE));
  pthread_mutex_unlock(&shared_lock);
  return r;
}

/* [addr, addr+len) is no longer mapped: give back the charge of every tracked
 * range it overlaps, and track again the pieces of them that remain. */
static void shared_forget(const void *addr, size_t len) {
  uintptr_t lo = LOF_ALIGN_DOWN((uintptr_t)addr, LOF_PAGE_SIZE);
  uintptr_t hi = LOF_ALIGN_UP((uintptr_t)addr + len, LOF_PAGE_SIZE);
  pthread_mutex_lock(&shared_lock);
  for (size_t i = 0; i < SHARED_SLOTS; i++) {
    shared_range_t r = shared_ranges[i];
    if (r.start == 0 || r.start >= hi || r.start + r.len <= lo) continue;
    shared_ranges[i].start = 0;
    atomic_fetch_sub(&shared_count, 1);
    lof__region_unlock_external((void *)r.start, r.len, r.locked);
    if (r.start < lo) shared_track_locked(r.start, lo - r.start);
    if (r.start + r.len > hi) shared_track_locked(hi, r.start + r.len - hi);
  }
  pthread_mutex_unlock(&shared_lock);
}

/* A writable shared mapping of anonymous memory or of a tmpfs file. */
static bool shared_wanted(int prot, int flags, int fd) {
  int type = flags & MAP_TYPE;
  if ((type != MAP_SHARED && type != MAP_SHARED_VALIDATE) || !(prot & PROT_WRITE) ||
      (flags & MAP_HUGETLB))
    return false;
  if (flags & MAP_ANONYMOUS) return true;
  return fd >= 0 && lof__os_fs_type(fd) == SHARED_TMPFS_MAGIC;
}

static void *shared_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  void *p = lof__os_mmap_as_is(addr, len, prot, flags, fd, off);
  if (p == MAP_FAILED) return p;
  int saved = errno;
  if ((flags & MAP_FIXED) && atomic_load_explicit(&shared_count, memory_order_relaxed))
    shared_forget(p, len); /* whatever was there is gone */
  if (shared_enabled() && shared_wanted(prot, flags, fd) && shared_track(p, len) != 0) {
    lof__os_munmap_as_is(p, len);
    errno = ENOMEM;
    return MAP_FAILED;
  }
  errno = saved;
  return p;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return shared_mmap(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return shared_mmap(addr, len, prot, flags, fd, off);
}

int munmap(void *addr, size_t len) {
  int r = lof__os_munmap_as_is(addr, len);
  if (r == 0 && atomic_load_explicit(&shared_count, memory_order_relaxed)) {
    int saved = errno;
    shared_forget(addr, len);
    errno = saved;
  }
  return r;
}

void *shmat(int shmid, const void *addr, int flags) {
  void *p = lof__os_shmat(shmid, addr, flags);
  if (p == (void *)-1) return p;
  int saved = errno;
  size_t segsz = 0;
  if (shared_enabled() && !(flags & SHM_RDONLY) && (segsz = lof__os_shm_size(shmid)) > 0) {
    if ((flags & SHM_REMAP) && atomic_load(&shared_count)) shared_forget(p, segsz);
    if (shared_track(p, segsz) != 0) {
      lof__os_shmdt(p);
      errno = ENOMEM;
      return (void *)-1;
    }
  }
  errno = saved;
  return p;
}

int shmdt(const void *addr) {
  size_t len = 0;
  if (atomic_load_explicit(&shared_count, memory_order_relaxed)) {
    pthread_mutex_lock(&shared_lock);
    for (size_t i = 0; i < SHARED_SLOTS; i++)
      if (shared_ranges[i].start == (uintptr_t)addr) len = shared_ranges[i].len;
    pthread_mutex_unlock(&shared_lock);
  }
  int r = lof__os_shmdt(addr);
  if (r == 0 && len) {
    int saved = errno;
    shared_forget(addr, len);
    errno = saved;
  }
  return r;
}

/* ---- fork ------------------------------------------------------------------ */

static void shared_prefork(void) { pthread_mutex_lock(&shared_lock); }

static void shared_postfork_parent(void) { pthread_mutex_unlock(&shared_lock); }

/* Memory locks are not inherited: lock the child's tracked ranges again. */
static void shared_postfork_child(void) {
  pthread_mutex_init(&shared_lock, NULL);
  if (!lof__option(LOF_OPT_FORK_RELOCK)) return;
  for (size_t i = 0; i < SHARED_SLOTS; i++)
    if (shared_ranges[i].start != 0 && shared_ranges[i].locked)
      lof__os_lock_onfault((void *)shared_ranges[i].start, shared_ranges[i].len);
}

__attribute__((constructor)) static void shared_init(void) {
  if (shared_enabled())
    pthread_atfork(shared_prefork, shared_postfork_parent, shared_postfork_child);
}

#endif /* LOF_OVERRIDE */
