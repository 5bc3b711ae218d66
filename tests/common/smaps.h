/*
 * smaps.h -- the one reader of the kernel's view of this process's memory
 * for the C tests and the preloaded checker (stdio-free): a VMA's flags and
 * its Rss/Locked bytes from /proc/self/smaps, totals from smaps_rollup,
 * VmLck from status.
 * These are the numbers tests assert on (never VmLck: it counts whole locked
 * ranges, touched or not).
 */
#ifndef LOF_TEST_SMAPS_H
#define LOF_TEST_SMAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct smaps_vma {
  uintptr_t start, end;      /* the VMA's range */
  uint64_t rss;              /* Rss: in bytes */
  uint64_t locked;           /* Locked: in bytes */
  char vmflags[160];         /* the text after "VmFlags:" */
} smaps_vma_t;

/* The VMA containing addr: 0, or -1 if none. */
int smaps_vma_at(const void *addr, smaps_vma_t *out);

/* True when every space-separated flag of want ("lo lf") is in vmflags. */
bool smaps_flags_have(const char *vmflags, const char *want);

/* True when the VMA containing addr has every flag in flags ("lo lf"). */
bool smaps_has_flags(const void *addr, const char *flags);

/* Sums over every VMA intersecting [addr, addr+len): Rss and Locked bytes
 * (whole VMAs, not clipped) and the number of VMAs.  0, or -1 on error. */
int smaps_range(const void *addr, size_t len, uint64_t *rss, uint64_t *locked,
                int *vmas);

/* smaps_rollup Locked: and Rss: of the whole process, in bytes. */
uint64_t smaps_total_locked(void);
uint64_t smaps_total_rss(void);

/* /proc/self/status VmLck: in bytes. */
uint64_t proc_vmlck(void);

/* Every VMA intersecting [addr, addr+len) has every flag in flags. */
bool smaps_range_all_have_flags(const void *addr, size_t len, const char *flags);

/* Does the running kernel honour MAP_LOCKONFAULT?  Asked independently of
 * the allocator: map a page with the flag and look for "lf" in its VmFlags. */
bool kernel_has_map_lockonfault(void);

#endif
