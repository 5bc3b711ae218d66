/*
 * je_test.h -- helpers shared by the jemalloc frontend's tests: mallctl
 * shorthands and the region-layer counters read through lof_je_stats_get.
 */
#ifndef LOF_JE_TEST_H
#define LOF_JE_TEST_H

#include <jemalloc/jemalloc.h>
#include <stdio.h>
#include <string.h>

#include "lofalloc-jemalloc.h"

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
#define GiB (MiB * 1024)

static inline int je_ctl_arena(const char *what, unsigned ind) {
  char name[64];
  snprintf(name, sizeof name, "arena.%u.%s", ind, what);
  return mallctl(name, NULL, NULL, NULL, 0);
}

static inline lof_stats_t je_stats(void) {
  lof_stats_t st;
  memset(&st, 0, sizeof st);
  lof_je_stats_get(&st, sizeof st);
  return st;
}

static inline int je_flags(unsigned ind) {
  return MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE;
}

#endif
