/*
 * fuzz_malloc.c -- libFuzzer harness: the input bytes are a program of
 * malloc, calloc, realloc, memalign, aligned_alloc, free,
 * malloc_usable_size and trim (lof_purge) steps on lofalloc's lof_* names,
 * run by 2 threads (steps alternate between them; a handoff step passes a
 * block to the other thread, which frees it).  After every step the block
 * it touched is checked (content, alignment, calloc zeroes, realloc keeps
 * the prefix, usable size writable) and lof_check() must say 0; any
 * violation aborts, which libFuzzer reports with the input.
 *
 * Each step is 4 bytes: op, slot, and two argument bytes (size class and
 * size).  Sizes reach 6 MiB (huge blocks) but the live total is capped.
 * Built and run by tests/fuzz/fuzz.sh (make fuzz FUZZ_TIME=secs).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lofalloc.h"

#define SLOTS 16
#define LIVE_CAP ((size_t)24 << 20)

typedef struct slot {
  unsigned char *p;
  size_t n;            /* bytes requested (and patterned) */
  unsigned char seed;
} slot_t;

typedef struct prog {
  const uint8_t *data;
  size_t len;
} prog_t;

static _Atomic(uintptr_t) handoff[2]; /* a block for thread i to free, its size in the tag */
static _Atomic(size_t) live_bytes;

#define DIE(...) do { fprintf(stderr, "fuzz_malloc: " __VA_ARGS__); fputc('\n', stderr); abort(); } while (0)

static void fill(unsigned char *p, size_t n, unsigned char seed) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 13);
}

static void verify(const slot_t *s, size_t upto) {
  if (upto > s->n) upto = s->n;
  for (size_t i = 0; i < upto; i++)
    if (s->p[i] != (unsigned char)(s->seed + i * 13))
      DIE("block %p (%zu bytes) corrupted at byte %zu", (void *)s->p, s->n, i);
}

static size_t decode_size(uint8_t cls, uint8_t v) {
  switch (cls & 7) {
  case 0: case 1: case 2: return v;                       /* 0..255 */
  case 3: case 4: return (size_t)v * 64 + (cls >> 3);     /* ..16 KiB */
  case 5: return (size_t)v * 1024 + cls;                  /* ..256 KiB */
  case 6: return (size_t)v * 8192 + cls;                  /* ..2 MiB */
  default: return ((size_t)1 << 20) + (size_t)v * 20480;  /* 1..6 MiB: huge */
  }
}

static void release(slot_t *s) {
  if (s->p == NULL) return;
  verify(s, s->n);
  atomic_fetch_sub(&live_bytes, s->n);
  lof_free(s->p);
  s->p = NULL;
  s->n = 0;
}

static void adopt(slot_t *s, void *p, size_t n, unsigned char seed) {
  s->p = p;
  s->n = n;
  s->seed = seed;
  fill(s->p, n, seed);
  atomic_fetch_add(&live_bytes, n);
}

/* Free what the other thread handed to this one. */
static void take_handoff(int me) {
  uintptr_t v = atomic_exchange(&handoff[me], 0);
  if (v) lof_free((void *)v);
}

static void step(int me, slot_t *tab, const uint8_t *b) {
  slot_t *s = &tab[b[1] % SLOTS];
  size_t n = decode_size(b[2], b[3]);
  unsigned char seed = (unsigned char)(b[1] * 7 + b[3]);
  bool room = atomic_load(&live_bytes) + n <= LIVE_CAP;
  switch (b[0] % 10) {
  case 0: /* malloc */
    release(s);
    if (!room) break;
    { void *p = lof_malloc(n); if (p) adopt(s, p, n, seed); else DIE("malloc(%zu) failed", n); }
    break;
  case 1: { /* calloc */
    release(s);
    if (!room) break;
    size_t cnt = (b[2] & 15) + 1, each = n / cnt + 1;
    unsigned char *p = lof_calloc(cnt, each);
    if (p == NULL) DIE("calloc(%zu, %zu) failed", cnt, each);
    for (size_t i = 0; i < cnt * each; i++)
      if (p[i]) DIE("calloc(%zu, %zu) byte %zu is %d", cnt, each, i, p[i]);
    adopt(s, p, cnt * each, seed);
    break;
  }
  case 2: { /* realloc: the common prefix survives */
    if (!room) break;
    verify(s, s->n);
    unsigned char *q = lof_realloc(s->p, n);
    if (q == NULL && n != 0) DIE("realloc(%p, %zu) failed", (void *)s->p, n);
    if (q == NULL) { atomic_fetch_sub(&live_bytes, s->n); s->p = NULL; s->n = 0; break; }
    slot_t t = {q, s->n < n ? s->n : n, s->seed};
    verify(&t, t.n);
    atomic_fetch_sub(&live_bytes, s->n);
    adopt(s, q, n, seed);
    break;
  }
  case 3: case 4: { /* memalign / aligned_alloc */
    release(s);
    if (!room) break;
    size_t align = (size_t)8 << (b[2] % 17); /* 8 B .. 512 KiB */
    void *p;
    if (b[0] % 10 == 3) p = lof_memalign(align, n);
    else p = lof_aligned_alloc(align, (n + align - 1) & ~(align - 1));
    if (p == NULL) DIE("aligned allocation (%zu, %zu) failed", align, n);
    if ((uintptr_t)p & (align - 1)) DIE("%p is not aligned to %zu", p, align);
    adopt(s, p, n, seed);
    break;
  }
  case 5: case 6: /* free */
    release(s);
    break;
  case 7: /* malloc_usable_size: at least what was asked, all of it writable */
    if (s->p) {
      size_t u = lof_malloc_usable_size(s->p);
      if (u < s->n) DIE("usable size %zu < %zu", u, s->n);
      memset(s->p + s->n, 0xee, u - s->n);
      verify(s, s->n);
    }
    break;
  case 8: /* trim */
    lof_purge();
    break;
  default: /* hand the block to the other thread, which frees it */
    if (s->p) {
      verify(s, s->n);
      atomic_fetch_sub(&live_bytes, s->n);
      uintptr_t old = atomic_exchange(&handoff[!me], (uintptr_t)s->p);
      if (old) lof_free((void *)old);
      s->p = NULL;
      s->n = 0;
    }
    break;
  }
  if (s->p) verify(s, s->n);
  if (lof_check() != 0) DIE("lof_check() failed after op %d", b[0] % 10);
}

typedef struct thread_arg {
  const prog_t *prog;
  int me;
} thread_arg_t;

static void *run(void *arg) {
  thread_arg_t *a = arg;
  slot_t tab[SLOTS];
  memset(tab, 0, sizeof tab);
  for (size_t off = (size_t)a->me * 4; off + 4 <= a->prog->len; off += 8) {
    take_handoff(a->me);
    step(a->me, tab, a->prog->data + off);
  }
  for (int i = 0; i < SLOTS; i++) release(&tab[i]);
  take_handoff(a->me);
  return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  prog_t prog = {data, size};
  thread_arg_t a0 = {&prog, 0}, a1 = {&prog, 1};
  pthread_t t;
  if (pthread_create(&t, NULL, run, &a1) != 0) { run(&a1); run(&a0); }
  else { run(&a0); pthread_join(t, NULL); }
  take_handoff(0);
  take_handoff(1);
  if (lof_check() != 0) DIE("lof_check() failed at the end");
  if (atomic_load(&live_bytes) != 0) DIE("live bytes %zu at the end", atomic_load(&live_bytes));
  return 0;
}
