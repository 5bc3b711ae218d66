/*
 * options.c -- the jemalloc frontend's option rows, handed to the common
 * parser (common/options.c) by a constructor.  The rows every frontend reads
 * (policy, backend, budget...) are the common layer's; this one is read by
 * this frontend alone.
 */
#include "je.h"

static const char *const je_commit_names[] = {"auto", "eager", "lazy", NULL};

lof_option_t lof__opt_je_commit =
    LOF_OPTION_ROW("LOFALLOC_JE_COMMIT", LOF_OPTION_ENUM, LOF_JE_COMMIT_AUTO, je_commit_names);

static lof_option_t *const je_option_rows[] = {&lof__opt_je_commit, NULL};

/* The malloc frontend's options: known, so no warning, but never parsed
 * here (they do nothing to jemalloc; a bad value is malloc's to report). */
static const char *const je_option_foreign[] = {
  "LOFALLOC_DECAY_MS", "LOFALLOC_HUGE_THRESHOLD", "LOFALLOC_RESERVE", "LOFALLOC_LOCK_SHARED", NULL,
};

static const lof_option_table_t je_options = {je_option_rows, je_option_foreign};

__attribute__((constructor)) static void je_options_register(void) {
  lof__options_register(&je_options);
}
