/*
 * jemalloc_api.c -- the jemalloc API answered by liblofalloc: mallctl (a
 * small table of names), mallctlnametomib/mallctlbymib, malloc_stats_print,
 * and the *allocx family.  A program linked against libjemalloc (Debian's
 * redis-server) and run with liblofalloc preloaded binds these names here,
 * so its INFO/MEMORY STATS numbers and MEMORY PURGE are lofalloc's, not an
 * idle jemalloc's.
 *
 * Semantics (doc/malloc.md "The jemalloc API"): stats.* are a snapshot taken
 * at the last write of "epoch" (taken on first read otherwise), as jemalloc
 * does; allocated = live usable bytes, active = allocated rounded up to
 * pages, resident = smaps Rss of the heap, mapped = committed, retained =
 * reserved but not committed.  arena.<i>.purge and arena.<i>.decay purge the
 * whole heap (lof_purge); thread.tcache.flush releases the calling thread's
 * empty spans.  The *allocx flags honour MALLOCX_LG_ALIGN and MALLOCX_ZERO;
 * tcache and arena bits are accepted and ignored.  Unknown names: ENOENT.
 * Built only when the library replaces malloc (these names would otherwise
 * shadow a real jemalloc's).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "frontend.h"

#ifdef LOF_OVERRIDE

#define JE_API LOF_EXPORT

JE_API int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
JE_API int mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp);
JE_API int mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp,
                        void *newp, size_t newlen);
JE_API void malloc_stats_print(void (*write_cb)(void *, const char *), void *cbopaque,
                               const char *opts);
JE_API void *mallocx(size_t size, int flags) LOF_MALLOC_ATTR;
JE_API void *rallocx(void *ptr, size_t size, int flags);
JE_API size_t xallocx(void *ptr, size_t size, size_t extra, int flags);
JE_API size_t sallocx(const void *ptr, int flags);
JE_API void dallocx(void *ptr, int flags);
JE_API void sdallocx(void *ptr, size_t size, int flags);
JE_API size_t nallocx(size_t size, int flags);

/* jemalloc's flag encoding (jemalloc_macros.h): low 6 bits lg(alignment),
 * bit 6 zero; higher bits tcache and arena, ignored here. */
#define JE_FLAG_LG_ALIGN(f) ((unsigned)(f) & 0x3fu)
#define JE_FLAG_ZERO 0x40
#define JE_ARENAS_ALL 4096u /* MALLCTL_ARENAS_ALL */

static const char je_api_version[] = "5.3.0-0-lofalloc-" PACKAGE_VERSION;

/* ---- the stats snapshot behind stats.* ------------------------------------ */

static pthread_mutex_t je_snap_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t je_epoch;
static bool je_snap_valid;
static size_t je_snap_allocated, je_snap_active, je_snap_resident, je_snap_mapped,
    je_snap_retained;

static void je_snapshot_refresh_locked(void) {
  lof_stats_t st;
  lof_stats_get(&st, sizeof st);
  je_snap_allocated = (size_t)st.allocated;
  je_snap_active = LOF_ALIGN_UP((size_t)st.allocated, LOF_PAGE_SIZE);
  je_snap_resident = (size_t)st.resident;
  je_snap_mapped = (size_t)st.committed;
  je_snap_retained = st.reserved > st.committed ? (size_t)(st.reserved - st.committed) : 0;
  je_snap_valid = true;
}

/* ---- reading and writing one value, as jemalloc's ctl does --------------- */

/* Copy a value out: EINVAL (after a partial copy) when the size is wrong. */
static int je_read(void *oldp, size_t *oldlenp, const void *v, size_t vlen) {
  if (oldp == NULL || oldlenp == NULL) return 0;
  if (*oldlenp != vlen) {
    memcpy(oldp, v, *oldlenp < vlen ? *oldlenp : vlen);
    return EINVAL;
  }
  memcpy(oldp, v, vlen);
  return 0;
}

static int je_readonly(const void *newp, size_t newlen) {
  return newp != NULL || newlen != 0 ? EPERM : 0;
}

static int je_void(void *oldp, size_t *oldlenp, const void *newp, size_t newlen) {
  return oldp != NULL || oldlenp != NULL || newp != NULL || newlen != 0 ? EINVAL : 0;
}

typedef int (*je_ctl_fn)(unsigned index, void *oldp, size_t *oldlenp, void *newp,
                         size_t newlen);

static int ctl_epoch(unsigned i, void *oldp, size_t *oldlenp, void *newp, size_t newlen) {
  (void)i;
  if (newp != NULL && newlen != sizeof(uint64_t)) return EINVAL;
  pthread_mutex_lock(&je_snap_lock);
  if (newp != NULL) {
    je_snapshot_refresh_locked();
    je_epoch++;
  }
  uint64_t e = je_epoch;
  pthread_mutex_unlock(&je_snap_lock);
  return je_read(oldp, oldlenp, &e, sizeof e);
}

static int ctl_version(unsigned i, void *oldp, size_t *oldlenp, void *newp, size_t newlen) {
  (void)i;
  int e = je_readonly(newp, newlen);
  if (e) return e;
  const char *v = je_api_version;
  return je_read(oldp, oldlenp, &v, sizeof v);
}

enum { STAT_ALLOCATED, STAT_ACTIVE, STAT_RESIDENT, STAT_MAPPED, STAT_RETAINED };

static int ctl_stat(unsigned which, void *oldp, size_t *oldlenp, void *newp, size_t newlen) {
  int e = je_readonly(newp, newlen);
  if (e) return e;
  pthread_mutex_lock(&je_snap_lock);
  if (!je_snap_valid) je_snapshot_refresh_locked();
  size_t v = which == STAT_ALLOCATED ? je_snap_allocated
             : which == STAT_ACTIVE  ? je_snap_active
             : which == STAT_RESIDENT ? je_snap_resident
             : which == STAT_MAPPED ? je_snap_mapped
                                    : je_snap_retained;
  pthread_mutex_unlock(&je_snap_lock);
  return je_read(oldp, oldlenp, &v, sizeof v);
}

static int ctl_narenas(unsigned i, void *oldp, size_t *oldlenp, void *newp, size_t newlen) {
  (void)i;
  int e = je_readonly(newp, newlen);
  if (e) return e;
  lof__malloc_init();
  unsigned n = lof__narenas;
  return je_read(oldp, oldlenp, &n, sizeof n);
}

static int ctl_size_const(unsigned which, void *oldp, size_t *oldlenp, void *newp,
                          size_t newlen) {
  int e = je_readonly(newp, newlen);
  if (e) return e;
  size_t v = which == 0 ? LOF_PAGE_SIZE : LOF_MIN_ALIGN;
  return je_read(oldp, oldlenp, &v, sizeof v);
}

/* arena.<i>.purge / arena.<i>.decay: the heap is purged whole.  As in
 * jemalloc, i = narenas and i = MALLCTL_ARENAS_ALL name every arena. */
static int ctl_arena_purge(unsigned arena, void *oldp, size_t *oldlenp, void *newp,
                           size_t newlen) {
  int e = je_void(oldp, oldlenp, newp, newlen);
  if (e) return e;
  lof__malloc_init();
  if (arena != JE_ARENAS_ALL && arena > lof__narenas) return EFAULT;
  lof_purge();
  return 0;
}

static int ctl_tcache_flush(unsigned i, void *oldp, size_t *oldlenp, void *newp,
                            size_t newlen) {
  (void)i;
  int e = je_void(oldp, oldlenp, newp, newlen);
  if (e) return e;
  lof_heap_t *h = lof__heap_tls;
  if (h != NULL && h != &lof__heap_empty) lof__heap_collect(h);
  return 0;
}

/* The names: "arena.<i>.purge" is matched with the index cut out. */
typedef struct je_ctl {
  const char *name;
  je_ctl_fn fn;
  unsigned arg;       /* passed as index unless the name carries one */
} je_ctl_t;

static const je_ctl_t je_ctls[] = {
  {"epoch", ctl_epoch, 0},
  {"version", ctl_version, 0},
  {"stats.allocated", ctl_stat, STAT_ALLOCATED},
  {"stats.active", ctl_stat, STAT_ACTIVE},
  {"stats.resident", ctl_stat, STAT_RESIDENT},
  {"stats.mapped", ctl_stat, STAT_MAPPED},
  {"stats.retained", ctl_stat, STAT_RETAINED},
  {"arenas.narenas", ctl_narenas, 0},
  {"arenas.page", ctl_size_const, 0},
  {"arenas.quantum", ctl_size_const, 1},
  {"arena.#.purge", ctl_arena_purge, 0},
  {"arena.#.decay", ctl_arena_purge, 0},
  {"thread.tcache.flush", ctl_tcache_flush, 0},
};
#define JE_NCTLS (sizeof je_ctls / sizeof je_ctls[0])

/* Match name against pattern ('#' = a decimal index, stored in *index). */
static bool je_name_match(const char *pattern, const char *name, unsigned *index) {
  for (;;) {
    if (*pattern == '#') {
      if (*name < '0' || *name > '9') return false;
      unsigned long v = 0;
      while (*name >= '0' && *name <= '9') {
        v = v * 10 + (unsigned long)(*name++ - '0');
        if (v > 0xffffffffUL) return false;
      }
      *index = (unsigned)v;
      pattern++;
      continue;
    }
    if (*pattern != *name) return false;
    if (*pattern == '\0') return true;
    pattern++;
    name++;
  }
}

static int je_lookup(const char *name, size_t *ctl, unsigned *index) {
  if (name == NULL) return EINVAL;
  for (size_t i = 0; i < JE_NCTLS; i++) {
    *index = je_ctls[i].arg;
    if (je_name_match(je_ctls[i].name, name, index)) {
      *ctl = i;
      return 0;
    }
  }
  return ENOENT;
}

int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) {
  size_t ctl;
  unsigned index;
  int e = je_lookup(name, &ctl, &index);
  if (e) return e;
  return je_ctls[ctl].fn(index, oldp, oldlenp, newp, newlen);
}

/* A MIB here is {table index, arena index}. */
int mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp) {
  if (mibp == NULL || miblenp == NULL || *miblenp < 2) return EINVAL;
  size_t ctl;
  unsigned index;
  int e = je_lookup(name, &ctl, &index);
  if (e) return e;
  mibp[0] = ctl;
  mibp[1] = index;
  *miblenp = 2;
  return 0;
}

int mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp,
                 size_t newlen) {
  if (mib == NULL || miblen != 2 || mib[0] >= JE_NCTLS || mib[1] > 0xffffffffu) return ENOENT;
  return je_ctls[mib[0]].fn((unsigned)mib[1], oldp, oldlenp, newp, newlen);
}

/* ---- malloc_stats_print ---------------------------------------------------- */

void malloc_stats_print(void (*write_cb)(void *, const char *), void *cbopaque,
                        const char *opts) {
  (void)opts;
  lof_stats_t st;
  lof_stats_get(&st, sizeof st);
  char buf[1024];
  int n = snprintf(buf, sizeof buf,
                   "___ Begin lofalloc statistics (jemalloc API) ___\n"
                   "Version: \"%s\"\n"
                   "Backend: %s, policy %s\n"
                   "Allocated: %llu, active: %llu, resident: %llu, mapped: %llu, retained: %llu\n"
                   "Locked range: %llu, locked resident: %llu, fallback (unlocked): %llu\n"
                   "Live allocations: %llu, purged: %llu in %llu calls, heap VMAs: %llu\n"
                   "--- End lofalloc statistics ---\n",
                   je_api_version, st.backend_name, st.policy_name,
                   (unsigned long long)st.allocated,
                   (unsigned long long)LOF_ALIGN_UP(st.allocated, LOF_PAGE_SIZE),
                   (unsigned long long)st.resident, (unsigned long long)st.committed,
                   (unsigned long long)(st.reserved > st.committed ? st.reserved - st.committed : 0),
                   (unsigned long long)st.locked_range, (unsigned long long)st.locked_resident,
                   (unsigned long long)st.fallback, (unsigned long long)st.allocations,
                   (unsigned long long)st.purged, (unsigned long long)st.purge_calls,
                   (unsigned long long)st.heap_vmas);
  if (n <= 0) return;
  if (write_cb != NULL) {
    write_cb(cbopaque, buf);
  } else {
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    (void)w;
  }
}

/* ---- the *allocx family ------------------------------------------------- */

static size_t je_align_of(int flags) {
  unsigned lg = JE_FLAG_LG_ALIGN(flags);
  return lg == 0 || lg >= 63 ? 0 : (size_t)1 << lg;
}

void *mallocx(size_t size, int flags) {
  size_t align = je_align_of(flags);
  if (JE_FLAG_LG_ALIGN(flags) >= 63) { errno = EINVAL; return NULL; }
  void *p;
  if (align <= LOF_MIN_ALIGN) {
    p = (flags & JE_FLAG_ZERO) ? lof_calloc(1, size) : lof_malloc(size);
  } else {
    p = lof_aligned_alloc(align, size);
    if (p != NULL && (flags & JE_FLAG_ZERO)) memset(p, 0, size);
  }
  return p;
}

void *rallocx(void *ptr, size_t size, int flags) {
  if (ptr == NULL) return mallocx(size, flags);
  size_t align = je_align_of(flags);
  size_t old = lof_malloc_usable_size(ptr);
  void *q;
  if (align <= LOF_MIN_ALIGN) {
    q = lof_realloc(ptr, size == 0 ? 1 : size);
    if (q == NULL) return NULL;
  } else if (((uintptr_t)ptr & (align - 1)) == 0 && size <= old) {
    q = ptr; /* already aligned and big enough */
  } else {
    q = mallocx(size, flags & ~JE_FLAG_ZERO);
    if (q == NULL) return NULL;
    memcpy(q, ptr, old < size ? old : size);
    lof_free(ptr);
  }
  if ((flags & JE_FLAG_ZERO) && size > old) memset((char *)q + old, 0, size - old);
  return q;
}

/* In place only: lofalloc never grows a block in place through this call,
 * so the answer is the block's size as it stands (a caller learns it did not
 * get size + extra when the result is smaller). */
size_t xallocx(void *ptr, size_t size, size_t extra, int flags) {
  (void)size;
  (void)extra;
  (void)flags;
  return ptr == NULL ? 0 : lof_malloc_usable_size(ptr);
}

size_t sallocx(const void *ptr, int flags) {
  (void)flags;
  return lof_malloc_usable_size(ptr);
}

void dallocx(void *ptr, int flags) {
  (void)flags;
  lof_free(ptr);
}

void sdallocx(void *ptr, size_t size, int flags) {
  (void)size;
  (void)flags;
  lof_free(ptr);
}

/* The usable size mallocx(size, flags) would return, without allocating;
 * 0 when the request cannot be served. */
size_t nallocx(size_t size, int flags) {
  if (JE_FLAG_LG_ALIGN(flags) >= 63) return 0;
  size_t align = je_align_of(flags);
  if (size == 0) size = 1;
  if (size > ((size_t)1 << 47) || align > LOF_MAX_ALIGN) return 0;
  if (align > LOF_MIN_ALIGN) {
    size_t sz = size > align ? size : align;
    if (sz <= LOF_PAGE_SIZE) /* power-of-two classes up to a page are self-aligned */
      return (size_t)1 << (64 - __builtin_clzll((unsigned long long)sz - 1));
    return LOF_ALIGN_UP(size, LOF_PAGE_SIZE);
  }
  if (size <= LOF_SMALL_MAX) return lof__class_size[lof__size_class(size)];
  return LOF_ALIGN_UP(size, LOF_PAGE_SIZE);
}

#endif /* LOF_OVERRIDE */
