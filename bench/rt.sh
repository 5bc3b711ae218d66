#!/bin/sh
# bench/rt.sh -- `make bench-rt`: the paced real-time loop (examples/rt_loop.c,
# built as rt_loop_plain) for each allocator, each run beside
# `stress-ng --vm 1` on the machine, bounded (--seconds, 10 by default, plus a
# one-second warm-up).  Prints one table (faults of the timed phase, malloc and
# free p50/p99/p99.9/p99.99/max in ns) and writes a gnuplot latency CDF
# (rt-cdf.png) with the quantile files next to it.
#   RT_LOOP=... LOFALLOC_LIB=... [RT_ROUNDS=N] sh rt.sh [rt_loop options]
# RT_ROUNDS (default 1) repeats the five runs N times, interleaved (round 1
# runs each allocator once, then round 2, ...), each round in OUT/rN/; the
# table is then the per-column median over the rounds, followed by each
# round's malloc and free p99 over the glibc recipe's of the same round
# (the issue's target: <= 1) and their medians.  The CDF is the last round's.
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
      --quantiles "$ROUND_DIR/$label.q" "$@" > "$ROUND_DIR/$label.txt" 2>&1 || echo "# $label failed" >&2
  fi
  if [ -n "$stress_pid" ]; then kill "$stress_pid" 2>/dev/null || true; wait "$stress_pid" 2>/dev/null || true; fi
}

ROUNDS=${RT_ROUNDS:-1}
round=1
while [ "$round" -le "$ROUNDS" ]; do
  if [ "$ROUNDS" -eq 1 ]; then ROUND_DIR=$OUT; else ROUND_DIR=$OUT/r$round; mkdir -p "$ROUND_DIR"; fi
  run lofalloc-reserve "$LOFALLOC_LIB" --reserve 64 "$@"
  run lofalloc-default "$LOFALLOC_LIB" --reserve 0 "$@"
  run glibc-recipe "" --mlockall --mallopt "$@"
  run jemalloc-mlockall "$JEMALLOC" --mlockall "$@"
  run tcmalloc-mlockall "$TCMALLOC" --mlockall "$@"
  round=$((round + 1))
done

if [ "$ROUNDS" -gt 1 ]; then
  # OUT/label.txt: one RESULT line, each column the median over the rounds
  for f in "$OUT"/r1/*.txt; do
    l=$(basename "$f" .txt)
    cat "$OUT"/r*/"$l.txt" | grep '^RESULT' | awk -v n="$ROUNDS" '
      { for (i = 3; i <= NF; i++) v[i, NR] = $i; nf = NF; lab = $2; m = NR }
      END { printf "RESULT %s", lab
        for (i = 3; i <= nf; i++) { k = 0
          for (r = 1; r <= m; r++) a[++k] = v[i, r]
          for (x = 2; x <= k; x++) { t = a[x]; for (y = x - 1; y >= 1 && a[y] + 0 > t + 0; y--) a[y + 1] = a[y]; a[y + 1] = t }
          printf " %s", (k % 2) ? a[(k + 1) / 2] : int((a[k / 2] + a[k / 2 + 1]) / 2) }
        printf "\n" }' > "$OUT/$l.txt"
    cp "$OUT/r$ROUNDS/$l.q" "$OUT/$l.q" 2>/dev/null || true
  done
fi

printf '| allocator | minor faults | major faults | malloc p50 | p99 | p99.9 | p99.99 | max | free p50 | p99 | p99.9 | p99.99 | max |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for f in "$OUT"/*.txt; do
  grep '^RESULT' "$f" | awk '{ printf "| %s", $2; for (i = 3; i <= NF; i++) printf " | %s", $i; printf " |\n" }'
done
echo "(latencies in ns; faults counted by getrusage over the timed phase)"
if [ "$ROUNDS" -gt 1 ]; then
  echo "(each column: the median of $ROUNDS interleaved rounds)"
  # columns of a RESULT line: $6 = malloc p99, $11 = free p99
  for l in lofalloc-reserve lofalloc-default; do
    r=1 line=""
    while [ "$r" -le "$ROUNDS" ]; do
      line="$line $(cat "$OUT/r$r/$l.txt" "$OUT/r$r/glibc-recipe.txt" 2>/dev/null | grep '^RESULT' |
        awk 'NR == 1 { m = $6; f = $11 } NR == 2 && $6 > 0 && $11 > 0 { printf "%.2f/%.2f", m / $6, f / $11 }')"
      r=$((r + 1))
    done
    echo "$line" | awk -v l="$l" '{ n = split($0, x, " "); for (i = 1; i <= n; i++) { split(x[i], y, "/"); m[i] = y[1]; f[i] = y[2] }
      for (a = 2; a <= n; a++) { t = m[a]; for (b = a - 1; b >= 1 && m[b] > t; b--) m[b + 1] = m[b]; m[b + 1] = t }
      for (a = 2; a <= n; a++) { t = f[a]; for (b = a - 1; b >= 1 && f[b] > t; b--) f[b + 1] = f[b]; f[b + 1] = t }
      med = (n % 2) ? (n + 1) / 2 : n / 2
      printf "%s p99 / glibc-recipe p99 per round (malloc/free):%s; median malloc %.2f, free %.2f\n", l, " " $0, m[med], f[med] }'
  done
fi

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
