#!/bin/sh
# bench/report.sh -- `make bench-report`: run the benchmarks, repeated and
# interleaved, keep every raw number, and write a report with tables and
# gnuplot SVGs (bench/report.py renders it):
#   1. `make bench` (run.sh, REPS repetitions, round robin over allocators);
#   2. examples/sparse_heap on a 1 GiB table at 1..50% touched, glibc +
#      mlockall against lofalloc: locked-resident against touched;
#   3. `make bench-rt` (rt.sh), when RT_LOOP is set;
#   4. with -d, `make bench-databases` (root, several minutes).
#   report.sh [-r REPS] [-s RT_SECONDS] [-d] [-o DIR] [workload...]
# Environment: LOFBENCH, LOFALLOC_LIB, SPARSE_HEAP, RT_LOOP, BUILD (the
# build tree, for -d) -- the bench-report target sets them.  DIR defaults to
# ./bench-report; DIR/README.md is the report, DIR/raw/ what it rests on.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
reps=3 rt_seconds=10 databases='' out=bench-report
while getopts r:s:do: o; do
  case $o in
  r) reps=$OPTARG ;; s) rt_seconds=$OPTARG ;; d) databases=1 ;; o) out=$OPTARG ;;
  *) echo "usage: report.sh [-r REPS] [-s RT_SECONDS] [-d] [-o DIR] [workload...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
: "${LOFBENCH:?LOFBENCH must name the lofbench binary}"
: "${LOFALLOC_LIB:?LOFALLOC_LIB must name liblofalloc.so}"
command -v python3 >/dev/null || { echo "report.sh: python3 missing (tools/deps.sh)" >&2; exit 1; }

mkdir -p "$out/raw"
out=$(cd "$out" && pwd)
rm -f "$out/raw/bench.txt" "$out/raw/sparse.txt" "$out"/*.svg "$out"/*.dat
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "kernel: $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "lofalloc: $(git -C "$here" describe --always --dirty 2>/dev/null || echo unknown)"
} > "$out/raw/machine.txt"

echo "== bench ($reps repetitions)"
BENCH_RAW="$out/raw/bench.txt" sh "$here/run.sh" -r "$reps" "$@" | tee "$out/raw/bench-table.txt"

if [ -n "${SPARSE_HEAP:-}" ] && [ -x "$SPARSE_HEAP" ]; then
  echo "== locked-resident against touched (sparse_heap, 1 GiB)"
  for touch in 1 5 10 25 50; do
    for a in glibc-mlockall lofalloc; do
      if [ $a = lofalloc ]; then
        line=$(LD_PRELOAD="$LOFALLOC_LIB" "$SPARSE_HEAP" --size $((1 << 30)) --touch $touch | grep '^after touching')
      else
        line=$("$SPARSE_HEAP" --mlockall --size $((1 << 30)) --touch $touch | grep '^after touching') || line=''
      fi
      # "after touching the table  touched X MiB | locked-resident Y MiB | VmLck Z MiB | RSS W MiB"
      echo "$line" | awk -v a=$a -v t=$touch '{ for (i = 1; i <= NF; i++) if ($i == "touched" || $i == "locked-resident" || $i == "VmLck" || $i == "RSS") v[$i] = $(i + 1) }
        END { if ("touched" in v) print a, t, v["touched"], v["locked-resident"], v["VmLck"], v["RSS"] }' >> "$out/raw/sparse.txt"
    done
  done
  cat "$out/raw/sparse.txt"
fi

if [ -n "${RT_LOOP:-}" ] && [ -x "$RT_LOOP" ]; then
  echo "== real-time loop ($rt_seconds s per allocator)"
  rm -rf "$out/rt"
  RT_OUT="$out/rt" sh "$here/rt.sh" --seconds "$rt_seconds" | tee "$out/raw/rt-table.txt"
fi

if [ -n "$databases" ]; then
  echo "== databases"
  { echo "## \`make bench-databases\`"; echo; echo '```'
    sh "$here/databases.sh" -b "${BUILD:?BUILD must name the build tree}" 2>&1
    echo '```'; } > "$out/raw/databases.md"
fi

python3 "$here/report.py" "$out"
