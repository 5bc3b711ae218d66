/*
 * pageflags.h -- test helper: are this process's pages mlocked?  smaps
 * Locked: is computed from the VMA's flag (and is proportional); the page's
 * own flags say whether the kernel mlocked it.  Read from /proc/self/pagemap
 * (the PFN) and /proc/kpageflags (KPF_MLOCKED = 33, KPF_UNEVICTABLE = 18,
 * include/uapi/linux/kernel-page-flags.h).  Both need root (CAP_SYS_ADMIN):
 * unprivileged, PFNs read as 0 and kpageflags cannot be opened.
 */
#ifndef LOF_TEST_PAGEFLAGS_H
#define LOF_TEST_PAGEFLAGS_H

#include <stdbool.h>
#include <stddef.h>

#define KPF_BIT_UNEVICTABLE 18
#define KPF_BIT_MLOCKED 33

/* Can this process read its PFNs and /proc/kpageflags? */
bool pageflags_available(void);

/* Over the pages at addr, addr + stride, ... below addr + len: how many are
 * present, how many of those are mlocked (KPF_MLOCKED, set when the page is
 * locked) and, if unevictable is not NULL, how many are already on the
 * unevictable list (KPF_UNEVICTABLE: set when the per-CPU mlock batch is
 * drained, so it can lag by a few pages).  0, or -1 (errno) when the files
 * cannot be read. */
int pageflags_count(const void *addr, size_t len, size_t stride, size_t *present,
                    size_t *mlocked, size_t *unevictable);

#endif
