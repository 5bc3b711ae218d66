/*
 * pageflags.c -- is a page mlocked? (see pageflags.h): one pread of
 * /proc/self/pagemap and one of /proc/kpageflags per page.
 */
#include "pageflags.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define PM_PRESENT ((uint64_t)1 << 63)
#define PM_PFN_MASK (((uint64_t)1 << 55) - 1)

static int read_u64(int fd, uint64_t index, uint64_t *out) {
  return pread(fd, out, sizeof *out, (off_t)(index * sizeof *out)) == (ssize_t)sizeof *out ? 0 : -1;
}

int pageflags_count(const void *addr, size_t len, size_t stride, size_t *present, size_t *mlocked,
                    size_t *unevictable) {
  long ps = sysconf(_SC_PAGESIZE);
  int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  int kf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
  int rc = -1;
  size_t unevictable_sink;
  if (unevictable == NULL) unevictable = &unevictable_sink;
  *present = *mlocked = *unevictable = 0;
  if (pm < 0 || kf < 0 || stride == 0) goto out;
  for (size_t off = 0; off < len; off += stride) {
    uint64_t e, flags;
    if (read_u64(pm, ((uintptr_t)addr + off) / (uint64_t)ps, &e) != 0) goto out;
    if (!(e & PM_PRESENT)) continue;
    (*present)++;
    if ((e & PM_PFN_MASK) == 0) { errno = EPERM; goto out; } /* PFNs hidden */
    if (read_u64(kf, e & PM_PFN_MASK, &flags) != 0) goto out;
    *mlocked += flags >> KPF_BIT_MLOCKED & 1;
    *unevictable += flags >> KPF_BIT_UNEVICTABLE & 1;
  }
  rc = 0;
out:
  if (pm >= 0) close(pm);
  if (kf >= 0) close(kf);
  return rc;
}

bool pageflags_available(void) {
  static volatile char probe = 1; /* a present page of .data */
  probe = 2;
  size_t present, mlocked;
  return pageflags_count((const void *)&probe, 1, 1, &present, &mlocked, NULL) == 0 && present == 1;
}
