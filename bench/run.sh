#!/bin/sh
# bench/run.sh -- run every lofbench workload against lofalloc and the peer
# allocators and print a table of times and peak RSS, with ratios.
#   bench/run.sh [-r REPS] [-t THREADS] [workload...]
# Peers are Debian's libraries by LD_PRELOAD (glibc = no preload).  Each peer
# runs twice: as is ("free") and under mlockall(MCL_CURRENT|MCL_FUTURE|
# MCL_ONFAULT) set by lofbench itself (LOFBENCH_MLOCKALL=1): the fair locked
# comparison, since lofalloc's heap is always locked on fault.  Runs are
# interleaved (round robin over allocators) and the median of REPS is kept.
# Ratios, two ways:
#  - per workload: lofalloc / the best peer on that workload (a different
#    peer may win each one), and the geometric mean of those ratios;
#  - per allocator: each allocator's geometric mean over the workloads, and
#    lofalloc's against the best of the peers' (one peer, all workloads).
# Each against the peers as they are ("free") and under mlockall ("locked").
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${LOFBENCH:=$here/lofbench}"
: "${LOFALLOC_LIB:=$here/../allocator/.libs/liblofalloc.so}"
LIBDIR=/usr/lib/x86_64-linux-gnu
reps=3
threads=4
while getopts r:t: o; do
  case $o in r) reps=$OPTARG ;; t) threads=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
workloads=${*:-churn server prodcons realloc longlived sparse handoff handoff5k prod64 pool linked bignum bigchurn}

[ -x "$LOFBENCH" ] || { echo "run.sh: $LOFBENCH not built (make -C bench lofbench)"; exit 1; }
[ -f "$LOFALLOC_LIB" ] || { echo "run.sh: $LOFALLOC_LIB not built"; exit 1; }

# BENCH_PEERS="tcmalloc mimalloc" keeps only those peers (glibc jemalloc
# tcmalloc mimalloc by default); LOFALLOC_BASE_LIB=path adds an older
# liblofalloc as "lofbase", interleaved with the rest and not a peer.
: "${BENCH_PEERS:=glibc jemalloc tcmalloc mimalloc}"
peers=
case " $BENCH_PEERS " in *" glibc "*) peers="glibc:" ;; esac
for p in jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4 mimalloc:libmimalloc.so.2; do
  case " $BENCH_PEERS " in *" ${p%%:*} "*) ;; *) continue ;; esac
  if [ -f "$LIBDIR/${p#*:}" ]; then
    peers="$peers ${p%%:*}:$LIBDIR/${p#*:}"
  else
    echo "run.sh: ${p#*:} missing (tools/deps.sh --bench): ${p%%:*} skipped"
  fi
done
configs="lofalloc:$LOFALLOC_LIB:0"
[ -n "${LOFALLOC_BASE_LIB:-}" ] && configs="$configs lofbase:$LOFALLOC_BASE_LIB:0"
for p in $peers; do configs="$configs ${p%%:*}:${p#*:}:0 ${p%%:*}-locked:${p#*:}:1"; done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "lofbench: $reps reps (median), $threads threads, $(nproc) cpus, $(uname -r)"
for w in $workloads; do
  r=0
  while [ $r -lt "$reps" ]; do
    for c in $configs; do
      name=${c%%:*}; rest=${c#*:}; lib=${rest%:*}; lock=${rest##*:}
      out=$(LD_PRELOAD=$lib LOFBENCH_MLOCKALL=$lock timeout 600 "$LOFBENCH" "$w" "$threads" 2>/dev/null)
      set -- $out
      if [ $# -ge 4 ]; then
        [ -z "${BENCH_RAW:-}" ] || echo "$w $name $r $2 $3" >>"$BENCH_RAW" # report.sh
        echo "$2" >>"$tmp/$w.$name.t"
        echo "$3" >>"$tmp/$w.$name.m"
        echo "$4" >>"$tmp/$w.$name.sum"
      else
        echo "inf" >>"$tmp/$w.$name.t"
        echo "0" >>"$tmp/$w.$name.m"
      fi
    done
    r=$((r + 1))
  done
done

# the table
printf '\n%-10s' workload
for c in $configs; do printf ' %16s' "${c%%:*}"; done
printf ' | %9s %9s %9s %9s %7s\n' t/free t/locked rss/free rss/lckd spread
for w in $workloads; do
  printf '%-10s' "$w"
  for c in $configs; do
    n=${c%%:*}
    t=$(median <"$tmp/$w.$n.t")
    m=$(median <"$tmp/$w.$n.m")
    echo "$t" >"$tmp/$w.$n.tm"
    echo "$m" >"$tmp/$w.$n.mm"
    printf ' %8ss %5dM' "$t" $((m / 1024))
  done
  # ratios against the best peer, free and locked
  lt=$(cat "$tmp/$w.lofalloc.tm"); lm=$(cat "$tmp/$w.lofalloc.mm")
  bf=; bl=; mf=; ml=
  for p in $peers; do
    n=${p%%:*}
    bf="$bf $(cat "$tmp/$w.$n.tm")"; mf="$mf $(cat "$tmp/$w.$n.mm")"
    bl="$bl $(cat "$tmp/$w.$n-locked.tm")"; ml="$ml $(cat "$tmp/$w.$n-locked.mm")"
  done
  echo "$w $lt $lm min:$bf min:$bl min:$mf min:$ml" | awk '
    function mn(s,  a, n, i, m) { n = split(s, a, " "); m = ""; for (i = 1; i <= n; i++) if (a[i] != "inf" && a[i] > 0 && (m == "" || a[i] + 0 < m + 0)) m = a[i]; return m }
    { split($0, part, "min:"); split(part[1], h, " ");
      tf = mn(part[2]); tl = mn(part[3]); rf = mn(part[4]); rl = mn(part[5]);
      printf " | %8.2fx %8.2fx %8.2fx %8.2fx", h[2] / tf, h[2] / tl, h[3] / rf, h[3] / rl }' |
    tee -a "$tmp/ratios"
  # lofalloc's spread between runs: (max - min) / median of its times
  sort -n "$tmp/$w.lofalloc.t" | awk -v m="$lt" '{a[NR]=$1} END { printf " %6.0f%%\n", (m > 0 ? 100 * (a[NR] - a[1]) / m : 0) }' |
    tee -a "$tmp/ratios"
done
awk -F'|' '{ split($2, r, " "); for (i = 1; i <= 4; i++) { sub("x", "", r[i]); s[i] += log(r[i]) } n++ }
  END { printf "%-10s geometric mean of lofalloc/best-peer ratios: time %.2fx (free) %.2fx (locked), peak RSS %.2fx (free) %.2fx (locked)\n",
        "", exp(s[1] / n), exp(s[2] / n), exp(s[3] / n), exp(s[4] / n) }' "$tmp/ratios"

# Per allocator: geometric mean over the workloads of time and peak RSS.
printf '\n%-16s %12s %12s\n' allocator "gm time(s)" "gm RSS(MiB)"
for c in $configs; do
  n=${c%%:*}
  for w in $workloads; do echo "$(cat "$tmp/$w.$n.tm") $(cat "$tmp/$w.$n.mm")"; done |
    awk -v n="$n" '$1 == "inf" { bad = 1 } $1 != "inf" { t += log($1); m += log($2 / 1024); k++ }
      END { if (bad || k == 0) printf "%-16s %12s %12s\n", n, "-", "-";
            else printf "%-16s %12.3f %12.1f\n", n, exp(t / k), exp(m / k) }'
done | tee "$tmp/gm"
awk 'NR == 1 { lt = $2; lm = $3; next }
  $2 == "-" || $1 == "lofbase" { next }
  { lk = ($1 ~ /-locked$/) ? "l" : "f"
    if (!(lk in bt) || $2 < bt[lk]) { bt[lk] = $2; btn[lk] = $1 }
    if (!(lk in bm) || $3 < bm[lk]) { bm[lk] = $3; bmn[lk] = $1 } }
  END { printf "lofalloc geometric mean / the best peer'"'"'s: time %.2fx (free, %s) %.2fx (locked, %s), peak RSS %.2fx (free, %s) %.2fx (locked, %s)\n",
        lt / bt["f"], btn["f"], lt / bt["l"], btn["l"], lm / bm["f"], bmn["f"], lm / bm["l"], bmn["l"] }' "$tmp/gm"
# checksums must agree
for w in $workloads; do
  k=$(cat "$tmp/$w".*.sum 2>/dev/null | sort -u | wc -l)
  [ "$k" -le 1 ] || echo "WARNING: $w: checksums differ between allocators"
done
