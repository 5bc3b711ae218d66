/*
 * region.c -- the region layer (contract and invariants in region.h):
 * backend choice at first use, reservations and their per-page state
 * bitmaps (the bit operations in pagebits.h), commit/purge/decommit/release, the global region list, the
 * library's own locked metadata, and fork re-locking; whole regions (huge
 * blocks: map, remap, room) are whole.c's, on the helpers region_int.h
 * lists.  The locking budget
 * and the policy applied to every refused lock are in budget.c; ranges a
 * frontend maps itself in external.c; the library's own static data in
 * image.c; the statistics in region_stats.c (which read this file's
 * counters and region list, region_int.h).
 *
 * Counters are atomics updated after the system call succeeded; the budget
 * is charged before the call and refunded on failure, so concurrent commits
 * never overshoot it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "budget.h"
#include "lofalloc-mman.h"
#include "options.h"
#include "os.h"
#include "forklock.h"
#include "pagebits.h"
#include "region.h"
#include "region_int.h"

/* Counters behind lof_stats_t (bytes unless named *_calls/_failures); the
 * locked and fallback bytes are the budget's (budget.c). */
typedef struct region_counters {
  _Atomic uint64_t reserved;
  _Atomic uint64_t committed;
  _Atomic uint64_t purged;
  _Atomic uint64_t purge_calls;
  _Atomic uint64_t commit_calls;
  _Atomic uint64_t regions;
  _Atomic uint64_t release_failures; /* munmaps the kernel refused */
  _Atomic uint64_t leaked;           /* bytes still mapped after such a refusal */
} region_counters_t;

static region_counters_t region_count;
static lof_os_caps_t region_caps;       /* what the kernel offers */
static lof_backend_t region_backend;    /* chosen at init */
static bool region_nohugepage;          /* MADV_NOHUGEPAGE on the heap */
static bool region_lockall;             /* reservations locked whole (fault-time charge) */
static _Atomic int region_state;        /* 0 new, 1 initialising, 2 ready */
static atomic_flag region_release_warned = ATOMIC_FLAG_INIT;

static pthread_mutex_t region_lock = PTHREAD_MUTEX_INITIALIZER;
static lof_region_t *region_list;       /* live regions, under region_lock */
static lof_region_t *region_free_descs; /* recycled descriptors, under region_lock */
static lof_region_t *region_desc_next;  /* untouched descriptors of the newest block ... */
static lof_region_t *region_desc_end;   /* ... up to here (carved one at a time, so only
                                          * the pages of descriptors in use are resident) */

#define PAGES(bytes) ((bytes) / LOF_PAGE_SIZE)

/* ---- initialisation --------------------------------------------------------- */

static const char *region_backend_name(lof_backend_t b) {
  switch (b) {
    case LOF_BACKEND_MAP_LOCKONFAULT: return "MAP_LOCKONFAULT";
    case LOF_BACKEND_MLOCK2: return "mlock2";
    case LOF_BACKEND_UNLOCKED: return "unlocked";
    default: return "none";
  }
}

static void region_do_init(void) {
  lof__os_probe(&region_caps);
  switch ((lof_backend_choice_t)lof__option(LOF_OPT_BACKEND)) {
    case LOF_BACKEND_CHOICE_MAP_LOCKONFAULT:
      if (region_caps.map_lockonfault) {
        region_backend = LOF_BACKEND_MAP_LOCKONFAULT;
      } else {
        lof__message("warning: LOFALLOC_BACKEND=map_lockonfault but this kernel "
                     "does not honour MAP_LOCKONFAULT; using mlock2");
        region_backend = LOF_BACKEND_MLOCK2;
      }
      break;
    case LOF_BACKEND_CHOICE_MLOCK2: region_backend = LOF_BACKEND_MLOCK2; break;
    case LOF_BACKEND_CHOICE_UNLOCKED: region_backend = LOF_BACKEND_UNLOCKED; break;
    default:
      region_backend = region_caps.map_lockonfault ? LOF_BACKEND_MAP_LOCKONFAULT
                                                   : LOF_BACKEND_MLOCK2;
  }
  switch ((lof_thp_choice_t)lof__option(LOF_OPT_THP)) {
    case LOF_THP_NEVER: region_nohugepage = true; break;
    case LOF_THP_DEFAULT: region_nohugepage = false; break;
    default: region_nohugepage = region_caps.thp_always;
  }
  lof__budget_init(region_backend != LOF_BACKEND_UNLOCKED);
  /* The kernel charges lock-on-fault memory as it faults in: lock each
   * reservation whole, once; the budget keeps what is committed under the
   * limit, so a fault never passes it (the kernel's answer would be SIGBUS). */
  region_lockall = region_backend != LOF_BACKEND_UNLOCKED && lof__os_lock_charged() &&
                   region_caps.dontneed_locked;
  if (lof__option(LOF_OPT_VERBOSE)) {
    char limits[160];
    lof__budget_describe_limits(limits, sizeof limits);
    lof__message("backend %s, policy %s, %s, MADV_DONTNEED_LOCKED %s, "
                 "mlockall %s%s, THP %s, fault-time charge %s",
                 region_backend_name(region_backend), lof__option_enum_name(LOF_OPT_POLICY),
                 limits,
                 region_caps.dontneed_locked ? "yes" : "no (munlock fallback)",
                 (region_caps.mlockall_flags & MCL_FUTURE) ? "MCL_FUTURE" : "none",
                 (region_caps.mlockall_flags & MCL_ONFAULT) ? "|MCL_ONFAULT" : "",
                 region_nohugepage ? "off on the heap" : "as the system says",
                 region_lockall ? "yes (reservations locked whole)" : "no");
  }
}

void lof__region_init(void) { lof__once(&region_state, region_do_init); }

#ifdef LOF_TESTING
void lof__region_reset_for_test(void) {
  atomic_store(&region_state, 0);
}
#endif

bool lof__region_locks_whole(void) {
  lof__region_init();
  return region_lockall;
}

lof_backend_t lof__region_backend(void) {
  lof__region_init();
  return region_backend;
}

/* ---- descriptors and the region list -------------------------------------- */

/* ---- the library's own metadata ------------------------------------------ */

/* Metadata (descriptors, bitmaps: 1/16384 of the reservation, the
 * frontends' tables) is locked on fault like the heap, charged to the same
 * budget and counted apart (stats.meta_locked); what the budget refuses
 * stays unlocked (counted in stats.meta_unlocked), since bookkeeping cannot
 * fail an allocation the heap could serve.  Locked ranges are remembered for
 * the fork child (the first REGION_META_RANGES of them: descriptor blocks,
 * bitmaps, frontend tables -- a few dozen in a large heap). */
#define REGION_META_RANGES 128
typedef struct region_meta_range { uintptr_t start; size_t len; } region_meta_range_t;
static pthread_mutex_t region_meta_lock_ = PTHREAD_MUTEX_INITIALIZER; /* guards the table */
static region_meta_range_t region_meta[REGION_META_RANGES];
static unsigned region_meta_n;

void lof__region_meta_lock(void *addr, size_t len) {
  lof__region_init();
  if (region_backend == LOF_BACKEND_UNLOCKED || len == 0) return;
  if (!lof__budget_lock_meta(addr, len)) return;
  sigset_t held;
  lof__lock_nosignal(&region_meta_lock_, &held);
  if (region_meta_n < REGION_META_RANGES)
    region_meta[region_meta_n++] = (region_meta_range_t){(uintptr_t)addr, len};
  lof__unlock_nosignal(&region_meta_lock_, &held);
}

void lof__region_meta_unlock(void *addr, size_t len) {
  if (region_backend == LOF_BACKEND_UNLOCKED || len == 0) return;
  sigset_t held;
  lof__lock_nosignal(&region_meta_lock_, &held);
  for (unsigned i = 0; i < region_meta_n; i++) {
    if (region_meta[i].start == (uintptr_t)addr && region_meta[i].len == len) {
      region_meta[i] = region_meta[--region_meta_n];
      lof__unlock_nosignal(&region_meta_lock_, &held);
      lof__budget_unlock_meta(len);
      return;
    }
  }
  lof__unlock_nosignal(&region_meta_lock_, &held);
  lof__budget_meta_skipped(-(int64_t)len); /* it was one left unlocked */
}

/* Map metadata, locked on fault (or not, see above).  Under a
 * RLIMIT_MEMLOCK, tables larger than REGION_META_LOCK_MAX (the bitmaps of
 * reservations above 1 GiB: sparse, touched only where pages are committed,
 * never by malloc's fast paths) stay unlocked, since the kernel would charge
 * their whole range against the heap's room. */
#define REGION_META_LOCK_MAX ((size_t)64 << 10)
/* region.h */
bool lof__region_meta_lock_bounded(void *p, size_t len) {
  if (len <= REGION_META_LOCK_MAX || lof__os_have_ipc_lock() ||
      lof__os_memlock_limit() == UINT64_MAX) {
    lof__region_meta_lock(p, len);
    return true;
  }
  lof__budget_meta_skipped((int64_t)len);
  return false;
}

static void *region_meta_map(size_t len) {
  void *p = lof__os_map_meta(len);
  if (p == NULL) return NULL;
  lof__region_meta_lock_bounded(p, len);
  return p;
}

static void region_meta_release(void *p, size_t len) {
  lof__region_meta_unlock(p, len);
  if (lof__os_release(p, len) != 0) atomic_fetch_add(&region_count.release_failures, 1);
}

/* Under region_lock. */
static lof_region_t *region_desc_alloc(void) {
  lof_region_t *r = region_free_descs;
  if (r != NULL) {
    region_free_descs = r->next;
  } else {
    if (region_desc_next == region_desc_end) {
      size_t chunk = 16 * LOF_PAGE_SIZE;
      lof_region_t *block = region_meta_map(chunk);
      if (block == NULL) return NULL;
      region_desc_next = block;
      region_desc_end = block + chunk / sizeof *block;
    }
    r = region_desc_next++;
  }
  memset(r, 0, sizeof *r);
  return r;
}

static void region_link(lof_region_t *r) {
  r->prev = NULL;
  r->next = region_list;
  if (region_list) region_list->prev = r;
  region_list = r;
}

static void region_unlink(lof_region_t *r) {
  if (r->prev) r->prev->next = r->next;
  else region_list = r->next;
  if (r->next) r->next->prev = r->prev;
}

/* Register a mapping as a region: descriptor (+ bitmaps for RESERVED). */
static lof_region_t *region_register(uintptr_t base, size_t size, uint32_t kind) {
  size_t bitmap_bytes = 0;
  void *bitmaps = NULL;
  if (kind == LOF_REGION_RESERVED) {
    size_t words = (PAGES(size) + 63) / 64;
    bitmap_bytes = LOF_ALIGN_UP(2 * words * sizeof(uint64_t), LOF_PAGE_SIZE);
    bitmaps = region_meta_map(bitmap_bytes);
    if (bitmaps == NULL) return NULL;
  }
  sigset_t held;
  lof__lock_nosignal(&region_lock, &held);
  lof_region_t *r = region_desc_alloc();
  if (r) {
    r->base = base;
    r->size = size;
    r->kind = kind;
    if (bitmaps) {
      size_t words = (PAGES(size) + 63) / 64;
      r->committed_bits = bitmaps;
      r->unlocked_bits = (_Atomic(uint64_t) *)bitmaps + words;
      r->bitmap_bytes = bitmap_bytes;
    }
    region_link(r);
  }
  lof__unlock_nosignal(&region_lock, &held);
  if (r == NULL) {
    if (bitmaps) region_meta_release(bitmaps, bitmap_bytes);
    return NULL;
  }
  atomic_fetch_add(&region_count.reserved, size);
  atomic_fetch_add(&region_count.regions, 1);
  return r;
}

lof_region_t *lof__region_find(const void *addr) {
  uintptr_t a = (uintptr_t)addr;
  sigset_t held;
  lof__lock_nosignal(&region_lock, &held);
  lof_region_t *r = region_list;
  while (r && !(a >= r->base && a - r->base < r->size)) r = r->next;
  lof__unlock_nosignal(&region_lock, &held);
  return r;
}

/* ---- reserve --------------------------------------------------------------- */

static bool region_unmap(void *p, size_t len);

static bool region_args_ok(size_t size, size_t align) {
  return size > 0 && size <= ((size_t)1 << 47) && LOF_IS_POW2(align);
}

lof_region_t *lof__region_reserve(size_t size, size_t align) {
  lof__region_init();
  if (align < LOF_PAGE_SIZE) align = LOF_PAGE_SIZE;
  if (!region_args_ok(size, align)) { errno = ENOMEM; return NULL; }
  size = LOF_ALIGN_UP(size, LOF_PAGE_SIZE);
  void *p = lof__os_reserve(size, align, region_nohugepage, false);
  if (p == NULL) return NULL;
  /* With the fault-time charge: the whole reservation lock-on-fault now, in
   * one call, charged by the kernel only as its pages fault in (a refusal
   * leaves it reserved: its commits then lock range by range). */
  bool lockall = region_lockall &&
                 lof__os_commit_locked(p, size, region_backend == LOF_BACKEND_MAP_LOCKONFAULT,
                                       region_nohugepage) == 0;
  lof_region_t *r = region_register((uintptr_t)p, size, LOF_REGION_RESERVED);
  if (r == NULL) {
    region_unmap(p, size);
    errno = ENOMEM;
    return NULL;
  }
  r->lockall = lockall;
  return r;
}

/* Lock bytes of new memory: charge the budget, run lock(arg), refund and
 * apply the policy on a refusal.  1 locked; 0 go on unlocked (fallback);
 * -1 fail (errno ENOMEM).  lock returns 0, LOF_OS_LOCK_REFUSED or
 * LOF_OS_NOMEM (errno set; the latter fails whatever the policy). */
static int region_lock_new(size_t bytes, int (*lock)(void *), void *arg) {
  lof_refusal_t why;
  int err;
  if (lof__budget_charge(bytes, &why, &err)) {
    int rc = lock(arg);
    if (rc == 0) return 1;
    err = errno;
    lof__budget_refund(bytes);
    if (rc == LOF_OS_NOMEM) { errno = ENOMEM; return -1; }
    lof__budget_kernel_refused(bytes, err);
    why = LOF_REFUSED_KERNEL;
  }
  if (!lof__budget_refused("heap", bytes, why, err, true)) { errno = ENOMEM; return -1; }
  return 0;
}

/* ---- what whole.c uses (region_int.h) ------------------------------------ */

int lof__region_lock_new(size_t bytes, int (*lock)(void *), void *arg) {
  return region_lock_new(bytes, lock, arg);
}

bool lof__region_args_ok(size_t size, size_t align) { return region_args_ok(size, align); }

bool lof__region_unmap(void *p, size_t len) { return region_unmap(p, len); }

bool lof__region_nohugepage(void) { return region_nohugepage; }

lof_region_t *lof__region_register_whole(uintptr_t base, size_t size, size_t room, bool locked) {
  lof_region_t *r = region_register(base, size, LOF_REGION_WHOLE);
  if (r == NULL) return NULL;
  r->whole_locked = locked;
  r->room = room;
  size_t ratio = room / size; /* size > 0: lof__region_map checked it */
  r->room_ratio = room == 0 ? 0 : ratio == 0 ? 1 : ratio > UINT8_MAX ? UINT8_MAX : (uint8_t)ratio;
  atomic_fetch_add(&region_count.reserved, room);
  atomic_fetch_add(&region_count.committed, size);
  atomic_fetch_add(&region_count.commit_calls, 1);
  return r;
}

void lof__region_count_add(int64_t reserved, int64_t committed) {
  atomic_fetch_add(&region_count.reserved, (uint64_t)reserved);
  atomic_fetch_add(&region_count.committed, (uint64_t)committed);
}

void lof__region_set_whole(lof_region_t *r, uintptr_t base, size_t size, size_t room) {
  sigset_t held;
  lof__lock_nosignal(&region_lock, &held);
  r->base = base;
  r->size = size;
  r->room = room;
  lof__unlock_nosignal(&region_lock, &held);
}

/* ---- commit, purge, decommit, release ----------------------------------- */

static bool region_range_ok(const lof_region_t *r, const void *addr, size_t len) {
  uintptr_t a = (uintptr_t)addr;
  return r != NULL && len > 0 && (a % LOF_PAGE_SIZE) == 0 && (len % LOF_PAGE_SIZE) == 0 &&
         a >= r->base && a - r->base <= r->size && len <= r->size - (a - r->base);
}

/* A range commit and decommit accept: region_range_ok, in a RESERVED region
 * (a WHOLE one is committed whole).  0, or -1 + EINVAL. */
static int region_check_reserved(const lof_region_t *r, const void *addr, size_t len) {
  if (region_range_ok(r, addr, len) && r->kind == LOF_REGION_RESERVED) return 0;
  errno = EINVAL;
  return -1;
}

bool lof__region_is_committed(const lof_region_t *r, const void *addr, size_t len) {
  if (!region_range_ok(r, addr, len)) return false;
  if (r->kind == LOF_REGION_WHOLE) return true;
  size_t first = PAGES((uintptr_t)addr - r->base), n = PAGES(len);
  return bits_count(r->committed_bits, first, n) == n;
}

/* How a commit locks: by the system calls of the backend; in a lockall
 * region not at all (the range is locked on fault already), or by mlock2
 * where it holds pages committed unlocked (fallback) earlier. */
enum { REGION_LOCK_OS, REGION_LOCK_NONE, REGION_LOCK_RELOCK };
typedef struct region_commit_job {
  void *addr;
  size_t len;
  bool map_flag;
  int how;                   /* REGION_LOCK_* */
} region_commit_job_t;

static int region_commit_locked(void *arg) {
  region_commit_job_t *j = arg;
  if (j->how == REGION_LOCK_NONE) return 0;
  if (j->how == REGION_LOCK_RELOCK)
    return lof__os_lock_onfault(j->addr, j->len) == 0 ? 0 : LOF_OS_LOCK_REFUSED;
  return lof__os_commit_locked(j->addr, j->len, j->map_flag, region_nohugepage);
}

/* Make the uncommitted pages of [first, first+n) of r accessible, not
 * locked (fallback): mprotect; in a lockall region, munlock of each run of
 * them (the committed pages around keep their lock). */
static int region_open_unlocked(lof_region_t *r, size_t first, size_t n) {
  if (!r->lockall) return lof__os_commit_unlocked((void *)(r->base + first * LOF_PAGE_SIZE),
                                                  n * LOF_PAGE_SIZE);
  size_t run = 0;
  for (size_t i = first; i <= first + n; i++) {
    if (i < first + n && !bits_count(r->committed_bits, i, 1)) { run++; continue; }
    if (run && lof__os_unlock((void *)(r->base + (i - run) * LOF_PAGE_SIZE),
                              run * LOF_PAGE_SIZE) != 0)
      return -1;
    run = 0;
  }
  return 0;
}

int lof__region_commit(lof_region_t *r, void *addr, size_t len) {
  if (region_check_reserved(r, addr, len) != 0) return -1;
  size_t first = PAGES((uintptr_t)addr - r->base), n = PAGES(len);
  size_t already = bits_count(r->committed_bits, first, n);
  size_t already_locked = bits_count_locked(r, first, n);
  size_t newly = n - already;
  atomic_fetch_add(&region_count.commit_calls, 1);
  if (already_locked == n) return 0;

  if (region_backend != LOF_BACKEND_UNLOCKED) {
    /* MAP_FIXED would discard committed pages: only on a fresh range. */
    region_commit_job_t job = {addr, len,
                               region_backend == LOF_BACKEND_MAP_LOCKONFAULT && already == 0,
                               REGION_LOCK_OS};
    if (r->lockall) job.how = already > already_locked ? REGION_LOCK_RELOCK : REGION_LOCK_NONE;
    int locked = region_lock_new((uint64_t)(n - already_locked) * LOF_PAGE_SIZE,
                                 region_commit_locked, &job);
    if (locked < 0) return -1;
    if (locked) {
      size_t was_unlocked = already - already_locked;
      if (was_unlocked) lof__budget_fallback(-(int64_t)(was_unlocked * LOF_PAGE_SIZE));
      bits_set(r->committed_bits, first, n);
      bits_clear(r->unlocked_bits, first, n);
      atomic_fetch_add(&region_count.committed, newly * LOF_PAGE_SIZE);
      return 0;
    }
    if (newly == 0) return 0; /* committed already, just not locked */
  }
  if (region_open_unlocked(r, first, n) != 0) { errno = ENOMEM; return -1; }
  /* Mark only the pages that were not committed as unlocked. */
  for (size_t i = 0; i < n; i++) {
    size_t page = first + i;
    if (bits_count(r->committed_bits, page, 1)) continue;
    if (region_backend != LOF_BACKEND_UNLOCKED) bits_set(r->unlocked_bits, page, 1);
    bits_set(r->committed_bits, page, 1);
  }
  atomic_fetch_add(&region_count.committed, newly * LOF_PAGE_SIZE);
  lof__budget_fallback((int64_t)(newly * LOF_PAGE_SIZE));
  return 0;
}

/* Commit [addr, addr+len) of r readable and writable without locking it,
 * for a frontend that locks it as it is touched (jemalloc/boot.c, base
 * blocks), later, with lof__region_commit.  Until then it is fallback. */
int lof__region_commit_unlocked(lof_region_t *r, void *addr, size_t len) {
  if (region_check_reserved(r, addr, len) != 0) return -1;
  size_t first = PAGES((uintptr_t)addr - r->base), n = PAGES(len);
  atomic_fetch_add(&region_count.commit_calls, 1);
  if (bits_count(r->committed_bits, first, n) == n) return 0;
  if (region_open_unlocked(r, first, n) != 0) { errno = ENOMEM; return -1; }
  size_t newly = 0;
  for (size_t page = first; page < first + n; page++) {
    if (bits_count(r->committed_bits, page, 1)) continue;
    if (region_backend != LOF_BACKEND_UNLOCKED) bits_set(r->unlocked_bits, page, 1);
    bits_set(r->committed_bits, page, 1);
    newly++;
  }
  atomic_fetch_add(&region_count.committed, newly * LOF_PAGE_SIZE);
  lof__budget_fallback((int64_t)(newly * LOF_PAGE_SIZE));
  return 0;
}

bool lof__region_is_locked(const lof_region_t *r, const void *addr, size_t len) {
  if (!region_range_ok(r, addr, len)) return false;
  if (r->kind == LOF_REGION_WHOLE) return r->whole_locked;
  size_t first = PAGES((uintptr_t)addr - r->base), n = PAGES(len);
  return bits_count_locked((lof_region_t *)r, first, n) == n;
}

int lof__region_purge(lof_region_t *r, void *addr, size_t len) {
  if (!region_range_ok(r, addr, len)) { errno = EINVAL; return -1; }
  bool relock;
  if (r->kind == LOF_REGION_WHOLE) {
    relock = r->whole_locked;
  } else {
    size_t first = PAGES((uintptr_t)addr - r->base), n = PAGES(len);
    lof_assert_expensive(bits_count(r->committed_bits, first, n) == n);
    relock = bits_count_locked(r, first, n) > 0;
  }
  if (lof__os_purge(addr, len, relock) != 0) return -1;
  atomic_fetch_add(&region_count.purged, len);
  atomic_fetch_add(&region_count.purge_calls, 1);
  return 0;
}

/* Decommit in a lockall region: the pages go (MADV_DONTNEED_LOCKED: the
 * kernel releases their charge) and the range stays readable, writable and
 * locked on fault, in the reservation's one VMA; pages committed unlocked
 * (fallback) are locked again.  If that lock is refused the region leaves
 * lockall: its commits then lock range by range.  0, or -1 + errno. */
static int region_decommit_lockall(lof_region_t *r, void *addr, size_t len, bool had_unlocked) {
  if (lof__os_purge(addr, len, true) != 0) return -1;
  if (had_unlocked && lof__os_lock_onfault(addr, len) != 0) r->lockall = false;
  return 0;
}

int lof__region_decommit(lof_region_t *r, void *addr, size_t len) {
  if (region_check_reserved(r, addr, len) != 0) return -1;
  size_t first = PAGES((uintptr_t)addr - r->base), n = PAGES(len);
  size_t committed = bits_count(r->committed_bits, first, n);
  size_t locked = bits_count_locked(r, first, n);
  /* On a failure the range is as it was (os.h): the counters keep it and
   * the caller keeps it committed. */
  if ((r->lockall ? region_decommit_lockall(r, addr, len, committed > locked)
                  : lof__os_decommit(addr, len)) != 0)
    return -1;
  bits_clear(r->committed_bits, first, n);
  bits_clear(r->unlocked_bits, first, n);
  atomic_fetch_sub(&region_count.committed, committed * LOF_PAGE_SIZE);
  /* the pages went back, as with a purge */
  atomic_fetch_add(&region_count.purged, committed * LOF_PAGE_SIZE);
  atomic_fetch_add(&region_count.purge_calls, 1);
  if (locked) lof__budget_refund(locked * LOF_PAGE_SIZE);
  if (committed > locked) lof__budget_fallback(-(int64_t)((committed - locked) * LOF_PAGE_SIZE));
  return 0;
}

/* munmap, and when the kernel refuses (it can: ENOMEM when a split would
 * pass vm.max_map_count), say so once and count it.  true if unmapped. */
static bool region_unmap(void *p, size_t len) {
  if (lof__os_release(p, len) == 0) return true;
  int err = errno;
  atomic_fetch_add(&region_count.release_failures, 1);
  atomic_fetch_add(&region_count.leaked, len);
  if (!atomic_flag_test_and_set(&region_release_warned))
    lof__message("warning: the kernel refused to unmap %zu bytes of heap (%s): they stay "
                 "mapped and counted (stats.release_failures, stats.leaked)",
                 len, strerror(err));
  return false;
}

void lof__region_release(lof_region_t *r) {
  if (r == NULL) return;
  size_t committed, locked;
  if (r->kind == LOF_REGION_WHOLE) {
    committed = PAGES(r->size);
    locked = r->whole_locked ? committed : 0;
  } else {
    committed = bits_count(r->committed_bits, 0, PAGES(r->size));
    locked = bits_count_locked(r, 0, PAGES(r->size));
  }
  sigset_t held;
  lof__lock_nosignal(&region_lock, &held);
  region_unlink(r);
  lof__unlock_nosignal(&region_lock, &held);
  if (region_unmap((void *)r->base, r->size + r->room)) {
    /* Only memory the kernel has really given back leaves the counters:
     * a refused unmap keeps it reserved, committed and charged (VmLck
     * still counts it). */
    atomic_fetch_sub(&region_count.reserved, r->size + r->room);
    atomic_fetch_sub(&region_count.committed, committed * LOF_PAGE_SIZE);
    if (locked) lof__budget_refund(locked * LOF_PAGE_SIZE);
    if (committed > locked) lof__budget_fallback(-(int64_t)((committed - locked) * LOF_PAGE_SIZE));
  }
  if (r->committed_bits) region_meta_release((void *)r->committed_bits, r->bitmap_bytes);
  atomic_fetch_sub(&region_count.regions, 1);
  lof__lock_nosignal(&region_lock, &held);
  r->next = region_free_descs;
  region_free_descs = r;
  lof__unlock_nosignal(&region_lock, &held);
}

/* ---- what region_stats.c reads ------------------------------------------------ */

void lof__region_counters(lof_stats_t *st) {
  st->backend = region_backend;
  st->mlockall_flags = (uint32_t)region_caps.mlockall_flags;
  strncpy(st->backend_name, region_backend_name(region_backend), sizeof st->backend_name - 1);
  st->reserved = atomic_load(&region_count.reserved);
  st->committed = atomic_load(&region_count.committed);
  st->purged = atomic_load(&region_count.purged);
  st->purge_calls = atomic_load(&region_count.purge_calls);
  st->commit_calls = atomic_load(&region_count.commit_calls);
  st->regions = atomic_load(&region_count.regions);
  st->release_failures = atomic_load(&region_count.release_failures);
  st->leaked = atomic_load(&region_count.leaked);
}

size_t lof__region_spans(lof_region_span_t *spans, size_t cap) {
  size_t n = 0;
  sigset_t held;
  lof__lock_nosignal(&region_lock, &held);
  for (lof_region_t *r = region_list; r && n < cap; r = r->next) {
    lof_region_span_t sp = {r->base, r->base + r->size + r->room};
    size_t i = n++;
    while (i > 0 && spans[i - 1].start > sp.start) { spans[i] = spans[i - 1]; i--; }
    spans[i] = sp;
  }
  lof__unlock_nosignal(&region_lock, &held);
  return n;
}

/* ---- fork -------------------------------------------------------------------- */

/* Order: region_lock, then the metadata table's lock (metadata is mapped
 * and locked under region_lock, never the other way round).  forklock.h:
 * safe when fork() is called from a signal handler. */
void lof__region_prefork(void) {
  lof__fork_lock(&region_lock);
  lof__fork_lock(&region_meta_lock_);
}

void lof__region_postfork_parent(void) {
  lof__fork_unlock(&region_meta_lock_);
  lof__fork_unlock(&region_lock);
}

/* The child's copy of [addr, addr+len) of r (a locked range) is not locked:
 * account it as committed unlocked, as the kernel sees it. */
static void region_child_unlocked(lof_region_t *r, uintptr_t addr, size_t len) {
  if (r->kind == LOF_REGION_WHOLE) r->whole_locked = false;
  else bits_set(r->unlocked_bits, PAGES(addr - r->base), PAGES(len));
  lof__budget_refund(len);
  lof__budget_fallback((int64_t)len);
}

/* Re-lock one locked range in the child; a refusal goes to the policy
 * (abort aborts the child; strict and fallback keep it unlocked, counted,
 * with the one-line message: the memory exists, nothing can be failed). */
static void region_child_relock(lof_region_t *r, uintptr_t addr, size_t len, bool relock) {
  if (relock && lof__os_lock_onfault((void *)addr, len) == 0) return;
  if (relock) lof__budget_refused("fork child's heap", len, LOF_REFUSED_KERNEL, errno, false);
  region_child_unlocked(r, addr, len);
}

/* A lockall region in the child: lock again every page but those committed
 * unlocked, uncommitted ones too (a commit makes no call).  A run that
 * cannot be locked (or LOFALLOC_FORK_RELOCK=0) takes the region out of
 * lockall: its committed pages there count unlocked, later commits lock. */
static void region_child_relock_whole(lof_region_t *r, bool relock) {
  size_t pages = PAGES(r->size), run = 0;
  for (size_t i = 0; i <= pages; i++) {
    if (i < pages) {
      uint64_t u = atomic_load_explicit(&r->unlocked_bits[i / 64], memory_order_relaxed);
      if (u == 0 && i % 64 == 0 && i + 64 <= pages) { run += 64; i += 63; continue; }
      if (!((u >> (i % 64)) & 1)) { run++; continue; }
    }
    if (run == 0) continue;
    uintptr_t addr = r->base + (i - run) * LOF_PAGE_SIZE;
    size_t len = run * LOF_PAGE_SIZE;
    run = 0;
    if (relock && lof__os_lock_onfault((void *)addr, len) == 0) continue;
    if (relock) lof__budget_refused("fork child's heap", len, LOF_REFUSED_KERNEL, errno, false);
    size_t was_locked = bits_mark_unlocked(r, PAGES(addr - r->base), PAGES(len));
    lof__budget_refund(was_locked * LOF_PAGE_SIZE);
    lof__budget_fallback((int64_t)(was_locked * LOF_PAGE_SIZE));
    r->lockall = false;
  }
}

/* Memory locks are not inherited across fork: lock the child's committed,
 * locked ranges again (on fault; resident pages are locked at once), and
 * the metadata too.  With LOFALLOC_FORK_RELOCK=0 the child's copy stays
 * unlocked and the stats say so. */
void lof__region_postfork_child(void) {
  lof__fork_reset(&region_lock);
  lof__fork_reset(&region_meta_lock_);
  if (region_backend == LOF_BACKEND_UNLOCKED) return;
  bool relock = lof__option(LOF_OPT_FORK_RELOCK) != 0;
  for (unsigned i = 0; i < region_meta_n; i++) {
    if (relock && lof__os_lock_onfault((void *)region_meta[i].start, region_meta[i].len) == 0)
      continue;
    lof__budget_unlock_meta(region_meta[i].len);
    region_meta[i--] = region_meta[--region_meta_n];
  }
  for (lof_region_t *r = region_list; r; r = r->next) {
    if (r->kind == LOF_REGION_WHOLE) {
      if (r->whole_locked) region_child_relock(r, r->base, r->size, relock);
      continue;
    }
    if (r->lockall) { region_child_relock_whole(r, relock); continue; }
    size_t pages = PAGES(r->size), run = 0;
    for (size_t i = 0; i <= pages; i++) {
      bool locked = false;
      if (i < pages) {
        size_t w = i / 64;
        uint64_t c = atomic_load_explicit(&r->committed_bits[w], memory_order_relaxed);
        if (c == 0 && run == 0 && i % 64 == 0) { i += 63; continue; } /* skip empty words */
        uint64_t u = atomic_load_explicit(&r->unlocked_bits[w], memory_order_relaxed);
        locked = ((c & ~u) >> (i % 64)) & 1;
      }
      if (locked) { run++; continue; }
      if (run)
        region_child_relock(r, r->base + (i - run) * LOF_PAGE_SIZE, run * LOF_PAGE_SIZE, relock);
      run = 0;
    }
  }
}
