/*
 * boot.c -- jemalloc's own mappings: the memory jemalloc maps with its
 * default hooks (its bootstrap, before our hooks are installed, and the
 * metadata blocks of bases created before them), which process.c adopts.
 *
 * Owns: the table of those mappings and, per mapping, which of its
 * granules (64 KiB, or coarser for mappings over 16 MiB) are locked on
 * fault; locking what jemalloc has touched of them when locking is
 * budgeted (through the gate, gate.c); re-locking them in a fork child,
 * and what a failed re-lock does (counted, reported once, abort under
 * LOFALLOC_POLICY=abort); the bytes they charge.  The
 * same table lists, where locking is budgeted, the base (metadata) blocks
 * jemalloc takes from our hooks (hooks.c): regions committed unlocked whose
 * touched granules are locked through the region layer (lof__region_commit,
 * which charges its budget and re-locks them after fork itself).
 *
 * Why granules: RLIMIT_MEMLOCK is charged by locked range.  jemalloc maps
 * 2-10 MiB at a time and touches a few hundred KiB of it; locked whole,
 * its first mappings took the whole default 8 MiB limit and left the heap
 * nothing.  Where locking is budgeted (see lof__je_lock_budgeted), a large
 * mapping is listed unlocked and lof__je_boot_lock_touched() locks the
 * granules that are resident (mincore), at moments when jemalloc grows:
 * start-up, each new region, each split of one of these ranges, stats.
 * A page jemalloc touches between two such moments is unlocked until the
 * next one.  Where locking is free every mapping is locked whole at once.
 *
 * Invariants: slots are claimed with an atomic counter and never reused; a
 * reader may see a claimed slot before it is filled (an empty range that
 * matches nothing).  A granule's bit is set only after mlock2 succeeded on
 * it.  Nothing here allocates or takes a lock: it runs inside jemalloc's
 * mmap and hooks, and in a fork child.
 */
#include <errno.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "je.h"
#include "options.h"
#include "os.h"

#define BOOT_SLOTS 1024
#define BOOT_WORDS 4 /* 256 granules per mapping */
#define BOOT_MIN_SHIFT 16 /* 64 KiB */

typedef struct boot_range {
  lof_region_t *region;               /* a base block's region, or NULL (jemalloc's own mmap) */
  _Atomic(uintptr_t) start;           /* first byte; 0 until filled (or removed) */
  _Atomic(uintptr_t) end;             /* one past the last byte */
  unsigned shift;                     /* granule = 1 << shift bytes */
  _Atomic(uint64_t) locked[BOOT_WORDS]; /* 1 bit per granule: locked on fault */
} boot_range_t;

static boot_range_t boot_ranges[BOOT_SLOTS];
static _Atomic(unsigned) boot_count;
static _Atomic(uint64_t) boot_locked_bytes; /* locked range of all mappings (charged) */
static _Atomic(int) boot_scanning;          /* one lock_touched at a time */

static unsigned boot_shift_for(size_t len) {
  unsigned shift = BOOT_MIN_SHIFT;
  while ((len >> shift) > BOOT_WORDS * 64 - 1) shift++;
  return shift;
}

/* [*lo, *hi) of granule g of b, clipped to the mapping. */
static void boot_granule(const boot_range_t *b, size_t g, uintptr_t *lo, uintptr_t *hi) {
  uintptr_t start = atomic_load(&b->start), end = atomic_load(&b->end);
  *lo = start + ((uintptr_t)g << b->shift);
  *hi = *lo + ((uintptr_t)1 << b->shift);
  if (*hi > end) *hi = end;
}

static size_t boot_granules(const boot_range_t *b) {
  uintptr_t len = atomic_load(&b->end) - atomic_load(&b->start);
  return (len + ((uintptr_t)1 << b->shift) - 1) >> b->shift;
}

static bool boot_bit(boot_range_t *b, size_t g) {
  return (atomic_load_explicit(&b->locked[g / 64], memory_order_relaxed) >> (g % 64)) & 1;
}

static void boot_mark(boot_range_t *b, size_t first, size_t n) {
  for (size_t g = first; g < first + n; g++)
    atomic_fetch_or_explicit(&b->locked[g / 64], (uint64_t)1 << (g % 64), memory_order_relaxed);
}

/* Claim a slot for [addr, addr+len); NULL when the table is full. */
static boot_range_t *boot_claim(const void *addr, size_t len, lof_region_t *region) {
  unsigned i = atomic_fetch_add(&boot_count, 1);
  if (i >= BOOT_SLOTS) {
    atomic_store(&boot_count, BOOT_SLOTS);
    return NULL;
  }
  boot_range_t *b = &boot_ranges[i];
  b->region = region;
  b->shift = boot_shift_for(len);
  atomic_store(&b->end, (uintptr_t)addr + len);
  atomic_store(&b->start, (uintptr_t)addr);
  return b;
}

bool lof__je_boot_add_base(lof_region_t *r) {
  return boot_claim((void *)r->base, r->size, r) != NULL;
}

bool lof__je_boot_add(const void *addr, size_t len, bool locked) {
  boot_range_t *b = boot_claim(addr, len, NULL);
  if (b == NULL) return false;
  if (locked) {
    boot_mark(b, 0, boot_granules(b));
    atomic_fetch_add(&boot_locked_bytes, len);
  }
  return true;
}

void lof__je_boot_remove(const void *addr) {
  unsigned n = atomic_load(&boot_count);
  for (unsigned i = 0; i < n && i < BOOT_SLOTS; i++) {
    boot_range_t *b = &boot_ranges[i];
    if (atomic_load(&b->start) != (uintptr_t)addr) continue;
    size_t granules = b->region != NULL ? 0 : boot_granules(b);
    for (size_t g = 0; g < granules; g++) {
      if (!boot_bit(b, g)) continue;
      uintptr_t lo, hi;
      boot_granule(b, g, &lo, &hi);
      atomic_fetch_sub(&boot_locked_bytes, hi - lo);
    }
    atomic_store(&b->start, 0);
    for (int w = 0; w < BOOT_WORDS; w++) atomic_store(&b->locked[w], 0);
    /* a scan that saw the entry before it was cleared may still use its
     * region: let it finish before the region is released */
    while (atomic_load(&boot_scanning) != 0) {
    }
    return;
  }
}

/* The listed mapping holding all of [addr, addr+len), or NULL. */
static boot_range_t *boot_find(const void *addr, size_t len) {
  unsigned n = atomic_load(&boot_count);
  uintptr_t a = (uintptr_t)addr;
  for (unsigned i = 0; i < n && i < BOOT_SLOTS; i++) {
    boot_range_t *b = &boot_ranges[i];
    uintptr_t s = atomic_load(&b->start);
    if (s != 0 && a >= s && a + len <= atomic_load(&b->end)) return b;
  }
  return NULL;
}

bool lof__je_boot_contains(const void *addr, size_t len) {
  boot_range_t *b = boot_find(addr, len);
  return b != NULL && b->region == NULL;
}

bool lof__je_boot_locked(const void *addr, size_t len) {
  boot_range_t *b = boot_find(addr, len);
  if (b == NULL || len == 0) return false;
  uintptr_t s = atomic_load(&b->start), a = (uintptr_t)addr;
  size_t first = (a - s) >> b->shift, last = (a + len - 1 - s) >> b->shift;
  for (size_t g = first; g <= last; g++)
    if (!boot_bit(b, g)) return false;
  return true;
}

uint64_t lof__je_boot_locked_bytes(void) { return atomic_load(&boot_locked_bytes); }

/* Lock granules [first, first+n) of b on fault: a base block's through
 * the region layer (its budget and policy), jemalloc's own mmap through the
 * gate.  False when refused: the caller stops there. */
static bool boot_lock_run(boot_range_t *b, size_t first, size_t n) {
  uintptr_t lo, hi, unused;
  boot_granule(b, first, &lo, &unused);
  boot_granule(b, first + n - 1, &unused, &hi);
  size_t len = hi - lo;
  if (b->region != NULL) {
    int saved = errno;
    int rc = lof__region_commit(b->region, (void *)lo, len);
    errno = saved;
    if (rc != 0 || !lof__region_is_locked(b->region, (void *)lo, len)) return false;
    boot_mark(b, first, n);
    return true;
  }
  if (!lof__je_gate_open(len, lof__je_boot_locked_bytes())) return false;
  int saved = errno;
  int rc = lof__os_lock_onfault((void *)lo, len);
  int err = errno;
  errno = saved;
  lof__je_gate_result(len, lof__je_boot_locked_bytes(), rc == 0, err);
  if (rc != 0) return false;
  boot_mark(b, first, n);
  atomic_fetch_add(&boot_locked_bytes, len);
  return true;
}

/* mincore() of granule g: true when any of its pages is resident.  A raw
 * system call, like the OS layer's: no libc state is touched. */
static bool boot_granule_touched(boot_range_t *b, size_t g) {
  uintptr_t lo, hi;
  boot_granule(b, g, &lo, &hi);
  unsigned char vec[256];
  while (lo < hi) {
    size_t pages = (hi - lo) / LOF_PAGE_SIZE;
    if (pages > sizeof vec) pages = sizeof vec;
    if (mincore((void *)lo, pages * LOF_PAGE_SIZE, vec) != 0) return false;
    for (size_t i = 0; i < pages; i++)
      if (vec[i] & 1) return true;
    lo += pages * LOF_PAGE_SIZE;
  }
  return false;
}

void lof__je_boot_lock_touched(void) {
  if (!lof__je_lock_budgeted() || lof__region_backend() == LOF_BACKEND_UNLOCKED) return;
  int idle = 0;
  if (!atomic_compare_exchange_strong(&boot_scanning, &idle, 1)) return;
  unsigned n = atomic_load(&boot_count);
  bool refused = false;
  for (unsigned i = 0; i < n && i < BOOT_SLOTS && !refused; i++) {
    boot_range_t *b = &boot_ranges[i];
    if (atomic_load(&b->start) == 0) continue;
    size_t granules = boot_granules(b), run = 0;
    for (size_t g = 0; g <= granules && !refused; g++) {
      bool want = g < granules && !boot_bit(b, g) && boot_granule_touched(b, g);
      if (want) { run++; continue; }
      if (run && !boot_lock_run(b, g - run, run)) refused = true;
      run = 0;
    }
  }
  atomic_store(&boot_scanning, 0);
}

/* The child could not lock its copy of some of jemalloc's own memory: it
 * stays unlocked (counted, one message), or the child aborts under
 * LOFALLOC_POLICY=abort. */
static void boot_relock_failed(size_t len, int err) {
  static _Atomic(bool) warned;
  atomic_fetch_add(&lof__je_counters.fork_relock_failures, 1);
  if (lof__option(LOF_OPT_POLICY) == LOF_POLICY_ABORT)
    lof__fatal("fork child: cannot lock %zu bytes of jemalloc's own memory again (errno %d); "
               "LOFALLOC_POLICY=abort", len, err);
  if (!atomic_exchange(&warned, true))
    lof__message("fork child: cannot lock %zu bytes of jemalloc's own memory again (errno %d), "
                 "it stays unlocked", len, err);
}

/* A run failed to lock again: jemalloc may have unmapped part of what it
 * mapped (it trims alignment slack), and mlock2 fails with ENOMEM over a
 * hole.  Lock page by page; a page that is not mapped (mincore: ENOMEM)
 * is skipped, any other failure is reported. */
static void boot_relock_pages(uintptr_t lo, uintptr_t hi) {
  for (uintptr_t a = lo; a < hi; a += LOF_PAGE_SIZE) {
    unsigned char c;
    if (mincore((void *)a, LOF_PAGE_SIZE, &c) != 0 && errno == ENOMEM) continue;
    if (lof__os_lock_onfault((void *)a, LOF_PAGE_SIZE) != 0)
      boot_relock_failed(LOF_PAGE_SIZE, errno);
  }
}

/* Memory locks are not inherited across fork: lock the child's copy of
 * every locked granule again (runs of granules, one mlock2 each). */
void lof__je_boot_postfork_child(void) {
  atomic_store(&boot_scanning, 0);
  unsigned n = atomic_load(&boot_count);
  for (unsigned i = 0; i < n && i < BOOT_SLOTS; i++) {
    boot_range_t *b = &boot_ranges[i];
    /* base blocks' regions are re-locked by the region layer */
    if (atomic_load(&b->start) == 0 || b->region != NULL) continue;
    size_t granules = boot_granules(b), run = 0;
    for (size_t g = 0; g <= granules; g++) {
      if (g < granules && boot_bit(b, g)) { run++; continue; }
      if (run) {
        uintptr_t lo, hi, unused;
        boot_granule(b, g - run, &lo, &unused);
        boot_granule(b, g - 1, &unused, &hi);
        if (lof__os_lock_onfault((void *)lo, hi - lo) != 0) boot_relock_pages(lo, hi);
      }
      run = 0;
    }
  }
}
