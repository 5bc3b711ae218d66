/*
 * lofcheck.c -- a preloadable probe for the LD_PRELOAD tests.  Loaded after
 * liblofalloc (LD_PRELOAD="liblofalloc.so liblofcheck.so"), it records one
 * block at start-up and, at exit, allocates a small, a large and a huge
 * block and appends one line per process to $LOFCHECK_OUT:
 *   OK|BAD pid=N exe=NAME early=FLAGS small=FLAGS large=FLAGS huge=FLAGS
 *          locked_kb=N committed_kb=N lof_kb=N fallback_kb=N heap_locked_kb=N
 *          check=RC allocations=N
 * It checks, and OK means:
 *  - the kernel's view of the four probe blocks: each sits in a VMA whose
 *    VmFlags (/proc/self/smaps) hold both "lo" and "lf", and their VMAs'
 *    Locked: (locked_kb) is above zero;
 *  - the whole heap, by the library's counters (lof_stats_get): every
 *    committed byte is in a lock-on-fault range or counted as served
 *    unlocked (committed = lof + fallback), and nothing was served unlocked
 *    unless RLIMIT_MEMLOCK applies to the process (no CAP_IPC_LOCK);
 *  - the whole heap, from the kernel: Locked: summed over the VMAs of the
 *    heap's reservations (heap_locked_kb, read from smaps by the library) is
 *    above zero;
 *  - lof_check() == 0.
 * It does not look at each heap VMA's flags itself (it cannot tell them
 * from other mappings).  Programs that exit through _exit() write no line;
 * the test scripts count lines per program.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lofalloc.h"
#include "smaps.h"

static void *early;

__attribute__((constructor)) static void lofcheck_start(void) {
  early = malloc(48);
}

/* Does RLIMIT_MEMLOCK apply, i.e. is CAP_IPC_LOCK (bit 14) not effective? */
static int memlock_limited(void) {
  static char buf[4096];
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return 1;
  buf[n] = 0;
  const char *cap = strstr(buf, "CapEff:");
  if (cap == NULL) return 1;
  unsigned long long eff = strtoull(cap + 7, NULL, 16);
  return !(eff >> 14 & 1);
}

__attribute__((destructor)) static void lofcheck_end(void) {
  const char *out = getenv("LOFCHECK_OUT");
  if (out == NULL) return;
  void *small = malloc(100);
  char *large = malloc(200000);
  char *huge = malloc(8u << 20);
  if (small) memset(small, 1, 100);
  if (large) large[0] = 1;
  if (huge) huge[0] = 1;
  const void *probe[4] = {early, small, large, huge};
  const char *name[4] = {"early", "small", "large", "huge"};
  char flags[4][160];
  unsigned long locked = 0, total_locked = 0;
  int ok = 1;
  for (int i = 0; i < 4; i++) {
    strcpy(flags[i], "none");
    locked = 0;
    smaps_vma_t v;
    if (probe[i] == NULL || smaps_vma_at(probe[i], &v) != 0) {
      ok = 0;
      continue;
    }
    if (!smaps_flags_have(v.vmflags, "lo lf")) ok = 0;
    locked = (unsigned long)(v.locked >> 10);
    /* one word for the report line: the flags joined by commas */
    size_t n = strnlen(v.vmflags, sizeof flags[i] - 1);
    memcpy(flags[i], v.vmflags, n);
    flags[i][n] = '\0';
    for (char *c = flags[i]; *c; c++)
      if (*c == ' ') *c = ',';
    total_locked += locked;
  }
  if (total_locked == 0) ok = 0;
  int (*check)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "lof_check");
  int (*stats)(lof_stats_t *, size_t) =
      (int (*)(lof_stats_t *, size_t))dlsym(RTLD_DEFAULT, "lof_stats_get");
  int rc = check ? check() : -99;
  if (rc != 0) ok = 0;
  lof_stats_t st;
  memset(&st, 0, sizeof(st));
  if (stats == NULL || stats(&st, sizeof(st)) != 0) ok = 0;
  if (st.locked_range + st.fallback != st.committed) ok = 0;
  if (st.fallback != 0 && !memlock_limited()) ok = 0;
  if (st.locked_resident == 0) ok = 0;
  char exe[256] = "?";
  ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (el > 0) exe[el] = 0;
  const char *base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
  char msg[1024];
  int len = snprintf(msg, sizeof(msg),
                     "%s pid=%d exe=%s %s=%s %s=%s %s=%s %s=%s locked_kb=%lu committed_kb=%llu "
                     "lof_kb=%llu fallback_kb=%llu heap_locked_kb=%llu check=%d allocations=%llu\n",
                     ok ? "OK" : "BAD", (int)getpid(), base, name[0], flags[0], name[1], flags[1],
                     name[2], flags[2], name[3], flags[3], total_locked,
                     (unsigned long long)st.committed >> 10, (unsigned long long)st.locked_range >> 10,
                     (unsigned long long)st.fallback >> 10,
                     (unsigned long long)st.locked_resident >> 10, rc,
                     (unsigned long long)st.allocations);
  int fd = open(out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) {
    if (write(fd, msg, (size_t)len) < 0) { /* nothing to do */ }
    close(fd);
  }
  free(small);
  free(large);
  free(huge);
}
