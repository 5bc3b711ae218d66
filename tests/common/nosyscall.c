/*
 * nosyscall.c -- the seccomp filter of nosyscall.h.
 */
#include "nosyscall.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void nosyscall_trap(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)uc;
  char msg[96];
  int n = snprintf(msg, sizeof msg, "nosyscall: memory system call %d made in a timed phase\n",
                   si->si_syscall);
  if (n > 0) {
    ssize_t w = write(2, msg, (size_t)n);
    (void)w;
  }
  _exit(NOSYSCALL_EXIT);
}

int nosyscall_install(void) {
  static const int trapped[] = {SYS_mmap,  SYS_munmap, SYS_mprotect, SYS_madvise,
                                SYS_mremap, SYS_brk,   SYS_mlock2,   SYS_munlock};
  enum { N = sizeof trapped / sizeof trapped[0] };
  struct sock_filter f[4 + 2 * N + 1];
  size_t k = 0;
  f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  for (size_t i = 0; i < N; i++) {
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)trapped[i], 0, 1);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
  }
  f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  struct sock_fprog prog = {(unsigned short)k, f};

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = nosyscall_trap;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSYS, &sa, NULL) != 0) return -1;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return -1;
  return 0;
}
