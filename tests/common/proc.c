/*
 * proc.c -- running part of a test in a child process (see proc.h): capture
 * its stderr and wait status; drop CAP_IPC_LOCK so RLIMIT_MEMLOCK applies.
 */
#include "proc.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int capture_child(pid_t pid, int fd, char *buf, size_t len) {
  size_t have = 0;
  char sink[256];
  for (;;) {
    char *dst = buf && have + 1 < len ? buf + have : sink;
    size_t room = buf && have + 1 < len ? len - 1 - have : sizeof sink;
    ssize_t n = read(fd, dst, room);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (dst != sink) have += (size_t)n;
  }
  if (buf && len) buf[have] = '\0';
  close(fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

/* Fork; in the child send stderr into a pipe and run in_child (which exits);
 * in the parent collect the child's stderr and its wait status. */
static int spawn_capturing(void (*in_child)(void *), void *arg, char *buf, size_t len) {
  int p[2];
  if (pipe(p) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(p[0]);
    dup2(p[1], STDERR_FILENO);
    close(p[1]);
    in_child(arg);
    _exit(127);
  }
  close(p[1]);
  return capture_child(pid, p[0], buf, len);
}

struct call { int (*fn)(void *); void *arg; };

static void child_call(void *arg) {
  struct call *c = arg;
  _exit(c->fn(c->arg));
}

int run_in_child(int (*fn)(void *), void *arg, char *stderr_buf, size_t len) {
  struct call c = {fn, arg};
  return spawn_capturing(child_call, &c, stderr_buf, len);
}

int drop_ipc_lock(size_t limit) {
  struct rlimit rl = {limit, limit};
  if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0) return -1;
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &hdr, data) != 0) return -1;
  unsigned bit = CAP_IPC_LOCK;
  data[bit / 32].effective &= ~(1u << (bit % 32));
  data[bit / 32].permitted &= ~(1u << (bit % 32));
  data[bit / 32].inheritable &= ~(1u << (bit % 32));
  if (syscall(SYS_capset, &hdr, data) != 0) return -1;
  prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0);
  return 0;
}

struct exec { char *const *argv; char *const *env; };

static void child_exec(void *arg) {
  struct exec *e = arg;
  for (size_t i = 0; e->env && e->env[i]; i++) putenv(e->env[i]);
  execv(e->argv[0], e->argv);
}

int run_with_env(char *const argv[], char *const extra_env[], char *stderr_buf, size_t len) {
  struct exec e = {argv, extra_env};
  return spawn_capturing(child_exec, &e, stderr_buf, len);
}

bool lock_budgeted(void) {
  const char *max = getenv("LOFALLOC_MAX_LOCKED");
  if (max != NULL && strcmp(max, "") != 0 && strcmp(max, "0") != 0) return true;
  struct rlimit rl;
  if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur == RLIM_INFINITY) return false;
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capget, &hdr, data) != 0) return true;
  return (data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective & CAP_TO_MASK(CAP_IPC_LOCK)) == 0;
}
