/*
 * whole.c -- whole regions: a huge block's own mapping, committed whole,
 * with room reserved after it to grow into in place (the contract is
 * region.h's: lof__region_map, lof__region_remap).  A shrink gives the
 * tail back to the room, growth within the room commits its first pages,
 * and growth past it moves the block with mremap into a new reservation.
 * Descriptors, counters and the region list stay region.c's, reached
 * through the helpers region_int.h lists; the budget is budget.c's.
 */
#include <errno.h>
#include <sys/mman.h>

#include "budget.h"
#include "lofalloc-mman.h"
#include "os.h"
#include "region.h"
#include "region_int.h"

typedef struct region_map_job {
  size_t size, room, align;
  void *p;
} region_map_job_t;

/* A whole new locked mapping: one mmap with MAP_LOCKONFAULT where it can
 * be, else an accounted reservation (with its room) whose first size bytes
 * are locked by mlock2 + mprotect. */
static int region_map_locked(void *arg) {
  region_map_job_t *j = arg;
  if (lof__region_backend() == LOF_BACKEND_MAP_LOCKONFAULT && j->align == LOF_PAGE_SIZE && j->room == 0) {
    j->p = lof__os_map_whole_locked(j->size);
    if (j->p == NULL) return errno == ENOMEM ? LOF_OS_NOMEM : LOF_OS_LOCK_REFUSED;
    if (lof__region_nohugepage()) lof__os_advise(j->p, j->size, MADV_NOHUGEPAGE);
    return 0;
  }
  j->p = lof__os_reserve(j->size + j->room, j->align, lof__region_nohugepage(), true);
  if (j->p == NULL) return LOF_OS_NOMEM;
  int rc = lof__os_commit_locked(j->p, j->size, lof__region_backend() == LOF_BACKEND_MAP_LOCKONFAULT,
                                 lof__region_nohugepage());
  if (rc != 0) {
    int err = errno;
    lof__region_unmap(j->p, j->size + j->room);
    j->p = NULL;
    errno = err;
  }
  return rc;
}

lof_region_t *lof__region_map(size_t size, size_t room, size_t align) {
  lof__region_init();
  if (align < LOF_PAGE_SIZE) align = LOF_PAGE_SIZE;
  room = LOF_ALIGN_UP(room, LOF_PAGE_SIZE);
  if (!lof__region_args_ok(size, align) || room > ((size_t)1 << 47)) { errno = ENOMEM; return NULL; }
  size = LOF_ALIGN_UP(size, LOF_PAGE_SIZE);
  region_map_job_t job = {size, room, align, NULL};
  int locked = 0;
  if (lof__region_backend() != LOF_BACKEND_UNLOCKED) {
    locked = lof__region_lock_new(size, region_map_locked, &job);
    if (locked < 0) return NULL;
  }
  if (!locked) {
    job.p = lof__os_reserve(size + room, align, lof__region_nohugepage(), true);
    if (job.p == NULL) return NULL;
    if (lof__os_commit_unlocked(job.p, size) != 0) {
      lof__region_unmap(job.p, size + room);
      errno = ENOMEM;
      return NULL;
    }
    lof__budget_fallback((int64_t)size);
  }
  lof_region_t *r = lof__region_register_whole((uintptr_t)job.p, size, room, locked);
  if (r == NULL) {
    lof__region_unmap(job.p, size + room);
    if (locked) lof__budget_refund(size);
    else lof__budget_fallback(-(int64_t)size);
    errno = ENOMEM;
  }
  return r;
}

/* Shrink in place: [base + new_size, base + size) goes back to the room. */
static int region_whole_shrink(lof_region_t *r, size_t new_size) {
  size_t cut = r->size - new_size;
  if (lof__os_decommit((void *)(r->base + new_size), cut) != 0) { errno = ENOMEM; return -1; }
  lof__region_count_add(0, -(int64_t)cut);
  if (r->whole_locked) lof__budget_refund(cut);
  else lof__budget_fallback(-(int64_t)cut);
  lof__region_set_whole(r, r->base, new_size, r->room + cut);
  return 0;
}

/* Grow by grow bytes into the room: the room's first pages committed. */
static int region_whole_grow_in_place(lof_region_t *r, size_t grow) {
  void *tail = (void *)(r->base + r->size);
  if (r->whole_locked) {
    int rc = lof__os_commit_locked(tail, grow, lof__region_backend() == LOF_BACKEND_MAP_LOCKONFAULT,
                                   lof__region_nohugepage());
    if (rc == LOF_OS_LOCK_REFUSED) lof__budget_kernel_refused(grow, errno);
    if (rc != 0) return -1;
  } else if (lof__os_commit_unlocked(tail, grow) != 0) {
    return -1;
  }
  lof__region_set_whole(r, r->base, r->size + grow, r->room - grow);
  return 0;
}

/* Grow past the room: the block moves into a new reservation of new_size
 * and room (room_ratio x new_size: the proportion it was mapped with); the
 * old room is unmapped. */
static int region_whole_move(lof_region_t *r, size_t new_size) {
  size_t room = new_size > ((size_t)1 << 47) / (r->room_ratio + 1u) ? 0 : r->room_ratio * new_size;
  void *dest = lof__os_reserve(new_size + room, LOF_PAGE_SIZE, lof__region_nohugepage(), true);
  if (dest == NULL) return -1;
  if (lof__os_remap_to((void *)r->base, r->size, new_size, dest) != 0) {
    int err = errno;
    if (r->whole_locked && err == EAGAIN) lof__budget_kernel_refused(new_size - r->size, err);
    lof__region_unmap(dest, new_size + room);
    errno = err;
    return -1;
  }
  size_t old_reserved = r->size + r->room;
  if (r->room != 0) lof__region_unmap((void *)(r->base + r->size), r->room);
  lof__region_count_add((int64_t)(new_size + room) - (int64_t)old_reserved, 0);
  lof__region_set_whole(r, (uintptr_t)dest, new_size, room);
  return 0;
}

int lof__region_remap(lof_region_t *r, size_t new_size) {
  if (r == NULL || r->kind != LOF_REGION_WHOLE || new_size == 0 || new_size > ((size_t)1 << 47)) {
    errno = EINVAL;
    return -1;
  }
  new_size = LOF_ALIGN_UP(new_size, LOF_PAGE_SIZE);
  size_t old = r->size;
  if (new_size == old) return 0;
  if (new_size < old) return region_whole_shrink(r, new_size);
  uint64_t grow = new_size - old;
  lof_refusal_t why;
  int err;
  if (r->whole_locked && !lof__budget_charge(grow, &why, &err)) {
    /* The caller moves the block instead (where the policy lets it). */
    errno = ENOMEM;
    return -1;
  }
  if ((grow <= r->room ? region_whole_grow_in_place(r, grow) : region_whole_move(r, new_size)) != 0) {
    if (r->whole_locked) lof__budget_refund(grow);
    errno = ENOMEM;
    return -1;
  }
  lof__region_count_add(0, (int64_t)grow);
  if (!r->whole_locked) lof__budget_fallback((int64_t)grow);
  return 0;
}
