#!/bin/sh
# bench/rt.sh -- `make bench-rt`: the paced real-time loop (examples/rt_loop.c,
# built as rt_loop_plain) for each allocator, each run beside
# `stress-ng --vm 1` on the machine, bounded (--seconds, 10 by default, plus a
# one-second warm-up).  Prints one table (faults of the timed phase, malloc and
# free p50/p99/p99.9/p99.99/max in ns) and writes a gnuplot latency CDF
# (rt-cdf.png) with the quantile files next to it.
#   RT_LOOP=... LOFALLOC_LIB=... sh rt.sh [rt_loop options]
set -eu
: "${RT_LOOP:?RT_LOOP must name the rt_loop_plain binary}"
: "${LOFALLOC_LIB:?LOFALLOC_LIB must name liblofalloc.so}"
OUT=${RT_OUT:-rt-results}
mkdir -p "$OUT"
LIBDIR=/usr/lib/x86_64-linux-gnu
JEMALLOC=$LIBDIR/libjemalloc.so.2
TCMALLOC=$LIBDIR/libtcmalloc_minimal.so.4
NCPU=$(nproc)
CPU=$((NCPU - 1))

run() { # label preload rt_loop-args...
  label=$1; preload=$2; shift 2
  stress_pid=
  if command -v stress-ng >/dev/null 2>&1; then
    stress-ng --vm 1 --vm-bytes 256M --timeout 40s --quiet >/dev/null 2>&1 &
    stress_pid=$!
  fi
  if [ -n "$preload" ] && [ ! -e "$preload" ]; then
    echo "# $label: $preload not found, skipped" >&2
  else
    LD_PRELOAD=$preload timeout 60 "$RT_LOOP" --cpu "$CPU" --label "$label" \
      --quantiles "$OUT/$label.q" "$@" > "$OUT/$label.txt" 2>&1 || echo "# $label failed" >&2
  fi
  if [ -n "$stress_pid" ]; then kill "$stress_pid" 2>/dev/null || true; wait "$stress_pid" 2>/dev/null || true; fi
}

run lofalloc-reserve "$LOFALLOC_LIB" --reserve 64 "$@"
run lofalloc-default "$LOFALLOC_LIB" --reserve 0 "$@"
run glibc-recipe "" --mlockall --mallopt "$@"
run jemalloc-mlockall "$JEMALLOC" --mlockall "$@"
run tcmalloc-mlockall "$TCMALLOC" --mlockall "$@"

printf '| allocator | minor faults | major faults | malloc p50 | p99 | p99.9 | p99.99 | max | free p50 | p99 | p99.9 | p99.99 | max |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for f in "$OUT"/*.txt; do
  grep '^RESULT' "$f" | awk '{ printf "| %s", $2; for (i = 3; i <= NF; i++) printf " | %s", $i; printf " |\n" }'
done
echo "(latencies in ns; faults counted by getrusage over the timed phase)"

if command -v gnuplot >/dev/null 2>&1; then
  plot=""
  for q in "$OUT"/*.q; do
    l=$(basename "$q" .q)
    awk '$1 == "malloc" { print $3, $2 }' "$q" > "$OUT/$l.malloc.dat"
    plot="$plot${plot:+, }'$OUT/$l.malloc.dat' using 1:2 with lines title '$l'"
  done
  gnuplot <<GP
set terminal png size 900,600
set output '$OUT/rt-cdf.png'
set logscale x
set xlabel 'malloc latency (ns)'
set ylabel 'fraction of calls'
set key bottom right
set title 'paced loop beside stress-ng --vm 1: malloc latency CDF'
plot $plot
GP
  echo "CDF: $OUT/rt-cdf.png"
fi
