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
 *
 * Then what a release elsewhere does to a block that never moved: a block
 * of the same size is written, and 20 times another 16 MiB is mapped,
 * written and given back (munmap, MADV_DONTNEED, an mremap move there and
 * back, or mprotect read-only and back; or nothing) before the block is
 * written again.  One line per way: the 20 rewrites' total and slowest.
 * On a host that keeps shadow page tables (the VM of doc/malloc.md runs
 * under PVM) a release can cost rewrites of memory it never touched.
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

enum { OTHER_NONE, OTHER_MUNMAP, OTHER_DONTNEED, OTHER_MREMAP, OTHER_MPROTECT, OTHER_WAYS };
static const char *const other_name[OTHER_WAYS] = {"nothing", "munmap", "MADV_DONTNEED",
                                                   "mremap move", "mprotect"};

/* Map, write and give back another region (len bytes) the given way. */
static void other_release(int way, size_t len) {
  unsigned char *q = map_rw(2 * len + 4096);
  memset(q, 5, len);
  switch (way) {
  case OTHER_DONTNEED:
    madvise(q, len, MADV_DONTNEED);
    break;
  case OTHER_MREMAP: {
    void *z = mremap(q, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, q + len + 4096);
    if (z != MAP_FAILED) mremap(z, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, q);
    break;
  }
  case OTHER_MPROTECT:
    mprotect(q, len, PROT_READ);
    mprotect(q, len, PROT_READ | PROT_WRITE);
    break;
  default:
    break;
  }
  munmap(q, 2 * len + 4096);
}

static void release_elsewhere(size_t len) {
  enum { ROUNDS = 20 };
  const size_t other = (size_t)16 << 20;
  for (int way = 0; way < OTHER_WAYS; way++) {
    unsigned char *p = map_rw(len);
    long f_unused;
    timed_write(p, len, 1, &f_unused);
    double total = 0, slowest = 0;
    long faults = 0;
    for (int r = 0; r < ROUNDS; r++) {
      if (way != OTHER_NONE) other_release(way, other);
      long f;
      double t = timed_write(p, len, 2 + r, &f);
      total += t;
      faults += f;
      if (t > slowest) slowest = t;
    }
    printf("rewrite after a release elsewhere (%-13s): %d x %zu MiB in %.4f s, slowest %.4f s, "
           "%ld faults\n", other_name[way], ROUNDS, len >> 20, total, slowest, faults);
    munmap(p, len);
  }
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
  release_elsewhere(len);
  return 0;
}
