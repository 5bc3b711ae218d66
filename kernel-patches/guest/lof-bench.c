/*
 * lof-bench.c -- what one committed heap chunk costs: MAP_LOCKONFAULT
 * against mmap + mlock2(MLOCK_ONFAULT), in system calls and nanoseconds.
 *
 * Runs in the QEMU guest (kernel-patches/guest/init.sh) and on any host.
 * Each method turns a chunk into readable, writable, lock-on-fault memory
 * without touching it; the timed part is exactly that, the undo is not timed:
 *
 *   commit, into a PROT_NONE reservation (what lofalloc's region layer does):
 *     flag          mmap(MAP_FIXED | MAP_LOCKONFAULT)                1 call
 *     mlock2+mprot  mlock2(MLOCK_ONFAULT) then mprotect(RW)          2 calls
 *     mmap+mlock2   mmap(MAP_FIXED) then mlock2(MLOCK_ONFAULT)       2 calls
 *     undo: mmap(MAP_FIXED, PROT_NONE, MAP_NORESERVE) back over it
 *   fresh mapping:
 *     flag          mmap(MAP_LOCKONFAULT)                            1 call
 *     mmap+mlock2   mmap() then mlock2(MLOCK_ONFAULT)                2 calls
 *     undo: munmap
 *
 * Methods are interleaved per iteration so drift hits them alike.  Before
 * timing, each method's result is checked in /proc/self/smaps (VmFlags
 * "lo lf", Rss 0); a method that does not produce that is reported as
 * unsupported (the flag on an unpatched kernel) and not timed.
 *
 * Output, one line per (kind, size, method):
 *   LOFBENCH kind=commit size=65536 method=flag syscalls=1 iters=N
 *            median_ns=.. p10_ns=.. p90_ns=..
 * Usage: lof-bench [--tsc-khz KHZ] [iterations]   (default 10000)
 *        lof-bench --calibrate      print the TSC rate in kHz and exit
 * Under QEMU (TCG and KVM alike) the guest's TSC runs at the host's rate,
 * but a tiny guest's own clock can be far off (jiffies that lose ticks when
 * the host is busy); the harness therefore measures the rate on the host
 * with --calibrate and passes it in with --tsc-khz.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lofalloc-mman.h"

#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static int sys_mlock2(void *addr, size_t len, int flags) {
  return (int)syscall(SYS_mlock2, addr, len, flags);
}

/* ---- methods: each returns the chunk's address or NULL ----------------- */
typedef void *(*commit_fn)(void *slot, size_t len);

static void *commit_flag(void *slot, size_t len) {
  void *p = mmap(slot, len, RW, ANON | MAP_FIXED | LOF_MAP_LOCKONFAULT, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

static void *commit_mlock2_mprotect(void *slot, size_t len) {
  if (sys_mlock2(slot, len, MLOCK_ONFAULT) || mprotect(slot, len, RW))
    return NULL;
  return slot;
}

static void *commit_mmap_mlock2(void *slot, size_t len) {
  void *p = mmap(slot, len, RW, ANON | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED || sys_mlock2(p, len, MLOCK_ONFAULT))
    return NULL;
  return p;
}

static void *fresh_flag(void *unused, size_t len) {
  void *p = mmap(NULL, len, RW, ANON | LOF_MAP_LOCKONFAULT, -1, 0);
  (void)unused;
  return p == MAP_FAILED ? NULL : p;
}

static void *fresh_mmap_mlock2(void *unused, size_t len) {
  void *p = mmap(NULL, len, RW, ANON, -1, 0);
  (void)unused;
  if (p == MAP_FAILED || sys_mlock2(p, len, MLOCK_ONFAULT))
    return NULL;
  return p;
}

static int undo_commit(void *p, size_t len) {
  return mmap(p, len, PROT_NONE, ANON | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED ? -1 : 0;
}

static int undo_fresh(void *p, size_t len) { return munmap(p, len); }

typedef struct method {
  const char *kind;           /* "commit" or "fresh" */
  const char *name;           /* method name in the output */
  int syscalls;               /* system calls per chunk, by construction */
  commit_fn fn;               /* the timed operation */
  int (*undo)(void *, size_t);
  bool ok;                    /* verified to give lo lf, nothing resident */
  long long *ns;              /* samples */
} method_t;

static method_t methods[] = {
  {"commit", "flag", 1, commit_flag, undo_commit, false, NULL},
  {"commit", "mlock2+mprotect", 2, commit_mlock2_mprotect, undo_commit, false, NULL},
  {"commit", "mmap+mlock2", 2, commit_mmap_mlock2, undo_commit, false, NULL},
  {"fresh", "flag", 1, fresh_flag, undo_fresh, false, NULL},
  {"fresh", "mmap+mlock2", 2, fresh_mmap_mlock2, undo_fresh, false, NULL},
};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

/* VmFlags has lo and lf and Rss is 0 for the VMA holding p. */
static bool is_lockonfault_untouched(const void *p) {
  FILE *f = fopen("/proc/self/smaps", "r");
  unsigned long start, end, a = (unsigned long)p, rss = ~0UL;
  bool in = false, lo = false, lf = false;
  char line[512];
  if (!f)
    return false;
  while (fgets(line, sizeof(line), f)) {
    if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
      if (in)
        break;
      in = a >= start && a < end;
    } else if (in && !strncmp(line, "Rss:", 4)) {
      rss = strtoul(line + 4, NULL, 10);
    } else if (in && !strncmp(line, "VmFlags:", 8)) {
      lo = strstr(line, " lo") != NULL;
      lf = strstr(line, " lf") != NULL;
    }
  }
  fclose(f);
  return lo && lf && rss == 0;
}

static long long mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Timestamps: the TSC where there is one, converted with the rate given by
 * --tsc-khz or else calibrated against CLOCK_MONOTONIC over half a second. */
#if defined(__x86_64__) || defined(__i386__)
static double ns_per_tick;

static long long ticks(void) {
  unsigned int lo, hi;
  __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
  return (long long)(((unsigned long long)hi << 32) | lo);
}

static void calibrate(long khz) {
  const char *how = "given";
  if (khz <= 0) {
    long long t0 = mono_ns(), c0 = ticks(), t1, c1;
    do {
      t1 = mono_ns();
    } while (t1 - t0 < 500000000LL);
    c1 = ticks();
    khz = (long)((double)(c1 - c0) * 1e6 / (double)(t1 - t0) + 0.5);
    how = "calibrated";
  }
  ns_per_tick = 1e6 / (double)khz;
  printf("LOFBENCH clock=tsc tsc_khz=%ld (%s)\n", khz, how);
}

static long long to_ns(long long t) { return (long long)((double)t * ns_per_tick + 0.5); }
#else
static long long ticks(void) { return mono_ns(); }
static void calibrate(long khz) {
  (void)khz;
  printf("LOFBENCH clock=monotonic\n");
}
static long long to_ns(long long t) { return t; }
#endif

static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

static void run_size(size_t len, int iters) {
  /* the reservation the commit methods work in; a guard page either side
   * keeps the chunk from merging with anything */
  char *res = mmap(NULL, len + 2 * 4096, PROT_NONE, ANON | MAP_NORESERVE, -1, 0);
  void *slot;
  size_t m;
  if (res == MAP_FAILED) {
    printf("LOFBENCH error reserve: %s\n", strerror(errno));
    exit(1);
  }
  slot = res + 4096;

  for (m = 0; m < NMETHODS; m++) {
    void *p = methods[m].fn(slot, len);
    methods[m].ok = p && is_lockonfault_untouched(p);
    if (p)
      methods[m].undo(p, len);
    if (!methods[m].ok)
      printf("LOFBENCH kind=%s size=%zu method=%s unsupported\n", methods[m].kind, len,
             methods[m].name);
  }

  for (int i = 0; i < iters; i++) {
    for (m = 0; m < NMETHODS; m++) {
      long long t0, t1;
      void *p;
      if (!methods[m].ok)
        continue;
      t0 = ticks();
      p = methods[m].fn(slot, len);
      t1 = ticks();
      if (!p || methods[m].undo(p, len)) {
        printf("LOFBENCH error %s/%s: %s\n", methods[m].kind, methods[m].name, strerror(errno));
        exit(1);
      }
      methods[m].ns[i] = to_ns(t1 - t0);
    }
  }

  for (m = 0; m < NMETHODS; m++) {
    long long *s = methods[m].ns;
    if (!methods[m].ok)
      continue;
    qsort(s, (size_t)iters, sizeof(*s), cmp_ll);
    printf("LOFBENCH kind=%s size=%zu method=%s syscalls=%d iters=%d median_ns=%lld p10_ns=%lld "
           "p90_ns=%lld\n",
           methods[m].kind, len, methods[m].name, methods[m].syscalls, iters, s[iters / 2],
           s[iters / 10], s[iters - 1 - iters / 10]);
  }
  munmap(res, len + 2 * 4096);
}

int main(int argc, char **argv) {
  long khz = 0;
  int iters = 10000;
  size_t m;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--calibrate")) {
      long long t0 = mono_ns(), c0 = ticks(), t1, c1;
      do {
        t1 = mono_ns();
      } while (t1 - t0 < 300000000LL);
      c1 = ticks();
      printf("%ld\n", (long)((double)(c1 - c0) * 1e6 / (double)(t1 - t0) + 0.5));
      return 0;
    } else if (!strcmp(argv[i], "--tsc-khz") && i + 1 < argc) {
      khz = atol(argv[++i]);
    } else {
      iters = atoi(argv[i]);
    }
  }
  if (iters < 10)
    iters = 10;
  for (m = 0; m < NMETHODS; m++) {
    methods[m].ns = calloc((size_t)iters, sizeof(long long));
    if (!methods[m].ns)
      return 1;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  calibrate(khz);
  run_size(64 * 1024, iters);
  run_size(2 * 1024 * 1024, iters);
  return 0;
}
