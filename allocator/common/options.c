/*
 * options.c -- the options table and the LOFALLOC_* environment parser.
 *
 * One row per option: name, kind, default, enum names.  The environment is
 * read once, on first use, straight from `environ` (or /proc/self/environ
 * when the first call comes before libc has set environ up), never through
 * getenv and never with malloc.  In setuid/setgid programs (AT_SECURE) the
 * environment is ignored and every option keeps its default.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>

#include "options.h"
#include "os.h"

typedef enum { OPT_BOOL, OPT_SIZE, OPT_ENUM, OPT_MS, OPT_BOOL_OR_PATH } option_kind_t;

typedef struct option_def {
  const char *name;          /* environment variable */
  option_kind_t kind;        /* how the value is parsed */
  int64_t def;               /* default value */
  const char *const *enums;  /* OPT_ENUM: NULL-terminated value names */
} option_def_t;

static const char *const policy_names[] = {"strict", "fallback", "abort", NULL};
static const char *const backend_names[] = {"auto", "map_lockonfault", "mlock2",
                                            "unlocked", NULL};
static const char *const thp_names[] = {"auto", "never", "default", NULL};
static const char *const je_commit_names[] = {"auto", "eager", "lazy", NULL};

/* Default policy is fallback: a program preloaded with lofalloc under the
 * default 8 MiB RLIMIT_MEMLOCK keeps running (unlocked past the limit, with a
 * warning and stats.fallback counting it) instead of failing malloc.
 * Real-time programs that need the guarantee set LOFALLOC_POLICY=strict. */
static const option_def_t option_table[LOF_OPT_COUNT] = {
  [LOF_OPT_POLICY] = {"LOFALLOC_POLICY", OPT_ENUM, LOF_POLICY_FALLBACK, policy_names},
  [LOF_OPT_BACKEND] = {"LOFALLOC_BACKEND", OPT_ENUM, LOF_BACKEND_CHOICE_AUTO, backend_names},
  [LOF_OPT_MAX_LOCKED] = {"LOFALLOC_MAX_LOCKED", OPT_SIZE, 0, NULL},
  [LOF_OPT_VERBOSE] = {"LOFALLOC_VERBOSE", OPT_BOOL, 0, NULL},
  [LOF_OPT_STATS] = {"LOFALLOC_STATS", OPT_BOOL_OR_PATH, 0, NULL},
  [LOF_OPT_THP] = {"LOFALLOC_THP", OPT_ENUM, LOF_THP_AUTO, thp_names},
  [LOF_OPT_FORK_RELOCK] = {"LOFALLOC_FORK_RELOCK", OPT_BOOL, 1, NULL},
  [LOF_OPT_DECAY_MS] = {"LOFALLOC_DECAY_MS", OPT_MS, 1000, NULL},
  [LOF_OPT_HUGE_THRESHOLD] = {"LOFALLOC_HUGE_THRESHOLD", OPT_SIZE, 4 << 20, NULL},
  [LOF_OPT_JE_COMMIT] = {"LOFALLOC_JE_COMMIT", OPT_ENUM, LOF_JE_COMMIT_AUTO, je_commit_names},
  [LOF_OPT_RESERVE] = {"LOFALLOC_RESERVE", OPT_SIZE, 0, NULL},
  [LOF_OPT_LOCK_SHARED] = {"LOFALLOC_LOCK_SHARED", OPT_BOOL, 0, NULL},
};

static int64_t option_values[LOF_OPT_COUNT];
/* OPT_BOOL_OR_PATH given a path: the value is LOF_OPTION_PATH and the path
 * is kept here (one such option today: LOFALLOC_STATS=FILE). */
static char option_path[256];
static _Atomic int options_state; /* 0 unread, 1 reading, 2 ready */

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

static int option_parse(const option_def_t *def, const char *s, int64_t *out) {
  switch (def->kind) {
    case OPT_BOOL: return lof__parse_bool(s, out);
    case OPT_SIZE: return lof__parse_size(s, out);
    case OPT_MS: {
      /* plain milliseconds; "never" or "-1" means never */
      if (strcmp(s, "-1") == 0 || strcasecmp(s, "never") == 0) { *out = -1; return 0; }
      return lof__parse_size(s, out) == 0 && strpbrk(s, "kKmMgGtT") == NULL ? 0 : -1;
    }
    case OPT_BOOL_OR_PATH: {
      /* a boolean, or a file name (kept, too long is malformed) */
      if (lof__parse_bool(s, out) == 0) return 0;
      size_t n = strlen(s);
      if (n == 0 || n >= sizeof option_path) return -1;
      memcpy(option_path, s, n + 1);
      *out = LOF_OPTION_PATH;
      return 0;
    }
    case OPT_ENUM:
      for (int i = 0; def->enums[i]; i++)
        if (strcasecmp(s, def->enums[i]) == 0) { *out = i; return 0; }
      return -1;
  }
  return -1;
}

/* Apply one "NAME=value" environment entry if it names an option. */
static void option_apply_entry(const char *entry) {
  if (strncmp(entry, "LOFALLOC_", 9) != 0) return;
  const char *eq = strchr(entry, '=');
  if (eq == NULL) return;
  size_t name_len = (size_t)(eq - entry);
  for (int i = 0; i < LOF_OPT_COUNT; i++) {
    const option_def_t *def = &option_table[i];
    if (strlen(def->name) != name_len || strncmp(def->name, entry, name_len) != 0) continue;
    int64_t v;
    if (option_parse(def, eq + 1, &v) == 0)
      option_values[i] = v;
    else
      lof__message("warning: ignoring %s=%s (not a valid value); using the default",
                   def->name, eq + 1);
    return;
  }
  lof__message("warning: unknown option %.*s ignored", (int)name_len, entry);
}

/* Before libc has set `environ` (a malloc from the dynamic loader), read the
 * environment from /proc/self/environ, one NUL-terminated entry at a time. */
static void options_read_proc_environ(void) {
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
        if (!overflow) option_apply_entry(entry);
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

static void options_load(void) {
  for (int i = 0; i < LOF_OPT_COUNT; i++) option_values[i] = option_table[i].def;
  if (getauxval(AT_SECURE)) return;
  if (environ != NULL) {
    for (char **e = environ; *e; e++) option_apply_entry(*e);
  } else {
    options_read_proc_environ();
  }
}

static void options_ensure(void) { lof__once(&options_state, options_load); }

int64_t lof__option(lof_option_t opt) {
  options_ensure();
  return option_values[opt];
}

const char *lof__option_enum_name(lof_option_t opt) {
  options_ensure();
  const option_def_t *def = &option_table[opt];
  if (def->kind != OPT_ENUM) return "";
  return def->enums[option_values[opt]];
}

const char *lof__option_path(lof_option_t opt) {
  options_ensure();
  return option_values[opt] == LOF_OPTION_PATH ? option_path : NULL;
}

void lof__options_reload(void) {
  atomic_store(&options_state, 0);
  options_ensure();
}

void lof__option_set(lof_option_t opt, int64_t value) {
  options_ensure();
  option_values[opt] = value;
}
