/*
 * budget.c -- the whole-process mode under a lock budget: run by
 * budget.sh as an unprivileged user under the default 8 MiB
 * RLIMIT_MEMLOCK, with liblofalloc-jemalloc-process.so preloaded.
 *   heap:  7 MiB of 64 KiB blocks, touched: at least 5 MiB of the blocks
 *          lie in locked VMAs and the process has at least 6 MiB locked
 *          resident (smaps Locked:); jemalloc's own first mappings no longer
 *          take the whole limit.  Then a fork child finds the same blocks
 *          locked again (memory locks are not inherited across fork).
 *   churn: 2 x 40 MiB of small blocks, far past the limit, so that jemalloc
 *          commits hundreds of slabs after the first refusal; budget.sh
 *          counts the failing mlock2 calls with strace.
 * Measured by the kernel, not by lofalloc's counters (printed for the log).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lofalloc.h"
#include "smaps.h"

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
enum { HEAP_BLOCKS = 112 };
static const size_t heap_block = 64 * KiB;

static void print_stats(const char *when) {
  int (*get)(lof_stats_t *, size_t) = (int (*)(lof_stats_t *, size_t))dlsym(RTLD_DEFAULT, "lof_je_stats_get");
  lof_stats_t st;
  memset(&st, 0, sizeof st);
  if (get != NULL) get(&st, sizeof st);
  printf("  %s: VmLck %llu KiB, smaps Locked %llu KiB; lof locked_range %llu KiB locked_resident %llu KiB "
         "fallback %llu KiB lock_failures %llu\n", when,
         (unsigned long long)(proc_vmlck() >> 10), (unsigned long long)(smaps_total_locked() >> 10),
         (unsigned long long)(st.locked_range >> 10), (unsigned long long)(st.locked_resident >> 10),
         (unsigned long long)(st.fallback >> 10), (unsigned long long)st.lock_failures);
}

/* Bytes of the blocks that lie in VMAs with VM_LOCKED (`lo`): touched, so
 * resident, so locked. */
static size_t blocks_locked(char **blocks) {
  size_t n = 0;
  for (int i = 0; i < HEAP_BLOCKS; i++)
    if (smaps_range_all_have_flags(blocks[i], heap_block, "lo")) n += heap_block;
  return n;
}

static int test_heap(void) {
  static char *blocks[HEAP_BLOCKS];
  for (int i = 0; i < HEAP_BLOCKS; i++) {
    blocks[i] = malloc(heap_block);
    if (blocks[i] == NULL) return 1;
    memset(blocks[i], i + 1, heap_block);
  }
  size_t locked = blocks_locked(blocks);
  uint64_t total = smaps_total_locked();
  print_stats("heap");
  printf("  %zu KiB of blocks, %zu KiB of them in locked VMAs; process Locked %llu KiB\n",
         HEAP_BLOCKS * heap_block >> 10, locked >> 10, (unsigned long long)(total >> 10));
  int rc = 0;
  if (locked < 5 * MiB) { printf("FAIL: less than 5 MiB of the blocks locked\n"); rc = 2; }
  if (total < 6 * MiB) { printf("FAIL: less than 6 MiB locked resident\n"); rc = 3; }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    size_t child = blocks_locked(blocks);
    for (int i = 0; i < HEAP_BLOCKS; i++)
      if (blocks[i][0] != (char)(i + 1)) _exit(5);
    printf("  fork child: %zu KiB of the parent's blocks in locked VMAs\n", child >> 10);
    fflush(stdout);
    _exit(child >= locked ? 0 : 4);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return 6;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    printf("FAIL: fork child: status %d (4 = fewer blocks locked than in the parent)\n", status);
    rc = 7;
  }
  for (int i = 0; i < HEAP_BLOCKS; i++) free(blocks[i]);
  return rc;
}

static int test_churn(void) {
  enum { N = 9000 };
  static void *p[N];
  unsigned seed = 3;
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < N; i++) {
      size_t n = 1024 + (size_t)(rand_r(&seed) % (7 * 1024));
      p[i] = malloc(n);
      if (p[i] == NULL) return 1;
      memset(p[i], 1, n);
    }
    for (int i = 0; i < N; i++) free(p[i]);
  }
  print_stats("churn");
  return 0;
}

int main(int argc, char **argv) {
  if (dlsym(RTLD_DEFAULT, "lof_je_hook_automatic_arenas") == NULL) {
    fprintf(stderr, "budget: run me with liblofalloc-jemalloc-process.so preloaded\n");
    return 1;
  }
  if (argc > 1 && strcmp(argv[1], "churn") == 0) return test_churn();
  return test_heap();
}
