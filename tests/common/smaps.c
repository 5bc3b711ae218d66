/*
 * smaps.c -- reading /proc/self/smaps, smaps_rollup and status for tests
 * and the preloaded checker (see smaps.h): read(2) into stack buffers, no
 * stdio and no malloc, so it is safe inside a program whose heap is being
 * checked.
 */
#include "smaps.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lofalloc-mman.h"

/* Lines of a /proc file, read with read(2) into buffers on the stack (no
 * stdio, no malloc: the preloaded checker library runs this in a destructor
 * of a program whose heap is lofalloc's).  fn returns 0 to go on, 1 to stop. */
static int proc_lines(const char *path, int (*fn)(const char *line, void *), void *arg) {
  char buf[16384];
  char line[512];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t ll = 0;
  ssize_t n;
  int stop = 0;
  while (!stop && (n = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n && !stop; i++) {
      if (buf[i] != '\n') {
        if (ll + 1 < sizeof line) line[ll++] = buf[i];
        continue;
      }
      line[ll] = '\0';
      ll = 0;
      stop = fn(line, arg);
    }
  }
  close(fd);
  return 0;
}

/* Parse a hexadecimal number at *p, advancing it; false if there is none. */
static bool parse_hex(const char **p, uintptr_t *out) {
  uintptr_t v = 0;
  const char *s = *p;
  for (;; s++) {
    unsigned d;
    if (*s >= '0' && *s <= '9') d = (unsigned)(*s - '0');
    else if (*s >= 'a' && *s <= 'f') d = (unsigned)(*s - 'a' + 10);
    else break;
    v = v << 4 | d;
  }
  if (s == *p) return false;
  *p = s;
  *out = v;
  return true;
}

/* The "N kB" after "Field:" in line, in bytes; false if line is another field. */
static bool kb_field(const char *line, const char *field, uint64_t *bytes) {
  size_t fl = strlen(field);
  if (strncmp(line, field, fl) != 0) return false;
  const char *p = line + fl;
  while (*p == ' ' || *p == '\t') p++;
  uint64_t v = 0;
  for (; *p >= '0' && *p <= '9'; p++) v = v * 10 + (uint64_t)(*p - '0');
  *bytes = v * 1024;
  return true;
}

struct each_state {
  int (*fn)(const smaps_vma_t *, void *);
  void *arg;
  smaps_vma_t cur;
  int have;
};

/* A VMA header is "start-end perms ...": hex, '-', hex, ' '. */
static int each_line(const char *line, void *arg) {
  struct each_state *st = arg;
  const char *p = line;
  uintptr_t s, e;
  if (parse_hex(&p, &s) && *p == '-' && (p++, parse_hex(&p, &e)) && *p == ' ') {
    int stop = st->have ? st->fn(&st->cur, st->arg) : 0;
    memset(&st->cur, 0, sizeof st->cur);
    st->cur.start = s;
    st->cur.end = e;
    st->have = 1;
    return stop;
  }
  if (kb_field(line, "Rss:", &st->cur.rss) || kb_field(line, "Locked:", &st->cur.locked)) return 0;
  if (strncmp(line, "VmFlags:", 8) == 0) {
    p = line + 8;
    while (*p == ' ') p++;
    size_t pl = strlen(p);
    if (pl >= sizeof st->cur.vmflags) pl = sizeof st->cur.vmflags - 1;
    memcpy(st->cur.vmflags, p, pl);
    st->cur.vmflags[pl] = '\0';
    while (pl && st->cur.vmflags[pl - 1] == ' ') st->cur.vmflags[--pl] = '\0';
  }
  return 0;
}

/* Iterate the VMAs of smaps; fn returns 0 to go on, 1 to stop. */
static int smaps_each(int (*fn)(const smaps_vma_t *, void *), void *arg) {
  struct each_state st = {fn, arg, {0}, 0};
  if (proc_lines("/proc/self/smaps", each_line, &st) != 0) return -1;
  if (st.have) fn(&st.cur, arg); /* the last VMA (a stop there changes nothing) */
  return 0;
}

struct at_query { uintptr_t addr; smaps_vma_t *out; int found; };

static int at_cb(const smaps_vma_t *v, void *arg) {
  struct at_query *q = arg;
  if (q->addr >= v->start && q->addr < v->end) {
    *q->out = *v;
    q->found = 1;
    return 1;
  }
  return 0;
}

int smaps_vma_at(const void *addr, smaps_vma_t *out) {
  struct at_query q = {(uintptr_t)addr, out, 0};
  if (smaps_each(at_cb, &q) != 0) return -1;
  return q.found ? 0 : -1;
}

/* Is the space-separated word w (length wl) in the space-separated list? */
static bool word_in(const char *list, const char *w, size_t wl) {
  for (const char *p = list; *p;) {
    while (*p == ' ') p++;
    const char *q = p;
    while (*q && *q != ' ') q++;
    if ((size_t)(q - p) == wl && wl > 0 && strncmp(p, w, wl) == 0) return true;
    p = q;
  }
  return false;
}

bool smaps_flags_have(const char *vmflags, const char *want) {
  for (const char *p = want; *p;) {
    while (*p == ' ') p++;
    const char *q = p;
    while (*q && *q != ' ') q++;
    if (q > p && !word_in(vmflags, p, (size_t)(q - p))) return false;
    p = q;
  }
  return true;
}

bool smaps_has_flags(const void *addr, const char *flags) {
  smaps_vma_t v;
  return smaps_vma_at(addr, &v) == 0 && smaps_flags_have(v.vmflags, flags);
}

struct range_query {
  uintptr_t lo, hi;
  uint64_t rss, locked;
  int vmas;
  const char *flags;
  int all_have;
};

static int range_cb(const smaps_vma_t *v, void *arg) {
  struct range_query *q = arg;
  if (v->end <= q->lo || v->start >= q->hi) return 0;
  q->rss += v->rss;
  q->locked += v->locked;
  q->vmas++;
  if (q->flags && !smaps_flags_have(v->vmflags, q->flags)) q->all_have = 0;
  return 0;
}

int smaps_range(const void *addr, size_t len, uint64_t *rss, uint64_t *locked, int *vmas) {
  struct range_query q = {(uintptr_t)addr, (uintptr_t)addr + len, 0, 0, 0, NULL, 1};
  if (smaps_each(range_cb, &q) != 0) return -1;
  if (rss) *rss = q.rss;
  if (locked) *locked = q.locked;
  if (vmas) *vmas = q.vmas;
  return 0;
}

bool smaps_range_all_have_flags(const void *addr, size_t len, const char *flags) {
  struct range_query q = {(uintptr_t)addr, (uintptr_t)addr + len, 0, 0, 0, flags, 1};
  if (smaps_each(range_cb, &q) != 0) return false;
  return q.vmas > 0 && q.all_have;
}

struct field_query { const char *field; uint64_t bytes; };

static int field_line(const char *line, void *arg) {
  struct field_query *q = arg;
  return kb_field(line, q->field, &q->bytes) ? 1 : 0;
}

static uint64_t read_kb_field(const char *path, const char *field) {
  struct field_query q = {field, 0};
  proc_lines(path, field_line, &q);
  return q.bytes;
}

uint64_t smaps_total_locked(void) { return read_kb_field("/proc/self/smaps_rollup", "Locked:"); }
uint64_t smaps_total_rss(void) { return read_kb_field("/proc/self/smaps_rollup", "Rss:"); }
uint64_t proc_vmlck(void) { return read_kb_field("/proc/self/status", "VmLck:"); }

bool kernel_has_map_lockonfault(void) {
  void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKONFAULT, -1, 0);
  if (p == MAP_FAILED) return false;
  smaps_vma_t plain, v;
  void *q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  bool plain_lf = q != MAP_FAILED && smaps_vma_at(q, &plain) == 0 && smaps_flags_have(plain.vmflags, "lf");
  bool lf = smaps_vma_at(p, &v) == 0 && smaps_flags_have(v.vmflags, "lf");
  munmap(p, 4096);
  if (q != MAP_FAILED) munmap(q, 4096);
  if (!plain_lf) return lf;
  /* mlockall(MCL_ONFAULT) makes every mapping lf: ask MAP_SHARED_VALIDATE
   * on a memfd instead (an unpatched kernel says EOPNOTSUPP; with
   * MAP_ANONYMOUS every kernel says EINVAL, which is no answer). */
  int fd = (int)syscall(SYS_memfd_create, "probe", 0u);
  if (fd < 0) return false;
  bool known = false;
  if (ftruncate(fd, 4096) == 0) {
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_LOCKONFAULT, fd, 0);
    known = m != MAP_FAILED || errno == EPERM || errno == EAGAIN;
    if (m != MAP_FAILED) munmap(m, 4096);
  }
  close(fd);
  return known;
}
