/*
 * os.c -- the OS layer: every system call of the region layer (mmap,
 * mprotect, mlock2, munlock, madvise, mremap, munmap) and the two readers of
 * /proc the allocator needs (a mapping's VmFlags; Rss/Locked sums over the
 * heap).  Contracts are in os.h.  Nothing here allocates or takes a lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lofalloc-mman.h"
#include "os.h"

lof_os_vmflags_fn lof__os_vmflags_hook;
bool lof__os_force_legacy_purge;
static bool os_dontneed_locked = true; /* set by the probe */

#define OS_RW (PROT_READ | PROT_WRITE)
#define OS_ANON (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)

/* Raw system calls for the lock family: sanitizer runtimes intercept the
 * libc wrappers of munlock/mlockall and turn them into no-ops. */
static int os_mlock2(void *addr, size_t len, unsigned flags) {
  return (int)syscall(SYS_mlock2, addr, len, flags);
}

static int os_munlock(void *addr, size_t len) {
  return (int)syscall(SYS_munlock, addr, len);
}

/* Files are read with raw system calls too: the libc wrappers of open, read
 * and close (and strstr, sched_getaffinity) sit in pages of libc that a
 * program may never run, and calling them at start-up maps those pages into
 * every process that preloads us (a one-malloc program's VmHWM went from
 * 1528 to 1464 KiB without them). */
LOF_HIDDEN int lof__os_open_read(const char *path) {
  return (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
}
LOF_HIDDEN ssize_t lof__os_read(int fd, void *buf, size_t len) {
  return (ssize_t)syscall(SYS_read, fd, buf, len);
}
LOF_HIDDEN void lof__os_close(int fd) { syscall(SYS_close, fd); }

/* ---- /proc readers ------------------------------------------------------ */

/* Call fn on every line of a /proc file (without the newline; lines longer
 * than the buffer are cut).  fn returns false to stop early. */
typedef bool (*os_line_fn)(const char *line, size_t len, void *arg);

static int os_proc_lines(const char *path, os_line_fn fn, void *arg) {
  int fd = lof__os_open_read(path);
  if (fd < 0) return -1;
  char buf[4096];
  size_t have = 0;
  bool stop = false;
  for (;;) {
    ssize_t n = lof__os_read(fd, buf + have, sizeof buf - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += (size_t)n;
    size_t start = 0;
    for (size_t i = 0; i < have && !stop; i++) {
      if (buf[i] != '\n') continue;
      stop = !fn(buf + start, i - start, arg);
      start = i + 1;
    }
    if (stop) break;
    if (start == 0 && have == sizeof buf) { /* over-long line: cut it */
      stop = !fn(buf, have, arg);
      have = 0;
      if (stop) break;
      continue;
    }
    memmove(buf, buf + start, have - start);
    have -= start;
  }
  lof__os_close(fd);
  return 0;
}

static int os_hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Parse "start-end " at the head of an smaps VMA line.  False for field lines. */
static bool os_parse_vma_head(const char *line, size_t len, uintptr_t *start,
                              uintptr_t *end) {
  uintptr_t v = 0;
  size_t i = 0;
  if (len == 0 || os_hexval(line[0]) < 0) return false;
  for (; i < len && os_hexval(line[i]) >= 0; i++) v = (v << 4) | (uintptr_t)os_hexval(line[i]);
  if (i >= len || line[i] != '-') return false;
  *start = v;
  v = 0;
  for (i++; i < len && os_hexval(line[i]) >= 0; i++) v = (v << 4) | (uintptr_t)os_hexval(line[i]);
  *end = v;
  return true;
}

/* "Name:   1234 kB" -> bytes, if the line starts with name. */
static bool os_parse_kb_field(const char *line, size_t len, const char *name,
                              uint64_t *out) {
  size_t nl = strlen(name);
  if (len <= nl || memcmp(line, name, nl) != 0) return false;
  uint64_t v = 0;
  size_t i = nl;
  while (i < len && line[i] == ' ') i++;
  for (; i < len && line[i] >= '0' && line[i] <= '9'; i++) v = v * 10 + (uint64_t)(line[i] - '0');
  *out = v * 1024;
  return true;
}

typedef struct os_vmflags_query {
  uintptr_t addr;
  bool in_vma;     /* the current VMA contains addr */
  bool found;
  char *buf;
  size_t len;
} os_vmflags_query_t;

static bool os_vmflags_line(const char *line, size_t len, void *arg) {
  os_vmflags_query_t *q = arg;
  uintptr_t s, e;
  if (os_parse_vma_head(line, len, &s, &e)) {
    q->in_vma = q->addr >= s && q->addr < e;
    return true;
  }
  if (q->in_vma && len >= 8 && memcmp(line, "VmFlags:", 8) == 0) {
    size_t n = len - 8;
    const char *p = line + 8;
    while (n > 0 && *p == ' ') p++, n--;
    if (n >= q->len) n = q->len - 1;
    memcpy(q->buf, p, n);
    q->buf[n] = '\0';
    q->found = true;
    return false;
  }
  return true;
}

int lof__os_read_vmflags(const void *addr, char *buf, size_t len) {
  if (lof__os_vmflags_hook) return lof__os_vmflags_hook(addr, buf, len);
  os_vmflags_query_t q = {(uintptr_t)addr, false, false, buf, len};
  if (len == 0 || os_proc_lines("/proc/self/smaps", os_vmflags_line, &q) != 0) return -1;
  return q.found ? 0 : -1;
}

typedef struct os_sum_query {
  lof_os_range_pred in_heap;
  void *arg;
  bool in_vma;
  lof_os_smaps_sum_t *sum;
} os_sum_query_t;

static bool os_sum_line(const char *line, size_t len, void *arg) {
  os_sum_query_t *q = arg;
  uintptr_t s, e;
  uint64_t v;
  if (os_parse_vma_head(line, len, &s, &e)) {
    q->in_vma = q->in_heap(s, e, q->arg);
    if (q->in_vma) q->sum->vmas++;
  } else if (q->in_vma) {
    if (os_parse_kb_field(line, len, "Rss:", &v)) q->sum->rss += v;
    else if (os_parse_kb_field(line, len, "Locked:", &v)) q->sum->locked += v;
  }
  return true;
}

int lof__os_smaps_sum(lof_os_range_pred in_heap, void *arg, lof_os_smaps_sum_t *sum) {
  memset(sum, 0, sizeof *sum);
  os_sum_query_t q = {in_heap, arg, false, sum};
  return os_proc_lines("/proc/self/smaps", os_sum_line, &q);
}

/* ---- probe -------------------------------------------------------------- */

static bool os_flags_have(const char *flags, const char *flag) {
  size_t fl = strlen(flag);
  for (const char *p = flags; *p;) {
    while (*p == ' ') p++;
    const char *q = p;
    while (*q && *q != ' ') q++;
    if ((size_t)(q - p) == fl && memcmp(p, flag, fl) == 0) return true;
    p = q;
  }
  return false;
}

static bool os_thp_always(void) {
  static const char want[] = "[always]";
  char buf[128];
  int fd = lof__os_open_read("/sys/kernel/mm/transparent_hugepage/enabled");
  if (fd < 0) return false;
  ssize_t n = lof__os_read(fd, buf, sizeof buf);
  lof__os_close(fd);
  for (ssize_t i = 0; i + (ssize_t)sizeof want - 1 <= n; i++)
    if (memcmp(buf + i, want, sizeof want - 1) == 0) return true;
  return false;
}

/* A kernel that knows MAP_LOCKONFAULT accepts it under MAP_SHARED_VALIDATE
 * (or refuses it for locking reasons); one that does not says EOPNOTSUPP. */
static bool os_validate_probe(void) {
  void *p = mmap(NULL, LOF_PAGE_SIZE, OS_RW,
                 MAP_SHARED_VALIDATE | MAP_ANONYMOUS | MAP_LOCKONFAULT, -1, 0);
  if (p != MAP_FAILED) {
    munmap(p, LOF_PAGE_SIZE);
    return true;
  }
  return errno == EPERM || errno == EAGAIN || errno == ENOMEM;
}

void lof__os_probe(lof_os_caps_t *caps) {
  int saved = errno;
  char flags[256];
  memset(caps, 0, sizeof *caps);
  caps->thp_always = os_thp_always();

  /* 1. A plain mapping tells whether mlockall(MCL_FUTURE[|MCL_ONFAULT]) is in force. */
  void *plain = mmap(NULL, LOF_PAGE_SIZE, OS_RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  bool plain_lf = false;
  if (plain != MAP_FAILED) {
    if (lof__os_read_vmflags(plain, flags, sizeof flags) == 0) {
      if (os_flags_have(flags, "lo")) caps->mlockall_flags |= MCL_FUTURE;
      if (os_flags_have(flags, "lf")) caps->mlockall_flags |= MCL_ONFAULT, plain_lf = true;
    }
    munmap(plain, LOF_PAGE_SIZE);
  }

  /* 2. A mapping with the flag: VmFlags shows "lf" only if it was honoured. */
  void *p = mmap(NULL, LOF_PAGE_SIZE, OS_RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKONFAULT, -1, 0);
  if (p != MAP_FAILED) {
    if (lof__os_read_vmflags(p, flags, sizeof flags) == 0 && os_flags_have(flags, "lf"))
      caps->map_lockonfault = plain_lf ? os_validate_probe() : true;
    /* 3. MADV_DONTNEED_LOCKED on a touched page (EINVAL before 5.18). */
    *(volatile char *)p = 1;
    caps->dontneed_locked = madvise(p, LOF_PAGE_SIZE, MADV_DONTNEED_LOCKED) == 0;
    munmap(p, LOF_PAGE_SIZE);
  } else {
    /* Refused for locking reasons (RLIMIT_MEMLOCK 0 without CAP_IPC_LOCK)
     * means the kernel knows the flag. */
    if (errno == EPERM || errno == EAGAIN) caps->map_lockonfault = os_validate_probe();
    void *q = mmap(NULL, LOF_PAGE_SIZE, OS_RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q != MAP_FAILED) {
      *(volatile char *)q = 1;
      caps->dontneed_locked = madvise(q, LOF_PAGE_SIZE, MADV_DONTNEED_LOCKED) == 0;
      munmap(q, LOF_PAGE_SIZE);
    }
  }
  os_dontneed_locked = caps->dontneed_locked;
  errno = saved;
}

/* ---- primitives ----------------------------------------------------------- */

void *lof__os_reserve(size_t size, size_t align, bool nohugepage) {
  size_t span = size + (align > LOF_PAGE_SIZE ? align - LOF_PAGE_SIZE : 0);
  if (span < size) { errno = ENOMEM; return NULL; }
  void *p = mmap(NULL, span, PROT_NONE, OS_ANON, -1, 0);
  if (p == MAP_FAILED) { errno = ENOMEM; return NULL; }
  uintptr_t start = (uintptr_t)p, aligned = LOF_ALIGN_UP(start, align);
  if (aligned > start) munmap(p, aligned - start);
  uintptr_t end = aligned + size, span_end = start + span;
  if (span_end > end) munmap((void *)end, span_end - end);
  /* Under mlockall(MCL_FUTURE) the reservation was locked and charged:
   * undo that, only commits are charged.  A no-op otherwise. */
  os_munlock((void *)aligned, size);
  if (nohugepage) madvise((void *)aligned, size, MADV_NOHUGEPAGE);
  return (void *)aligned;
}

int lof__os_commit_locked(void *addr, size_t len, bool use_map_flag, bool nohugepage) {
  if (use_map_flag) {
    void *p = mmap(addr, len, OS_RW, OS_ANON | MAP_FIXED | MAP_LOCKONFAULT, -1, 0);
    if (p == MAP_FAILED) return -1;
    if (nohugepage) madvise(addr, len, MADV_NOHUGEPAGE);
    return 0;
  }
  /* Lock while PROT_NONE, then open: never accessible and unlocked, and
   * mprotect does not populate a VM_LOCKONFAULT range. */
  if (os_mlock2(addr, len, MLOCK_ONFAULT) != 0) return -1;
  if (mprotect(addr, len, OS_RW) != 0) {
    int err = errno;
    os_munlock(addr, len);
    errno = err;
    return -1;
  }
  return 0;
}

int lof__os_commit_unlocked(void *addr, size_t len) {
  return mprotect(addr, len, OS_RW);
}

int lof__os_purge(void *addr, size_t len, bool relock) {
  if (os_dontneed_locked && !lof__os_force_legacy_purge)
    return madvise(addr, len, MADV_DONTNEED_LOCKED);
  if (!relock) return madvise(addr, len, MADV_DONTNEED);
  /* Before 5.18: MADV_DONTNEED fails with EINVAL on locked memory. */
  if (os_munlock(addr, len) != 0) return -1;
  int rc = madvise(addr, len, MADV_DONTNEED);
  int err = errno;
  if (os_mlock2(addr, len, MLOCK_ONFAULT) != 0) return -1;
  errno = err;
  return rc;
}

int lof__os_decommit(void *addr, size_t len) {
  if (os_munlock(addr, len) != 0) return -1;
  if (madvise(addr, len, MADV_DONTNEED) != 0) return -1;
  return mprotect(addr, len, PROT_NONE);
}

int lof__os_lock_onfault(void *addr, size_t len) {
  return os_mlock2(addr, len, MLOCK_ONFAULT);
}

int lof__os_remap(void *addr, size_t old_len, size_t new_len, void **out) {
  void *p = mremap(addr, old_len, new_len, MREMAP_MAYMOVE);
  if (p == MAP_FAILED) return -1;
  *out = p;
  return 0;
}

int lof__os_release(void *addr, size_t len) {
  return munmap(addr, len);
}

void *lof__os_map_meta(size_t len) {
  void *p = mmap(NULL, len, OS_RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void *lof__os_map_whole_locked(size_t len) {
  void *p = mmap(NULL, len, OS_RW, OS_ANON | MAP_LOCKONFAULT, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

/* Fault in every page of [addr, addr+len) for writing without changing its
 * contents (MADV_POPULATE_WRITE, Linux 5.14): pages of a lock-on-fault range
 * become resident and locked now.  Used by lof_reserve. */
int lof__os_populate(void *addr, size_t len) {
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  return madvise(addr, len, MADV_POPULATE_WRITE);
}
