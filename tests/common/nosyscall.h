/*
 * nosyscall.h -- the proof that a phase of a test makes no memory system
 * call: a seccomp filter that traps (SIGSYS) mmap, munmap, mprotect,
 * madvise, mremap, brk, mlock2 and munlock, installed for the rest of the
 * calling process's life (run it in a child).  The SIGSYS handler writes
 * which call was made and _exits with NOSYSCALL_EXIT.
 */
#ifndef LOF_TEST_NOSYSCALL_H
#define LOF_TEST_NOSYSCALL_H

#define NOSYSCALL_EXIT 86

/* Install the filter and the handler: 0, or -1 with errno. */
int nosyscall_install(void);

#endif
