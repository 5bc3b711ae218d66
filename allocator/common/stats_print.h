/*
 * stats_print.h -- printing lof_stats_t for every frontend (stats_print.c),
 * and where the LOFALLOC_STATS report at exit goes.
 */
#ifndef LOF_STATS_PRINT_H
#define LOF_STATS_PRINT_H

#include "internal.h"
#include "lofalloc.h"

/* Print *st to fd, one field a line. */
LOF_HIDDEN void lof__stats_print(int fd, const lof_stats_t *st);

/* Where the at-exit report goes: -1 when LOFALLOC_STATS is off, stderr when
 * it is a boolean, else FILE opened for append (%p = the pid; a warning and
 * stderr when it cannot be opened).  Close with lof__stats_output_close. */
LOF_HIDDEN int lof__stats_output_open(void);
LOF_HIDDEN void lof__stats_output_close(int fd);

#endif /* LOF_STATS_PRINT_H */
