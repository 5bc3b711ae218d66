/*
 * stats_print.c -- printing lof_stats_t: one aligned "name value" line per field,
 * formatted on the stack and written to a file descriptor (no stdio, no
 * malloc), so it can run in an exit handler of a program whose heap we are;
 * and where the at-exit report goes (stderr, or LOFALLOC_STATS=FILE with %p
 * replaced by the process id, one file per process).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "options.h"
#include "stats_print.h"

static void stats_line(int fd, const char *name, const char *fmt, unsigned long long v,
                       const char *text) {
  char buf[160];
  int n;
  if (text)
    n = snprintf(buf, sizeof buf, "lofalloc: %-16s %s\n", name, text);
  else
    n = snprintf(buf, sizeof buf, fmt, name, v, (double)v / (1024.0 * 1024.0));
  if (n > 0) {
    ssize_t w = write(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    (void)w;
  }
}

#define STATS_BYTES "lofalloc: %-16s %llu bytes (%.1f MiB)\n"
#define STATS_COUNT "lofalloc: %-16s %llu\n"

void lof__stats_print(int fd, const lof_stats_t *st) {
  stats_line(fd, "backend", NULL, 0, st->backend_name);
  stats_line(fd, "policy", NULL, 0, st->policy_name);
  stats_line(fd, "mlockall", NULL, 0,
             st->mlockall_flags == 0 ? "none"
             : (st->mlockall_flags & 4) ? "MCL_FUTURE|MCL_ONFAULT" : "MCL_FUTURE");
  stats_line(fd, "reserved", STATS_BYTES, st->reserved, NULL);
  stats_line(fd, "committed", STATS_BYTES, st->committed, NULL);
  stats_line(fd, "locked_range", STATS_BYTES, st->locked_range, NULL);
  stats_line(fd, "locked_resident", STATS_BYTES, st->locked_resident, NULL);
  stats_line(fd, "resident", STATS_BYTES, st->resident, NULL);
  stats_line(fd, "fallback", STATS_BYTES, st->fallback, NULL);
  stats_line(fd, "purged", STATS_BYTES, st->purged, NULL);
  stats_line(fd, "allocated", STATS_BYTES, st->allocated, NULL);
  stats_line(fd, "allocations", STATS_COUNT, st->allocations, NULL);
  stats_line(fd, "purge_calls", STATS_COUNT, st->purge_calls, NULL);
  stats_line(fd, "commit_calls", STATS_COUNT, st->commit_calls, NULL);
  stats_line(fd, "lock_failures", STATS_COUNT, st->lock_failures, NULL);
  stats_line(fd, "regions", STATS_COUNT, st->regions, NULL);
  stats_line(fd, "heap_vmas", STATS_COUNT, st->heap_vmas, NULL);
  stats_line(fd, "meta_locked", STATS_BYTES, st->meta_locked, NULL);
  if (st->meta_unlocked) stats_line(fd, "meta_unlocked", STATS_BYTES, st->meta_unlocked, NULL);
  if (st->pinned) stats_line(fd, "pinned", STATS_BYTES, st->pinned, NULL);
  if (st->pinned) stats_line(fd, "pinned_populated", STATS_BYTES, st->pinned_populated, NULL);
  if (st->max_locked) stats_line(fd, "max_locked", STATS_BYTES, st->max_locked, NULL);
  if (st->memlock_limit == 0) stats_line(fd, "memlock_limit", NULL, 0, "none (CAP_IPC_LOCK)");
  else if (st->memlock_limit == UINT64_MAX) stats_line(fd, "memlock_limit", NULL, 0, "unlimited");
  else stats_line(fd, "memlock_limit", STATS_BYTES, st->memlock_limit, NULL);
  if (st->cgroup_limit) stats_line(fd, "cgroup_limit", STATS_BYTES, st->cgroup_limit, NULL);
  if (st->release_failures) {
    stats_line(fd, "release_failures", STATS_COUNT, st->release_failures, NULL);
    stats_line(fd, "leaked", STATS_BYTES, st->leaked, NULL);
  }
  if (st->shared_mappings || st->shared_locked_range || st->shared_fallback) {
    stats_line(fd, "shared_locked", STATS_BYTES, st->shared_locked_range, NULL);
    stats_line(fd, "shared_fallback", STATS_BYTES, st->shared_fallback, NULL);
    stats_line(fd, "shared_mappings", STATS_COUNT, st->shared_mappings, NULL);
  }
}

/* Expand %p (process id) and %% in pattern into out.  -1 if it does not fit. */
static int stats_expand_path(const char *pattern, char *out, size_t cap) {
  size_t n = 0;
  for (const char *s = pattern; *s; s++) {
    char num[24];
    const char *piece = num;
    size_t len = 1;
    if (s[0] == '%' && s[1] == 'p') {
      len = (size_t)snprintf(num, sizeof num, "%ld", (long)getpid());
      s++;
    } else if (s[0] == '%' && s[1] == '%') {
      num[0] = '%';
      s++;
    } else {
      num[0] = *s;
    }
    if (n + len >= cap) return -1;
    memcpy(out + n, piece, len);
    n += len;
  }
  out[n] = '\0';
  return 0;
}

int lof__stats_output_open(void) {
  const char *pattern = lof__option_path(LOF_OPT_STATS);
  if (pattern == NULL) return lof__option(LOF_OPT_STATS) ? STDERR_FILENO : -1;
  char path[512];
  int fd = -1;
  if (stats_expand_path(pattern, path, sizeof path) == 0)
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    lof__message("warning: LOFALLOC_STATS=%s: cannot open (%s); statistics go to stderr",
                 pattern, strerror(errno));
    return STDERR_FILENO;
  }
  return fd;
}

void lof__stats_output_close(int fd) {
  if (fd > STDERR_FILENO) close(fd);
}
