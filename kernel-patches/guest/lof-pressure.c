/*
 * lof-pressure.c -- the guest's memory-pressure test: are a heap's pages
 * kept in RAM when a memory cgroup is pushed to swap?
 *
 * Usage: lof-pressure locked|swapped HEAP_MIB HOG_MIB
 *        lof-pressure hog HOG_MIB
 *
 * The victim (first form) mallocs HEAP_MIB in 256 KiB blocks and writes
 * every page, then runs a hog (this program again, exec'd without
 * LD_PRELOAD) that writes HOG_MIB twice, and waits for it.  Run it inside a
 * memory cgroup whose memory.max is below HEAP_MIB + HOG_MIB and with a
 * swap device on: reclaim then has to swap something out.  Afterwards the
 * victim reads /proc/self/pagemap for every heap page (bit 62: swapped,
 * bit 63: present), then checks the data.
 *
 * "locked" (run with LD_PRELOAD=liblofalloc.so: a lock-on-fault heap)
 * passes when no heap page was swapped and all are present; "swapped" (the
 * plain glibc heap) passes when at least a quarter of them were swapped,
 * which shows that the pressure was real.  Prints one
 * "LOFPRESSURE mode=... pages=N present=N swapped=N" line.
 * Exit 0 pass, 1 fail, 2 set-up error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define BLOCK (256u << 10)

static long page;

static int hog(size_t mib) {
  size_t len = mib << 20;
  char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("lof-pressure: hog mmap");
    return 2;
  }
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < len; i += (size_t)page)
      p[i] = (char)(pass + 1);
  return 0;
}

/* pagemap entry of the page at addr, or 0 on error */
static uint64_t pagemap_entry(int fd, const void *addr) {
  uint64_t e = 0;
  off_t off = (off_t)((uintptr_t)addr / (uintptr_t)page) * 8;
  if (pread(fd, &e, sizeof(e), off) != (ssize_t)sizeof(e))
    return 0;
  return e;
}

int main(int argc, char **argv) {
  page = sysconf(_SC_PAGESIZE);
  if (argc == 3 && strcmp(argv[1], "hog") == 0)
    return hog(strtoul(argv[2], NULL, 10));
  if (argc != 4 || (strcmp(argv[1], "locked") && strcmp(argv[1], "swapped"))) {
    fprintf(stderr, "usage: lof-pressure locked|swapped HEAP_MIB HOG_MIB\n");
    return 2;
  }
  int want_locked = strcmp(argv[1], "locked") == 0;
  size_t nblocks = (strtoul(argv[2], NULL, 10) << 20) / BLOCK;
  char **blocks = calloc(nblocks, sizeof(*blocks));
  if (!blocks)
    return 2;
  for (size_t b = 0; b < nblocks; b++) {
    blocks[b] = malloc(BLOCK);
    if (!blocks[b]) {
      fprintf(stderr, "lof-pressure: malloc block %zu: %s\n", b, strerror(errno));
      return 2;
    }
    for (size_t i = 0; i < BLOCK; i += (size_t)page)
      blocks[b][i] = (char)(b + i / (size_t)page + 1);
  }

  pid_t pid = fork();
  if (pid < 0) {
    perror("lof-pressure: fork");
    return 2;
  }
  if (pid == 0) {
    char *env[] = {"PATH=/bin", NULL};
    char *args[] = {argv[0], "hog", argv[3], NULL};
    execve("/proc/self/exe", args, env);
    _exit(2);
  }
  int st;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "lof-pressure: the hog failed (status %#x)\n", st);
    return 2;
  }

  int fd = open("/proc/self/pagemap", O_RDONLY);
  if (fd < 0) {
    perror("lof-pressure: /proc/self/pagemap");
    return 2;
  }
  size_t pages = 0, present = 0, swapped = 0, bad = 0;
  for (size_t b = 0; b < nblocks; b++)
    for (size_t i = 0; i < BLOCK; i += (size_t)page) {
      uint64_t e = pagemap_entry(fd, blocks[b] + i);
      pages++;
      present += (e >> 63) & 1;
      swapped += (e >> 62) & 1;
    }
  close(fd);
  /* read the data after pagemap: this faults the swapped pages back */
  for (size_t b = 0; b < nblocks; b++)
    for (size_t i = 0; i < BLOCK; i += (size_t)page)
      bad += blocks[b][i] != (char)(b + i / (size_t)page + 1);

  printf("LOFPRESSURE mode=%s pages=%zu present=%zu swapped=%zu corrupt=%zu\n",
         argv[1], pages, present, swapped, bad);
  if (bad)
    return 1;
  if (want_locked)
    return swapped == 0 && present == pages ? 0 : 1;
  return swapped * 4 >= pages ? 0 : 1;
}
