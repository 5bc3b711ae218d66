#!/bin/sh
# tests/preload/python.sh -- python3 under LD_PRELOAD with PYTHONMALLOC=malloc:
# a workload of dicts, lists, strings, json and sorting; output compared with
# the known answer, and its small objects must have been lofalloc's.
. "${top_srcdir:-../..}/tests/preload/common.sh"
need_lib
need_prog python3
cat >"$WORK/work.py" <<'PY'
import json, hashlib
d = {str(i): [j * i for j in range(i % 40)] for i in range(60000)}
s = json.dumps(d, sort_keys=True)
back = json.loads(s)
words = sorted(("w%07d" % ((i * 7919) % 100003)) for i in range(200000))
big = bytearray(50 * 1024 * 1024)
big[12345] = 7
print(len(back), sum(len(v) for v in back.values()), words[100], sum(big),
      hashlib.sha256(s.encode()).hexdigest()[:16])
# While the objects are alive: lofalloc's count of live blocks (lof_stats_t
# is versioned and only ever appended to: allocations is its 15th u64,
# after 16 bytes of u32s and 40 of names).
import ctypes, os, struct
out = os.environ.get("LOFTEST_ALLOCS")
if out:
    get = getattr(ctypes.CDLL(None), "lof_stats_get", None)
    buf = ctypes.create_string_buffer(512)
    n = get(buf, 512) if get else -1
    with open(out, "w") as f:
        f.write("%d\n" % (struct.unpack_from("=Q", buf.raw, 56 + 14 * 8)[0] if n == 0 else -1))
PY
expected=$(python3 "$WORK/work.py")
# PYTHONMALLOC=malloc: CPython's small objects (below 512 bytes) go to
# malloc instead of pymalloc's arenas, so they reach lofalloc too.
PYTHONMALLOC=malloc LOFTEST_ALLOCS=$WORK/allocs
export PYTHONMALLOC LOFTEST_ALLOCS
if run_preloaded python python3 "$WORK/work.py"; then
  got=$(cat "$WORK/python.out")
  if [ "$got" = "$expected" ]; then pass "python: output correct ($got)"; else fail "python: output '$got', expected '$expected'"; fi
  check_probes python 1
  # 60000 lists and keys and 200000 words alive: with pymalloc they would be
  # a few hundred blocks (pymalloc's arenas are not even malloc'ed)
  allocs=$(cat "$WORK/allocs" 2>/dev/null)
  if [ "${allocs:-0}" -ge 200000 ]; then
    pass "python: $allocs live lofalloc blocks with the objects alive (small objects reach lofalloc)"
  else
    fail "python: ${allocs:-no} live lofalloc blocks with 260000 objects alive: small objects did not reach lofalloc"
  fi
fi
finish
