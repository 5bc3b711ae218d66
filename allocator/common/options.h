/*
 * options.h -- lofalloc's options: one table (options.c) of name, default and
 * parser, read once from LOFALLOC_* environment variables without malloc or
 * getenv, ignored in setuid/setgid programs (AT_SECURE).
 *
 * Booleans accept 1/0, true/false, yes/no, on/off; sizes accept a K/M/G/T
 * suffix (powers of 1024); enums accept their names.  A bad value prints one
 * warning and keeps the default.
 */
#ifndef LOF_OPTIONS_H
#define LOF_OPTIONS_H

#include "internal.h"

typedef enum lof_option {
  LOF_OPT_POLICY,         /* LOFALLOC_POLICY: strict|fallback|abort (fallback) */
  LOF_OPT_BACKEND,        /* LOFALLOC_BACKEND: auto|map_lockonfault|mlock2|unlocked (auto) */
  LOF_OPT_MAX_LOCKED,     /* LOFALLOC_MAX_LOCKED: size budget of locked bytes, 0 = none */
  LOF_OPT_VERBOSE,        /* LOFALLOC_VERBOSE: bool, report backend and decisions on stderr */
  LOF_OPT_STATS,          /* LOFALLOC_STATS: bool or FILE (%p = pid): print stats at exit on stderr or to FILE */
  LOF_OPT_THP,            /* LOFALLOC_THP: auto|never|default: MADV_NOHUGEPAGE on the heap (auto = when THP is "always") */
  LOF_OPT_FORK_RELOCK,    /* LOFALLOC_FORK_RELOCK: bool, child re-locks its heap (true) */
  LOF_OPT_DECAY_MS,       /* LOFALLOC_DECAY_MS: free pages are purged after this long (1000; -1 = never) */
  LOF_OPT_HUGE_THRESHOLD, /* LOFALLOC_HUGE_THRESHOLD: size at which a block gets its own mapping (4M) */
  LOF_OPT_JE_COMMIT,      /* LOFALLOC_JE_COMMIT: auto|eager|lazy, jemalloc hooks' commit mode (auto) */
  LOF_OPT_RESERVE,        /* LOFALLOC_RESERVE: size locked and populated at start-up, never given back (0) */
  LOF_OPT_LOCK_SHARED,    /* LOFALLOC_LOCK_SHARED: bool, lock shared mappings the program creates (malloc/shared.c) */
  LOF_OPT_COUNT
} lof_option_t;

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

typedef enum lof_je_commit_choice {
  LOF_JE_COMMIT_AUTO,
  LOF_JE_COMMIT_EAGER,
  LOF_JE_COMMIT_LAZY
} lof_je_commit_choice_t;

typedef enum lof_thp_choice {
  LOF_THP_AUTO,
  LOF_THP_NEVER,
  LOF_THP_DEFAULT
} lof_thp_choice_t;

/* The option's value (enum index, size in bytes, bool as 0/1, or number).
 * Reads the environment on first use. */
LOF_HIDDEN int64_t lof__option(lof_option_t opt);

/* The value of an option given a file name instead of a boolean. */
#define LOF_OPTION_PATH 2

/* That file name (LOFALLOC_STATS=FILE), or NULL when the option holds no path. */
LOF_HIDDEN const char *lof__option_path(lof_option_t opt);

/* The name of an enum option's current value ("strict", ...). */
LOF_HIDDEN const char *lof__option_enum_name(lof_option_t opt);

/* Re-read the environment (tests only). */
LOF_HIDDEN void lof__options_reload(void);

/* Override one option (tests only). */
LOF_HIDDEN void lof__option_set(lof_option_t opt, int64_t value);

/* Parse helpers, exposed for the unit tests: 0 on success, -1 if malformed. */
LOF_HIDDEN int lof__parse_size(const char *s, int64_t *out);
LOF_HIDDEN int lof__parse_bool(const char *s, int64_t *out);

#endif /* LOF_OPTIONS_H */
