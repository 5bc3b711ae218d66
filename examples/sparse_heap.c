/*
 * sparse_heap.c -- the demonstration: a database-style sparse table on a
 * locked heap.  It callocs a large table, touches a small fraction of its
 * pages, frees it, and prints what the kernel says at each step: bytes
 * touched, locked-resident heap (smaps Locked:), VmLck (the locked *range*,
 * what RLIMIT_MEMLOCK is charged) and RSS.
 *
 *   sparse_heap [--mlockall] [--size BYTES] [--touch PERCENT]
 *
 * Run it on liblofalloc (linked or LD_PRELOAD) to see a heap locked on
 * fault; run it with --mlockall on another malloc to see the classic way
 * (mlockall(MCL_CURRENT|MCL_FUTURE)) lock and populate everything.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lofalloc.h"

static unsigned long long kb_field(const char *path, const char *field) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[256];
  unsigned long long v = 0;
  size_t fl = strlen(field);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, field, fl) == 0) { sscanf(line + fl, " %llu", &v); break; }
  fclose(f);
  return v * 1024;
}

static void report(const char *step, size_t touched) {
  printf("%-28s touched %8.1f MiB | locked-resident %8.1f MiB | VmLck %9.1f MiB | RSS %8.1f MiB\n",
         step, touched / 1048576.0, kb_field("/proc/self/smaps_rollup", "Locked:") / 1048576.0,
         kb_field("/proc/self/status", "VmLck:") / 1048576.0,
         kb_field("/proc/self/smaps_rollup", "Rss:") / 1048576.0);
}

int main(int argc, char **argv) {
  size_t size = (size_t)4 << 30;
  double percent = 1.0;
  int use_mlockall = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--mlockall") == 0) use_mlockall = 1;
    else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) size = strtoull(argv[++i], NULL, 0);
    else if (strcmp(argv[i], "--touch") == 0 && i + 1 < argc) percent = atof(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--mlockall] [--size BYTES] [--touch PERCENT]\n", argv[0]);
      return 2;
    }
  }
  /* lof_stats_get is there when liblofalloc is linked or preloaded. */
  int (*stats_get)(lof_stats_t *, size_t) =
      (int (*)(lof_stats_t *, size_t))dlsym(RTLD_DEFAULT, "lof_stats_get");
  lof_stats_t st;
  if (stats_get && stats_get(&st, sizeof st) == 0)
    printf("allocator: lofalloc, backend %s, policy %s\n", st.backend_name, st.policy_name);
  else
    printf("allocator: not lofalloc%s\n", use_mlockall ? " + mlockall(MCL_CURRENT|MCL_FUTURE)" : "");
  if (use_mlockall && mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
    perror("mlockall");
    return 1;
  }
  report("start", 0);
  unsigned char *table = calloc(1, size);
  if (!table) {
    perror("calloc");
    return 1;
  }
  report("after calloc", 0);
  size_t pages = size / 4096, step = (size_t)(100.0 / percent), touched = 0;
  for (size_t i = 0; i < pages; i += step) {
    table[i * 4096 + (i % 4000)] = (unsigned char)(i | 1);
    touched += 4096;
  }
  report("after touching the table", touched);
  size_t errors = 0;
  for (size_t i = 0; i < pages; i += step) errors += table[i * 4096 + (i % 4000)] != (unsigned char)(i | 1);
  free(table);
  malloc_trim(0);
  report("after free + malloc_trim", 0);
  if (stats_get && stats_get(&st, sizeof st) == 0)
    printf("lofalloc stats: committed %.1f MiB, locked range %.1f MiB, locked resident %.1f MiB, "
           "purged %.1f MiB, heap VMAs %llu\n",
           st.committed / 1048576.0, st.locked_range / 1048576.0, st.locked_resident / 1048576.0,
           st.purged / 1048576.0, (unsigned long long)st.heap_vmas);
  if (errors) {
    fprintf(stderr, "sparse_heap: %zu bad values read back\n", errors);
    return 1;
  }
  return 0;
}
