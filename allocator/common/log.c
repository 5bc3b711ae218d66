/*
 * log.c -- lofalloc's only output: one-line messages and fatal errors on
 * stderr, formatted into a stack buffer and written with write(2), so that
 * reporting never calls malloc (stdio may) and never recurses into the heap.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static void log_vwrite(const char *prefix, const char *fmt, va_list ap) {
  char buf[512];
  size_t n = strlen(prefix);
  memcpy(buf, prefix, n);
  int k = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
  if (k < 0) k = 0;
  n += (size_t)k < sizeof buf - n - 1 ? (size_t)k : sizeof buf - n - 2;
  buf[n++] = '\n';
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    p += w;
    n -= (size_t)w;
  }
}

void lof__message(const char *fmt, ...) {
  int saved = errno;
  va_list ap;
  va_start(ap, fmt);
  log_vwrite("lofalloc: ", fmt, ap);
  va_end(ap);
  errno = saved;
}

void lof__fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_vwrite("lofalloc: fatal: ", fmt, ap);
  va_end(ap);
  abort();
}
