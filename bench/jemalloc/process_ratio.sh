#!/bin/sh
# process_ratio.sh -- the whole-process mode against stock jemalloc: bench_je -d
# (the workloads through the default arena path, as malloc) run alternately
# without and with liblofalloc-jemalloc-process.so preloaded, N rounds; prints
# the median per workload and the ratio.
#   bench/jemalloc/process_ratio.sh BUILDDIR [rounds] [bench_je args...]
b="${1:?usage: $0 BUILDDIR [rounds] [args]}"; shift
rounds="${1:-3}"; [ $# -gt 0 ] && shift
bin="$b/bench/jemalloc/.libs/bench_je"; [ -x "$bin" ] || bin="$b/bench/jemalloc/bench_je"
lib="$b/allocator/.libs/liblofalloc-jemalloc-process.so"
libdir="$b/allocator/.libs"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
i=0
while [ $i -lt "$rounds" ]; do
  LD_LIBRARY_PATH="$libdir" "$bin" -d -r 1 "$@" >>"$tmp/stock"
  LD_LIBRARY_PATH="$libdir" LD_PRELOAD="$lib" "$bin" -d -r 1 "$@" >>"$tmp/lof"
  i=$((i + 1))
done
python3 - "$tmp/stock" "$tmp/lof" <<'PY'
import math, statistics, sys
def load(p):
    d = {}
    for line in open(p):
        name, ms = line.split()
        d.setdefault(name, []).append(float(ms))
    return d
s, l = load(sys.argv[1]), load(sys.argv[2])
print(f"{'workload':18} {'stock ms':>10} {'process ms':>10} {'ratio':>8}")
logs = []
for k in s:
    a, b = statistics.median(s[k]), statistics.median(l[k])
    logs.append(math.log(b / a))
    print(f"{k:18} {a:10.1f} {b:10.1f} {b / a:8.3f}")
print(f"{'geomean':18} {'':21} {math.exp(sum(logs) / len(logs)):8.3f}")
PY
