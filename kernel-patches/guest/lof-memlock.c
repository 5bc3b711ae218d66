/*
 * lof-memlock.c -- how much lofalloc heap an unprivileged process can
 * allocate, touch and have locked under an 8 MiB RLIMIT_MEMLOCK, on the
 * running kernel, proven page by page.
 *
 * Usage (as root, in the guest):
 *   lof-memlock MIN_KIB MAX_KIB STRIDE VMLCK_MIN_KIB VMLCK_MAX_KIB [LC_MIN_KIB]
 * Forks a child that sets RLIMIT_MEMLOCK to 8 MiB (soft and hard), drops
 * to uid/gid 65534 (no capabilities: CapEff must read 0) and re-executes
 * itself, so liblofalloc starts unprivileged.  The child allocates 1 MiB
 * blocks with lof_malloc() and writes every STRIDE-th page of each (1: every
 * page; 4: a quarter, a sparse heap), until lof_malloc
 * returns NULL (LOFALLOC_POLICY=strict: a refused lock is ENOMEM, not an
 * unlocked block) or 64 blocks; a SIGBUS while touching is a failure.  It
 * prints its VmLck, smaps_rollup Locked and the library's counters, sends
 * its blocks' addresses to the parent and waits.  The parent, root, reads
 * the child's /proc/PID/pagemap and /proc/kpageflags: every touched page
 * must be present and KPF_MLOCKED; and the rise of meminfo Mlocked.
 *
 * Prints "LOFMEMLOCK ..." lines; exits 0 when every touched page is
 * mlocked, the touched heap is between MIN_KIB and MAX_KIB and the child's
 * VmLck (the kernel's RLIMIT_MEMLOCK charge) between VMLCK_MIN_KIB and
 * VMLCK_MAX_KIB, else 1.  With LC_MIN_KIB (the rfc kernel): the child's
 * VMAs locked with the fault-time charge (VmFlags "lc") must span at least
 * LC_MIN_KIB of address space -- more than the limit when lofalloc locks
 * each reservation whole, as only that charge allows.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lofalloc.h"

#define LIMIT (8UL << 20)
#define BLOCK (1UL << 20)
#define MAX_BLOCKS 64
#define KPF_MLOCKED 33
#define PM_PRESENT (1ULL << 63)
#define PM_PFN (((uint64_t)1 << 55) - 1)

static long kb_of(const char *path, const char *key) {
  char line[256];
  size_t n = strlen(key);
  long kb = -1;
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, n) == 0) kb = strtol(line + n, NULL, 10);
  fclose(f);
  return kb;
}

static unsigned long long hex_of(const char *path, const char *key) {
  char line[256];
  size_t n = strlen(key);
  unsigned long long v = ~0ULL;
  FILE *f = fopen(path, "r");
  if (!f) return v;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, n) == 0) v = strtoull(line + n, NULL, 16);
  fclose(f);
  return v;
}

/* Address space in VMAs whose VmFlags show "lc" (charged as they fault in). */
static long lc_kb(void) {
  char line[512];
  unsigned long s = 0, e = 0, a, b;
  long kb = 0;
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "%lx-%lx ", &a, &b) == 2) { /* a VMA's first line */
      s = a;
      e = b;
      continue;
    }
    if (strncmp(line, "VmFlags:", 8) == 0 && strstr(line, " lc")) kb += (long)((e - s) >> 10);
  }
  fclose(f);
  return kb;
}

static sigjmp_buf bus_jmp;
static void on_bus(int sig) {
  (void)sig;
  siglongjmp(bus_jmp, 1);
}

/* The unprivileged child, after exec: fd 3 writes to the parent, fd 4
 * reads from it (EOF: exit). */
static int child(size_t stride) {
  static char *blocks[MAX_BLOCKS];
  static volatile int n;
  static volatile int sigbus;
  long ps = sysconf(_SC_PAGESIZE);
  volatile int err = 0;
  struct rlimit rl;
  lof_stats_t st;
  FILE *out = fdopen(3, "w");
  if (!out) return 2;
  getrlimit(RLIMIT_MEMLOCK, &rl);
  printf("LOFMEMLOCK child uid=%d memlock=%llu CapEff=%llx policy=%s\n", (int)getuid(),
         (unsigned long long)rl.rlim_cur, hex_of("/proc/self/status", "CapEff:"),
         getenv("LOFALLOC_POLICY") ? getenv("LOFALLOC_POLICY") : "(default)");
  signal(SIGBUS, on_bus);
  for (n = 0; n < MAX_BLOCKS; n++) {
    char *p = lof_malloc(BLOCK);
    if (!p) {
      err = errno;
      break;
    }
    blocks[n] = p;
    if (sigsetjmp(bus_jmp, 1)) {
      sigbus = 1;
      break;
    }
    for (size_t off = 0; off < BLOCK; off += stride * (size_t)ps) p[off] = 1;
  }
  memset(&st, 0, sizeof st);
  lof_stats_get(&st, sizeof st);
  st.backend_name[sizeof st.backend_name - 1] = '\0';
  st.policy_name[sizeof st.policy_name - 1] = '\0';
  long vmlck = kb_of("/proc/self/status", "VmLck:"), lc = lc_kb();
  printf("LOFMEMLOCK child blocks=%d stride=%zu touched_kb=%lu stop=%s VmLck_kb=%ld lc_kb=%ld "
         "Locked_kb=%ld "
         "backend=%s policy=%s locked_range_kb=%llu meta_locked_kb=%llu committed_kb=%llu "
         "fallback_kb=%llu\n",
         n, stride, (unsigned long)n * (BLOCK >> 10) / stride,
         sigbus ? "SIGBUS" : err ? strerror(err) : "max-blocks", vmlck, lc,
         kb_of("/proc/self/smaps_rollup", "Locked:"),
         st.backend_name, st.policy_name, (unsigned long long)st.locked_range >> 10,
         (unsigned long long)st.meta_locked >> 10, (unsigned long long)st.committed >> 10,
         (unsigned long long)st.fallback >> 10);
  fflush(stdout);
  fprintf(out, "%d %d %s %d %llx %ld %ld\n", n, sigbus, st.policy_name, (int)getuid(),
          hex_of("/proc/self/status", "CapEff:"), vmlck, lc);
  for (int i = 0; i < n; i++) fprintf(out, "%lx\n", (unsigned long)blocks[i]);
  fclose(out);
  char c;
  while (read(4, &c, 1) > 0) {}
  return 0;
}

/* Of the pages of [addr, addr + len) in pid: present and mlocked. */
static int count_pages(int pm, int kf, unsigned long addr, size_t len, long step, long ps,
                       size_t *present, size_t *mlocked) {
  for (size_t off = 0; off < len; off += (size_t)step) {
    uint64_t e, fl;
    if (pread(pm, &e, sizeof e, (off_t)((addr + off) / (unsigned long)ps * sizeof e)) != sizeof e)
      return -1;
    if (!(e & PM_PRESENT)) continue;
    (*present)++;
    if ((e & PM_PFN) == 0) return -1;
    if (pread(kf, &fl, sizeof fl, (off_t)((e & PM_PFN) * sizeof fl)) != sizeof fl) return -1;
    *mlocked += fl >> KPF_MLOCKED & 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--child") == 0) return child((size_t)atol(argv[2]));
  if ((argc != 6 && argc != 7) || atol(argv[3]) < 1) {
    fprintf(stderr, "usage: lof-memlock MIN_KIB MAX_KIB STRIDE VMLCK_MIN_KIB VMLCK_MAX_KIB "
            "[LC_MIN_KIB]\n");
    return 2;
  }
  long min_kb = atol(argv[1]), max_kb = atol(argv[2]), ps = sysconf(_SC_PAGESIZE);
  long stride = atol(argv[3]), vmin_kb = atol(argv[4]), vmax_kb = atol(argv[5]), vmlck = -1;
  long lc_min_kb = argc == 7 ? atol(argv[6]) : -1, lc = -1;
  int up[2], down[2];
  if (getuid() != 0 || pipe2(up, O_CLOEXEC) || pipe2(down, O_CLOEXEC)) {
    printf("LOFMEMLOCK FAIL: needs root (to drop privileges and read kpageflags)\n");
    return 1;
  }
  long mlocked0 = kb_of("/proc/meminfo", "Mlocked:");
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    struct rlimit rl = {LIMIT, LIMIT};
    /* fds 0-2 are open, so up[1] > 3 and down[0] > 4: the copies lose
     * O_CLOEXEC, the pipes' own fds close at exec */
    if (dup2(up[1], 3) < 0 || dup2(down[0], 4) < 0) _exit(3);
    if (setrlimit(RLIMIT_MEMLOCK, &rl) || setgroups(0, NULL) || setgid(65534) || setuid(65534))
      _exit(4);
    setenv("LOFALLOC_POLICY", "strict", 1);
    execl("/proc/self/exe", argv[0], "--child", argv[3], (char *)NULL);
    _exit(5);
  }
  close(up[1]);
  close(down[0]);
  FILE *in = fdopen(up[0], "r");
  int n = -1, sigbus = 1, bad = 0, uid = 0;
  unsigned long long capeff = ~0ULL;
  char policy[32] = "";
  if (!in || fscanf(in, "%d %d %31s %d %llx %ld %ld", &n, &sigbus, policy, &uid, &capeff, &vmlck,
                    &lc) != 7) {
    int st = 0;
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    printf("LOFMEMLOCK FAIL: no report from the child (status %#x)\n", st);
    return 1;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/pagemap", (int)pid);
  int pm = open(path, O_RDONLY), kf = open("/proc/kpageflags", O_RDONLY);
  size_t present = 0, mlocked = 0;
  for (int i = 0; i < n; i++) {
    unsigned long a;
    if (fscanf(in, "%lx", &a) != 1 || pm < 0 || kf < 0 ||
        count_pages(pm, kf, a, BLOCK, ps * stride, ps, &present, &mlocked)) {
      printf("LOFMEMLOCK FAIL: cannot read the pages of block %d (%s)\n", i, strerror(errno));
      bad = 1;
      break;
    }
  }
  long mlocked1 = kb_of("/proc/meminfo", "Mlocked:");
  size_t touched = (size_t)(n > 0 ? n : 0) * (BLOCK / (size_t)ps / (size_t)stride);
  long touched_kb = (long)(touched * (size_t)ps >> 10);
  printf("LOFMEMLOCK stride=%ld touched_kb=%ld pages=%zu present=%zu mlocked=%zu "
         "meminfo_Mlocked_rise_kb=%ld VmLck_kb=%ld limit_kb=%lu want_kb=%ld..%ld "
         "want_VmLck_kb=%ld..%ld lc_kb=%ld want_lc_kb=%ld..\n",
         stride, touched_kb, touched, present, mlocked, mlocked1 - mlocked0, vmlck, LIMIT >> 10,
         min_kb, max_kb, vmin_kb, vmax_kb, lc, lc_min_kb);
  close(down[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    printf("LOFMEMLOCK FAIL: child status %#x\n", status);
    bad = 1;
  }
  if (uid == 0 || capeff != 0) {
    printf("LOFMEMLOCK FAIL: the child is uid %d with CapEff %llx, not unprivileged\n", uid,
           capeff);
    bad = 1;
  }
  if (strcmp(policy, "strict") != 0) {
    printf("LOFMEMLOCK FAIL: policy %s, not strict\n", policy);
    bad = 1;
  }
  if (sigbus) {
    printf("LOFMEMLOCK FAIL: SIGBUS while touching the heap\n");
    bad = 1;
  }
  if (present != touched || mlocked != touched) {
    printf("LOFMEMLOCK FAIL: %zu of %zu touched pages present, %zu mlocked\n", present, touched,
           mlocked);
    bad = 1;
  }
  if (mlocked1 - mlocked0 < touched_kb) {
    printf("LOFMEMLOCK FAIL: meminfo Mlocked rose %ld kB, less than the %ld kB touched\n",
           mlocked1 - mlocked0, touched_kb);
    bad = 1;
  }
  if (touched_kb < min_kb || touched_kb > max_kb) {
    printf("LOFMEMLOCK FAIL: %ld kB touched and locked, want %ld..%ld\n", touched_kb, min_kb,
           max_kb);
    bad = 1;
  }
  if (lc_min_kb >= 0 && lc < lc_min_kb) {
    printf("LOFMEMLOCK FAIL: %ld kB of address space locked with the fault-time charge, want "
           "at least %ld (each reservation locked whole)\n", lc, lc_min_kb);
    bad = 1;
  }
  if (vmlck < vmin_kb || vmlck > vmax_kb) {
    printf("LOFMEMLOCK FAIL: VmLck %ld kB, want %ld..%ld\n", vmlck, vmin_kb, vmax_kb);
    bad = 1;
  }
  return bad;
}
