/*
 * hooks.c -- jemalloc extent hooks on lofalloc's region layer.
 *
 * Owns: lof__je_hooks, the table every lock-on-fault arena is created with,
 * and the ledger of how many bytes of each region jemalloc still holds.
 *
 * Mapping of jemalloc's extent life cycle onto regions:
 *  - alloc reserves one region per call (aligned as asked); fresh pages
 *    read as zero (*zero).  A request for a given new_addr is refused: a
 *    region's free address space is jemalloc's, not ours, to hand out again.
 *  - Two commit modes (LOFALLOC_JE_COMMIT=auto|eager|lazy, read once):
 *    lazy commits only what jemalloc asks (*commit, the commit hook) and
 *    honours decommit, so RLIMIT_MEMLOCK is charged for what jemalloc uses
 *    and uncharged when it purges; eager commits every region whole at alloc
 *    (reporting *commit = true, which jemalloc allows) and refuses decommit,
 *    so jemalloc purges with purge_forced and never calls commit again:
 *    no commit/decommit system calls and VMA splits on the hot path (lazy
 *    mode makes one commit per slab: the hooks test counts ~7000 for 60 000
 *    small allocations), at the price of charging the not yet used tail of
 *    each grown region.  auto = eager when locking is
 *    not budgeted (CAP_IPC_LOCK or RLIMIT_MEMLOCK unlimited, no
 *    LOFALLOC_MAX_LOCKED), else lazy.  An eager commit that fails (strict
 *    policy) leaves the region reserved, as jemalloc asked.  Where locking
 *    is budgeted (lazy mode, fallback policy) a base (metadata) block is
 *    committed unlocked and locked as jemalloc touches it (boot.c): each
 *    arena's first one would otherwise charge 2 MiB of RLIMIT_MEMLOCK.
 *  - purge_forced is lof__region_purge (MADV_DONTNEED_LOCKED or the
 *    pre-5.18 fallback); purge_lazy is refused: MADV_FREE fails with EINVAL
 *    on locked memory, and a "lazy" purge that drops pages anyway would make
 *    jemalloc's muzzy stage a second forced purge.  jemalloc then skips the
 *    muzzy state and hands the extent to dalloc.
 *  - dalloc: with opt.retain (Debian's default) we opt out, so jemalloc
 *    keeps the address range and decommits it through our decommit hook
 *    (memory back to the OS, address space kept, as retain means) -- except
 *    for a range that is a whole region (base blocks at arena destruction,
 *    a grown region whose pieces all merged back), which is released.
 *    Without retain we accept: the range is decommitted and, once jemalloc
 *    holds no byte of the region, the region is released.
 *  - destroy decommits, and releases the region with its last byte.
 *  - split is always fine (the region layer keeps no per-extent state);
 *    merge only within one region (two regions are two reservations).
 *
 * Ranges not from the region layer ("foreign") reach the hooks in the
 * whole-process mode, where arena 0 already held extents from jemalloc's
 * default hooks when ours were installed: they are treated as plain mmap'd
 * memory (purged with MADV_DONTNEED_LOCKED, unmapped on dalloc/destroy).
 *
 * Invariants: no hook calls malloc, stdio or getenv (they run inside
 * jemalloc's malloc, under its locks); the ledger mutex is held only for a
 * table update, never across a system call; a region's ledger entry is
 * removed before the region is released.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "je.h"
#include "options.h"
#include "os.h"
#include "region.h"

bool lof__je_hooks_retain = true;
bool lof__je_hooks_eager;

static void hooks_init_once(void);
static void hooks_lock_images(void);

void lof__je_hooks_init(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, hooks_init_once);
}

#define HOOKS_COUNT(field) atomic_fetch_add_explicit(&lof__je_counters.field, 1, memory_order_relaxed)

static void hooks_init_once(void) {
  bool retain = true;
  size_t sz = sizeof(retain);
  if (mallctl("opt.retain", &retain, &sz, NULL, 0) == 0) lof__je_hooks_retain = retain;
  lof__region_init();
  hooks_lock_images();
  int64_t mode = lof__option(LOF_OPT_JE_COMMIT);
  lof__je_hooks_eager = mode == LOF_JE_COMMIT_EAGER ||
                        (mode == LOF_JE_COMMIT_AUTO && !lof__je_lock_budgeted());
  if (lof__option(LOF_OPT_VERBOSE))
    lof__message("jemalloc hooks: retain %s, commit %s", retain ? "on" : "off",
                 lof__je_hooks_eager ? "eager" : "lazy");
}

/* ---- the region ledger: bytes of each region jemalloc holds ------------- */

/* Open addressing on the region pointer, tombstones for removals.  Sized for
 * the regions of a large process without retain (one per extent alloc);
 * a full table only means such regions are never released (one warning). */
#define LEDGER_SLOTS ((size_t)1 << 16)
#define LEDGER_TOMB ((lof_region_t *)1)

typedef struct ledger_slot {
  lof_region_t *region;      /* NULL = never used, LEDGER_TOMB = removed */
  size_t held;               /* bytes of the region jemalloc still holds */
} ledger_slot_t;

static _Alignas(4096) ledger_slot_t ledger_table[LEDGER_SLOTS]; /* page-aligned: locked apart */
static pthread_mutex_t ledger_mutex = PTHREAD_MUTEX_INITIALIZER;
static bool ledger_full_warned;

/* The static data every call reads, locked on fault like the heap's
 * bookkeeping (region/image.c): libjemalloc's writable segment (its
 * globals; about 2.2 MiB of it in Debian's build, mostly BSS) and this
 * library's, the ledger apart (1 MiB).  Under a RLIMIT_MEMLOCK a part over
 * 64 KiB stays unlocked (the kernel charges the whole range): so there
 * libjemalloc's segment and the ledger do, and the rest of ours is locked. */
static void hooks_lock_images(void) {
  lof__region_meta_lock_image(LOF_JE_OBJECT_ANCHOR, NULL, 0);
  lof__region_meta_lock_image(&lof__je_hooks_retain, ledger_table, sizeof ledger_table);
  lof__region_meta_lock_bounded(ledger_table, sizeof ledger_table);
}

static size_t ledger_hash(const lof_region_t *r) {
  uintptr_t x = (uintptr_t)r >> 4;
  x ^= x >> 17;
  x *= (uintptr_t)0x9E3779B97F4A7C15ull;
  return (size_t)(x >> 16) & (LEDGER_SLOTS - 1);
}

/* Start tracking r with size bytes held.  False when the table is full. */
static bool ledger_add(lof_region_t *r, size_t size) {
  bool ok = false;
  pthread_mutex_lock(&ledger_mutex);
  size_t i = ledger_hash(r);
  for (size_t n = 0; n < LEDGER_SLOTS; n++, i = (i + 1) & (LEDGER_SLOTS - 1)) {
    if (ledger_table[i].region == NULL || ledger_table[i].region == LEDGER_TOMB) {
      ledger_table[i].region = r;
      ledger_table[i].held = size;
      ok = true;
      break;
    }
  }
  bool warn = !ok && !ledger_full_warned;
  if (warn) ledger_full_warned = true;
  pthread_mutex_unlock(&ledger_mutex);
  if (warn)
    lof__message("jemalloc hooks: region ledger full, some regions will never be released");
  return ok;
}

/* jemalloc gave back len bytes of r.  True when that was its last byte (the
 * entry is removed and the caller releases r). */
static bool ledger_sub(lof_region_t *r, size_t len) {
  bool last = false;
  pthread_mutex_lock(&ledger_mutex);
  size_t i = ledger_hash(r);
  for (size_t n = 0; n < LEDGER_SLOTS; n++, i = (i + 1) & (LEDGER_SLOTS - 1)) {
    if (ledger_table[i].region == NULL) break;
    if (ledger_table[i].region == r) {
      lof_assert(ledger_table[i].held >= len);
      ledger_table[i].held -= len;
      if (ledger_table[i].held == 0) {
        ledger_table[i].region = LEDGER_TOMB;
        last = true;
      }
      break;
    }
  }
  pthread_mutex_unlock(&ledger_mutex);
  return last;
}

/* fork (fork.c): the ledger mutex is never held together with the region
 * layer's, so either order works; fork.c takes it first. */
void lof__je_hooks_prefork(void) { pthread_mutex_lock(&ledger_mutex); }
void lof__je_hooks_postfork_parent(void) { pthread_mutex_unlock(&ledger_mutex); }
void lof__je_hooks_postfork_child(void) { pthread_mutex_init(&ledger_mutex, NULL); }

/* ---- helpers ------------------------------------------------------------ */

/* The region holding all of [addr, addr+len), or NULL (foreign memory). */
static lof_region_t *hooks_region(const void *addr, size_t len) {
  lof_region_t *r = lof__region_find(addr);
  if (r == NULL) return NULL;
  lof_assert((uintptr_t)addr + len <= r->base + r->size);
  return r;
}

/* The range [addr + offset, + length) a commit, decommit or purge hook is
 * asked about: its start in *p, and its region, or NULL (foreign memory,
 * counted here). */
static lof_region_t *hooks_subrange(void *addr, size_t offset, size_t length, void **p) {
  *p = (char *)addr + offset;
  lof_region_t *r = hooks_region(*p, length);
  if (r == NULL) HOOKS_COUNT(foreign);
  return r;
}

/* Run a region-layer operation on [p, p+length) of r for a hook: jemalloc's
 * "failed" (true) when it fails, errno unchanged. */
static bool hooks_apply(int (*op)(lof_region_t *, void *, size_t), lof_region_t *r, void *p,
                        size_t length) {
  int saved = errno;
  bool failed = op(r, p, length) != 0;
  errno = saved;
  return failed;
}

/* jemalloc gives back [addr, addr+size) of r for good.  The range is
 * decommitted before the ledger is updated: once another thread's give-back
 * finds the region empty it releases it, and r is gone. */
static void hooks_give_back(lof_region_t *r, void *addr, size_t size, bool committed) {
  bool whole = (uintptr_t)addr == r->base && size == r->size;
  if (committed && !whole && lof__region_decommit(r, addr, size) != 0) {
    /* The pages stay committed and locked until the region goes. */
    lof__message("jemalloc hooks: decommit of %zu bytes failed (errno %d)", size, errno);
  }
  if (ledger_sub(r, size)) {
    lof__je_boot_remove((void *)r->base);
    lof__region_release(r);
    HOOKS_COUNT(releases);
  }
}

/* ---- the hooks ------------------------------------------------------------ */

/* A base (metadata) block: jemalloc maps them committed, 2 MiB aligned, in
 * 2 MiB multiples, and touches a few KiB of each.  Where locking is
 * budgeted (lazy mode, fallback policy) such a block is not locked whole
 * (each arena's first one would charge 2 MiB of RLIMIT_MEMLOCK): it is
 * committed unlocked and listed in boot.c, which locks the granules
 * jemalloc touches.  (An extent asked committed with that alignment, as
 * without retain, is treated the same.) */
#define HOOKS_BASE_ALIGN ((size_t)2 << 20)
static bool hooks_is_base_block(size_t size, size_t align, bool commit) {
  return commit && !lof__je_hooks_eager && align == HOOKS_BASE_ALIGN &&
         (size & (HOOKS_BASE_ALIGN - 1)) == 0 && lof__je_lock_budgeted() &&
         lof__option(LOF_OPT_POLICY) == LOF_POLICY_FALLBACK;
}

static void *hooks_alloc(extent_hooks_t *h, void *new_addr, size_t size,
                         size_t alignment, bool *zero, bool *commit,
                         unsigned arena_ind) {
  (void)h;
  (void)arena_ind;
  if (new_addr != NULL || size == 0 || (size & (LOF_PAGE_SIZE - 1)) != 0) {
    HOOKS_COUNT(alloc_fails);
    return NULL;
  }
  size_t align = alignment < LOF_PAGE_SIZE ? LOF_PAGE_SIZE : alignment;
  if (!LOF_IS_POW2(align)) {
    HOOKS_COUNT(alloc_fails);
    return NULL;
  }
  int saved = errno;
  lof__je_boot_lock_touched(); /* jemalloc grows: lock what it touched of its own */
  lof_region_t *r = lof__region_reserve(size, align);
  if (r == NULL) {
    HOOKS_COUNT(alloc_fails);
    errno = saved;
    return NULL;
  }
  void *p = (void *)r->base;
  if (hooks_is_base_block(size, align, *commit)) {
    /* Charge follows use: committed unlocked, locked as touched (boot.c). */
    if (lof__region_commit_unlocked(r, p, size) != 0) {
      lof__region_release(r);
      HOOKS_COUNT(alloc_fails);
      errno = saved;
      return NULL;
    }
    *commit = true;
    if (!lof__je_boot_add_base(r)) (void)lof__region_commit(r, p, size); /* table full: whole */
  } else if (*commit || lof__je_hooks_eager) {
    if (lof__region_commit(r, p, size) == 0) {
      *commit = true;
    } else if (*commit) {
      /* strict policy (or the kernel) refused: jemalloc reports ENOMEM. */
      lof__region_release(r);
      HOOKS_COUNT(alloc_fails);
      errno = saved;
      return NULL;
    } /* else an eager commit failed: hand it out reserved, as asked */
  }
  (void)ledger_add(r, size); /* untracked when full: never released, still correct */
  *zero = true; /* fresh pages, committed or not, read as zero */
  HOOKS_COUNT(allocs);
  errno = saved;
  return p;
}

static bool hooks_dalloc(extent_hooks_t *h, void *addr, size_t size,
                         bool committed, unsigned arena_ind) {
  (void)h;
  (void)arena_ind;
  lof_region_t *r = hooks_region(addr, size);
  if (r == NULL) {
    /* Foreign: plain mmap'd memory jemalloc would have unmapped itself. */
    HOOKS_COUNT(foreign);
    if (lof__je_hooks_retain) return true;
    return lof__os_release(addr, size) != 0;
  }
  /* Under retain we opt out (jemalloc decommits and keeps the range), unless
   * the range is a whole region: then nothing of the region is in use (a
   * base block at arena destruction, or every piece of a grown region
   * merged back) and releasing it loses no address space jemalloc keeps. */
  bool whole = (uintptr_t)addr == r->base && size == r->size;
  if (lof__je_hooks_retain && !whole) return true;
  hooks_give_back(r, addr, size, committed);
  HOOKS_COUNT(dallocs);
  return false;
}

static void hooks_destroy(extent_hooks_t *h, void *addr, size_t size,
                          bool committed, unsigned arena_ind) {
  (void)h;
  (void)arena_ind;
  HOOKS_COUNT(destroys);
  lof_region_t *r = hooks_region(addr, size);
  if (r == NULL) {
    HOOKS_COUNT(foreign);
    lof__os_release(addr, size);
    return;
  }
  hooks_give_back(r, addr, size, committed);
}

static bool hooks_commit(extent_hooks_t *h, void *addr, size_t size,
                         size_t offset, size_t length, unsigned arena_ind) {
  (void)h;
  (void)arena_ind;
  void *p;
  lof_region_t *r = hooks_subrange(addr, offset, length, &p);
  /* Foreign memory comes from jemalloc's default hooks, which never
   * decommit on Linux: it is committed already. */
  if (r == NULL) return false;
  return hooks_apply(lof__region_commit, r, p, length);
}

static bool hooks_decommit(extent_hooks_t *h, void *addr, size_t size,
                           size_t offset, size_t length, unsigned arena_ind) {
  (void)h;
  (void)arena_ind;
  void *p;
  lof_region_t *r = hooks_subrange(addr, offset, length, &p);
  if (r == NULL) return true;           /* jemalloc purges it instead */
  if (lof__je_hooks_eager) return true; /* purge instead: see the banner */
  return hooks_apply(lof__region_decommit, r, p, length);
}

static bool hooks_purge_lazy(extent_hooks_t *h, void *addr, size_t size,
                             size_t offset, size_t length, unsigned arena_ind) {
  (void)h;
  (void)addr;
  (void)size;
  (void)offset;
  (void)length;
  (void)arena_ind;
  return true; /* not supported on locked memory: see the banner */
}

static bool hooks_purge_forced(extent_hooks_t *h, void *addr, size_t size,
                               size_t offset, size_t length, unsigned arena_ind) {
  (void)h;
  (void)arena_ind;
  void *p;
  lof_region_t *r = hooks_subrange(addr, offset, length, &p);
  if (r != NULL) return hooks_apply(lof__region_purge, r, p, length);
  int saved = errno;
  bool failed = lof__os_purge(p, length, lof__je_boot_locked(p, length)) != 0;
  errno = saved;
  return failed;
}

static bool hooks_split(extent_hooks_t *h, void *addr, size_t size,
                        size_t size_a, size_t size_b, bool committed,
                        unsigned arena_ind) {
  (void)h;
  /* jemalloc carves one of its own mappings: lock what it touched so far */
  if (lof__je_lock_budgeted() && lof__je_boot_contains(addr, size)) {
    int saved = errno;
    lof__je_boot_lock_touched();
    errno = saved;
  }
  (void)size_a;
  (void)size_b;
  (void)committed;
  (void)arena_ind;
  return false;
}

static bool hooks_merge(extent_hooks_t *h, void *addr_a, size_t size_a,
                        void *addr_b, size_t size_b, bool committed,
                        unsigned arena_ind) {
  (void)h;
  (void)committed;
  (void)arena_ind;
  lof_region_t *ra = lof__region_find(addr_a);
  if (ra == NULL) {
    /* Two foreign extents may merge (mmap'd memory, as jemalloc's own
     * hooks allow); a foreign one and a region's may not. */
    return lof__region_find(addr_b) != NULL;
  }
  uintptr_t b = (uintptr_t)addr_b;
  return !(b >= ra->base && b + size_b <= ra->base + ra->size);
}

extent_hooks_t lof__je_hooks = {
  .alloc = hooks_alloc,
  .dalloc = hooks_dalloc,
  .destroy = hooks_destroy,
  .commit = hooks_commit,
  .decommit = hooks_decommit,
  .purge_lazy = hooks_purge_lazy,
  .purge_forced = hooks_purge_forced,
  .split = hooks_split,
  .merge = hooks_merge,
};
