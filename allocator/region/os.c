/*
 * os.c -- the OS layer: every system call of the region layer (mmap,
 * mprotect, mlock2, munlock, madvise, mremap, munmap, memfd_create, capget,
 * prlimit, shmat, shmdt, shmctl, fstatfs, and the program's own mmap and
 * munmap passed through by the interposed names) and the two readers of /proc the allocator needs (a mapping's
 * VmFlags; Rss/Locked sums over the heap).  Contracts are in os.h.  Nothing
 * here allocates or takes a lock.
 *
 * Every call is a raw system call (syscall(2)), never the libc wrapper: a
 * program (or liblofalloc-jemalloc-process) may interpose mmap and friends,
 * and a sanitizer runtime turns munlock/mlockall into no-ops.  Each call goes
 * through os_fault(), the fault-injection seam of test builds (LOF_TESTING):
 * a test can make the k-th call of a site fail with any errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lofalloc-mman.h"
#include "os.h"

#ifdef LOF_TESTING
lof_os_vmflags_fn lof__os_vmflags_hook;
bool lof__os_force_legacy_purge;
bool lof__os_pretend_charge;
#endif
static bool os_dontneed_locked = true; /* set by the probe */

/* The fault-time charge of the kernel RFC (kernel-patches/rfc/): with it,
 * RLIMIT_MEMLOCK counts a lock-on-fault range's resident pages, not its
 * length.  Set by the probe; until then (and on every kernel without it)
 * nothing below changes. */
#define OS_MLOCK_ONFAULT_CHARGE 0x02      /* mlock2, with MLOCK_ONFAULT */
#define OS_MAP_LOCKONFAULT_CHARGE 0x800000 /* mmap, with MAP_LOCKONFAULT */
static bool os_lock_charge;
static int os_map_charge;                 /* OS_MAP_LOCKONFAULT_CHARGE or 0 */

#define OS_RW (PROT_READ | PROT_WRITE)
#define OS_ANON (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)

/* ---- the fault-injection seam (test builds only) --------------------------- */

#ifdef LOF_TESTING
typedef struct os_fault_plan {
  _Atomic unsigned countdown; /* calls left before the failure; 0 = disarmed */
  int err;                    /* errno of the failure */
  bool sticky;                /* keep failing every call after the first */
  _Atomic unsigned calls;     /* calls seen at this site (for the sweep) */
} os_fault_plan_t;
static os_fault_plan_t os_faults[LOF_OS_SITE_COUNT];

void lof__os_inject(lof_os_site_t site, unsigned nth, int err, bool sticky) {
  os_faults[site].err = err;
  os_faults[site].sticky = sticky;
  atomic_store(&os_faults[site].countdown, nth);
}

unsigned lof__os_calls(lof_os_site_t site) { return atomic_load(&os_faults[site].calls); }

/* True (errno set) when this call of site is to fail. */
static bool os_fault(lof_os_site_t site) {
  os_fault_plan_t *f = &os_faults[site];
  atomic_fetch_add_explicit(&f->calls, 1, memory_order_relaxed);
  unsigned c = atomic_load_explicit(&f->countdown, memory_order_relaxed);
  while (c != 0) {
    unsigned next = (c == 1 && f->sticky) ? 1 : c - 1;
    if (atomic_compare_exchange_weak(&f->countdown, &c, next)) {
      if (c != 1) return false;
      errno = f->err;
      return true;
    }
  }
  return false;
}
#define OS_FAULT(site, fail) do { if (os_fault(site)) return (fail); } while (0)
#else
#define OS_FAULT(site, fail) ((void)0)
#endif

/* ---- raw system calls ---------------------------------------------------- */

static void *os_mmap(void *addr, size_t len, int prot, int flags, int fd) {
  OS_FAULT(LOF_OS_MMAP, MAP_FAILED);
  return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, (off_t)0);
}

static int os_munmap(void *addr, size_t len) {
  OS_FAULT(LOF_OS_MUNMAP, -1);
  return (int)syscall(SYS_munmap, addr, len);
}

static int os_mprotect(void *addr, size_t len, int prot) {
  OS_FAULT(LOF_OS_MPROTECT, -1);
  return (int)syscall(SYS_mprotect, addr, len, prot);
}

static int os_madvise(void *addr, size_t len, int advice) {
  OS_FAULT(LOF_OS_MADVISE, -1);
  return (int)syscall(SYS_madvise, addr, len, advice);
}

static int os_mlock2(void *addr, size_t len, unsigned flags) {
  OS_FAULT(LOF_OS_MLOCK2, -1);
  if (os_lock_charge && (flags & MLOCK_ONFAULT)) flags |= OS_MLOCK_ONFAULT_CHARGE;
  return (int)syscall(SYS_mlock2, addr, len, flags);
}

static int os_munlock(void *addr, size_t len) {
  OS_FAULT(LOF_OS_MUNLOCK, -1);
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

/* ---- the program's own calls, passed through ---------------------------- */

void *lof__os_mmap_as_is(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}
int lof__os_munmap_as_is(void *addr, size_t len) { return (int)syscall(SYS_munmap, addr, len); }
void *lof__os_shmat(int shmid, const void *addr, int flags) {
  return (void *)syscall(SYS_shmat, shmid, addr, flags);
}
int lof__os_shmdt(const void *addr) { return (int)syscall(SYS_shmdt, addr); }
size_t lof__os_shm_size(int shmid) {
  struct shmid_ds ds;
  int saved = errno;
  long r = syscall(SYS_shmctl, shmid, IPC_STAT, &ds);
  errno = saved;
  return r == 0 ? ds.shm_segsz : 0;
}
long lof__os_fs_type(int fd) {
  struct statfs sfs;
  int saved = errno;
  long r = syscall(SYS_fstatfs, fd, &sfs);
  errno = saved;
  return r == 0 ? (long)sfs.f_type : 0;
}

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
    const char *nl;
    /* memchr: smaps is read twice at start-up (lof__os_probe), some 40 KB
     * for a small process; a loop per byte took 0.4M instructions */
    while (!stop && (nl = memchr(buf + start, '\n', have - start)) != NULL) {
      size_t i = (size_t)(nl - buf);
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
 * (or refuses it for locking reasons); one that does not says EOPNOTSUPP.
 * MAP_SHARED_VALIDATE checks flags only for file-backed mappings (with
 * MAP_ANONYMOUS every kernel says EINVAL), hence the one-page memfd. */
static bool os_validate_probe(void) {
  int fd = (int)syscall(SYS_memfd_create, "lofalloc-probe", 1u /* MFD_CLOEXEC */);
  if (fd < 0) return false;
  bool known = false;
  if (syscall(SYS_ftruncate, fd, (off_t)LOF_PAGE_SIZE) == 0) {
    void *p = os_mmap(NULL, LOF_PAGE_SIZE, OS_RW, MAP_SHARED_VALIDATE | MAP_LOCKONFAULT, fd);
    if (p != MAP_FAILED) {
      os_munmap(p, LOF_PAGE_SIZE);
      known = true;
    } else {
      known = errno == EPERM || errno == EAGAIN || errno == ENOMEM;
    }
  }
  lof__os_close(fd);
  return known;
}

/* madvise(MADV_DONTNEED_LOCKED) on a touched page of p (EINVAL before 5.18). */
static bool os_probe_dontneed_locked(void *p) {
  *(volatile char *)p = 1;
  return os_madvise(p, LOF_PAGE_SIZE, MADV_DONTNEED_LOCKED) == 0;
}

void lof__os_probe(lof_os_caps_t *caps) {
  int saved = errno;
  char flags[256];
  memset(caps, 0, sizeof *caps);
  caps->thp_always = os_thp_always();

  /* 1. A plain mapping tells whether mlockall(MCL_FUTURE[|MCL_ONFAULT]) is in force. */
  void *plain = os_mmap(NULL, LOF_PAGE_SIZE, OS_RW, MAP_PRIVATE | MAP_ANONYMOUS, -1);
  bool plain_lf = false;
  if (plain != MAP_FAILED) {
    if (lof__os_read_vmflags(plain, flags, sizeof flags) == 0) {
      if (os_flags_have(flags, "lo")) caps->mlockall_flags |= MCL_FUTURE;
      if (os_flags_have(flags, "lf")) caps->mlockall_flags |= MCL_ONFAULT, plain_lf = true;
    }
    os_munmap(plain, LOF_PAGE_SIZE);
  }

  /* 2. A mapping with the flag: VmFlags shows "lf" only if it was honoured
   * (or if MCL_ONFAULT makes every mapping lf: then the memfd probe decides). */
  void *p = os_mmap(NULL, LOF_PAGE_SIZE, OS_RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKONFAULT, -1);
  if (p != MAP_FAILED) {
    if (lof__os_read_vmflags(p, flags, sizeof flags) == 0 && os_flags_have(flags, "lf"))
      caps->map_lockonfault = plain_lf ? os_validate_probe() : true;
    caps->dontneed_locked = os_probe_dontneed_locked(p);
    os_munmap(p, LOF_PAGE_SIZE);
  } else {
    /* Refused for locking reasons (RLIMIT_MEMLOCK 0 without CAP_IPC_LOCK)
     * means the kernel knows the flag. */
    if (errno == EPERM || errno == EAGAIN) caps->map_lockonfault = os_validate_probe();
    void *q = os_mmap(NULL, LOF_PAGE_SIZE, OS_RW, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    if (q != MAP_FAILED) {
      caps->dontneed_locked = os_probe_dontneed_locked(q);
      os_munmap(q, LOF_PAGE_SIZE);
    }
  }
  os_dontneed_locked = caps->dontneed_locked;

  /* 3. The fault-time charge: mlock2 refuses a flag it does not know with
   * EINVAL.  A raw call, outside the fault-injection seam. */
  void *c = os_mmap(NULL, LOF_PAGE_SIZE, OS_RW, MAP_PRIVATE | MAP_ANONYMOUS, -1);
  if (c != MAP_FAILED) {
    os_lock_charge = syscall(SYS_mlock2, c, LOF_PAGE_SIZE,
                             MLOCK_ONFAULT | OS_MLOCK_ONFAULT_CHARGE) == 0;
    os_munmap(c, LOF_PAGE_SIZE);
  }
  os_map_charge = os_lock_charge ? OS_MAP_LOCKONFAULT_CHARGE : 0;
  errno = saved;
}

bool lof__os_lock_charged(void) {
  return os_lock_charge || lof__os_pretend_charge;
}

/* ---- limits and capabilities -------------------------------------------- */

bool lof__os_have_ipc_lock(void) {
  struct { uint32_t version; int pid; } hdr = {0x20080522, 0}; /* _LINUX_CAPABILITY_VERSION_3 */
  struct { uint32_t effective, permitted, inheritable; } data[2];
  if (syscall(SYS_capget, &hdr, data) != 0) return false;
  return (data[0].effective >> 14) & 1; /* CAP_IPC_LOCK = 14 */
}

uint64_t lof__os_memlock_limit(void) {
  struct rlimit rl;
  if (syscall(SYS_prlimit64, 0, RLIMIT_MEMLOCK, NULL, &rl) != 0) return UINT64_MAX;
  return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
}

/* ---- the memory cgroup's limit ------------------------------------------------- */

/* The first decimal number in a file ("max" and unreadable files: none). */
static uint64_t os_read_u64_file(const char *path, const char *key) {
  char buf[4096];
  int fd = lof__os_open_read(path);
  if (fd < 0) return UINT64_MAX;
  ssize_t n = lof__os_read(fd, buf, sizeof buf - 1);
  lof__os_close(fd);
  if (n <= 0) return UINT64_MAX;
  buf[n] = '\0';
  const char *p = buf;
  if (key != NULL) { /* "key value" line of a stat file */
    size_t kl = strlen(key);
    for (p = buf; *p; p++)
      if ((p == buf || p[-1] == '\n') && strncmp(p, key, kl) == 0 && p[kl] == ' ') break;
    if (*p == '\0') return UINT64_MAX;
    p += kl + 1;
  }
  if (*p < '0' || *p > '9') return UINT64_MAX;
  uint64_t v = 0;
  for (; *p >= '0' && *p <= '9'; p++) v = v * 10 + (uint64_t)(*p - '0');
  return v;
}

/* Append s to buf (of size cap) at *len; false if it does not fit. */
static bool os_path_add(char *buf, size_t cap, size_t *len, const char *s, size_t n) {
  if (*len + n + 1 > cap) return false;
  memcpy(buf + *len, s, n);
  *len += n;
  buf[*len] = '\0';
  return true;
}

typedef struct os_cgroup_paths {
  char v1[512];   /* the memory controller's path (cgroup v1), or "" */
  char v2[512];   /* the unified hierarchy's path (cgroup v2), or "" */
  bool have_v1, have_v2;
} os_cgroup_paths_t;

static bool os_cgroup_line(const char *line, size_t len, void *arg) {
  os_cgroup_paths_t *c = arg;
  /* "ID:CONTROLLERS:PATH" */
  const char *a = memchr(line, ':', len);
  if (a == NULL) return true;
  const char *b = memchr(a + 1, ':', len - (size_t)(a + 1 - line));
  if (b == NULL) return true;
  size_t clen = (size_t)(b - a - 1), plen = len - (size_t)(b + 1 - line);
  char *dst = NULL;
  if (clen == 0) dst = c->v2, c->have_v2 = true;
  else {
    for (const char *p = a + 1; p < b;) { /* comma-separated controllers */
      const char *q = memchr(p, ',', (size_t)(b - p));
      if (q == NULL) q = b;
      if (q - p == 6 && memcmp(p, "memory", 6) == 0) { dst = c->v1; c->have_v1 = true; }
      p = q + 1;
    }
  }
  if (dst != NULL && plen < 512) { memcpy(dst, b + 1, plen); dst[plen] = '\0'; }
  return true;
}

uint64_t lof__os_cgroup_memory_limit(void) {
  os_cgroup_paths_t c;
  memset(&c, 0, sizeof c);
  if (os_proc_lines("/proc/self/cgroup", os_cgroup_line, &c) != 0) return UINT64_MAX;
  char path[700];
  size_t len = 0;
  uint64_t limit = UINT64_MAX;
  if (c.have_v1) {
    /* v1: memory.stat's hierarchical_memory_limit is already the minimum
     * over the ancestors (unlimited reads as a huge number). */
    static const char root[] = "/sys/fs/cgroup/memory";
    if (os_path_add(path, sizeof path, &len, root, sizeof root - 1) &&
        os_path_add(path, sizeof path, &len, c.v1, strlen(c.v1)) &&
        os_path_add(path, sizeof path, &len, "/memory.stat", 12)) {
      uint64_t v = os_read_u64_file(path, "hierarchical_memory_limit");
      if (v < ((uint64_t)1 << 62)) limit = v;
    }
  }
  if (c.have_v2) {
    /* v2: memory.max of the cgroup and each ancestor; the smallest holds. */
    static const char root[] = "/sys/fs/cgroup";
    size_t plen = strlen(c.v2);
    while (plen > 0 && c.v2[plen - 1] == '/') plen--;
    for (;;) {
      len = 0;
      if (os_path_add(path, sizeof path, &len, root, sizeof root - 1) &&
          os_path_add(path, sizeof path, &len, c.v2, plen) &&
          os_path_add(path, sizeof path, &len, "/memory.max", 11)) {
        uint64_t v = os_read_u64_file(path, NULL);
        if (v < limit) limit = v;
      }
      if (plen == 0) break;
      while (plen > 0 && c.v2[plen - 1] != '/') plen--; /* the parent */
      while (plen > 0 && c.v2[plen - 1] == '/') plen--;
    }
  }
  return limit;
}

/* ---- primitives ----------------------------------------------------------- */

void *lof__os_reserve(size_t size, size_t align, bool nohugepage, bool accounted) {
  size_t span = size + (align > LOF_PAGE_SIZE ? align - LOF_PAGE_SIZE : 0);
  if (span < size) { errno = ENOMEM; return NULL; }
  /* Not accounted: MAP_NORESERVE (a reservation of which only parts are
   * ever committed).  Accounted: the kernel's overcommit policy judges the
   * whole size when it is made writable, exactly as for glibc's mmap. */
  int flags = accounted ? (MAP_PRIVATE | MAP_ANONYMOUS) : OS_ANON;
  void *p = os_mmap(NULL, span, PROT_NONE, flags, -1);
  if (p == MAP_FAILED) { errno = ENOMEM; return NULL; }
  uintptr_t start = (uintptr_t)p, aligned = LOF_ALIGN_UP(start, align);
  if (aligned > start) os_munmap(p, aligned - start);
  uintptr_t end = aligned + size, span_end = start + span;
  if (span_end > end) os_munmap((void *)end, span_end - end);
  /* Under mlockall(MCL_FUTURE) the reservation was locked and charged:
   * undo that, only commits are charged.  A no-op otherwise. */
  os_munlock((void *)aligned, size);
  if (nohugepage) os_madvise((void *)aligned, size, MADV_NOHUGEPAGE);
  return (void *)aligned;
}

int lof__os_commit_locked(void *addr, size_t len, bool use_map_flag, bool nohugepage) {
  if (use_map_flag) {
    void *p = os_mmap(addr, len, OS_RW, OS_ANON | MAP_FIXED | MAP_LOCKONFAULT | os_map_charge, -1);
    if (p == MAP_FAILED) return errno == ENOMEM ? LOF_OS_NOMEM : LOF_OS_LOCK_REFUSED;
    if (nohugepage) os_madvise(addr, len, MADV_NOHUGEPAGE);
    return 0;
  }
  /* Lock while PROT_NONE, then open: never accessible and unlocked, and
   * mprotect does not populate a VM_LOCKONFAULT range. */
  if (os_mlock2(addr, len, MLOCK_ONFAULT) != 0) return LOF_OS_LOCK_REFUSED;
  if (os_mprotect(addr, len, OS_RW) != 0) {
    int err = errno;
    os_munlock(addr, len);
    errno = err;
    return LOF_OS_NOMEM;
  }
  return 0;
}

int lof__os_commit_unlocked(void *addr, size_t len) {
  return os_mprotect(addr, len, OS_RW);
}

int lof__os_purge(void *addr, size_t len, bool relock) {
  if (os_dontneed_locked && !lof__os_force_legacy_purge)
    return os_madvise(addr, len, MADV_DONTNEED_LOCKED);
  if (!relock) return os_madvise(addr, len, MADV_DONTNEED);
  /* Before 5.18: MADV_DONTNEED fails with EINVAL on locked memory. */
  if (os_munlock(addr, len) != 0) return -1;
  int rc = os_madvise(addr, len, MADV_DONTNEED);
  int err = errno;
  if (os_mlock2(addr, len, MLOCK_ONFAULT) != 0) return -1;
  errno = err;
  return rc;
}

/* All or nothing for the lock: the unlock comes last, so a failure of any
 * step leaves the range locked, charged and accessible, as the caller's
 * counters still have it (an unlock that succeeded before a failed step
 * used to leave the range unlocked while the stats counted it locked:
 * VmLck below locked_range, found by the fault sweep).  Where the kernel
 * has MADV_DONTNEED_LOCKED the pages go first, while the range is locked;
 * before 5.18 they go after the unlock, where a refused madvise is
 * harmless (the range is already unlocked and inaccessible: its pages are
 * reclaimable, and the next commit maps fresh zero pages over them). */
int lof__os_decommit(void *addr, size_t len) {
  bool dropped_first = os_dontneed_locked && !lof__os_force_legacy_purge;
  if (dropped_first && os_madvise(addr, len, MADV_DONTNEED_LOCKED) != 0) return -1;
  if (os_mprotect(addr, len, PROT_NONE) != 0) return -1;
  if (os_munlock(addr, len) != 0) {
    int err = errno;
    /* back to committed (a second refusal here, which no sweep run makes,
     * would leave it locked but inaccessible) */
    os_mprotect(addr, len, PROT_READ | PROT_WRITE);
    errno = err;
    return -1;
  }
  if (!dropped_first) {
    int saved = errno;
    os_madvise(addr, len, MADV_DONTNEED);
    errno = saved;
  }
  return 0;
}

int lof__os_lock_onfault(void *addr, size_t len) {
  return os_mlock2(addr, len, MLOCK_ONFAULT);
}

int lof__os_unlock(void *addr, size_t len) {
  return os_munlock(addr, len);
}

int lof__os_advise(void *addr, size_t len, int advice) {
  return os_madvise(addr, len, advice);
}

int lof__os_remap_to(void *addr, size_t old_len, size_t new_len, void *dest) {
  OS_FAULT(LOF_OS_MREMAP, -1);
  void *p = (void *)syscall(SYS_mremap, addr, old_len, new_len, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
  return p == MAP_FAILED ? -1 : 0;
}

int lof__os_release(void *addr, size_t len) {
  return os_munmap(addr, len);
}

void *lof__os_map_meta(size_t len) {
  void *p = os_mmap(NULL, len, OS_RW, MAP_PRIVATE | MAP_ANONYMOUS, -1);
  if (p == MAP_FAILED) return NULL;
  /* A flag the heap's mappings lack, so that a locked metadata mapping
   * never merges into a neighbouring heap VMA (its pages would then count
   * as the heap's in smaps).  The cost: region metadata is left out of
   * core dumps (segment headers, in the heap, are not). */
  os_madvise(p, len, MADV_DONTDUMP);
  return p;
}

void *lof__os_map_sparse(size_t len) {
  void *p = os_mmap(NULL, len, OS_RW, OS_ANON, -1);
  return p == MAP_FAILED ? NULL : p;
}

void *lof__os_map_whole_locked(size_t len) {
  /* Accounted like glibc's mmap (no MAP_NORESERVE): the overcommit policy
   * refuses what cannot be backed. */
  void *p = os_mmap(NULL, len, OS_RW,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKONFAULT | os_map_charge, -1);
  if (p == MAP_FAILED) return NULL;
  return p;
}

/* Fault in every page of [addr, addr+len) for writing without changing its
 * contents (MADV_POPULATE_WRITE, Linux 5.14): pages of a lock-on-fault range
 * become resident and locked now.  Used by lof_reserve. */
int lof__os_populate(void *addr, size_t len) {
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  return os_madvise(addr, len, MADV_POPULATE_WRITE);
}
