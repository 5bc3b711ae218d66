/*
 * page_move.c -- what the first write to a page costs on this machine after
 * each way a huge-block cache can hand memory out again: the same pages at
 * the same addresses (a rewrite), the same pages moved to a new address by
 * mremap (what growing a cached block does when the space after it is
 * taken), and fresh pages (a new mapping).  No allocator involved.
 *
 *   bench/page_move [MiB] [rounds]     (default 20 MiB, 4 rounds)
 *
 * Prints one line per round: seconds and minor faults of each write.  On
 * the 2-core VM of doc/malloc.md (issue #14, bigchurn) a moved page cost
 * about 70 % of a fresh one, with almost no faults.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long minor_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

/* Seconds to write len bytes at p; *faults gets the minor faults taken. */
static double timed_write(unsigned char *p, size_t len, int byte, long *faults) {
  long f0 = minor_faults();
  double t0 = now();
  memset(p, byte, len);
  double t = now() - t0;
  *faults = minor_faults() - f0;
  return t;
}

static unsigned char *map_rw(size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("page_move: mmap");
    exit(1);
  }
  return p;
}

int main(int argc, char **argv) {
  size_t len = (size_t)(argc > 1 ? atol(argv[1]) : 20) << 20;
  int rounds = argc > 2 ? atoi(argv[2]) : 4;
  if (len == 0 || rounds <= 0) {
    fprintf(stderr, "usage: page_move [MiB] [rounds]\n");
    return 2;
  }
  size_t grown = len + ((size_t)64 << 10);
  for (int r = 0; r < rounds; r++) {
    long f_rewrite, f_moved, f_fresh, f_unused;
    unsigned char *p = map_rw(len);
    timed_write(p, len, 1, &f_unused);
    double t_rewrite = timed_write(p, len, 2, &f_rewrite);
    /* a page mapped right after the block, so that the growth below must
     * move it (if that page is mapped already, it must anyway) */
    void *blocker = mmap(p + len, 4096, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    unsigned char *q = mremap(p, len, grown, MREMAP_MAYMOVE);
    if (q == MAP_FAILED) {
      perror("page_move: mremap");
      return 1;
    }
    double t_moved = timed_write(q, len, 3, &f_moved);
    unsigned char *fresh = map_rw(len);
    double t_fresh = timed_write(fresh, len, 4, &f_fresh);
    printf("round %d: %zu MiB  rewrite %.4f s (%ld faults)  moved %s %.4f s (%ld faults)  "
           "fresh %.4f s (%ld faults)\n",
           r, len >> 20, t_rewrite, f_rewrite, q != p ? "" : "(did not move!)", t_moved, f_moved,
           t_fresh, f_fresh);
    munmap(q, grown);
    munmap(fresh, len);
    if (blocker != MAP_FAILED) munmap(blocker, 4096);
  }
  return 0;
}
