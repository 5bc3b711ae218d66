/*
 * smaps.c -- reading /proc/self/smaps, smaps_rollup and status for tests
 * (see smaps.h).  Uses stdio: tests may allocate.
 */
#include "smaps.h"

#include <inttypes.h>
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "lofalloc-mman.h"
#include <stdio.h>
#include <string.h>

/* Iterate the VMAs of smaps; fn returns 0 to go on, 1 to stop. */
static int smaps_each(int (*fn)(const smaps_vma_t *, void *), void *arg) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f) return -1;
  char line[512];
  smaps_vma_t cur;
  int have = 0, stop = 0;
  while (!stop && fgets(line, sizeof line, f)) {
    uintptr_t s, e;
    if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &s, &e) == 2 && strchr(line, '-') &&
        line[0] != ' ' && !(line[0] >= 'A' && line[0] <= 'Z')) {
      if (have) stop = fn(&cur, arg);
      memset(&cur, 0, sizeof cur);
      cur.start = s;
      cur.end = e;
      have = 1;
      continue;
    }
    unsigned long long kb;
    if (sscanf(line, "Rss: %llu kB", &kb) == 1) cur.rss = kb * 1024;
    else if (sscanf(line, "Locked: %llu kB", &kb) == 1) cur.locked = kb * 1024;
    else if (strncmp(line, "VmFlags:", 8) == 0) {
      const char *p = line + 8;
      while (*p == ' ') p++;
      size_t pl = strlen(p);
      if (pl >= sizeof cur.vmflags) pl = sizeof cur.vmflags - 1;
      memcpy(cur.vmflags, p, pl);
      cur.vmflags[pl] = '\0';
      size_t n = strlen(cur.vmflags);
      while (n && (cur.vmflags[n - 1] == '\n' || cur.vmflags[n - 1] == ' ')) cur.vmflags[--n] = 0;
    }
  }
  if (have && !stop) fn(&cur, arg);
  fclose(f);
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

static int flags_have(const char *flags, const char *want) {
  char copy[160];
  snprintf(copy, sizeof copy, "%s", want);
  for (char *tok = strtok(copy, " "); tok; tok = strtok(NULL, " ")) {
    size_t tl = strlen(tok);
    const char *p = flags;
    int found = 0;
    while (*p) {
      while (*p == ' ') p++;
      const char *q = p;
      while (*q && *q != ' ') q++;
      if ((size_t)(q - p) == tl && strncmp(p, tok, tl) == 0) { found = 1; break; }
      p = q;
    }
    if (!found) return 0;
  }
  return 1;
}

bool smaps_has_flags(const void *addr, const char *flags) {
  smaps_vma_t v;
  return smaps_vma_at(addr, &v) == 0 && flags_have(v.vmflags, flags);
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
  if (q->flags && !flags_have(v->vmflags, q->flags)) q->all_have = 0;
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

static uint64_t read_kb_field(const char *path, const char *field) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[256];
  size_t fl = strlen(field);
  uint64_t v = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, field, fl) == 0) {
      unsigned long long kb = 0;
      sscanf(line + fl, " %llu", &kb);
      v = kb * 1024;
      break;
    }
  }
  fclose(f);
  return v;
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
  bool plain_lf = q != MAP_FAILED && smaps_vma_at(q, &plain) == 0 && flags_have(plain.vmflags, "lf");
  bool lf = smaps_vma_at(p, &v) == 0 && flags_have(v.vmflags, "lf");
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
