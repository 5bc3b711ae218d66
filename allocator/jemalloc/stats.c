/*
 * stats.c -- lof_je_stats_get/print: the region layer's counters (what is
 * reserved, committed, locked, purged) plus what jemalloc's own statistics
 * say the lock-on-fault arenas hand out.
 *
 * Reads jemalloc's stats through mallctl (after an "epoch" refresh), so it
 * must not be called from inside a hook; it may allocate inside jemalloc.
 *
 * Also owned here: the registry of which arenas use the hooks (arena.c marks
 * them; lof_je_arena_is_lof reads it), and the LOFALLOC_STATS report at exit,
 * registered by the entry points (arena.c, lof__je_stats_at_exit).
 * Invariants: the registry only grows (jemalloc arenas that are destroyed
 * keep their bit, their stats read as zero).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "je.h"
#include "options.h"
#include "region.h"

/* MALLOCX_ARENA() encodes indices below 4095. */
#define ARENA_MAX 4096
static _Atomic(uint64_t) arena_bits[ARENA_MAX / 64];

void lof__je_arena_mark(unsigned ind) {
  if (ind < ARENA_MAX)
    atomic_fetch_or(&arena_bits[ind / 64], (uint64_t)1 << (ind % 64));
}

int lof_je_arena_is_lof(unsigned ind) {
  if (ind >= ARENA_MAX) return 0;
  return (atomic_load(&arena_bits[ind / 64]) >> (ind % 64)) & 1;
}

static uint64_t stats_read(const char *fmt, unsigned ind) {
  char name[96];
  snprintf(name, sizeof name, fmt, ind);
  size_t v = 0, sz = sizeof(v);
  if (mallctl(name, &v, &sz, NULL, 0) != 0) return 0;
  return v;
}

static uint64_t stats_read64(const char *fmt, unsigned ind) {
  char name[96];
  snprintf(name, sizeof name, fmt, ind);
  uint64_t v = 0;
  size_t sz = sizeof(v);
  if (mallctl(name, &v, &sz, NULL, 0) != 0) return 0;
  return v;
}

int lof_je_stats_get(lof_stats_t *out, size_t out_size) {
  if (out == NULL || out_size < 2 * sizeof(uint32_t)) {
    errno = EINVAL;
    return -1;
  }
  lof__je_boot_lock_touched(); /* what the stats say locked is locked */
  lof_stats_t st;
  memset(&st, 0, sizeof st);
  lof__region_stats(&st);
  st.version = LOF_STATS_VERSION;
  st.size = (uint32_t)(out_size < sizeof st ? out_size : sizeof st);

  uint64_t epoch = 1;
  size_t esz = sizeof(epoch);
  mallctl("epoch", &epoch, &esz, &epoch, esz);
  unsigned narenas = 0;
  size_t usz = sizeof(narenas);
  mallctl("arenas.narenas", &narenas, &usz, NULL, 0);
  for (unsigned i = 0; i < narenas; i++) {
    if (!lof_je_arena_is_lof(i)) continue;
    st.allocated += stats_read("stats.arenas.%u.small.allocated", i) +
                    stats_read("stats.arenas.%u.large.allocated", i);
    uint64_t nm = stats_read64("stats.arenas.%u.small.nmalloc", i) +
                  stats_read64("stats.arenas.%u.large.nmalloc", i);
    uint64_t nd = stats_read64("stats.arenas.%u.small.ndalloc", i) +
                  stats_read64("stats.arenas.%u.large.ndalloc", i);
    st.allocations += nm > nd ? nm - nd : 0;
  }
  memcpy(out, &st, st.size);
  return 0;
}

void lof_je_stats_print(int fd) {
  lof_stats_t st;
  if (lof_je_stats_get(&st, sizeof st) != 0) return;
  lof__stats_print(fd, &st);
  dprintf(fd, "lofalloc: jemalloc hooks: allocs %llu alloc_fails %llu dallocs %llu destroys %llu "
              "releases %llu foreign %llu\n",
          (unsigned long long)lof__je_counters.allocs, (unsigned long long)lof__je_counters.alloc_fails,
          (unsigned long long)lof__je_counters.dallocs, (unsigned long long)lof__je_counters.destroys,
          (unsigned long long)lof__je_counters.releases, (unsigned long long)lof__je_counters.foreign);
  dprintf(fd, "lofalloc: jemalloc own mappings: adopted %llu bytes, locked %llu bytes; "
              "locks asked %llu refused %llu skipped %llu; fork re-lock failures %llu\n",
          (unsigned long long)lof__je_counters.bootstrap,
          (unsigned long long)lof__je_boot_locked_bytes(),
          (unsigned long long)lof__je_counters.lock_attempts,
          (unsigned long long)lof__je_counters.lock_refusals,
          (unsigned long long)lof__je_counters.lock_skipped,
          (unsigned long long)lof__je_counters.fork_relock_failures);
}

static void stats_print_at_exit(void) {
  int fd = lof__stats_output_open();
  if (fd < 0) return;
  lof_je_stats_print(fd);
  lof__stats_output_close(fd);
}

static void stats_at_exit_once(void) {
  if (lof__option(LOF_OPT_STATS)) atexit(stats_print_at_exit);
}

void lof__je_stats_at_exit(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, stats_at_exit_once);
}
