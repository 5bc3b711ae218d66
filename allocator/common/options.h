/*
 * options.h -- lofalloc's options: rows of name, kind and default, read from
 * LOFALLOC_* environment variables without malloc or getenv, ignored in
 * setuid/setgid programs (AT_SECURE).
 *
 * Who owns which row: the common layer (options.c) holds the parser and the
 * rows every frontend reads (policy, backend, budget, verbosity, stats, THP,
 * fork relock); each frontend holds its own rows in a file of its own
 * (malloc/options.c, jemalloc/options.c) and hands them to the parser with
 * lof__options_register, together with the names of the other frontends'
 * options.  The common layer never names a frontend's row.
 *
 * The rules:
 *  - A row is a handle (LOF_OPT_... is a pointer to it): it is read from the
 *    environment on its first lookup, so a lookup that comes before its
 *    frontend registered (a malloc from the dynamic loader) is right too.
 *  - Registration (a constructor of each frontend) reads every row at once,
 *    so a bad value is reported at start-up even for a row read late, and
 *    then names every LOFALLOC_* variable that no row knows.
 *  - A frontend parses only the common rows and its own: another frontend's
 *    option (LOFALLOC_DECAY_MS under the jemalloc frontend) is neither
 *    parsed nor warned about.
 *  - Booleans accept 1/0, true/false, yes/no, on/off; sizes accept a K/M/G/T
 *    suffix (powers of 1024); enums accept their names.  A bad value prints
 *    one warning and keeps the default; an unknown name prints one warning.
 */
#ifndef LOF_OPTIONS_H
#define LOF_OPTIONS_H

#include "internal.h"

typedef enum lof_option_kind {
  LOF_OPTION_BOOL,         /* 1/0, true/false, yes/no, on/off */
  LOF_OPTION_SIZE,         /* bytes, with an optional K/M/G/T suffix */
  LOF_OPTION_ENUM,         /* one of the row's value names: its index */
  LOF_OPTION_MS,           /* plain milliseconds; never or -1 = -1 */
  LOF_OPTION_BOOL_OR_PATH  /* a boolean, or a file name (LOF_OPTION_PATH) */
} lof_option_kind_t;

/* One option: its row (written by its owner) and its value (by the parser).
 * Invariant: value is the row's default or a value its kind accepts, and is
 * read only once state is 2. */
typedef struct lof_option {
  const char *name;          /* the environment variable, LOFALLOC_... */
  lof_option_kind_t kind;    /* how its value is parsed */
  int64_t def;               /* the default */
  const char *const *enums;  /* LOF_OPTION_ENUM: the value names, NULL-terminated */
  int64_t value;             /* the value: enum index, bytes, 0/1, ms */
  _Atomic int state;         /* 0 unread, 1 being read, 2 read */
} lof_option_t;

/* A row's initializer. */
#define LOF_OPTION_ROW(name, kind, def, enums) {name, kind, def, enums, 0, 0}

/* What a frontend registers: its rows and the names it knows but leaves to
 * another frontend. */
typedef struct lof_option_table {
  lof_option_t *const *rows;   /* the frontend's own rows, NULL-terminated */
  const char *const *foreign;  /* other frontends' options, NULL-terminated */
} lof_option_table_t;

/* ---- the common rows ---------------------------------------------------- */

LOF_HIDDEN extern lof_option_t lof__opt_policy, lof__opt_backend, lof__opt_max_locked,
    lof__opt_verbose, lof__opt_stats, lof__opt_thp, lof__opt_fork_relock;

#define LOF_OPT_POLICY (&lof__opt_policy)           /* LOFALLOC_POLICY: strict|fallback|abort (fallback) */
#define LOF_OPT_BACKEND (&lof__opt_backend)         /* LOFALLOC_BACKEND: auto|map_lockonfault|mlock2|unlocked (auto) */
#define LOF_OPT_MAX_LOCKED (&lof__opt_max_locked)   /* LOFALLOC_MAX_LOCKED: size budget of locked bytes, 0 = none */
#define LOF_OPT_VERBOSE (&lof__opt_verbose)         /* LOFALLOC_VERBOSE: bool, report backend and decisions on stderr */
#define LOF_OPT_STATS (&lof__opt_stats)             /* LOFALLOC_STATS: bool or FILE (%p = pid): print stats at exit on stderr or to FILE */
#define LOF_OPT_THP (&lof__opt_thp)                 /* LOFALLOC_THP: auto|never|default: MADV_NOHUGEPAGE on the heap (auto = when THP is "always") */
#define LOF_OPT_FORK_RELOCK (&lof__opt_fork_relock) /* LOFALLOC_FORK_RELOCK: bool, child re-locks its heap (true) */

typedef enum lof_policy {
  LOF_POLICY_STRICT,
  LOF_POLICY_FALLBACK,
  LOF_POLICY_ABORT
} lof_policy_t;

typedef enum lof_backend_choice {
  LOF_BACKEND_CHOICE_AUTO,
  LOF_BACKEND_CHOICE_MAP_LOCKONFAULT,
  LOF_BACKEND_CHOICE_MLOCK2,
  LOF_BACKEND_CHOICE_UNLOCKED
} lof_backend_choice_t;

typedef enum lof_thp_choice {
  LOF_THP_AUTO,
  LOF_THP_NEVER,
  LOF_THP_DEFAULT
} lof_thp_choice_t;

/* ---- lookup and registration -------------------------------------------- */

/* The option's value (enum index, size in bytes, bool as 0/1, or number),
 * read from the environment on the row's first lookup. */
LOF_HIDDEN int64_t lof__option(lof_option_t *opt);

/* The value of an option given a file name instead of a boolean. */
#define LOF_OPTION_PATH 2

/* That file name (LOFALLOC_STATS=FILE), or NULL when the option holds no path. */
LOF_HIDDEN const char *lof__option_path(lof_option_t *opt);

/* The name of an enum option's current value ("strict", ...). */
LOF_HIDDEN const char *lof__option_enum_name(lof_option_t *opt);

/* A frontend's rows (once per library, from a constructor; the table must
 * outlive the process): reads the common rows and the table's, and warns
 * once about each LOFALLOC_* variable that neither they nor the table's
 * foreign names know. */
LOF_HIDDEN void lof__options_register(const lof_option_table_t *table);

/* Forget every value of the common and the registered rows and read them
 * again, with the warnings (tests only). */
LOF_HIDDEN void lof__options_reload(void);

/* Override one option (tests; mallopt). */
LOF_HIDDEN void lof__option_set(lof_option_t *opt, int64_t value);

/* Parse helpers, exposed for the unit tests: 0 on success, -1 if malformed. */
LOF_HIDDEN int lof__parse_size(const char *s, int64_t *out);
LOF_HIDDEN int lof__parse_bool(const char *s, int64_t *out);

#endif /* LOF_OPTIONS_H */
