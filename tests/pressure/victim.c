/*
 * victim.c -- the two programs of the memory-pressure test (pressure.sh).
 *
 *   victim heap MIB BLOCK_KIB DIR: malloc MIB MiB in blocks of BLOCK_KIB KiB
 *     and write every page; create DIR/ready.PID; wait for DIR/go; then
 *     print one line
 *       pages=N swapped=N resident=N majflt=N bad=N lib_pages=N lib_swapped=N
 *     swapped: heap pages whose /proc/self/pagemap entry has bit 62 (in swap)
 *     before re-reading; majflt: major faults (getrusage) taken re-reading
 *     every page; bad: pages whose contents changed; lib_*: pages of
 *     liblofalloc's own writable data (its writable segment: .data and
 *     .bss), when it is loaded.
 *   victim hog MIB: malloc MIB MiB and write it twice (pushes a memory cgroup
 *     into swap), then exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096

static int pagemap_fd = -1;

/* 1 if the page at addr is in swap, 0 if not, -1 on error. */
static int page_swapped(uintptr_t addr, int *present) {
  uint64_t e;
  if (pread(pagemap_fd, &e, sizeof e, (off_t)(addr / PAGE * sizeof e)) != sizeof e) return -1;
  *present = (int)((e >> 63) & 1);
  return (int)((e >> 62) & 1);
}

/* Count pages and swapped pages of liblofalloc's own writable data: its
 * writable PT_LOAD segment (.data and .bss, the registry included), found
 * with dl_iterate_phdr, whatever VMAs the kernel has split it into. */
typedef struct lib_count { long pages, swapped; } lib_count_t;

static int lib_segment_pages(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  lib_count_t *c = arg;
  if (info->dlpi_name == NULL || strstr(info->dlpi_name, "liblofalloc") == NULL) return 0;
  for (unsigned i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W)) continue;
    uintptr_t lo = ((uintptr_t)info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)(PAGE - 1);
    uintptr_t hi = (uintptr_t)info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
    for (uintptr_t a = lo; a < hi; a += PAGE) {
      int present;
      c->pages++;
      if (page_swapped(a, &present) == 1) c->swapped++;
    }
  }
  return 1;
}

static void lib_pages(long *pages, long *swapped) {
  lib_count_t c = {0, 0};
  dl_iterate_phdr(lib_segment_pages, &c);
  *pages = c.pages;
  *swapped = c.swapped;
}

static unsigned char pattern(uintptr_t page_index) { return (unsigned char)(page_index * 37 + 11); }

static int run_heap(long mib, long block_kib, const char *dir) {
  size_t block = (size_t)block_kib << 10;
  size_t nblocks = ((size_t)mib << 20) / block;
  unsigned char **blocks = calloc(nblocks, sizeof *blocks);
  if (blocks == NULL) { perror("calloc"); return 1; }
  uintptr_t k = 0;
  for (size_t i = 0; i < nblocks; i++) {
    blocks[i] = malloc(block);
    if (blocks[i] == NULL) {
      fprintf(stderr, "victim: malloc(%zu) #%zu failed: %s\n", block, i, strerror(errno));
      return 1;
    }
    for (size_t off = 0; off < block; off += PAGE) blocks[i][off] = pattern(k++);
  }
  char path[512];
  snprintf(path, sizeof path, "%s/ready.%d", dir, (int)getpid());
  int fd = open(path, O_WRONLY | O_CREAT, 0644);
  if (fd >= 0) close(fd);
  snprintf(path, sizeof path, "%s/go", dir);
  struct stat sb;
  for (int i = 0; stat(path, &sb) != 0; i++) {
    if (i > 6000) { fprintf(stderr, "victim: no go after 600 s\n"); return 1; }
    usleep(100 * 1000);
  }
  pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
  if (pagemap_fd < 0) { perror("pagemap"); return 1; }
  long pages = 0, swapped = 0, resident = 0, bad = 0, lp, ls;
  for (size_t i = 0; i < nblocks; i++)
    for (size_t off = 0; off < block; off += PAGE) {
      int present = 0, s = page_swapped((uintptr_t)blocks[i] + off, &present);
      pages++;
      swapped += s == 1;
      resident += present;
    }
  lib_pages(&lp, &ls);
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  k = 0;
  for (size_t i = 0; i < nblocks; i++)
    for (size_t off = 0; off < block; off += PAGE) bad += blocks[i][off] != pattern(k++);
  getrusage(RUSAGE_SELF, &r1);
  printf("pages=%ld swapped=%ld resident=%ld majflt=%ld bad=%ld lib_pages=%ld lib_swapped=%ld\n",
         pages, swapped, resident, r1.ru_majflt - r0.ru_majflt, bad, lp, ls);
  return bad != 0;
}

static int run_hog(long mib) {
  size_t len = (size_t)mib << 20;
  volatile unsigned char *p = malloc(len); /* volatile: the stores must happen */
  if (p == NULL) { perror("hog malloc"); return 1; }
  unsigned sum = 0;
  for (int round = 0; round < 2; round++)
    for (size_t off = 0; off < len; off += PAGE) {
      p[off] = (unsigned char)((off >> 12) + (size_t)round);
      sum += p[off];
    }
  printf("hog: %ld MiB written twice (sum %u)\n", mib, sum);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "heap") == 0)
    return run_heap(atol(argv[2]), atol(argv[3]), argv[4]);
  if (argc == 3 && strcmp(argv[1], "hog") == 0) return run_hog(atol(argv[2]));
  fprintf(stderr, "usage: victim heap MIB BLOCK_KIB DIR | victim hog MIB\n");
  return 2;
}
