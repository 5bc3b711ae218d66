/*
 * region_cost.c -- the region layer's cost per operation: commits, purges
 * and decommits of N adjacent chunks, timed (median of 5 rounds, ns per
 * call) and left for `strace -c -f` to count syscalls.  Also prints the VMA
 * count and locked-resident bytes after the churn, read from smaps.
 *
 *   region_cost [CHUNKS] [CHUNK_BYTES]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "region.h"

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 4096;
  size_t chunk = argc > 2 ? strtoull(argv[2], NULL, 0) : 64 * 1024;
  double commit[5], touch[5], purge[5], decommit[5];
  lof_stats_t st;
  for (int round = 0; round < 5; round++) {
    lof_region_t *r = lof__region_reserve(n * chunk, LOF_PAGE_SIZE);
    if (!r) { perror("reserve"); return 1; }
    char *base = (char *)r->base;
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++)
      if (lof__region_commit(r, base + i * chunk, chunk) != 0) { perror("commit"); return 1; }
    double t1 = now_ns();
    for (size_t i = 0; i < n; i++) memset(base + i * chunk, 1, chunk);
    double t2 = now_ns();
    for (size_t i = 0; i < n; i++)
      if (lof__region_purge(r, base + i * chunk, chunk) != 0) { perror("purge"); return 1; }
    double t3 = now_ns();
    if (round == 4) lof__region_stats(&st);
    for (size_t i = 0; i < n; i++)
      if (lof__region_decommit(r, base + i * chunk, chunk) != 0) { perror("decommit"); return 1; }
    double t4 = now_ns();
    commit[round] = (t1 - t0) / n;
    touch[round] = (t2 - t1) / (n * chunk / LOF_PAGE_SIZE);
    purge[round] = (t3 - t2) / n;
    decommit[round] = (t4 - t3) / n;
    lof__region_release(r);
  }
  qsort(commit, 5, sizeof(double), cmp_double);
  qsort(touch, 5, sizeof(double), cmp_double);
  qsort(purge, 5, sizeof(double), cmp_double);
  qsort(decommit, 5, sizeof(double), cmp_double);
  printf("backend %s, %zu chunks of %zu KiB, medians of 5 rounds\n", st.backend_name, n, chunk / 1024);
  printf("commit   %8.0f ns/call\n", commit[2]);
  printf("touch    %8.0f ns/page (first write, lock on fault)\n", touch[2]);
  printf("purge    %8.0f ns/call (%zu pages each)\n", purge[2], chunk / LOF_PAGE_SIZE);
  printf("decommit %8.0f ns/call\n", decommit[2]);
  printf("after commit+touch+purge: heap VMAs %llu, locked resident %llu bytes, commits %llu, purges %llu\n",
         (unsigned long long)st.heap_vmas, (unsigned long long)st.locked_resident,
         (unsigned long long)st.commit_calls, (unsigned long long)st.purge_calls);
  return 0;
}
