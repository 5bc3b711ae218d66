/*
 * options.c -- the malloc frontend's option rows, handed to the common
 * parser (common/options.c) by a constructor.  The rows every frontend reads
 * (policy, backend, budget...) are the common layer's; these are read by
 * this frontend alone.  A lookup before the constructor ran (a malloc from
 * the dynamic loader or an earlier constructor) reads its row all the same.
 */
#include "frontend.h"

lof_option_t lof__opt_decay_ms = LOF_OPTION_ROW("LOFALLOC_DECAY_MS", LOF_OPTION_MS, 1000, NULL);
lof_option_t lof__opt_huge_threshold =
    LOF_OPTION_ROW("LOFALLOC_HUGE_THRESHOLD", LOF_OPTION_SIZE, 4 << 20, NULL);
lof_option_t lof__opt_reserve = LOF_OPTION_ROW("LOFALLOC_RESERVE", LOF_OPTION_SIZE, 0, NULL);
lof_option_t lof__opt_lock_shared = LOF_OPTION_ROW("LOFALLOC_LOCK_SHARED", LOF_OPTION_BOOL, 0, NULL);

static lof_option_t *const malloc_option_rows[] = {
  &lof__opt_decay_ms, &lof__opt_huge_threshold, &lof__opt_reserve, &lof__opt_lock_shared, NULL,
};

/* The jemalloc frontend's options: a program that runs both frontends (or
 * an environment set for both) gets no warning for them here. */
static const char *const malloc_option_foreign[] = {"LOFALLOC_JE_COMMIT", NULL};

static const lof_option_table_t malloc_options = {malloc_option_rows, malloc_option_foreign};

__attribute__((constructor)) static void malloc_options_register(void) {
  lof__options_register(&malloc_options);
}
