#!/bin/sh
# tests/preload/python.sh -- python3 under LD_PRELOAD: a workload of dicts,
# lists, strings, json and sorting; output compared with the known answer.
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
PY
expected=$(python3 "$WORK/work.py")
if run_preloaded python python3 "$WORK/work.py"; then
  got=$(cat "$WORK/python.out")
  if [ "$got" = "$expected" ]; then pass "python: output correct ($got)"; else fail "python: output '$got', expected '$expected'"; fi
  check_probes python 1
fi
finish
