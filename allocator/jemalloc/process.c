/*
 * process.c -- the whole-process mode: liblofalloc-jemalloc-process.so puts
 * every malloc of a program that runs on jemalloc (linked, or preloaded
 * before this library) on lock-on-fault memory.
 *
 * Mechanism: hooks on every automatic arena, plus jemalloc's own mappings
 * adopted.
 *  - The constructor writes arena.<i>.extent_hooks for every automatic arena
 *    and the huge arena (lof_je_hook_automatic_arenas): arena 0 switches to
 *    the hooks, arenas 1..narenas-1, not yet in use, are initialised with
 *    them, so their extents and their metadata are regions from their first
 *    byte.  malloc's fast paths are untouched: no per-call cost.
 *  - Some memory jemalloc maps with its default hooks whatever we do:
 *    everything it maps before our constructor runs (it initialises itself in
 *    its own constructor, and ours runs after: it is our dependency), and,
 *    for good, the metadata blocks of b0 (arena 0's base) and of the huge
 *    arena: jemalloc 5.3 keeps a base's metadata hooks (ehooks_base) as they
 *    were when the base was created, and arena.<i>.extent_hooks does not
 *    change them.  To lock those too, this library exports mmap: a plain
 *    system call which, for a private anonymous read-write mapping asked by
 *    jemalloc's own code (the return address is in libjemalloc's text),
 *    locks it on fault and lists it (boot.c) so the hooks can
 *    purge it keeping it locked when jemalloc hands such "foreign" extents
 *    to them.  Any other mmap costs one range check.
 *
 * The locking policy applies to adopted mappings too: strict fails the mmap
 * with ENOMEM when locking fails, fallback keeps the mapping unlocked (with
 * one warning), abort aborts.
 *
 * Invariants: nothing here calls malloc from mmap; the text range of
 * libjemalloc is computed once (dladdr + dl_iterate_phdr) at the first
 * anonymous mapping, before any thread but the first exists.
 */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "je.h"
#include "options.h"
#include "os.h"
#include "region.h"

LOF_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
LOF_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);

/* libjemalloc's executable segments: [text_lo, text_hi); state 0 = not yet
 * looked up, 1 = looking up, 2 = known (empty range if not found). */
static uintptr_t process_text_lo, process_text_hi;
static _Atomic(int) process_text_state;
static bool process_hooked;                    /* constructor installed the hooks */
static _Atomic(uint64_t) process_adopted;      /* bytes locked on fault */
static _Atomic(unsigned) process_adopted_maps; /* mappings locked on fault */
static _Atomic(unsigned) process_late_maps;    /* ... of them after the constructor */
static _Atomic(bool) process_warned;

/* Where locking is budgeted (fallback policy), jemalloc's own mappings up
 * to this size are locked whole at once; larger ones as touched (boot.c). */
#define PROCESS_LOCK_WHOLE_MAX ((size_t)64 << 10)

/* The load address of the object holding code address pc, or 0. */
static uintptr_t process_object_of(const void *pc) {
  Dl_info info;
  if (dladdr(pc, &info) == 0) return 0;
  return (uintptr_t)info.dli_fbase;
}

static int process_find_text(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  uintptr_t base = *(uintptr_t *)arg;
  if ((uintptr_t)info->dlpi_addr != base) return 0;
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t s = base + ph->p_vaddr, e = s + ph->p_memsz;
    if (s < lo) lo = s;
    if (e > hi) hi = e;
  }
  if (hi > lo) {
    process_text_lo = lo;
    process_text_hi = hi;
  }
  return 1;
}

static bool process_caller_is_jemalloc(const void *caller) {
  int state = atomic_load_explicit(&process_text_state, memory_order_acquire);
  if (LOF_UNLIKELY(state != 2)) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&process_text_state, &expected, 1))
      return false; /* another thread is looking it up: too early to matter */
    uintptr_t base = process_object_of(LOF_JE_OBJECT_ANCHOR);
    if (base != 0) dl_iterate_phdr(process_find_text, &base);
    atomic_store_explicit(&process_text_state, 2, memory_order_release);
  }
  uintptr_t pc = (uintptr_t)caller;
  return pc >= process_text_lo && pc < process_text_hi;
}

/* Adopt one of jemalloc's own mappings: list it (boot.c) and lock it on
 * fault.  Where locking is budgeted and the policy is fallback, a mapping
 * larger than a granule is listed unlocked: boot.c locks the parts jemalloc
 * touches (RLIMIT_MEMLOCK is charged by range, and jemalloc's first
 * mappings alone, locked whole, took the default 8 MiB).  Under strict
 * and abort every mapping is locked whole, as those policies promise.
 * Returns false when the strict policy says the mapping must fail. */
static bool process_adopt(void *p, size_t len) {
  if (lof__region_backend() == LOF_BACKEND_UNLOCKED) return true;
  size_t span = LOF_ALIGN_UP(len, LOF_PAGE_SIZE);
  int64_t policy = lof__option(LOF_OPT_POLICY);
  atomic_fetch_add(&process_adopted, span);
  atomic_fetch_add(&process_adopted_maps, 1);
  atomic_fetch_add(&lof__je_counters.bootstrap, span);
  if (process_hooked) atomic_fetch_add(&process_late_maps, 1);
  if (policy == LOF_POLICY_FALLBACK && lof__je_lock_budgeted() && span > PROCESS_LOCK_WHOLE_MAX) {
    lof__je_boot_add(p, span, false);
    return true;
  }
  bool open = !lof__je_lock_budgeted() || policy != LOF_POLICY_FALLBACK ||
              lof__je_gate_open(span, lof__je_boot_locked_bytes());
  int rc = open ? lof__os_lock_onfault(p, span) : -1;
  int err = open ? errno : ENOMEM;
  if (open && lof__je_lock_budgeted())
    lof__je_gate_result(span, lof__je_boot_locked_bytes(), rc == 0, err);
  if (rc != 0) {
    if (policy == LOF_POLICY_STRICT) return false;
    if (policy == LOF_POLICY_ABORT)
      lof__fatal("jemalloc whole-process: cannot lock jemalloc's own memory (errno %d)", err);
    if (!atomic_exchange(&process_warned, true))
      lof__message("jemalloc whole-process: cannot lock jemalloc's own memory (errno %d), "
                   "it stays unlocked (policy fallback)", err);
    lof__je_boot_add(p, span, false);
    return true;
  }
  lof__je_boot_add(p, span, true);
  return true;
}

static void *process_mmap(void *addr, size_t len, int prot, int flags, int fd,
                          off_t off, const void *caller) {
  void *p = lof__os_mmap_as_is(addr, len, prot, flags, fd, off);
  if (p == MAP_FAILED ||
      (flags & (MAP_ANONYMOUS | MAP_PRIVATE)) != (MAP_ANONYMOUS | MAP_PRIVATE) ||
      (prot & (PROT_READ | PROT_WRITE)) != (PROT_READ | PROT_WRITE) ||
      !process_caller_is_jemalloc(caller))
    return p;
  int saved = errno;
  /* jemalloc's first mapping comes before its own pthread_atfork call */
  lof__je_fork_register_early();
  if (!process_adopt(p, len)) {
    lof__os_munmap_as_is(p, len);
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
  uintptr_t je = process_object_of(LOF_JE_OBJECT_ANCHOR);
  uintptr_t found = 0;
  dl_iterate_phdr(process_first_malloc, &found);
  return je != 0 && found == je;
}

static void process_report_at_exit(void) {
  lof__message("jemalloc whole-process: %u of jemalloc's own mappings (%llu KiB) adopted, "
               "%u of them after start-up; %llu KiB of them locked on fault",
               atomic_load(&process_adopted_maps),
               (unsigned long long)(atomic_load(&process_adopted) >> 10),
               atomic_load(&process_late_maps),
               (unsigned long long)(lof__je_boot_locked_bytes() >> 10));
}

__attribute__((constructor)) static void process_init(void) {
  if (!process_runs_on_jemalloc()) {
    lof__message("jemalloc whole-process: malloc is not jemalloc's, nothing done "
                 "(preload libjemalloc.so.2 before this library)");
    return;
  }
  int err = lof_je_hook_automatic_arenas();
  if (err != 0) {
    if (lof__option(LOF_OPT_POLICY) == LOF_POLICY_ABORT)
      lof__fatal("jemalloc whole-process: cannot install the hooks (error %d)", err);
    lof__message("jemalloc whole-process: cannot install the hooks (error %d)", err);
    return;
  }
  process_hooked = true;
  lof__je_boot_lock_touched();
  if (lof__option(LOF_OPT_VERBOSE)) {
    lof__message("jemalloc whole-process: automatic arenas hooked, %u of jemalloc's own "
                 "mappings (%llu KiB) adopted, %llu KiB of them locked on fault",
                 atomic_load(&process_adopted_maps),
                 (unsigned long long)(atomic_load(&process_adopted) >> 10),
                 (unsigned long long)(lof__je_boot_locked_bytes() >> 10));
    atexit(process_report_at_exit);
  }
}
