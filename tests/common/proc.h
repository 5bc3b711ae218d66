/*
 * proc.h -- test helpers for running a piece of a test in a child process:
 * to observe abort(), to drop CAP_IPC_LOCK and set a small RLIMIT_MEMLOCK
 * (root bypasses the limit), or to start from a fresh allocator state.
 */
#ifndef LOF_TEST_PROC_H
#define LOF_TEST_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Run fn(arg) in a forked child; the child's exit code is fn's return value.
 * Returns the raw wait status (WIFEXITED/WIFSIGNALED), and, when stderr_buf
 * is given, what the child wrote on stderr (NUL-terminated, truncated). */
int run_in_child(int (*fn)(void *), void *arg, char *stderr_buf, size_t len);

/* In the calling (child) process: become unprivileged for memory locking,
 * i.e. drop CAP_IPC_LOCK from every capability set and set RLIMIT_MEMLOCK to
 * limit bytes (soft and hard).  Returns 0, or -1 with errno. */
int drop_ipc_lock(size_t limit);

/* Memory locking in this process is charged to a limit: no CAP_IPC_LOCK
 * and a finite RLIMIT_MEMLOCK, or a LOFALLOC_MAX_LOCKED budget. */
bool lock_budgeted(void);

/* Re-execute a test binary with extra environment (e.g. "LOFALLOC_POLICY=strict"),
 * capturing stderr as above; returns the wait status. */
int run_with_env(char *const argv[], char *const extra_env[], char *stderr_buf,
                 size_t len);

#endif
