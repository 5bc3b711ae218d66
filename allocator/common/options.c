/*
 * options.c -- the common rows and the LOFALLOC_* environment parser.
 *
 * The rows here are the ones every frontend reads; a frontend's own rows
 * live in its options.c and come in through lof__options_register.  A row
 * is read on its first lookup, straight from `environ` (or
 * /proc/self/environ when the lookup comes before libc has set environ up),
 * never through getenv and never with malloc; registration reads every row
 * and then warns about the names no row knows.  In setuid/setgid programs
 * (AT_SECURE) the environment is ignored and every option keeps its default.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>

#include "options.h"
#include "os.h"

static const char *const policy_names[] = {"strict", "fallback", "abort", NULL};
static const char *const backend_names[] = {"auto", "map_lockonfault", "mlock2",
                                            "unlocked", NULL};
static const char *const thp_names[] = {"auto", "never", "default", NULL};

/* Default policy is fallback: a program preloaded with lofalloc under the
 * default 8 MiB RLIMIT_MEMLOCK keeps running (unlocked past the limit, with a
 * warning and stats.fallback counting it) instead of failing malloc.
 * Real-time programs that need the guarantee set LOFALLOC_POLICY=strict. */
lof_option_t lof__opt_policy =
    LOF_OPTION_ROW("LOFALLOC_POLICY", LOF_OPTION_ENUM, LOF_POLICY_FALLBACK, policy_names);
lof_option_t lof__opt_backend =
    LOF_OPTION_ROW("LOFALLOC_BACKEND", LOF_OPTION_ENUM, LOF_BACKEND_CHOICE_AUTO, backend_names);
lof_option_t lof__opt_max_locked = LOF_OPTION_ROW("LOFALLOC_MAX_LOCKED", LOF_OPTION_SIZE, 0, NULL);
lof_option_t lof__opt_verbose = LOF_OPTION_ROW("LOFALLOC_VERBOSE", LOF_OPTION_BOOL, 0, NULL);
lof_option_t lof__opt_stats = LOF_OPTION_ROW("LOFALLOC_STATS", LOF_OPTION_BOOL_OR_PATH, 0, NULL);
lof_option_t lof__opt_thp = LOF_OPTION_ROW("LOFALLOC_THP", LOF_OPTION_ENUM, LOF_THP_AUTO, thp_names);
lof_option_t lof__opt_fork_relock = LOF_OPTION_ROW("LOFALLOC_FORK_RELOCK", LOF_OPTION_BOOL, 1, NULL);

static lof_option_t *const common_rows[] = {
  &lof__opt_policy, &lof__opt_backend, &lof__opt_max_locked, &lof__opt_verbose,
  &lof__opt_stats, &lof__opt_thp, &lof__opt_fork_relock, NULL,
};

/* The frontend's table (lof__options_register), NULL until it registers. */
static const lof_option_table_t *_Atomic options_frontend;

/* LOF_OPTION_BOOL_OR_PATH given a path: the value is LOF_OPTION_PATH and the
 * path is kept here (one such row: LOFALLOC_STATS=FILE). */
static char option_path[256];

int lof__parse_size(const char *s, int64_t *out) {
  if (s == NULL || *s < '0' || *s > '9') return -1;
  uint64_t v = 0;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (v > (UINT64_MAX - 9) / 10) return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  unsigned shift = 0;
  switch (*s) {
    case 'k': case 'K': shift = 10; s++; break;
    case 'm': case 'M': shift = 20; s++; break;
    case 'g': case 'G': shift = 30; s++; break;
    case 't': case 'T': shift = 40; s++; break;
    default: break;
  }
  if (shift && (*s == 'i' || *s == 'I')) s++;      /* KiB, MiB... */
  if (shift && (*s == 'b' || *s == 'B')) s++;
  if (*s != '\0') return -1;
  if (shift && v > (((uint64_t)INT64_MAX) >> shift)) return -1;
  v <<= shift;
  if (v > (uint64_t)INT64_MAX) return -1;
  *out = (int64_t)v;
  return 0;
}

int lof__parse_bool(const char *s, int64_t *out) {
  static const char *const yes[] = {"1", "true", "yes", "on", "y", NULL};
  static const char *const no[] = {"0", "false", "no", "off", "n", NULL};
  for (int i = 0; yes[i]; i++)
    if (strcasecmp(s, yes[i]) == 0) { *out = 1; return 0; }
  for (int i = 0; no[i]; i++)
    if (strcasecmp(s, no[i]) == 0) { *out = 0; return 0; }
  return -1;
}

static int option_parse(const lof_option_t *opt, const char *s, int64_t *out) {
  switch (opt->kind) {
    case LOF_OPTION_BOOL: return lof__parse_bool(s, out);
    case LOF_OPTION_SIZE: return lof__parse_size(s, out);
    case LOF_OPTION_MS: {
      /* plain milliseconds; "never" or "-1" means never */
      if (strcmp(s, "-1") == 0 || strcasecmp(s, "never") == 0) { *out = -1; return 0; }
      return lof__parse_size(s, out) == 0 && strpbrk(s, "kKmMgGtT") == NULL ? 0 : -1;
    }
    case LOF_OPTION_BOOL_OR_PATH: {
      /* a boolean, or a file name (kept, too long is malformed) */
      if (lof__parse_bool(s, out) == 0) return 0;
      size_t n = strlen(s);
      if (n == 0 || n >= sizeof option_path) return -1;
      memcpy(option_path, s, n + 1);
      *out = LOF_OPTION_PATH;
      return 0;
    }
    case LOF_OPTION_ENUM:
      for (int i = 0; opt->enums[i]; i++)
        if (strcasecmp(s, opt->enums[i]) == 0) { *out = i; return 0; }
      return -1;
  }
  return -1;
}

/* ---- the environment, one LOFALLOC_* entry at a time -------------------- */

/* Called with an entry "NAME=value" and the length of NAME. */
typedef void (*option_visit_fn)(const char *entry, size_t name_len, void *arg);

static void options_visit(const char *entry, option_visit_fn fn, void *arg) {
  if (strncmp(entry, "LOFALLOC_", 9) != 0) return;
  const char *eq = strchr(entry, '=');
  if (eq != NULL) fn(entry, (size_t)(eq - entry), arg);
}

/* Before libc has set `environ` (a malloc from the dynamic loader), read the
 * environment from /proc/self/environ, one NUL-terminated entry at a time. */
static void options_scan_proc_environ(option_visit_fn fn, void *arg) {
  int fd = lof__os_open_read("/proc/self/environ");
  if (fd < 0) return;
  char chunk[1024], entry[256];
  size_t elen = 0;
  bool overflow = false;
  ssize_t n;
  while ((n = lof__os_read(fd, chunk, sizeof chunk)) > 0) {
    for (ssize_t i = 0; i < n; i++) {
      if (chunk[i] == '\0') {
        entry[elen] = '\0';
        if (!overflow) options_visit(entry, fn, arg);
        elen = 0;
        overflow = false;
      } else if (elen < sizeof entry - 1) {
        entry[elen++] = chunk[i];
      } else {
        overflow = true;
      }
    }
  }
  lof__os_close(fd);
}

extern char **environ;

/* Every LOFALLOC_* entry, in order; none in a setuid/setgid program. */
static void options_scan(option_visit_fn fn, void *arg) {
  if (getauxval(AT_SECURE)) return;
  if (environ != NULL) {
    for (char **e = environ; *e; e++) options_visit(*e, fn, arg);
  } else {
    options_scan_proc_environ(fn, arg);
  }
}

static bool option_named(const char *name, const char *entry, size_t name_len) {
  return strlen(name) == name_len && strncmp(name, entry, name_len) == 0;
}

/* ---- one row ------------------------------------------------------------ */

/* Apply one entry to the row it names (a later entry wins, a bad one warns). */
static void option_apply(const char *entry, size_t name_len, void *arg) {
  lof_option_t *opt = arg;
  if (!option_named(opt->name, entry, name_len)) return;
  int64_t v;
  if (option_parse(opt, entry + name_len + 1, &v) == 0)
    opt->value = v;
  else
    lof__message("warning: ignoring %s=%s (not a valid value); using the default",
                 opt->name, entry + name_len + 1);
}

/* Read the row once (the first caller reads, the others wait for it). */
static void option_read(lof_option_t *opt) {
  int expected = 0;
  if (atomic_compare_exchange_strong(&opt->state, &expected, 1)) {
    int saved = errno;
    opt->value = opt->def;
    options_scan(option_apply, opt);
    errno = saved;
    atomic_store_explicit(&opt->state, 2, memory_order_release);
    return;
  }
  while (atomic_load_explicit(&opt->state, memory_order_acquire) != 2) {
  }
}

int64_t lof__option(lof_option_t *opt) {
  if (LOF_UNLIKELY(atomic_load_explicit(&opt->state, memory_order_acquire) != 2)) option_read(opt);
  return opt->value;
}

const char *lof__option_enum_name(lof_option_t *opt) {
  int64_t v = lof__option(opt);
  return opt->kind == LOF_OPTION_ENUM ? opt->enums[v] : "";
}

const char *lof__option_path(lof_option_t *opt) {
  return lof__option(opt) == LOF_OPTION_PATH ? option_path : NULL;
}

void lof__option_set(lof_option_t *opt, int64_t value) {
  lof__option(opt);
  opt->value = value;
}

/* ---- the whole table: registration and the unknown names ---------------- */

static bool option_known(lof_option_t *const *rows, const char *entry, size_t name_len) {
  for (int i = 0; rows != NULL && rows[i]; i++)
    if (option_named(rows[i]->name, entry, name_len)) return true;
  return false;
}

static void option_warn_unknown(const char *entry, size_t name_len, void *arg) {
  const lof_option_table_t *t = arg;
  if (option_known(common_rows, entry, name_len)) return;
  if (t != NULL && option_known(t->rows, entry, name_len)) return;
  for (int i = 0; t != NULL && t->foreign != NULL && t->foreign[i]; i++)
    if (option_named(t->foreign[i], entry, name_len)) return;
  lof__message("warning: unknown option %.*s ignored", (int)name_len, entry);
}

/* Read every row (each warns about its bad value once), then name the
 * variables no row and no foreign name knows. */
static void options_check(void) {
  const lof_option_table_t *t = atomic_load(&options_frontend);
  for (int i = 0; common_rows[i]; i++) lof__option(common_rows[i]);
  for (int i = 0; t != NULL && t->rows[i]; i++) lof__option(t->rows[i]);
  int saved = errno;
  options_scan(option_warn_unknown, (void *)t);
  errno = saved;
}

void lof__options_register(const lof_option_table_t *table) {
  atomic_store(&options_frontend, table);
  options_check();
}

void lof__options_reload(void) {
  const lof_option_table_t *t = atomic_load(&options_frontend);
  for (int i = 0; common_rows[i]; i++) atomic_store(&common_rows[i]->state, 0);
  for (int i = 0; t != NULL && t->rows[i]; i++) atomic_store(&t->rows[i]->state, 0);
  options_check();
}
