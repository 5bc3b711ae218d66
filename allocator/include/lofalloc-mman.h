/*
 * lofalloc-mman.h -- the value of MAP_LOCKONFAULT, shared by the allocator and
 * by kernel-patches/ (the uapi patch defines the same value; the kernel
 * harness checks that the two agree).
 *
 * 0x400000 (bit 22) is free in asm-generic/mman{,-common}.h and in every
 * architecture that has its own uapi mman.h (alpha, mips, parisc, powerpc,
 * sparc, xtensa) as of Linux 6.12.  Bits 26..31 carry MAP_HUGE_* sizes.
 *
 * On a kernel without the patch the bit is silently ignored for MAP_PRIVATE
 * mappings, so a program must probe (see allocator/region/os.c) before it
 * relies on it.
 */
#ifndef LOFALLOC_MMAN_H
#define LOFALLOC_MMAN_H

#define LOF_MAP_LOCKONFAULT 0x400000

#ifndef MAP_LOCKONFAULT
#define MAP_LOCKONFAULT LOF_MAP_LOCKONFAULT
#endif

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif

#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif

#endif /* LOFALLOC_MMAN_H */
