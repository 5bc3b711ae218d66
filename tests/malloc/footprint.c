/*
 * footprint.c -- the heap's resident pages follow its peak of live bytes:
 * pages freed and still resident are handed out again before fresh ones.
 *
 *  - 6 MiB of 64 B blocks (one thread, so one arena: a full segment and half
 *    of a second), all freed, then 1 MiB, freed, then 6 MiB again: the heap
 *    resident at the third peak is within 256 KiB of the first's (the
 *    pointer table, a large block of 768 KiB, counts in both).  Before, the
 *    arena cut the later rounds' spans from the top of the second segment's
 *    committed prefix, touching fresh pages, while the first segment's freed
 *    pages sat idle: 6924, 7820, 7820 KiB; now 6924 each time.
 *  - lofbench linked's pattern: rounds of 20k-60k nodes of 32-127 B built
 *    into a list and a tree and dropped in another order (the list from its
 *    middle, the tree post-order), four seeds' five rounds each: the heap
 *    resident at each round's peak is at most 1.1 x the largest live bytes
 *    so far + 256 KiB.  Before, 6784 KiB resident for 4719 KiB live at the
 *    seventh round (and up to 7852 KiB, 1.61 x, later); now at most 5072
 *    KiB for 4874 KiB.
 * "Resident" is lof_stats_t.resident (smaps Rss: of the heap's
 * reservations, so segment headers count too) less what it was after the
 * lof_purge() each case starts with; the decay time (1 s) is far longer
 * than a case, so nothing is purged in between.  Each case frees everything
 * it allocated.  Numbers are printed so a failure says by how much.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lofalloc.h"

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)

static lof_stats_t stats_now(void) {
  lof_stats_t st;
  assert_int_equal(lof_stats_get(&st, sizeof st), 0);
  return st;
}

/* ---- rounds of one size class, freed in allocation order ----------------- */

/* The heap's resident bytes after giving every freed page back. */
static uint64_t resident_base(void) {
  lof_purge();
  return stats_now().resident;
}

/* n blocks of 64 B, each written; the heap resident with all of them live. */
static uint64_t round_64(void **blk, size_t n) {
  for (size_t i = 0; i < n; i++) {
    blk[i] = lof_malloc(64);
    assert_non_null(blk[i]);
    memset(blk[i], 0x5a, 64);
  }
  uint64_t res = stats_now().resident;
  for (size_t i = 0; i < n; i++) lof_free(blk[i]);
  return res;
}

static void test_freed_pages_before_fresh_pages(void **state) {
  (void)state;
  size_t big = 6 * MiB / 64, small = 1 * MiB / 64;
  void **blk = lof_malloc(big * sizeof *blk); /* a large block, not in the small spans */
  assert_non_null(blk);
  uint64_t base = resident_base();
  uint64_t first = round_64(blk, big) - base;
  uint64_t second = round_64(blk, small) - base;
  uint64_t third = round_64(blk, big) - base;
  lof_free(blk);
  printf("# 6 MiB, 1 MiB, 6 MiB of 64 B blocks: resident %llu, %llu, %llu KiB\n",
         (unsigned long long)(first / KiB), (unsigned long long)(second / KiB),
         (unsigned long long)(third / KiB));
  assert_true(first >= 6 * MiB);
  assert_true(third <= first + 256 * KiB);
}

/* ---- lofbench linked's rounds ------------------------------------------ */

typedef struct node {
  struct node *next, *left, *right;
  uint64_t key;
} node_t;

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static node_t *tree_insert(node_t *t, node_t *n) {
  node_t **at = &t;
  while (*at) at = n->key < (*at)->key ? &(*at)->left : &(*at)->right;
  *at = n;
  return t;
}

static void tree_drop(node_t *t) { /* post-order: not the build order */
  while (t) {
    tree_drop(t->right);
    node_t *l = t->left;
    lof_free(t);
    t = l;
  }
}

static void test_linked_rounds(void **state) {
  (void)state;
  uint64_t res0 = resident_base();
  uint64_t max_live = 0, max_res = 0, base = stats_now().allocated;
  for (uint64_t seed = 900; seed < 904; seed++) {
    uint64_t s = seed;
    for (int round = 0; round < 5; round++) {
      int n = 20000 + (int)(rnd(&s) % 40000);
      node_t *list = NULL, *tree = NULL;
      for (int i = 0; i < n; i++) {
        node_t *x = lof_malloc(sizeof(node_t) + rnd(&s) % 96); /* 32..127 B */
        assert_non_null(x);
        x->key = rnd(&s);
        x->left = x->right = NULL;
        if (x->key & 1) {
          x->next = list;
          list = x;
        } else {
          tree = tree_insert(tree, x);
        }
      }
      lof_stats_t st = stats_now();
      uint64_t live = st.allocated - base, res = st.resident - res0;
      if (live > max_live) max_live = live;
      if (res > max_res) max_res = res;
      if ((double)res > 1.1 * (double)max_live + (double)(256 * KiB))
        printf("# seed %llu round %d: resident %llu KiB, live %llu KiB, largest live %llu KiB\n",
               (unsigned long long)seed, round, (unsigned long long)(res / KiB),
               (unsigned long long)(live / KiB), (unsigned long long)(max_live / KiB));
      assert_true((double)res <= 1.1 * (double)max_live + (double)(256 * KiB));
      node_t *keep = NULL; /* the list from its middle outwards */
      for (node_t *x = list, *nx; x; x = nx) {
        nx = x->next;
        if (x->key & 2) {
          lof_free(x);
        } else {
          x->next = keep;
          keep = x;
        }
      }
      tree_drop(tree);
      for (node_t *x = keep, *nx; x; x = nx) {
        nx = x->next;
        lof_free(x);
      }
    }
  }
  printf("# linked rounds: resident at most %llu KiB for at most %llu KiB live\n",
         (unsigned long long)(max_res / KiB), (unsigned long long)(max_live / KiB));
}

/* ---- large blocks: address-ordered first fit ----------------------------- */

/* Blocks above 16 pages go to the lowest-addressed free run that holds them.
 * 48 large blocks of 68-260 KiB, some freed and taken again (which moves
 * descriptor slots around), then every other one freed (no two holes
 * coalesce), then each freed size asked for again: the block handed out
 * lies at or below the lowest hole left that held a block of that size.
 * Descriptor slots are taken lowest-free-first, not in page order, so the
 * search, which compared descriptors' addresses, could pick a higher hole. */
static void test_large_lowest_fit(void **state) {
  (void)state;
  enum { N = 48 };
  void *blk[N];
  uintptr_t hole[N]; /* freed block's address, 0 once taken again */
  size_t len[N];
  uint64_t s = 77;
  for (int i = 0; i < N; i++) {
    len[i] = (size_t)(68 + rnd(&s) % 192) * KiB;
    blk[i] = lof_malloc(len[i]);
    assert_non_null(blk[i]);
    memset(blk[i], 0x33, len[i]);
  }
  for (int i = 0; i < N; i += 3) lof_free(blk[i]);
  for (int i = N - 1 - (N - 1) % 3; i >= 0; i -= 3) {
    blk[i] = lof_malloc(len[i]);
    assert_non_null(blk[i]);
  }
  for (int i = 0; i < N; i++) {
    hole[i] = 0;
    if (i % 2 == 1) {
      hole[i] = (uintptr_t)blk[i];
      lof_free(blk[i]);
      blk[i] = NULL;
    }
  }
  int worse = 0;
  for (int i = 1; i < N; i += 2) {
    uintptr_t bound = UINTPTR_MAX;
    for (int j = 1; j < N; j += 2)
      if (hole[j] != 0 && len[j] >= len[i] && hole[j] < bound) bound = hole[j];
    blk[i] = lof_malloc(len[i]);
    assert_non_null(blk[i]);
    uintptr_t got = (uintptr_t)blk[i];
    if (got > bound) {
      print_message("%zu KiB: got %#lx, a hole at %#lx held it\n", len[i] / KiB,
                    (unsigned long)got, (unsigned long)bound);
      worse++;
    }
    for (int j = 1; j < N; j += 2) /* the holes it took from */
      if (hole[j] != 0 && got < hole[j] + len[j] && got + len[i] > hole[j]) hole[j] = 0;
  }
  for (int i = 0; i < N; i++) lof_free(blk[i]);
  assert_int_equal(worse, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_freed_pages_before_fresh_pages),
      cmocka_unit_test(test_linked_rounds),
      cmocka_unit_test(test_large_lowest_fit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
