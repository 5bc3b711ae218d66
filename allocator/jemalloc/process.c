/*
 * process.c -- the whole-process mode: liblofalloc-jemalloc-process.so puts
 * every malloc of a program that runs on jemalloc (linked, or preloaded
 * before this library) on lock-on-fault memory.
 *
 * Mechanism: hooks on every automatic arena, plus an adoption of jemalloc's
 * bootstrap mappings.
 *  - The constructor writes arena.<i>.extent_hooks for every automatic arena
 *    (lof_je_hook_automatic_arenas): arena 0 switches to the hooks, and
 *    arenas 1..narenas-1, not yet in use, are initialised with them, so all
 *    their extents and their metadata are regions from their first byte.
 *    malloc's fast paths are untouched: no per-call cost.
 *  - jemalloc initialises itself in its own constructor, which runs before
 *    ours (it is our dependency): by then b0 (the metadata allocator, whose
 *    hooks are arena 0's) and arena 0 hold a few MiB mapped with jemalloc's
 *    default hooks.  To lock those too, this library exports mmap: a plain
 *    system call, which, until the constructor has installed the hooks
 *    (the bootstrap window), locks on fault every private anonymous
 *    read-write mapping that jemalloc's own code asks for and lists it
 *    (lof__je_bootstrap_add) so the hooks can purge it keeping it locked.
 *    After the window mmap is a pass-through.
 *
 * The locking policy applies to the bootstrap mappings too: strict fails the
 * mmap with ENOMEM when locking fails, fallback keeps the mapping unlocked
 * (with one warning), abort aborts.
 *
 * Invariants: nothing here calls malloc before the window closes; the
 * window opens at load and closes exactly once.
 */
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "je.h"
#include "options.h"
#include "os.h"
#include "region.h"

LOF_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
LOF_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);

static _Atomic(bool) process_window = true;   /* bootstrap window open */
static _Atomic(uintptr_t) process_je_base;     /* load address of libjemalloc, 0 = unknown */
static _Atomic(uint64_t) process_adopted;      /* bytes locked on fault in the window */
static _Atomic(unsigned) process_adopted_maps; /* mappings locked on fault in the window */
static _Atomic(bool) process_warned;

/* The load address of the object holding code address pc, or 0. */
static uintptr_t process_object_of(const void *pc) {
  Dl_info info;
  if (dladdr(pc, &info) == 0) return 0;
  return (uintptr_t)info.dli_fbase;
}

static bool process_caller_is_jemalloc(const void *caller) {
  uintptr_t je = atomic_load_explicit(&process_je_base, memory_order_relaxed);
  if (je == 0) {
    je = process_object_of((const void *)&mallocx);
    atomic_store_explicit(&process_je_base, je, memory_order_relaxed);
  }
  return je != 0 && process_object_of(caller) == je;
}

/* Lock a bootstrap mapping on fault.  Returns false when the strict policy
 * says the mapping must fail. */
static bool process_adopt(void *p, size_t len) {
  if (lof__region_backend() == LOF_BACKEND_UNLOCKED) return true;
  size_t span = LOF_ALIGN_UP(len, LOF_PAGE_SIZE);
  if (lof__os_lock_onfault(p, span) != 0) {
    int64_t policy = lof__option(LOF_OPT_POLICY);
    if (policy == LOF_POLICY_STRICT) return false;
    if (policy == LOF_POLICY_ABORT)
      lof__fatal("jemalloc whole-process: cannot lock jemalloc's bootstrap memory (errno %d)", errno);
    if (!atomic_exchange(&process_warned, true))
      lof__message("jemalloc whole-process: cannot lock jemalloc's bootstrap memory (errno %d), "
                   "it stays unlocked (policy fallback)", errno);
    return true;
  }
  lof__je_bootstrap_add(p, span);
  atomic_fetch_add(&process_adopted, span);
  atomic_fetch_add(&lof__je_counters.bootstrap, span);
  atomic_fetch_add(&process_adopted_maps, 1);
  return true;
}

static void *process_mmap(void *addr, size_t len, int prot, int flags, int fd,
                          off_t off, const void *caller) {
  void *p = (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
  if (LOF_LIKELY(!atomic_load_explicit(&process_window, memory_order_relaxed)) ||
      p == MAP_FAILED)
    return p;
  if ((flags & (MAP_ANONYMOUS | MAP_PRIVATE)) != (MAP_ANONYMOUS | MAP_PRIVATE) ||
      (prot & (PROT_READ | PROT_WRITE)) != (PROT_READ | PROT_WRITE) ||
      !process_caller_is_jemalloc(caller))
    return p;
  int saved = errno;
  lof__je_fork_register_early();
  if (!process_adopt(p, len)) {
    syscall(SYS_munmap, p, len);
    errno = ENOMEM;
    return MAP_FAILED;
  }
  errno = saved;
  return p;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return process_mmap(addr, len, prot, flags, fd, off, __builtin_return_address(0));
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return process_mmap(addr, len, prot, flags, fd, off, __builtin_return_address(0));
}

/* dl_iterate_phdr walks the objects in the order the dynamic linker
 * searches them for a symbol.  The first one (after the executable) that
 * defines malloc itself is the process's malloc. */
static int process_first_malloc(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  uintptr_t *found = arg;
  if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0') return 0; /* the executable */
  void *h = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
  if (h == NULL) return 0;
  void *sym = dlsym(h, "malloc");
  dlclose(h);
  if (sym != NULL && process_object_of(sym) == (uintptr_t)info->dlpi_addr) {
    *found = (uintptr_t)info->dlpi_addr;
    return 1;
  }
  return 0;
}

/* True when the process's malloc is jemalloc's.  (&malloc itself cannot
 * tell: in a non-PIE executable it is the executable's PLT entry.) */
static bool process_runs_on_jemalloc(void) {
  uintptr_t je = process_object_of((const void *)&mallocx);
  uintptr_t found = 0;
  dl_iterate_phdr(process_first_malloc, &found);
  return je != 0 && found == je;
}

__attribute__((constructor)) static void process_init(void) {
  if (!process_runs_on_jemalloc()) {
    atomic_store(&process_window, false);
    lof__message("jemalloc whole-process: malloc is not jemalloc's, nothing done "
                 "(preload libjemalloc.so.2 before this library)");
    return;
  }
  int err = lof_je_hook_automatic_arenas();
  atomic_store(&process_window, false);
  if (err != 0) {
    if (lof__option(LOF_OPT_POLICY) == LOF_POLICY_ABORT)
      lof__fatal("jemalloc whole-process: cannot install the hooks (error %d)", err);
    lof__message("jemalloc whole-process: cannot install the hooks (error %d)", err);
    return;
  }
  if (lof__option(LOF_OPT_VERBOSE))
    lof__message("jemalloc whole-process: automatic arenas hooked, %u bootstrap mappings "
                 "(%llu KiB) locked on fault",
                 atomic_load(&process_adopted_maps),
                 (unsigned long long)(atomic_load(&process_adopted) >> 10));
}
